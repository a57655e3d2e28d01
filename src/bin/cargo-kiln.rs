//! `cargo-kiln`: cargo runs it as `cargo-kiln kiln ARGS`; the library drops the extra word.

fn main() -> std::process::ExitCode {
    kiln::main_with_args(std::env::args_os())
}
