//! `kiln index merge --output DEST IMAGE…`: one multi-platform index over per-platform
//! images built apart (a CI matrix), equal to the index one machine would have built.

use std::io::Write;

use crate::cli::{IndexCommand, IndexMergeArgs};
use crate::commands::Ctx;
use crate::commands::message::{self, Message, PushedMessage};
use crate::error::UsageError;
use crate::oci::registry::{self, Pushed};
use crate::oci::{self, ImageRef};

pub fn run(cmd: &IndexCommand, ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        IndexCommand::Merge(args) => merge(args, ctx),
    }
}

fn merge(args: &IndexMergeArgs, ctx: &Ctx) -> anyhow::Result<()> {
    if args.registry.push_by_digest {
        return Err(UsageError(
            "kiln index merge tags the index it writes: drop --push-by-digest".into(),
        )
        .into());
    }
    let outputs = oci::output::parse_outputs(&args.outputs, None)?;
    let inputs = args
        .images
        .iter()
        .map(|i| ImageRef::parse(i, "image"))
        .collect::<Result<Vec<_>, _>>()?;
    let reporter = super::push::Reporter::new(ctx);
    let events = |e: crate::oci::registry::Event<'_>| reporter.event(e);
    let push = super::push::push(&args.registry, ctx, &events);
    let remote = |refs: &[ImageRef]| -> Option<Vec<registry::Reference>> {
        refs.iter()
            .map(|r| match r {
                ImageRef::Registry(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    };
    let written: Vec<String> = outputs.iter().map(ToString::to_string).collect();
    let (messages, pushed) = match (remote(&inputs), remote(&outputs)) {
        // Registry to registry: documents only, the layers stay where they are.
        (Some(from), Some(to)) => {
            let m = registry::merge::merge(&from, &to, &push.options, push.events)?;
            let mut repos: Vec<String> = to.iter().map(|r| r.repo_name()).collect();
            repos.dedup();
            let pushed = Pushed {
                references: repos.iter().map(|r| format!("{r}@{}", m.digest)).collect(),
                digest: m.digest.clone(),
            };
            let msgs = message::image_messages(&m.digest, m.size, &m.images, written.clone());
            (msgs, Some(pushed))
        }
        _ => {
            let images = args
                .images
                .iter()
                .map(|i| oci::read_image(i))
                .collect::<anyhow::Result<Vec<_>>>()?;
            // Registries check every blob they are sent; files and layouts need it here.
            let all_registries = outputs.iter().all(|o| matches!(o, ImageRef::Registry(_)));
            let built = oci::merge::merge_images(&images, !all_registries)?;
            let pushed = oci::write_outputs(&outputs, &built, &push)?;
            (
                message::index_messages(&built, &outputs, pushed.as_ref()),
                pushed,
            )
        }
    };
    let Some(Message::Index(index)) = messages.last() else {
        unreachable!("image_messages ends with the index");
    };
    let mut out = std::io::stdout().lock();
    if ctx.json {
        let mut all = messages;
        if let Some(p) = &pushed {
            all.push(Message::Pushed(PushedMessage {
                digest: p.digest.clone(),
                references: p.references.clone(),
                by_digest: false,
            }));
        }
        message::write(&mut out, &all)?;
    } else if ctx.quiet {
        writeln!(out, "{}", index.digest)?;
    } else {
        writeln!(out, "merged {}", index.platforms.join(", "))?;
        for w in &written {
            writeln!(out, "wrote {w}  index {}", index.digest)?;
        }
    }
    Ok(())
}
