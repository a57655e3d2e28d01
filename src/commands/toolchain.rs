//! `kiln toolchain install|which`: toolchains kiln manages in its cache.

use std::io::Write;

use crate::cli::ToolchainCommand;
use crate::commands::Ctx;
use crate::error::UsageError;
use crate::toolchain;

pub fn run(cmd: &ToolchainCommand, ctx: &Ctx) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        ToolchainCommand::Install { what } => match what.as_str() {
            "zig" => {
                if !ctx.quiet {
                    eprintln!("  installing zig (the ziglang wheel) into {}", toolchain::cache_dir().display());
                }
                let zig = toolchain::install_zig()?;
                let version = toolchain::zig_version(&zig)?;
                writeln!(out, "zig {version} at {}", zig.path.display())?;
                Ok(())
            }
            other => Err(UsageError(format!(
                "kiln cannot install `{other}`; it installs: zig. Rust targets are added by `kiln build` itself (rustup)."
            ))
            .into()),
        },
        ToolchainCommand::Which { what } => match what.as_str() {
            "zig" => {
                let zig = toolchain::find_zig()?;
                writeln!(out, "{} ({})", zig.path.display(), zig.source)?;
                Ok(())
            }
            other => Err(UsageError(format!("unknown toolchain `{other}`; known: zig")).into()),
        },
    }
}
