//! `kiln inspect FILE|DIR…`: the ELF inspector on the command line. Prints the table (or
//! `--json`), then exits 0 when every file passes, 3 when one fails the policy, 1 when an
//! input could not be read (that wins: an unread file was not verified).

use std::io::Write;

use anyhow::Context;

use crate::cli::InspectArgs;
use crate::commands::Ctx;
use crate::error::VerificationFailed;
use crate::inspect::printer::{self, PolicyOut};
use crate::inspect::{self, Inspection, Policy};
use crate::target::Targets;

pub fn run(args: &InspectArgs, ctx: &Ctx) -> anyhow::Result<()> {
    super::push::options(&args.registry, ctx);
    let target = match &args.arch {
        Some(a) => Some(
            Targets::builtin()
                .resolve(std::slice::from_ref(a))?
                .remove(0),
        ),
        None => None,
    };
    let policy_out = PolicyOut::new(
        args.require,
        target.as_ref().map(|t| t.platform.to_string()),
    );
    let policy = Policy {
        require: args.require,
        target,
    };
    let inspection = inspect(args, &policy);

    // Buffered: stdout flushes at every newline, and a pretty JSON report of /usr/lib has
    // about 95,000 lines (a write(2) each, a fifth of the run's system time, seen with
    // `strace -c`).
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    if args.json || ctx.json {
        printer::write_json(&mut out, &inspection, &policy_out)
    } else {
        printer::write_human(&mut out, &inspection, ctx.verbose > 0)
    }
    .context("writing the report")?;
    out.flush().context("writing the report")?;
    outcome(&inspection)
}

/// Run the inspection the arguments ask for.
pub fn inspect(args: &InspectArgs, policy: &Policy) -> Inspection {
    inspect::inspect_paths(&args.paths, policy)
}

/// The exit status of a finished inspection, as an error the caller maps to 1 or 3.
pub fn outcome(inspection: &Inspection) -> anyhow::Result<()> {
    let s = &inspection.summary;
    if s.errors > 0 {
        anyhow::bail!(
            "{} input{} could not be inspected (see the messages above); fix or remove them and run again",
            s.errors,
            if s.errors == 1 { "" } else { "s" }
        );
    }
    if s.failed > 0 {
        return Err(VerificationFailed(format!(
            "{} of {} ELF file{} failed verification (reasons above)",
            s.failed,
            s.elf,
            if s.elf == 1 { "" } else { "s" }
        ))
        .into());
    }
    Ok(())
}
