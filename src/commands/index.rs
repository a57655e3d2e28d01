//! `kiln index merge --output DEST IMAGE…`: one multi-platform index over per-platform
//! images built apart (a CI matrix), equal to the index one machine would have built.

use std::io::Write;

use serde_json::json;

use crate::cli::{IndexCommand, IndexMergeArgs};
use crate::commands::Ctx;
use crate::error::UsageError;
use crate::oci::{self, registry};

pub fn run(cmd: &IndexCommand, ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        IndexCommand::Merge(args) => merge(args, ctx),
    }
}

fn merge(args: &IndexMergeArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let opts = super::push::options(&args.registry);
    let (local, remote) = registry::split_outputs(&args.outputs)?;
    let local = oci::output::parse_outputs(&local, None)?;
    if args.registry.push_by_digest {
        return Err(UsageError(
            "kiln index merge tags the index it writes: drop --push-by-digest".into(),
        )
        .into());
    }
    let reporter = super::push::Reporter::new(ctx);
    let all_remote = args.images.iter().all(|i| registry::is_registry_ref(i));
    let (digest, platforms, written) = if all_remote && local.is_empty() {
        // Documents only: the layers stay in the registry.
        let inputs = args
            .images
            .iter()
            .map(|i| registry::parse(i))
            .collect::<Result<Vec<_>, _>>()?;
        let m = registry::merge::merge(&inputs, &remote, &opts, &|e| reporter.event(e))?;
        (m.digest, m.platforms, m.references)
    } else {
        let images = args
            .images
            .iter()
            .map(|i| oci::read_image(i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let built = oci::merge::merge_images(&images)?;
        let mut written = Vec::new();
        for o in &local {
            oci::write_output(o, &built)?;
            written.push(o.to_string());
        }
        if !remote.is_empty() {
            let p = registry::push_built(&built, &remote, false, &opts, &|e| reporter.event(e))?;
            written.extend(remote.iter().map(|r| r.to_string()));
            debug_assert_eq!(p.digest, built.digest);
        }
        let platforms = built
            .images
            .iter()
            .map(|i| i.platform.to_string())
            .collect();
        (built.digest, platforms, written)
    };
    let mut out = std::io::stdout().lock();
    if ctx.json {
        writeln!(
            out,
            "{}",
            json!({"reason": "index", "digest": digest, "platforms": platforms, "outputs": written})
        )?;
    } else if ctx.quiet {
        writeln!(out, "{digest}")?;
    } else {
        writeln!(out, "merged {}", platforms.join(", "))?;
        for w in &written {
            writeln!(out, "wrote {w}  index {digest}")?;
        }
    }
    Ok(())
}
