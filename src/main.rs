//! The `jobline` binary: a thin shell over the library's command line.

/// mimalloc instead of the system allocator: the server allocates and frees small
/// buffers on many threads (HTTP, writer, workers, webhook client), where it spends
/// 7 % less CPU per job than with glibc's allocator (docs/benchmarks.md, ninth session).
/// `.cargo/config.toml` builds it without eager commit, which kept freed memory resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(jobline::cli::main());
}
