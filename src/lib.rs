//! kiln: Rust, Go and C projects to verified static Linux binaries for many CPU
//! architectures, packed into reproducible multi-platform OCI images without a daemon.
//!
//! The binary is thin; everything lives here so tests and xtask call functions.

// Imports point one way, top to bottom (docs/architecture.md):
// commands → pipeline → builders / toolchain / inspect → oci / elf → leaves.
pub mod cli;
pub mod commands;
pub mod config;

pub mod pipeline;

pub mod attest;
pub mod builders;
pub mod dockerfile;
pub mod inspect;
pub mod toolchain;

pub mod elf;
pub mod oci;

pub mod digest;
pub mod error;
pub mod exec;
pub mod fsutil;
pub mod jobs;
pub mod par;
pub mod progress;
pub mod target;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

pub use error::{ToolchainMissing, UsageError, VerificationFailed};

/// Run the parsed command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<()> {
    exec::set_verbosity(cli.verbose);
    let ctx = commands::Ctx::new(&cli);
    match cli.command {
        cli::Command::Build(args) => commands::build::run(&args, &ctx).map(|_| ()),
        cli::Command::Inspect(args) => commands::inspect::run(&args, &ctx),
        cli::Command::Doctor(args) => commands::doctor::run(&args, &ctx),
        cli::Command::Toolchain(cmd) => commands::toolchain::run(&cmd, &ctx),
        cli::Command::Targets => commands::targets::run(&ctx),
        cli::Command::Image(args) => commands::image::run(&args, &ctx).map(|_| ()),
        cli::Command::Base(cmd) => commands::image::run_base(&cmd, &ctx),
        cli::Command::Lint(args) => commands::lint::run(&args, &ctx).map(|_| ()),
        cli::Command::Dockerfile(args) => commands::dockerfile::run(&args, &ctx),
        cli::Command::Index(cmd) => commands::index::run(&cmd, &ctx),
        cli::Command::Debug(args) => commands::debug::run(&args, &ctx),
        cli::Command::ZigCc(args) => toolchain::zigcc::run(&args.into()),
    }
}

/// The whole program: used by both `kiln` and `cargo-kiln`.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let mut args: Vec<OsString> = args.into_iter().collect();
    // `cargo kiln build` runs `cargo-kiln kiln build`.
    if args.get(1).is_some_and(|a| a == "kiln") {
        args.remove(1);
    }
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(error::exit::USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed pipe on stdout (`kiln inspect … | head`) is not an error.
            if err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            error::exit_code(&err)
        }
    }
}
