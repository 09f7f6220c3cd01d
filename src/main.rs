//! The `jobline` binary: a thin shell over the library's command line.

fn main() {
    std::process::exit(jobline::cli::main());
}
