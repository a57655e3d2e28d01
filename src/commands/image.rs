//! `kiln image --binary PLATFORM=PATH … --output DEST`: pack prebuilt static binaries into
//! a multi-platform OCI image. Each binary passes the ELF gate (static, built for its
//! platform) before anything is written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::cli::{BaseCommand, DistrolessFrom, ImageArgs};
use crate::commands::Ctx;
use crate::commands::message;
use crate::error::UsageError;
use crate::fsutil::{WriteOptions, write_atomic};
use crate::oci::distroless::DistrolessSource;
use crate::oci::spec::ImageSettings;
use crate::oci::{
    self, Base, BuildOptions, BuiltIndex, LayerEntry, Metadata, OutputSpec, PlatformImage,
};
use crate::pipeline::{self, Prebuilt};
use crate::progress::human_size;
use crate::target::{Platform, Targets};

/// One `--binary PLATFORM=PATH` value.
fn parse_binary(s: &str, targets: &Targets) -> anyhow::Result<Prebuilt> {
    let (platform, path) = s.split_once('=').ok_or_else(|| {
        UsageError(format!(
            "--binary `{s}` has no platform: use PLATFORM=PATH, e.g. linux/arm64=target/aarch64-unknown-linux-musl/release/app"
        ))
    })?;
    let target = targets
        .resolve(&[platform.to_string()])?
        .into_iter()
        .next()
        .ok_or_else(|| UsageError(format!("--binary `{s}` names no platform")))?;
    let path = PathBuf::from(path);
    // Looked at before anything opens it: a FIFO would block the run forever.
    if let Ok(m) = std::fs::metadata(&path)
        && !m.is_file()
    {
        return Err(UsageError(format!(
            "--binary `{s}`: {} is not a regular file (a directory, FIFO, socket or device)",
            path.display()
        ))
        .into());
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| UsageError(format!("--binary `{s}`: the path names no file")))?
        .to_string();
    Ok(Prebuilt { target, path, name })
}

fn key_values(flag: &str, items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(UsageError(format!("{flag} `{kv}` is not KEY=value")).into()),
        })
        .collect()
}

/// `--file SRC:DST[:MODE]`.
fn parse_file(s: &str) -> anyhow::Result<LayerEntry> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [src, dst] => (*src, *dst, 0o644),
        [src, dst, mode] => (
            *src,
            *dst,
            u32::from_str_radix(mode.trim_start_matches("0o"), 8).map_err(|_| {
                UsageError(format!(
                    "--file `{s}`: mode `{mode}` is not octal (e.g. 0644)"
                ))
            })?,
        ),
        _ => bail!(UsageError(format!(
            "--file `{s}` is not SRC:DST[:MODE] (e.g. config.toml:/etc/app/config.toml:0644)"
        ))),
    };
    if !dst.starts_with('/') {
        bail!(UsageError(format!(
            "--file `{s}`: the destination must be an absolute path in the image"
        )));
    }
    match std::fs::metadata(src) {
        Ok(m) if m.is_file() => {}
        Ok(_) => bail!(UsageError(format!(
            "--file `{s}`: {src} is not a regular file (a directory, FIFO, socket or device): \
             give a file"
        ))),
        Err(e) => bail!("--file `{s}`: cannot read {src}: {e}"),
    }
    Ok(LayerEntry::file(dst, src, mode))
}

/// `--entrypoint`: a path, a JSON array, or `""` for none; `None` = kiln's default.
fn entrypoint(args: &ImageArgs) -> anyhow::Result<Option<Vec<String>>> {
    match args.entrypoint.as_deref() {
        None => Ok(None),
        Some(e) if e.trim_start().starts_with('[') => {
            serde_json::from_str(e).map(Some).map_err(|err| {
                UsageError(format!(
                    "--entrypoint `{e}` is not a JSON array of strings: {err}"
                ))
                .into()
            })
        }
        Some("") => Ok(Some(Vec::new())),
        Some(e) => Ok(Some(vec![e.to_string()])),
    }
}

/// The image settings the flags give (defaults are `oci::spec`'s, as for `kiln build`).
fn settings(args: &ImageArgs) -> anyhow::Result<ImageSettings> {
    Ok(ImageSettings {
        user: args.user.clone(),
        entrypoint: entrypoint(args)?,
        cmd: args.cmd.clone(),
        env: args.env.clone(),
        workdir: args.workdir.clone(),
        labels: key_values("--label", &args.labels)?,
        ports: args.ports.clone(),
        stop_signal: args.stop_signal.clone(),
        annotations: key_values("--annotation", &args.annotations)?,
        bin_dir: None,
    })
}

/// What `kiln image` packs: the images and options `build_index` takes, and the binaries
/// the gate must pass.
struct Plan {
    images: Vec<PlatformImage>,
    opts: BuildOptions,
    binaries: Vec<Prebuilt>,
}

/// Resolve the arguments into a [`Plan`].
fn plan(args: &ImageArgs) -> anyhow::Result<Plan> {
    let targets = Targets::builtin();
    let binaries = args
        .binaries
        .iter()
        .map(|b| parse_binary(b, &targets))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let files = args
        .files
        .iter()
        .map(|f| parse_file(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let first = &binaries[0].name;
    let settings = settings(args)?;
    for p in &settings.ports {
        oci::image::normalize_port(p).map_err(|e| UsageError(format!("--port: {e:#}")))?;
    }

    // Platforms in the order first given; each gets its binaries and the extra files, and
    // (without --entrypoint) runs its own first binary.
    let mut platforms: Vec<(&Platform, Vec<&Prebuilt>)> = Vec::new();
    for b in &binaries {
        match platforms.iter_mut().find(|(p, _)| **p == b.target.platform) {
            Some((_, bs)) => bs.push(b),
            None => platforms.push((&b.target.platform, vec![b])),
        }
    }
    let images: Vec<PlatformImage> = platforms
        .iter()
        .map(|(platform, bs)| {
            let names: Vec<&str> = bs.iter().map(|b| b.name.as_str()).collect();
            let on_disk: Vec<(&str, &Path)> = bs
                .iter()
                .map(|b| (b.name.as_str(), b.path.as_path()))
                .collect();
            settings.platform_image(platform, &on_disk, &names, None, &files)
        })
        .collect();

    let base = match args.base.as_str() {
        "distroless" => match args.distroless_from {
            DistrolessFrom::Deb => Base::Distroless(DistrolessSource::Debs {
                lock: args
                    .base_lock
                    .clone()
                    .unwrap_or_else(|| oci::distroless::DEFAULT_LOCK.into()),
                debs: args.debs.clone(),
            }),
            DistrolessFrom::Host => Base::Distroless(DistrolessSource::Host),
        },
        b => b.parse::<Base>()?,
    };
    // Checked before anything is packed: a bad setting is a usage error (exit 2).
    let has_passwd = match &base {
        Base::Scratch => Some(
            files
                .iter()
                .any(|f| f.path.trim_start_matches('/') == "etc/passwd"),
        ),
        Base::Distroless(_) => Some(true),
        Base::Image(_) => None,
    };
    for img in &images {
        oci::validate::image_spec(&img.spec, has_passwd)?;
    }
    let opts = BuildOptions {
        source_date_epoch: BuildOptions::source_date_epoch_from_env()?,
        compression: args.compression,
        base,
        metadata: Metadata {
            title: args.title.clone().or_else(|| Some(first.clone())),
            version: args.app_version.clone(),
            revision: args.revision.clone(),
            source: args.source.clone(),
            licenses: args.licenses.clone(),
            description: args.description.clone(),
        },
        // Prebuilt binaries have no build dir to keep layers in: each run compresses.
        reuse: None,
    };
    Ok(Plan {
        images,
        opts,
        binaries,
    })
}

pub fn run(args: &ImageArgs, ctx: &Ctx) -> anyhow::Result<BuiltIndex> {
    // Every --output parsed before any work, so a typo fails fast.
    let outs = oci::output::parse_outputs(&args.outputs, args.docker_platform.as_deref())?;
    oci::output::check_push(&outs, args.registry.push_by_digest)?;
    let reporter = super::push::Reporter::new(ctx);
    let events = |e: crate::oci::registry::Event<'_>| reporter.event(e);
    let push = super::push::push(&args.registry, ctx, &events);
    let Plan {
        images,
        opts,
        binaries,
    } = plan(args)?;
    // Layouts are opened first, so each layer is written while the others compress; a
    // failed gate or build drops them, leaving nothing behind.
    let opened = oci::output::Opened::open(&outs)?;
    let built = pipeline::pack_prebuilt(&binaries, &images, &opts, &opened, &outs)?;
    let mut err = std::io::stderr().lock();
    for w in &built.warnings {
        writeln!(err, "warning: {w}")?;
    }
    for o in &outs {
        if let OutputSpec::DockerArchive { platform: None, .. } = o
            && built.images.len() > 1
            && !ctx.quiet
        {
            let chosen = oci::archive::pick_image(&built, None)?;
            writeln!(
                err,
                "note: {o} holds one platform, {} (this machine's); choose another with --docker-platform",
                chosen.platform
            )?;
        }
    }
    drop(err);
    let pushed = oci::output::write_opened(&outs, opened, &built, &push, &[], &|_| false)?;
    // With an archive streaming to stdout, the report goes to stderr.
    let mut out: Box<dyn Write> = if outs.iter().any(OutputSpec::is_stdout) {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    };
    if ctx.json {
        message::write(
            &mut out,
            &message::index_messages(&built, &outs, pushed.as_ref()),
        )?;
        if let Some(p) = &pushed {
            drop(out);
            super::push::print_pushed(p, ctx, args.registry.push_by_digest)?;
        }
    } else if !ctx.quiet {
        for i in &built.images {
            let size: u64 = i.layers.iter().map(|l| l.size).sum();
            writeln!(
                out,
                "{:<16} {}  {:>9}",
                i.platform.to_string(),
                i.manifest,
                human_size(size)
            )?;
        }
        // Pushes print their own `pushed REG/REPO@DIGEST` lines.
        for o in outs
            .iter()
            .filter(|o| !matches!(o, OutputSpec::Registry(_)))
        {
            writeln!(out, "wrote {o}  index {}", built.digest)?;
        }
        if let Some(p) = &pushed {
            drop(out);
            super::push::print_pushed(p, ctx, args.registry.push_by_digest)?;
        }
    } else {
        // With --push-by-digest the digest pushed (one platform: its manifest).
        let digest = pushed.as_ref().map_or(&built.digest, |p| &p.digest);
        writeln!(out, "{digest}")?;
    }
    Ok(built)
}

/// `kiln base lock`: pin the distroless packages.
pub fn run_base(cmd: &BaseCommand, ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        BaseCommand::Lock { debs, output } => {
            let mut lock = oci::distroless::lock(debs.as_deref())?;
            // The debug twins' busybox is pinned in the same file: pin it again, not drop it.
            if output.is_file() {
                match oci::distroless::LockFile::read(output) {
                    Ok(old) => {
                        let (busybox, warnings) = oci::debug::relock(&old, debs.as_deref())?;
                        for w in warnings {
                            eprintln!("warning: {w}");
                        }
                        lock.package.extend(busybox);
                    }
                    Err(e) => eprintln!(
                        "warning: {} is not read (no busybox pin to keep): {e:#}",
                        output.display()
                    ),
                }
            }
            write_atomic(output, lock.to_toml()?.as_bytes(), WriteOptions::DURABLE)?;
            if !ctx.quiet {
                let mut out = std::io::stdout().lock();
                for p in &lock.package {
                    writeln!(out, "{:<16} {:<24} {}", p.name, p.version, p.sha256)?;
                }
                writeln!(out, "wrote {}", output.display())?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        let t = Targets::builtin();
        let b = parse_binary("arm64=out/app", &t).unwrap();
        assert_eq!(
            (b.target.platform.to_string(), b.name.as_str()),
            ("linux/arm64".into(), "app")
        );
        assert!(parse_binary("out/app", &t).is_err());
        assert!(parse_binary("linux/sparc=out/app", &t).is_err());
        assert!(key_values("--label", &["a".into()]).is_err());
        assert_eq!(
            key_values("--label", &["a=b=c".into()]).unwrap()["a"],
            "b=c"
        );
        assert!(parse_file("x:/y:99").is_err());
        assert!(parse_file("x:rel").is_err());
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(12), "12 B");
        let mut args = ImageArgs {
            entrypoint: Some(r#"["/a","b"]"#.into()),
            ..Default::default()
        };
        assert_eq!(entrypoint(&args).unwrap().unwrap(), ["/a", "b"]);
        args.entrypoint = Some("[oops".into());
        assert!(entrypoint(&args).is_err());
        args.entrypoint = Some("".into());
        assert_eq!(entrypoint(&args).unwrap(), Some(vec![]));
        args.entrypoint = None;
        assert_eq!(entrypoint(&args).unwrap(), None);
    }
}
