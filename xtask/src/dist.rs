//! `cargo xtask dist`: kiln releases itself with kiln. A release build of kiln (the host
//! binary that does the work) builds kiln for every platform of toolchains/targets.toml (or
//! those `--platform` names): static binaries through the gate, each smoke-run with
//! `--version` (under qemu-user when foreign), tar.gz archives, SPDX and CycloneDX SBOMs,
//! provenance, `SHA256SUMS`, and an OCI image whose entrypoint is kiln. Then it checks what
//! was written: `sha256sum -c SHA256SUMS` and kiln's own inspector on the image.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::{build_kiln, root, run, show};

/// What `cargo xtask dist` was asked for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    /// Platforms, short names or aliases; empty: every platform of targets.toml.
    platforms: Vec<String>,
    /// Where the release goes (`dist/release` in the repository by default).
    out_dir: Option<PathBuf>,
}

fn parse(args: &[String]) -> anyhow::Result<Args> {
    let mut out = Args::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--platform" => out.platforms.extend(
                value("--platform")?
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            ),
            "--out-dir" => out.out_dir = Some(value("--out-dir")?.into()),
            other => bail!(
                "unknown argument `{other}`: cargo xtask dist [--platform P[,P…]] [--out-dir DIR]"
            ),
        }
    }
    Ok(out)
}

/// `cargo xtask dist [--platform P[,P…]] [--out-dir DIR]`.
pub fn run_dist(args: &[String]) -> anyhow::Result<()> {
    let args = parse(args)?;
    let targets = kiln::target::Targets::builtin();
    let platforms: Vec<String> = if args.platforms.is_empty() {
        targets.all.iter().map(|t| t.platform.to_string()).collect()
    } else {
        // Checked here: a typo fails before minutes of building.
        targets
            .resolve(&args.platforms)?
            .iter()
            .map(|t| t.platform.to_string())
            .collect()
    };
    let out = args
        .out_dir
        .unwrap_or_else(|| root().join("dist").join("release"));
    let started = Instant::now();
    let kiln = build_kiln()?;
    let version = kiln_version(&kiln)?;
    let image = format!("oci:{}:{version}", out.join("image").display());
    eprintln!(
        "\nxtask: kiln {version} builds kiln for {} into {}\n",
        platforms.join(","),
        out.display()
    );
    run(Command::new(&kiln)
        .arg("build")
        .arg(root())
        .args(["--bin", "kiln", "--release", "--platform"])
        .arg(platforms.join(","))
        .args([
            "--smoke",
            "--smoke-arg=--version",
            "--sbom",
            "both",
            "--provenance",
            "--archive",
            "tar.gz",
            "--out-dir",
        ])
        .arg(&out)
        .arg("--output")
        .arg(&image))?;
    // From the output directory, as a user checks a download (`run` would start it in the
    // repository).
    let status = Command::new("sha256sum")
        .args(["--check", "--quiet", "SHA256SUMS"])
        .current_dir(&out)
        .status()
        .context("running sha256sum")?;
    if !status.success() {
        bail!("sha256sum --check SHA256SUMS failed in {}", out.display());
    }
    // The image: every platform, static, for its architecture (exit 3 otherwise).
    run(Command::new(&kiln)
        .args(["inspect", "--require", "static"])
        .arg(&image))?;
    let entrypoint = image_entrypoint(&image)?;
    if entrypoint != ["/usr/local/bin/kiln"] {
        bail!("the image's entrypoint is {entrypoint:?}, not kiln");
    }
    eprintln!(
        "\nxtask: dist done in {:.0?}: kiln {version} for {} platform(s) in {}; image {image} \
         (entrypoint {entrypoint:?}); SHA256SUMS checked",
        started.elapsed(),
        platforms.len(),
        out.display()
    );
    Ok(())
}

/// `0.1.0` from `kiln 0.1.0`.
fn kiln_version(kiln: &std::path::Path) -> anyhow::Result<String> {
    let mut cmd = Command::new(kiln);
    cmd.arg("--version");
    let out = cmd
        .output()
        .with_context(|| format!("running {}", show(&cmd)))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .map(str::to_string)
        .with_context(|| format!("{} printed {text:?}", show(&cmd)))
}

/// The entrypoint of every platform image (the same for all, or an error).
fn image_entrypoint(image: &str) -> anyhow::Result<Vec<String>> {
    let read = kiln::oci::read_image(image)?;
    let mut found: Option<Vec<String>> = None;
    for p in &read.platforms {
        let e = p
            .config
            .config()
            .as_ref()
            .and_then(|c| c.entrypoint().clone())
            .unwrap_or_default();
        match &found {
            Some(f) if *f != e => bail!("the platform images of {image} differ in entrypoint"),
            _ => found = Some(e),
        }
    }
    found.with_context(|| format!("{image} has no platform image"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(parse(&[]).unwrap(), Args::default());
        let a = parse(&s(&[
            "--platform",
            "linux/amd64,arm64",
            "--platform",
            "riscv64",
            "--out-dir",
            "/tmp/d",
        ]))
        .unwrap();
        assert_eq!(a.platforms, ["linux/amd64", "arm64", "riscv64"]);
        assert_eq!(a.out_dir, Some(PathBuf::from("/tmp/d")));
        assert!(parse(&s(&["--platform"])).is_err());
        assert!(parse(&s(&["--bogus"])).is_err());
    }
}
