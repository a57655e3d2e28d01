//! `kiln debug IMAGE [--platform P] [-- CMD…]`: the image's root filesystem (its debug twin's
//! when there is one) unpacked into a temporary directory, and a shell or CMD run in it with
//! chroot, under qemu-user when the platform is foreign. No Docker needed; chroot needs root.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context;

use crate::cli::DebugArgs;
use crate::commands::Ctx;
use crate::error::UsageError;
use crate::exec::Cmd;
use crate::oci::{self, ImageRef};
use crate::progress::Progress;
use crate::target::Targets;
use crate::toolchain::{self, Runner};

pub fn run(args: &DebugArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let progress = Progress::new(ctx.quiet || ctx.json);
    if fs_err::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        return Err(UsageError(
            "kiln debug runs the command in a chroot of the image's files, and chroot needs \
             root: run it again with sudo (or as root in a container). To only look at the \
             files, `kiln inspect -v IMAGE` lists the binaries."
                .into(),
        )
        .into());
    }
    let image = read_with_twin(&args.image, &progress)?;
    let table = Targets::builtin();
    let wanted = match &args.platform {
        Some(p) => Some(table.resolve(std::slice::from_ref(p))?.remove(0)),
        None => None,
    };
    let native = table.all.iter().find(|t| t.runs_natively()).cloned();
    let pick =
        |t: &crate::target::Target| image.platforms.iter().find(|p| p.platform == t.platform);
    let manifest = match (&wanted, image.platforms.as_slice()) {
        (Some(t), _) => pick(t),
        (None, [only]) => Some(only),
        (None, _) => native.as_ref().and_then(pick),
    }
    .ok_or_else(|| {
        UsageError(format!(
            "{} has no image for {}: it has {}; choose one with --platform",
            args.image,
            wanted
                .as_ref()
                .map_or("this machine's platform".to_string(), |t| t
                    .platform
                    .to_string()),
            image.platform_list()
        ))
    })?;
    let target = table.resolve(&[manifest.platform.to_string()])?.remove(0);

    let root = tempfile::Builder::new().prefix("kiln-debug-").tempdir()?;
    oci::rootfs::unpack(manifest, root.path())
        .with_context(|| format!("unpacking {} for {}", args.image, manifest.platform))?;
    let env: Vec<String> = manifest
        .config
        .config()
        .as_ref()
        .and_then(|c| c.env().clone())
        .unwrap_or_default();
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(oci::image::DEFAULT_PATH.trim_start_matches("PATH="))
        .to_string();
    let cmd: Vec<String> = if args.cmd.is_empty() {
        let shell = ["/busybox/sh", "/bin/sh"]
            .into_iter()
            .find(|s| root.path().join(&s[1..]).exists())
            .ok_or_else(|| {
                UsageError(format!(
                    "{} has no shell (/busybox/sh or /bin/sh): give a command after `--`, e.g. \
                     `kiln debug {} -- /usr/local/bin/APP --version`, or build a debug twin \
                     with `kiln build --debug-image`",
                    args.image, args.image
                ))
            })?;
        vec![shell.to_string()]
    } else {
        args.cmd.clone()
    };
    let mut argv = cmd.clone();
    if let Runner::Qemu(qemu) = toolchain::runner(&target)? {
        // No binfmt_misc entry: qemu goes into the root and runs the command's file.
        fs_err::copy(&qemu, root.path().join(".kiln-qemu"))?;
        argv[0] = resolve_in(root.path(), &path, &cmd[0])
            .ok_or_else(|| UsageError(format!("{} is not in the image (PATH={path})", cmd[0])))?;
        argv.insert(0, "/.kiln-qemu".into());
    }
    progress.say(&format!(
        "running {} in {} ({})",
        cmd.join(" "),
        args.image,
        manifest.platform
    ));
    let mut c = Cmd::new("chroot", format!("run {} in {}", cmd[0], args.image))
        .arg(root.path())
        .args(&argv)
        .env("PATH", &path);
    for e in &env {
        if let Some((k, v)) = e.split_once('=').filter(|(k, _)| *k != "PATH") {
            c = c.env(k, v);
        }
    }
    c.run_inherit()?;
    Ok(())
}

/// The image named, or its `-debug` twin when that can be read.
fn read_with_twin(reference: &str, progress: &Progress) -> anyhow::Result<oci::ReadImage> {
    if let Ok(parsed) = reference.parse::<ImageRef>()
        && let Ok(twin) = oci::debug::twin_output(&parsed)
        && let Ok(image) = oci::read_image(&twin.to_string())
    {
        progress.say(&format!("using the debug twin {twin}"));
        return Ok(image);
    }
    oci::read_image(reference).with_context(|| format!("reading {reference}"))
}

/// Where `name` is inside `root`, searched on the image's PATH when it has no `/`.
fn resolve_in(root: &Path, path: &str, name: &str) -> Option<String> {
    if name.contains('/') {
        return Some(name.to_string());
    }
    path.split(':')
        .map(|d| format!("{}/{name}", d.trim_end_matches('/')))
        .find(|p| root.join(p.trim_start_matches('/')).exists())
}
