//! `kiln inspect FILE…`: linkage, architecture, interpreter and needed libraries.

use std::io::Write;

use anyhow::Context;

use crate::cli::InspectArgs;
use crate::commands::Ctx;
use crate::elf::{self, Policy};
use crate::error::VerificationFailed;
use crate::target::Targets;

pub fn run(args: &InspectArgs, _ctx: &Ctx) -> anyhow::Result<()> {
    let target = match &args.arch {
        Some(a) => Some(
            Targets::builtin()
                .resolve(std::slice::from_ref(a))?
                .remove(0),
        ),
        None => None,
    };
    let policy = Policy {
        require: args.require,
        target,
    };
    let mut out = std::io::stdout().lock();
    let mut failures = Vec::new();
    for path in &args.paths {
        let report =
            elf::inspect_path(path).with_context(|| format!("inspecting {}", path.display()))?;
        let problems = elf::verify(&report, &policy);
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            path.display(),
            report.linkage,
            report.arch.unwrap_or("?"),
            report.interpreter.as_deref().unwrap_or("-"),
            if report.needed.is_empty() {
                "-".to_string()
            } else {
                report.needed.join(",")
            }
        )?;
        if !problems.is_empty() {
            failures.push(elf::explain(&path.display().to_string(), &problems));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(VerificationFailed(failures.join("\n")).into())
    }
}
