//! What `kiln build`, `kiln image` and `kiln index merge` share for registries: the flags
//! resolved into options, and push events shown as progress lines or JSON messages.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use crate::cli::{RegistryAccess, RegistryFlags};
use crate::commands::Ctx;
use crate::commands::message::{
    self, BlobMessage, ManifestMessage, Message, PushedMessage, TagMessage,
};
use crate::oci::registry::{Event, Pushed, RegistryOptions};
use crate::progress::{Progress, Task, human_size};

/// The registry options of the command line; also the ones images named by reference
/// (`--base`, `kiln inspect docker://…`) are read with.
pub fn options(flags: &RegistryAccess, ctx: &Ctx) -> RegistryOptions {
    let opts = RegistryOptions {
        ca_files: flags.registry_ca.clone(),
        insecure: flags.insecure_registry.clone(),
        quiet: ctx.quiet || ctx.json,
        ..RegistryOptions::default()
    };
    opts.clone().set_current();
    opts
}

/// Shows push events: a line per blob and a bar per chunked upload on a terminal, JSON
/// messages with `--message-format json`, nothing with `--quiet`.
pub struct Reporter {
    json: bool,
    progress: Progress,
    tasks: Mutex<HashMap<String, Task>>,
}

impl Reporter {
    pub fn new(ctx: &Ctx) -> Self {
        Reporter {
            json: ctx.json,
            progress: Progress::new(ctx.quiet || ctx.json),
            tasks: Mutex::new(HashMap::new()),
        }
    }

    pub fn event(&self, e: Event<'_>) {
        if self.json {
            let m = match e {
                Event::Blob {
                    repository,
                    digest,
                    size,
                    action,
                } => Message::Blob(BlobMessage {
                    repository: repository.to_string(),
                    digest: digest.to_string(),
                    size,
                    action,
                }),
                Event::Progress { .. } => return,
                Event::Manifest { repository, digest } => Message::Manifest(ManifestMessage {
                    repository: repository.to_string(),
                    digest: digest.to_string(),
                }),
                Event::Tag { reference, digest } => Message::Tag(TagMessage {
                    reference: reference.to_string(),
                    digest: digest.to_string(),
                }),
            };
            let _ = message::write(&mut std::io::stdout().lock(), &[m]);
            return;
        }
        let short = |d: &str| d.chars().take(19).collect::<String>();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        match e {
            Event::Progress {
                digest,
                done,
                total,
            } => {
                let t = tasks
                    .entry(digest.to_string())
                    .or_insert_with(|| self.progress.task(&short(digest)));
                t.set(&format!("{} / {}", human_size(done), human_size(total)));
            }
            Event::Blob {
                digest,
                size,
                action,
                ..
            } => {
                let line = format!("{:?} {}", action, human_size(size)).to_lowercase();
                match tasks.remove(digest) {
                    Some(t) => t.finish(&line),
                    None => self.progress.say(&format!("{:<14} {line}", short(digest))),
                }
            }
            Event::Manifest { .. } => {}
            Event::Tag { reference, digest } => self
                .progress
                .say(&format!("tagged {reference} -> {digest}")),
        }
    }
}

/// How `docker://` outputs are pushed: the flags, events to `reporter`.
pub fn push<'a>(
    flags: &RegistryFlags,
    ctx: &Ctx,
    reporter: &'a (dyn Fn(Event<'_>) + Sync),
) -> crate::oci::Push<'a> {
    crate::oci::Push {
        options: options(&flags.access, ctx),
        by_digest: flags.push_by_digest,
        events: reporter,
    }
}

/// The result line(s) of a push: `pushed REG/REPO@DIGEST` or a JSON message.
pub fn print_pushed(pushed: &Pushed, ctx: &Ctx, by_digest: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if ctx.json {
        message::write(
            &mut out,
            &[Message::Pushed(PushedMessage {
                digest: pushed.digest.clone(),
                references: pushed.references.clone(),
                by_digest,
            })],
        )?;
    } else if ctx.quiet {
        if by_digest {
            writeln!(out, "{}", pushed.digest)?;
        }
    } else {
        for r in &pushed.references {
            writeln!(out, "pushed {r}")?;
        }
    }
    Ok(())
}
