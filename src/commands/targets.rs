//! `kiln targets`: the platform table.

use std::io::Write;

use crate::commands::Ctx;
use crate::target::{RustStd, Targets};

pub fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let targets = Targets::builtin();
    let mut out = std::io::stdout().lock();
    if ctx.json {
        for t in &targets.all {
            writeln!(out, "{}", serde_json::to_string(t)?)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<8} {:<14} {:<32} {:<24} {:<10}",
        "NAME", "PLATFORM", "RUST TRIPLE", "ZIG TARGET", "RUST STD"
    )?;
    for t in &targets.all {
        writeln!(
            out,
            "{:<8} {:<14} {:<32} {:<24} {:<10}",
            t.name,
            t.platform.to_string(),
            t.rust_triple,
            t.zig_triple,
            match t.rust_std {
                RustStd::Prebuilt => "prebuilt",
                RustStd::BuildStd => "build-std",
            }
        )?;
    }
    Ok(())
}
