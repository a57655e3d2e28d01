//! `kiln build`: resolve the configuration, run the pipeline (plan → stages → gate → smoke
//! → images, in `crate::pipeline`), print a summary table or one JSON object per artifact /
//! image / index.

use std::io::Write;

use crate::cli::BuildArgs;
use crate::commands::Ctx;
use crate::commands::message::{self, Message};
use crate::config::{self, BuildConfig};
use crate::pipeline::{self, BuildOutcome};
use crate::progress::{Progress, human_size};

pub fn run(args: &BuildArgs, ctx: &Ctx) -> anyhow::Result<Vec<BuildOutcome>> {
    if args.print_config {
        let rows = config::explain_build(args)?;
        let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let mut out = std::io::stdout().lock();
        for (k, v, src) in rows {
            match v {
                Some(v) => writeln!(out, "{k:<w$}  {v:?}  ({src})")?,
                None => writeln!(out, "{k:<w$}  -  ({src})")?,
            }
        }
        return Ok(Vec::new());
    }
    if args.variant.as_deref() != Some("all") {
        return Ok(vec![build_one(config::resolve_build(args)?, args, ctx)?]);
    }
    // Every variant, each to its own tag; those with the same compiler inputs one after
    // another, so the builders' freshness checks find the previous one's binaries.
    let names = config::resolve_build(args)?.variant_names;
    if names.is_empty() {
        return Err(crate::error::UsageError(
            "--variant all: kiln.toml has no [variant.*] tables".into(),
        )
        .into());
    }
    let mut cfgs = Vec::new();
    for name in names {
        let one = BuildArgs {
            variant: Some(name.clone()),
            ..args.clone()
        };
        let mut cfg = config::resolve_build(&one)?;
        cfg.outputs = cfg
            .outputs
            .iter()
            .map(|o| {
                let spec: crate::oci::OutputSpec = o.parse()?;
                Ok(crate::oci::debug::with_tag_suffix(&spec, &name)?.to_string())
            })
            .collect::<anyhow::Result<_>>()?;
        cfg.out_dir = cfg.out_dir.join(&name);
        cfgs.push(cfg);
    }
    cfgs.sort_by_key(|c| format!("{:?}", (&c.cargo, &c.go, &c.c)));
    cfgs.into_iter()
        .map(|cfg| build_one(cfg, args, ctx))
        .collect()
}

fn build_one(cfg: BuildConfig, args: &BuildArgs, ctx: &Ctx) -> anyhow::Result<BuildOutcome> {
    if let Some(v) = &cfg.variant {
        Progress::new(ctx.quiet || ctx.json).say(&format!("variant {v}"));
    }
    let reporter = super::push::Reporter::new(ctx);
    let events = |e: crate::oci::registry::Event<'_>| reporter.event(e);
    let push = super::push::push(&args.registry, ctx, &events);
    let progress = Progress::new(ctx.quiet || ctx.json);
    let outcome = pipeline::build(&cfg, &progress, &push)?;
    print_outcome(&outcome, &cfg, ctx)?;
    if let Some(p) = &outcome.pushed {
        super::push::print_pushed(p, ctx, args.registry.push_by_digest)?;
    }
    Ok(outcome)
}

/// The summary table, or JSON lines.
fn print_outcome(outcome: &BuildOutcome, cfg: &BuildConfig, ctx: &Ctx) -> anyhow::Result<()> {
    // With an archive streaming to stdout (`-o oci-archive:-`), the report goes to stderr.
    let to_stderr = outcome.outputs.iter().any(|o| o.is_stdout());
    let mut out: Box<dyn Write> = if to_stderr {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    };
    if ctx.json {
        let variant = cfg.variant.as_deref();
        let mut messages: Vec<Message> = outcome
            .artifacts
            .iter()
            .map(|artifact| Message::Artifact(message::ArtifactMessage::new(variant, artifact)))
            .collect();
        if let Some(index) = &outcome.index {
            let mut m = message::index_messages(index, &outcome.outputs, outcome.pushed.as_ref());
            message::mark(&mut m, variant, false);
            messages.extend(m);
        }
        if let Some(index) = &outcome.debug_index {
            let twins = outcome
                .outputs
                .iter()
                .map(crate::oci::debug::twin_output)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut m = message::index_messages(index, &twins, None);
            message::mark(&mut m, variant, true);
            messages.extend(m);
        }
        messages.extend(outcome.release.iter().map(Message::Output));
        return message::write(&mut out, &messages);
    }
    let rows: Vec<[String; 5]> = outcome
        .artifacts
        .iter()
        .map(|a| {
            [
                a.platform.clone(),
                a.name.clone(),
                human_size(a.size),
                a.report.linkage.to_string(),
                a.sha256[..12].to_string(),
            ]
        })
        .collect();
    let header = ["PLATFORM", "BINARY", "SIZE", "LINKAGE", "SHA256"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: [&str; 5]| {
        format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:<w3$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        )
    };
    writeln!(out, "{}", line(header))?;
    for r in &rows {
        writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]))?;
    }
    writeln!(out, "binaries in {}", cfg.out_dir.display())?;
    if let Some(index) = &outcome.index {
        // As the user named them, less those that did not get the index.
        let holders =
            message::index_outputs(&index.digest, &outcome.outputs, outcome.pushed.as_ref());
        let names: Vec<&str> = if holders.len() == outcome.outputs.len()
            || cfg.outputs.len() != outcome.outputs.len()
        {
            cfg.outputs.iter().map(String::as_str).collect()
        } else {
            cfg.outputs
                .iter()
                .zip(&outcome.outputs)
                .filter(|(_, o)| holders.iter().any(|h| std::ptr::eq(*h, *o)))
                .map(|(n, _)| n.as_str())
                .collect()
        };
        if !names.is_empty() {
            writeln!(out, "index {} -> {}", index.digest, names.join(", "))?;
        }
        if let Some(p) = outcome.pushed.as_ref().filter(|p| p.digest != index.digest) {
            writeln!(
                out,
                "no index pushed: --push-by-digest with one platform pushes its manifest {} only",
                p.digest
            )?;
        }
    }
    if let Some(index) = &outcome.debug_index {
        writeln!(out, "debug index {} (tags with -debug)", index.digest)?;
    }
    if !outcome.release.is_empty() {
        let names: Vec<String> = outcome
            .release
            .iter()
            .map(|w| {
                w.path
                    .strip_prefix(&cfg.out_dir)
                    .unwrap_or(&w.path)
                    .display()
                    .to_string()
            })
            .collect();
        writeln!(
            out,
            "release files in {}: {}",
            cfg.out_dir.display(),
            names.join(", ")
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
    }
}
