//! The `jobline` binary: a thin shell over the library's command line.

/// mimalloc instead of the system allocator: the server allocates and frees small
/// buffers on many threads (HTTP, writer, workers, webhook client), where it spends
/// 7 % less CPU per job than with glibc's allocator (docs/benchmarks.md, ninth session).
/// `.cargo/config.toml` builds it without eager commit, which kept freed memory resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs the command and ends the process with `_exit`, not `exit`: threads that hold
/// database connections (the writer lanes, the page reader, the PostgreSQL listener) are
/// still alive when a command returns, and `exit`'s handlers (OpenSSL's clean-up, which
/// libpq's TLS uses) freed memory those threads were using: about one `jobline serve` in
/// sixty under `jobline bench --nodes 3` aborted on "corrupted double-linked list" as it
/// stopped. Every write was committed and answered by then; what is left to flush is
/// stdout's buffer.
fn main() {
    use std::io::Write;
    let code = jobline::cli::main();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit(2) ends the process at once; nothing runs after it.
    unsafe { libc::_exit(code) }
}
