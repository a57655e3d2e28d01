//! `[release]` and the release flags, resolved: SBOMs, provenance, archives, signing.

use clap::ValueEnum;

use crate::attest::{ArchiveKind, Attestations, SbomFormat, outputs::Archives};
use crate::cli::BuildArgs;
use crate::error::UsageError;

use super::FileRelease;

/// What a build writes besides binaries and images, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseConfig {
    /// SBOM formats; `None` writes none.
    pub sbom: Option<SbomFormat>,
    pub archives: Archives,
    pub provenance: bool,
    /// The command line, for provenance.
    pub command: Vec<String>,
    /// How to attach SBOMs and provenance to images; `None`: to registry outputs and
    /// tagged OCI layouts and archives (an untagged layout is read as one image).
    pub attestations: Option<Attestations>,
    /// `--sign-key`, read and checked.
    pub sign_key: Option<crate::attest::sign::SigningKey>,
    /// `--strip` / `split-debuginfo`: ship stripped binaries, debug info beside them.
    pub strip: bool,
}

impl ReleaseConfig {
    /// Attach to an output? `named`: a registry push or a tagged layout or archive.
    pub fn attach_to(&self, named: bool) -> bool {
        match self.attestations {
            Some(Attestations::Referrers) => true,
            // Inside the index instead (`oci::buildkit`), not as referrers.
            Some(Attestations::None | Attestations::Buildkit) => false,
            None => named,
        }
    }
}
/// `--sbom`, `--archive`, `--provenance` over `[release]`; SBOMs default to SPDX when an
/// image or an archive is written, provenance is on with an image.
pub(super) fn resolve_release(
    args: &BuildArgs,
    file: FileRelease,
    outputs: &[String],
) -> anyhow::Result<ReleaseConfig> {
    let mut kinds = args.archives.clone();
    if kinds.is_empty() {
        for a in &file.archives {
            kinds.push(ArchiveKind::from_str(a, false).map_err(|_| {
                UsageError(format!("[release] archives: `{a}` is not tar.gz or zip"))
            })?);
        }
    }
    let archives = Archives {
        tar_gz: kinds.contains(&ArchiveKind::TarGz),
        zip: kinds.contains(&ArchiveKind::Zip),
    };
    let sbom = match (args.sbom, &file.sbom) {
        (Some(s), _) => s,
        (None, Some(s)) => SbomFormat::from_str(s, false).map_err(|_| {
            UsageError(format!(
                "[release] sbom: `{s}` is not spdx, cyclonedx, both or none"
            ))
        })?,
        (None, None) if !outputs.is_empty() || archives.any() => SbomFormat::Spdx,
        (None, None) => SbomFormat::None,
    };
    let attestations = match (args.attestations, &file.attestations) {
        (Some(a), _) => Some(a),
        (None, Some(s)) => Some(Attestations::from_str(s, false).map_err(|_| {
            UsageError(format!(
                "[release] attestations: `{s}` is not referrers, buildkit or none"
            ))
        })?),
        (None, None) => None,
    };
    let sign_key = args
        .sign_key
        .as_deref()
        .map(crate::attest::sign::SigningKey::load)
        .transpose()?;
    let provenance = args.provenance || file.provenance.unwrap_or(!outputs.is_empty());
    if sign_key.is_some() && !provenance && sbom == SbomFormat::None {
        return Err(UsageError(
            "--sign-key signs provenance and SBOMs, and neither is written: add --provenance or --sbom, or an image output".into(),
        )
        .into());
    }
    Ok(ReleaseConfig {
        sbom: (sbom != SbomFormat::None).then_some(sbom),
        archives,
        provenance,
        command: std::env::args().collect(),
        attestations,
        sign_key,
        strip: args.strip || file.split_debuginfo.unwrap_or(false),
    })
}
