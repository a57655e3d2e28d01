//! `kiln`: parse arguments, call the library, map errors to exit codes.

fn main() -> std::process::ExitCode {
    kiln::main_with_args(std::env::args_os())
}
