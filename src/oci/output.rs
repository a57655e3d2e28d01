//! Where a built index goes: `--output` values parsed by the transport grammar
//! (`transport.rs`) and the sink each one names. Files and layouts are written first, in
//! order; then every `docker://` output is pushed in one go (each blob once, tags last).

use anyhow::Context;

use super::layer::BlobSink;
use super::referrers::Referrer;
use super::registry::{self, Event, Pushed, RegistryOptions};
use super::transport::ImageRef;
use super::{BuiltIndex, archive, layout};
use crate::error::UsageError;

/// How `docker://` outputs are pushed.
pub struct Push<'a> {
    pub options: RegistryOptions,
    /// `--push-by-digest`: no tag; one platform pushes only its manifest.
    pub by_digest: bool,
    /// Hears each blob, manifest and tag as it lands.
    pub events: &'a (dyn Fn(Event<'_>) + Sync),
}

fn no_events(_: Event<'_>) {}

impl Default for Push<'_> {
    /// The command line's registry options ([`RegistryOptions::current`]), tags, no events.
    fn default() -> Self {
        Push {
            options: RegistryOptions::current(),
            by_digest: false,
            events: &no_events,
        }
    }
}

/// `--push-by-digest` needs somewhere to push to.
pub fn check_push(specs: &[OutputSpec], by_digest: bool) -> Result<(), UsageError> {
    if by_digest && !specs.iter().any(|s| matches!(s, ImageRef::Registry(_))) {
        return Err(UsageError(
            "--push-by-digest needs a --output docker://HOST/REPO".into(),
        ));
    }
    Ok(())
}

/// A sink for a built index: an [`ImageRef`] (the one transport grammar, `transport.rs`).
pub type OutputSpec = ImageRef;

/// Parse `--output` values; `docker_platform` (a platform, short name or alias) picks the
/// one platform a docker-archive holds.
pub fn parse_outputs(
    outputs: &[String],
    docker_platform: Option<&str>,
) -> anyhow::Result<Vec<OutputSpec>> {
    let docker_platform = docker_platform
        .map(|p| {
            crate::target::Targets::builtin()
                .resolve(&[p.to_string()])
                .map(|mut t| t.remove(0).platform)
        })
        .transpose()?;
    let specs: Vec<OutputSpec> = outputs
        .iter()
        .map(|o| {
            let mut spec = parse_output(o)?;
            if let OutputSpec::DockerArchive { platform, .. } = &mut spec {
                platform.clone_from(&docker_platform);
            }
            // Checked now, before anything is built: a device, FIFO or directory there is a
            // usage error, not something to replace.
            match &spec {
                OutputSpec::OciArchive { file, .. } | OutputSpec::DockerArchive { file, .. } => {
                    archive::destination(file)?;
                }
                OutputSpec::OciDir { .. } | OutputSpec::Registry(_) => {}
            }
            Ok(spec)
        })
        .collect::<anyhow::Result<_>>()?;
    if specs.iter().filter(|s| s.is_stdout()).count() > 1 {
        return Err(
            UsageError("only one output can stream to standard output (`-`)".into()).into(),
        );
    }
    Ok(specs)
}

/// Parse one `--output` value.
pub fn parse_output(s: &str) -> Result<OutputSpec, UsageError> {
    ImageRef::parse(s, "output")
}

/// Write a built index to a sink (a `docker://` one is pushed with the command line's
/// registry options, tagged).
pub fn write_output(spec: &OutputSpec, index: &BuiltIndex) -> anyhow::Result<()> {
    write_outputs(std::slice::from_ref(spec), index, &Push::default()).map(drop)
}

/// Write a built index to every sink: files and layouts in order, then one push to all the
/// registry outputs. Returns what the push did, if there was one.
pub fn write_outputs(
    specs: &[OutputSpec],
    index: &BuiltIndex,
    push: &Push<'_>,
) -> anyhow::Result<Option<Pushed>> {
    write_outputs_attached(specs, index, push, &[], &|_| false)
}

/// [`write_outputs`] with OCI 1.1 referrers (SBOMs, provenance) attached to the outputs
/// `attach` picks: listed in a layout's or oci-archive's `index.json`, pushed after the
/// image to a registry (under the `sha256-<hex>` fallback tag where it has no referrers
/// API). A docker-archive has no place for them.
pub fn write_outputs_attached(
    specs: &[OutputSpec],
    index: &BuiltIndex,
    push: &Push<'_>,
    referrers: &[Referrer],
    attach: &dyn Fn(&OutputSpec) -> bool,
) -> anyhow::Result<Option<Pushed>> {
    write_opened(specs, Opened::default(), index, push, referrers, attach)
}

/// Outputs opened before the image is built: each OCI layout among them (one writer per
/// directory) is a [`BlobSink`] that takes kiln's layer blobs while they are compressed
/// (`build_index_to(images, opts, &opened.sinks())`), then [`write_opened`] finishes it.
/// Dropped unwritten (a failed build or gate), they leave nothing behind.
#[derive(Default)]
pub struct Opened {
    /// A writer per `specs` position: the first layout output of each directory.
    layouts: Vec<Option<layout::LayoutWriter>>,
}

impl Opened {
    /// Open (and lock) every OCI layout among `specs`.
    pub fn open(specs: &[OutputSpec]) -> anyhow::Result<Opened> {
        use std::os::unix::fs::MetadataExt;
        let mut layouts = Vec::new();
        let mut dirs: Vec<(u64, u64)> = Vec::new();
        for spec in specs {
            let writer = match spec {
                OutputSpec::OciDir { dir, .. } => {
                    // Two outputs naming one directory share its writer (a second lock
                    // of it would wait for the first forever).
                    let known =
                        std::fs::metadata(dir).is_ok_and(|m| dirs.contains(&(m.dev(), m.ino())));
                    if known {
                        None
                    } else {
                        let w = layout::LayoutWriter::open(dir)
                            .with_context(|| format!("writing {spec}"))?;
                        let m = fs_err::metadata(dir)?;
                        dirs.push((m.dev(), m.ino()));
                        Some(w)
                    }
                }
                _ => None,
            };
            layouts.push(writer);
        }
        Ok(Opened { layouts })
    }

    /// Are these writers every output of `specs` (all OCI layouts)? Then kiln's layers
    /// need not stay in memory once they are written (`index::build_index_only_to`).
    pub fn takes_all(&self, specs: &[OutputSpec]) -> bool {
        self.layouts.iter().any(Option::is_some)
            && specs.iter().all(|s| matches!(s, OutputSpec::OciDir { .. }))
    }

    /// Where kiln's layers go while they are compressed.
    pub fn sinks(&self) -> Vec<&dyn BlobSink> {
        self.layouts
            .iter()
            .flatten()
            .map(|w| w as &dyn BlobSink)
            .collect()
    }
}

/// [`write_outputs_attached`] for outputs [`Opened`] before the build.
pub fn write_opened(
    specs: &[OutputSpec],
    mut opened: Opened,
    index: &BuiltIndex,
    push: &Push<'_>,
    referrers: &[Referrer],
    attach: &dyn Fn(&OutputSpec) -> bool,
) -> anyhow::Result<Option<Pushed>> {
    if !index.unread.is_empty() && specs.iter().any(|s| !matches!(s, OutputSpec::Registry(_))) {
        anyhow::bail!(
            "internal error: an index with unread layer blobs can only be pushed to registries"
        );
    }
    let ahead_ok = opened.takes_all(specs);
    if !index.ahead.is_empty() && !ahead_ok {
        anyhow::bail!(
            "internal error: an index whose layers are not in memory can only go to the OCI \
             layouts that took them"
        );
    }
    let mut refs = Vec::new();
    let mut attach_refs = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let attached: &[Referrer] = if attach(spec) { referrers } else { &[] };
        let writer = opened.layouts.get_mut(i).and_then(Option::take);
        match spec {
            OutputSpec::OciDir { dir, tag } => match writer {
                Some(w) => w.finish(index, tag.as_deref(), attached),
                None => layout::write_oci_dir_with(dir, index, tag.as_deref(), attached),
            },
            OutputSpec::OciArchive { file, tag } => {
                archive::write_oci_archive_with(file, index, tag.as_deref(), attached)
            }
            OutputSpec::DockerArchive {
                file,
                reference,
                platform,
            } => {
                archive::write_docker_archive(file, index, reference.as_deref(), platform.as_ref())
            }
            OutputSpec::Registry(r) => {
                refs.push(r.clone());
                if !attached.is_empty() {
                    attach_refs.push(r.clone());
                }
                Ok(())
            }
        }
        .with_context(|| format!("writing {spec}"))?;
    }
    if refs.is_empty() {
        check_push(specs, push.by_digest)?;
        return Ok(None);
    }
    let pushed = registry::push_built(index, &refs, push.by_digest, &push.options, push.events)
        .with_context(|| {
            let names: Vec<String> = refs.iter().map(|r| format!("docker://{r}")).collect();
            format!("pushing to {}", names.join(", "))
        })?;
    // Attached to what was pushed: without the index (one platform by digest), only to
    // the platform manifest.
    let pushed_referrers: Vec<Referrer> = referrers
        .iter()
        .filter(|r| r.subject.digest != index.digest || pushed.digest == index.digest)
        .cloned()
        .collect();
    if !attach_refs.is_empty() {
        registry::push_referrers(&attach_refs, &pushed_referrers, &push.options, push.events)
            .context("attaching SBOMs and provenance in the registry")?;
    }
    Ok(Some(pushed))
}
