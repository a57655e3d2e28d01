//! Which files a release writes under `dist/`, as plain data: SBOMs per platform and for
//! the release, provenance per platform, archives, and `SHA256SUMS` over all of them and
//! the binaries. The pipeline writes the list and reports every entry.

use std::path::PathBuf;

use anyhow::Context;

use crate::digest::sha256_hex;

use super::provenance::{self, ProvenanceInput};
use super::release::{self, ArchiveFile};
use super::sign::SigningKey;
use super::{BinaryInput, ImageInput, SbomFormat, platform_sbom, release_sbom};

/// What an output is, for `--message-format json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKind {
    Binary,
    Debug,
    Sbom,
    Provenance,
    Archive,
    Checksums,
    /// A DSSE envelope signing an SBOM or provenance (`--sign-key`).
    Signature,
}

/// A file to write, relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub kind: OutputKind,
    /// The platform it belongs to; `None` for release-wide files.
    pub platform: Option<String>,
    /// For SBOMs and provenance: the media type (for attaching to images).
    pub media_type: Option<&'static str>,
    /// For a signature: the file (SBOM or provenance) it signs.
    pub signs: Option<PathBuf>,
}

/// A binary as shipped: where it is (relative to the output directory) and its bytes.
#[derive(Debug, Clone)]
pub struct ShippedBinary {
    pub input: BinaryInput,
    /// `linux-arm64/hello`.
    pub path: PathBuf,
    /// Its bytes, read only when archives are written (the checksums take
    /// `input.sha256`).
    pub data: Option<Vec<u8>>,
    /// `linux-arm64/hello.debug` and its bytes, when debug info was split off.
    pub debug: Option<(PathBuf, Vec<u8>)>,
}

/// Which archives to write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Archives {
    pub tar_gz: bool,
    pub zip: bool,
}

impl Archives {
    /// Whether any archive is written.
    pub fn any(&self) -> bool {
        self.tar_gz || self.zip
    }
}

/// Everything the release outputs are made from.
#[derive(Debug, Clone, Default)]
pub struct ReleaseInput {
    pub name: String,
    pub version: Option<String>,
    /// The project's SPDX license expression.
    pub license: Option<String>,
    pub binaries: Vec<ShippedBinary>,
    /// One per platform; `manifest` is set when an image was built.
    pub images: Vec<ImageInput>,
    /// One per platform, in the order of `images`, when provenance is wanted.
    pub provenance: Vec<ProvenanceInput>,
    pub sbom: Option<SbomFormat>,
    pub archives: Archives,
    /// LICENSE*, README*, CHANGELOG* of the project.
    pub docs: Vec<ArchiveFile>,
    pub source_date_epoch: Option<u64>,
    /// `--sign-key`: sign provenance and SBOMs (DSSE envelopes).
    pub sign_key: Option<SigningKey>,
}

impl ReleaseInput {
    /// `name-version` (or `name` without a version).
    pub fn stem(&self) -> String {
        match &self.version {
            Some(v) => format!("{}-{v}", self.name),
            None => self.name.clone(),
        }
    }
}

/// `linux/arm/v7` → `linux-arm-v7`.
pub fn platform_dir(platform: &str) -> String {
    platform.replace('/', "-")
}

/// Every file, in a fixed order; warnings for the user (each once).
pub fn plan(input: &ReleaseInput) -> anyhow::Result<(Vec<OutputFile>, Vec<String>)> {
    let stem = input.stem();
    let mut files = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let formats = input.sbom.map(SbomFormat::formats).unwrap_or_default();
    for image in &input.images {
        let (sbom, w) = platform_sbom(image);
        warnings.extend(w);
        for f in &formats {
            files.push(OutputFile {
                path: format!("{stem}-{}.{}", platform_dir(&image.platform), f.suffix()).into(),
                bytes: f.render(&sbom),
                kind: OutputKind::Sbom,
                platform: Some(image.platform.clone()),
                media_type: Some(f.media_type()),
                signs: None,
            });
        }
    }
    if !formats.is_empty() && !input.binaries.is_empty() {
        let bins: Vec<BinaryInput> = input.binaries.iter().map(|b| b.input.clone()).collect();
        let sbom = release_sbom(
            &input.name,
            input.version.as_deref(),
            input.license.as_deref(),
            &bins,
            input.source_date_epoch,
        );
        for f in &formats {
            files.push(OutputFile {
                path: format!("{stem}.{}", f.suffix()).into(),
                bytes: f.render(&sbom),
                kind: OutputKind::Sbom,
                platform: None,
                media_type: Some(f.media_type()),
                signs: None,
            });
        }
    }
    for p in &input.provenance {
        files.push(OutputFile {
            path: format!("{stem}-{}.intoto.json", platform_dir(&p.platform)).into(),
            bytes: provenance::statement(p),
            kind: OutputKind::Provenance,
            platform: Some(p.platform.clone()),
            media_type: Some(provenance::MEDIA_TYPE),
            signs: None,
        });
    }
    if let Some(key) = &input.sign_key {
        files.extend(signatures(input, &files, key)?);
    }
    for b in &input.binaries {
        if let Some((path, data)) = &b.debug {
            files.push(OutputFile {
                path: path.clone(),
                bytes: data.clone(),
                kind: OutputKind::Debug,
                platform: Some(b.input.platform.clone()),
                media_type: None,
                signs: None,
            });
        }
    }
    files.extend(archives(input, &stem)?);
    if let Some(sums) = checksums(input, &files, !formats.is_empty()) {
        files.push(sums);
    }
    warnings.sort();
    warnings.dedup();
    Ok((files, warnings))
}

/// One archive per platform and kind: its binaries and the project's documents.
fn archives(input: &ReleaseInput, stem: &str) -> anyhow::Result<Vec<OutputFile>> {
    let mut files = Vec::new();
    let mut platforms: Vec<&str> = input
        .binaries
        .iter()
        .map(|b| b.input.platform.as_str())
        .collect();
    platforms.dedup();
    let mtime = input.source_date_epoch.unwrap_or(0);
    for platform in platforms {
        if !input.archives.any() {
            break;
        }
        let top = format!("{stem}-{}", platform_dir(platform));
        let mut entries: Vec<ArchiveFile> = Vec::new();
        for b in input
            .binaries
            .iter()
            .filter(|b| b.input.platform == platform)
        {
            entries.push(ArchiveFile {
                name: b.input.name.clone(),
                data: b.data.clone().with_context(|| {
                    format!(
                        "internal: {} was not read for the archives",
                        b.path.display()
                    )
                })?,
                mode: 0o755,
            });
        }
        entries.extend(input.docs.iter().cloned());
        if input.archives.tar_gz {
            files.push(OutputFile {
                path: format!("{top}.tar.gz").into(),
                bytes: release::tar_gz(&top, &entries, mtime)?,
                kind: OutputKind::Archive,
                platform: Some(platform.to_string()),
                media_type: None,
                signs: None,
            });
        }
        if input.archives.zip {
            files.push(OutputFile {
                path: format!("{top}.zip").into(),
                bytes: release::zip(&top, &entries, mtime)?,
                kind: OutputKind::Archive,
                platform: Some(platform.to_string()),
                media_type: None,
                signs: None,
            });
        }
    }
    Ok(files)
}

/// SHA256SUMS over the archives, binaries and SBOMs (the files a release page offers),
/// when any release file besides the binaries is written.
fn checksums(input: &ReleaseInput, files: &[OutputFile], sboms: bool) -> Option<OutputFile> {
    let mut summed: Vec<(String, String)> = files
        .iter()
        .filter(|f| {
            matches!(
                f.kind,
                OutputKind::Archive | OutputKind::Sbom | OutputKind::Debug
            )
        })
        .map(|f| (f.path.display().to_string(), sha256_hex(&f.bytes)))
        .collect();
    summed.extend(
        input
            .binaries
            .iter()
            .map(|b| (b.path.display().to_string(), b.input.sha256.clone())),
    );
    let debug = input.binaries.iter().any(|b| b.debug.is_some());
    (!summed.is_empty() && (sboms || input.archives != Archives::default() || debug)).then(|| {
        OutputFile {
            path: "SHA256SUMS".into(),
            bytes: release::sha256sums_hashed(&summed),
            kind: OutputKind::Checksums,
            platform: None,
            media_type: None,
            signs: None,
        }
    })
}

/// What a signed SBOM statement is about: the platform's binaries and image manifest, or
/// (release-wide) every binary.
fn sbom_subjects(input: &ReleaseInput, platform: Option<&str>) -> Vec<provenance::Subject> {
    let mut subjects: Vec<provenance::Subject> = input
        .binaries
        .iter()
        .filter(|b| platform.is_none_or(|p| b.input.platform == p))
        .map(|b| provenance::Subject {
            name: b.path.display().to_string(),
            sha256: b.input.sha256.clone(),
        })
        .collect();
    if let Some(p) = platform {
        for i in input.images.iter().filter(|i| i.platform == p) {
            if let Some(m) = &i.manifest {
                subjects.push(provenance::Subject {
                    name: format!("{}@{p}", input.name),
                    sha256: m.trim_start_matches("sha256:").to_string(),
                });
            }
        }
    }
    subjects
}

/// A DSSE envelope per SBOM and provenance file: provenance signs its statement, an SBOM
/// is wrapped first in an in-toto statement with the SBOM as predicate (as `cosign attest`
/// does). Signatures are randomised: the envelopes differ from run to run.
fn signatures(
    input: &ReleaseInput,
    files: &[OutputFile],
    key: &SigningKey,
) -> anyhow::Result<Vec<OutputFile>> {
    let mut out = Vec::new();
    for f in files {
        let statement = match f.kind {
            OutputKind::Provenance => f.bytes.clone(),
            OutputKind::Sbom => {
                let predicate_type = match f.media_type {
                    Some(super::cyclonedx::MEDIA_TYPE) => super::cyclonedx::PREDICATE_TYPE,
                    _ => super::spdx::PREDICATE_TYPE,
                };
                let predicate: serde_json::Value = serde_json::from_slice(&f.bytes)?;
                provenance::wrap(
                    &sbom_subjects(input, f.platform.as_deref()),
                    predicate_type,
                    predicate,
                )
            }
            _ => continue,
        };
        let name = f.path.display().to_string();
        let stem = name.strip_suffix(".json").unwrap_or(&name);
        out.push(OutputFile {
            path: format!("{stem}.dsse.json").into(),
            bytes: key.envelope(provenance::MEDIA_TYPE, &statement)?,
            kind: OutputKind::Signature,
            platform: f.platform.clone(),
            media_type: Some(crate::oci::referrers::MEDIA_DSSE),
            signs: Some(f.path.clone()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_with_everything() {
        let bin = |platform: &str| ShippedBinary {
            input: BinaryInput {
                platform: platform.into(),
                name: "hello".into(),
                version: Some("0.1.0".into()),
                sha256: sha256_hex(b"ELF"),
                ..Default::default()
            },
            path: format!("{}/hello", platform_dir(platform)).into(),
            data: Some(b"ELF".to_vec()),
            debug: None,
        };
        let input = ReleaseInput {
            name: "hello".into(),
            version: Some("0.1.0".into()),
            binaries: vec![bin("linux/amd64"), bin("linux/arm64")],
            images: vec![ImageInput {
                name: "hello".into(),
                platform: "linux/amd64".into(),
                ..Default::default()
            }],
            sbom: Some(SbomFormat::Both),
            archives: Archives {
                tar_gz: true,
                zip: true,
            },
            ..Default::default()
        };
        let (files, _) = plan(&input).unwrap();
        let names: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "hello-0.1.0-linux-amd64.spdx.json",
                "hello-0.1.0-linux-amd64.cdx.json",
                "hello-0.1.0.spdx.json",
                "hello-0.1.0.cdx.json",
                "hello-0.1.0-linux-amd64.tar.gz",
                "hello-0.1.0-linux-amd64.zip",
                "hello-0.1.0-linux-arm64.tar.gz",
                "hello-0.1.0-linux-arm64.zip",
                "SHA256SUMS",
            ]
        );
        let sums = String::from_utf8(files.last().unwrap().bytes.clone()).unwrap();
        assert_eq!(sums.lines().count(), 10, "{sums}");
        assert!(sums.contains("  linux-arm64/hello\n"));
    }
}
