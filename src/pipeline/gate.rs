//! The gate every binary passes before it is kept or packed: the inspector's verdict
//! (static, built for its target) with the explanation, and the smoke run.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::builders::{Artifact, Built};
use crate::digest::sha256_hex;
use crate::elf;
use crate::error::VerificationFailed;
use crate::exec::Cmd;
use crate::fsutil::{WriteOptions, write_atomic};
use crate::inspect::{self, Policy, Require};
use crate::target::Target;
use crate::toolchain::{self, Runner};

/// Why a file cannot be shipped for `target` (one paragraph per problem), if it cannot.
pub fn problems(label: &str, report: &elf::ElfReport, target: &Target) -> Option<String> {
    let problems = inspect::verify(
        report,
        &Policy {
            require: Require::Static,
            target: Some(target.clone()),
        },
    );
    (!problems.is_empty()).then(|| inspect::explain(label, &problems))
}

/// Copy a built binary into `out_dir`, hash it and run the inspector gate on it.
/// Fails with [`VerificationFailed`] (exit 3) when it is not static or not for `target`.
pub fn finish_artifact(target: &Target, built: &Built, out_dir: &Path) -> anyhow::Result<Artifact> {
    // Mapped, not copied: the build's target dir is locked until the binary is copied
    // (`Built::hold`), so nothing rewrites it meanwhile.
    let file = fs_err::File::open(&built.path)?;
    let len = file.metadata()?.len();
    let data = crate::fsutil::read_or_map(file.file(), len, true)
        .with_context(|| format!("reading {}", built.path.display()))?;
    let report = elf::inspect_bytes(&data)
        .map_err(|e| anyhow::anyhow!("{}: {e}", built.path.display()))
        .with_context(|| format!("inspecting {} for {}", built.name, target.platform))?;
    if let Some(why) = problems(&built.path.display().to_string(), &report, target) {
        return Err(VerificationFailed(format!(
            "{} for {} failed verification:\n{why}",
            built.name, target.platform,
        ))
        .into());
    }
    let dir = out_dir.join(target.platform.dir_name());
    fs_err::create_dir_all(&dir)?;
    let dest = dir.join(&built.name);
    write_atomic(&dest, &data, WriteOptions::cached(0o755))?;
    Ok(Artifact {
        platform: target.platform.to_string(),
        target: target.clone(),
        name: built.name.clone(),
        path: dest,
        sha256: sha256_hex(&data),
        size: data.len() as u64,
        report,
        smoke: None,
    })
}

/// How long a smoke run may take before it is called hung.
pub const SMOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Run an artifact once (under qemu-user when foreign). Returns its first line of output.
pub fn smoke(artifact: &Artifact, args: &[String]) -> anyhow::Result<String> {
    let target = &artifact.target;
    let summary = format!("smoke-run {} for {}", artifact.name, target.platform);
    let cmd = match toolchain::runner(target)? {
        Runner::Direct => Cmd::new(&artifact.path, summary),
        Runner::Qemu(q) => Cmd::new(q, summary).arg(&artifact.path),
    };
    let out = cmd.args(args).run_with_timeout(SMOKE_TIMEOUT)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(stdout.lines().next().unwrap_or("").to_string())
}
