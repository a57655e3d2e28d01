//! The release step after packing: gather what each binary contains (cargo's resolve graph
//! for its target, Go build info, `[c] components`, musl), the base's packages, the image
//! digests and the source/toolchain facts; let `attest` turn them into SBOMs, provenance,
//! archives and `SHA256SUMS`; write them under the output directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::attest::outputs::{self, OutputFile, OutputKind, ReleaseInput};
use crate::attest::provenance::Subject;
use crate::attest::release::{ArchiveFile, is_release_doc};
use crate::attest::{FileInput, ImageInput};
use crate::builders::{Artifact, Plan};
use crate::config::BuildConfig;
use crate::fsutil::{WriteOptions, write_atomic};
use crate::oci::buildkit::{Attestation as BuildkitAttestation, Statement as BuildkitStatement};
use crate::oci::referrers::{
    ANNOTATION_CREATED, ANNOTATION_PREDICATE_TYPE, ArtifactLayer, MEDIA_DSSE, MEDIA_MANIFEST,
    Referrer, Subject as RefSubject,
};
use crate::oci::{Base, BuiltIndex, EntrySource, LayerEntry};
use crate::progress::Progress;

mod facts;
mod inputs;

use facts::Facts;
use inputs::{base_digest, base_input, binaries, image_base};

/// A file the release step wrote, for the summary and `--message-format json`.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub path: PathBuf,
    /// `sha256:…`.
    pub digest: String,
    pub size: u64,
    pub kind: OutputKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// Whether there is anything to write.
pub fn wanted(cfg: &BuildConfig) -> bool {
    let r = &cfg.release;
    r.sbom.is_some() || r.provenance || r.strip || r.archives.any()
}

/// One project's share of a release: its config (cargo features, `[c] components`), its
/// plan and the binaries built from it. A single-project build has one; a polyglot build
/// one per project component.
#[derive(Clone, Copy)]
pub struct Part<'a> {
    pub cfg: &'a BuildConfig,
    pub plan: &'a Plan,
    pub artifacts: &'a [Artifact],
}

/// Gather, generate and write; the written files, binaries first, and the SBOMs and
/// provenance as OCI 1.1 artifacts to attach to the image (when one was built). `cfg` is
/// the build's own config (release settings, output directory, name); `parts` what was
/// built, each per-platform SBOM listing the packages of every part; `files` the image's
/// other files (build steps' outputs, `[image] files`), which each image SBOM lists too.
pub fn release(
    cfg: &BuildConfig,
    parts: &[Part<'_>],
    index: Option<&BuiltIndex>,
    files: &[LayerEntry],
    source_date_epoch: Option<u64>,
    git: &crate::pipeline::git::GitProbe,
    progress: &Progress,
) -> anyhow::Result<(Vec<Written>, Vec<Referrer>)> {
    // The package name and version only when one project is the whole release.
    let package = match parts {
        [one] => one.plan.package.as_ref(),
        _ => None,
    };
    let name = release_name(cfg, parts);
    let version = package.map(|p| p.version.clone()).filter(|v| !v.is_empty());
    let mut warnings = Vec::new();

    // The provenance facts (git state, tool versions) are gathered while cargo resolves
    // each target's dependencies: all of it is waiting on other processes.
    let (mut binaries, facts) = std::thread::scope(|s| {
        let facts = s.spawn(|| {
            cfg.release
                .provenance
                .then(|| Facts::gather(cfg, parts, source_date_epoch, git))
        });
        let mut binaries = Vec::new();
        let mut found = Ok(());
        for part in parts {
            match self::binaries(
                part,
                cfg.release.strip,
                cfg.release.archives.any(),
                version.as_deref(),
                &mut warnings,
            ) {
                Ok(b) => binaries.extend(b),
                Err(e) => {
                    found = Err(e);
                    break;
                }
            }
        }
        let facts = facts
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        found.map(|()| (binaries, facts))
    })?;
    let base = base_input(cfg, &mut warnings);
    let mut platforms: Vec<String> = Vec::new();
    for s in parts.iter().flat_map(|p| &p.plan.stages) {
        let p = s.target.platform.to_string();
        if !platforms.contains(&p) {
            platforms.push(p);
        }
    }
    // Each platform's binaries together (every part's): one archive per platform.
    binaries.sort_by_key(|b| platforms.iter().position(|p| *p == b.input.platform));
    let manifest_of = |platform: &str| {
        index.and_then(|i| {
            i.manifests
                .iter()
                .find(|(p, _)| p.to_string() == platform)
                .map(|(_, d)| d.clone())
        })
    };
    let files = if index.is_some() {
        file_inputs(files)?
    } else {
        Vec::new()
    };
    let mut images: Vec<ImageInput> = Vec::new();
    for p in &platforms {
        let manifest = manifest_of(p);
        let base = match (&cfg.image.base, index.zip(manifest.as_deref())) {
            (Base::Image(reference), Some((i, m))) => {
                image_base(reference, base_digest(i, m), &mut warnings)
            }
            _ => base.clone(),
        };
        images.push(ImageInput {
            name: name.clone(),
            platform: p.clone(),
            manifest,
            binaries: binaries
                .iter()
                .filter(|b| &b.input.platform == p)
                .map(|b| b.input.clone())
                .collect(),
            files: files.clone(),
            base,
            created: source_date_epoch,
        });
    }
    let provenance = if let Some(facts) = facts {
        platforms
            .iter()
            .map(|p| {
                let manifest = manifest_of(p);
                let base = index
                    .zip(manifest.as_deref())
                    .and_then(|(i, m)| base_digest(i, m));
                facts.input(cfg, &name, p, manifest, &binaries, base)
            })
            .collect()
    } else {
        Vec::new()
    };
    let input = ReleaseInput {
        name: name.clone(),
        version,
        license: package.and_then(|p| p.license.clone()),
        binaries,
        images,
        provenance,
        sbom: cfg.release.sbom,
        archives: cfg.release.archives,
        docs: release_docs(&cfg.project_dir)?,
        source_date_epoch,
        sign_key: cfg.release.sign_key.clone(),
    };
    let (files, w) = outputs::plan(&input)?;
    warnings.extend(w);
    warnings.sort();
    warnings.dedup();
    for w in &warnings {
        progress.say(&format!("warning: {w}"));
    }
    let mut written = Vec::new();
    for f in &files {
        let dest = cfg.out_dir.join(&f.path);
        if let Some(dir) = dest.parent() {
            fs_err::create_dir_all(dir)?;
        }
        write_atomic(&dest, &f.bytes, WriteOptions::cached(0o644))
            .with_context(|| format!("writing {}", dest.display()))?;
        written.push(Written {
            path: dest,
            digest: crate::digest::sha256_digest(&f.bytes),
            size: f.bytes.len() as u64,
            kind: f.kind,
            platform: f.platform.clone(),
        });
    }
    let referrers = match index {
        Some(i) => referrers(&files, i, source_date_epoch)?,
        None => Vec::new(),
    };
    Ok((written, referrers))
}

/// The release's name: the image name, else the package's, else the project directory's.
pub fn release_name(cfg: &BuildConfig, parts: &[Part<'_>]) -> String {
    let package = match parts {
        [one] => one.plan.package.as_ref(),
        _ => None,
    };
    cfg.image
        .name
        .clone()
        .or_else(|| package.map(|p| p.name.clone()))
        .or_else(|| {
            std::path::absolute(&cfg.project_dir)
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        })
        .unwrap_or_else(|| "release".into())
}

/// `index` with the platforms' statements inside it when `--attestations buildkit` asks
/// for BuildKit's layout; else `index` as it is.
pub fn buildkit_index(
    cfg: &BuildConfig,
    parts: &[Part<'_>],
    index: Option<BuiltIndex>,
    referrers: &[Referrer],
) -> anyhow::Result<Option<BuiltIndex>> {
    Ok(match index {
        Some(i) if cfg.release.attestations == Some(crate::attest::Attestations::Buildkit) => {
            let name = release_name(cfg, parts);
            let statements = buildkit_attestations(referrers, &i, &name)?;
            Some(crate::oci::buildkit::attach(&i, &statements)?)
        }
        other => other,
    })
}

/// The platforms' SBOMs and provenance as BuildKit stores them (`--attestations buildkit`):
/// in-toto statements about the platform manifest, provenance as it is, an SBOM wrapped as
/// the predicate of a statement (as BuildKit's own SBOMs are). A release-wide SBOM is about
/// the index, which has no attestation manifest there: it stays a file. Signatures too
/// (BuildKit's layout has no place for DSSE envelopes).
pub fn buildkit_attestations(
    referrers: &[Referrer],
    index: &BuiltIndex,
    name: &str,
) -> anyhow::Result<Vec<BuildkitAttestation>> {
    let mut out: Vec<BuildkitAttestation> = Vec::new();
    for r in referrers {
        let Some((platform, _)) = index.manifests.iter().find(|(_, d)| *d == r.subject.digest)
        else {
            continue;
        };
        // Referrer::new: the empty config first, then the document, then its envelope.
        let Some((_, document)) = r.blobs.get(1) else {
            continue;
        };
        let predicate_type = r
            .annotations
            .get(ANNOTATION_PREDICATE_TYPE)
            .cloned()
            .unwrap_or_default();
        let bytes = if r.artifact_type == crate::attest::provenance::MEDIA_TYPE {
            document.clone()
        } else {
            let subject = Subject {
                name: format!("{name}@{platform}"),
                sha256: r.subject.digest.trim_start_matches("sha256:").to_string(),
            };
            crate::attest::provenance::wrap(
                &[subject],
                &predicate_type,
                serde_json::from_slice(document).context("reading an SBOM to attest it")?,
            )
        };
        let statement = BuildkitStatement {
            predicate_type,
            bytes,
        };
        match out.iter_mut().find(|a| a.subject == r.subject.digest) {
            Some(a) => a.statements.push(statement),
            None => out.push(BuildkitAttestation {
                subject: r.subject.digest.clone(),
                statements: vec![statement],
            }),
        }
    }
    Ok(out)
}

/// Each SBOM and provenance file as an OCI 1.1 artifact: its subject the platform's
/// manifest (the index for release-wide SBOMs), the document its layer, and its DSSE
/// envelope a second layer when signed.
fn referrers(
    files: &[OutputFile],
    index: &BuiltIndex,
    source_date_epoch: Option<u64>,
) -> anyhow::Result<Vec<Referrer>> {
    let mut out = Vec::new();
    for f in files {
        let (Some(media_type), OutputKind::Sbom | OutputKind::Provenance) = (f.media_type, f.kind)
        else {
            continue;
        };
        let subject = match &f.platform {
            Some(p) => {
                let Some((_, digest)) = index.manifests.iter().find(|(q, _)| q.to_string() == *p)
                else {
                    continue;
                };
                RefSubject {
                    media_type: MEDIA_MANIFEST.into(),
                    digest: digest.clone(),
                    size: index.blobs.get(digest).map_or(0, |b| b.len() as u64),
                }
            }
            None => RefSubject {
                media_type: crate::oci::layout::MEDIA_INDEX.into(),
                digest: index.digest.clone(),
                size: index.index_json.len() as u64,
            },
        };
        let title = |path: &Path| {
            BTreeMap::from([(
                "org.opencontainers.image.title".to_string(),
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )])
        };
        let mut layers = vec![ArtifactLayer {
            media_type: media_type.to_string(),
            bytes: f.bytes.clone(),
            annotations: title(&f.path),
        }];
        if let Some(sig) = files
            .iter()
            .find(|s| s.signs.as_deref() == Some(f.path.as_path()))
        {
            layers.push(ArtifactLayer {
                media_type: MEDIA_DSSE.into(),
                bytes: sig.bytes.clone(),
                annotations: title(&sig.path),
            });
        }
        let predicate_type = match media_type {
            crate::attest::provenance::MEDIA_TYPE => crate::attest::provenance::PREDICATE_TYPE,
            crate::attest::cyclonedx::MEDIA_TYPE => crate::attest::cyclonedx::PREDICATE_TYPE,
            _ => crate::attest::spdx::PREDICATE_TYPE,
        };
        let mut annotations = BTreeMap::from([(
            ANNOTATION_PREDICATE_TYPE.to_string(),
            predicate_type.to_string(),
        )]);
        if let Some(t) = source_date_epoch {
            annotations.insert(
                ANNOTATION_CREATED.to_string(),
                crate::oci::image::rfc3339(t),
            );
        }
        out.push(Referrer::new(media_type, subject, layers, annotations)?);
    }
    Ok(out)
}

/// LICENSE*, README*, CHANGELOG* in the project directory, by name.
fn release_docs(dir: &Path) -> anyhow::Result<Vec<ArchiveFile>> {
    let mut docs = Vec::new();
    for e in fs_err::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if is_release_doc(&name) && e.file_type()?.is_file() {
            docs.push(ArchiveFile {
                data: fs_err::read(e.path())?,
                name,
                mode: 0o644,
            });
        }
    }
    docs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(docs)
}

/// The regular files among an image's extra entries, hashed (directories and symlinks are
/// not listed: they carry no content of their own).
fn file_inputs(entries: &[LayerEntry]) -> anyhow::Result<Vec<FileInput>> {
    let mut files = Vec::new();
    for e in entries {
        let sha256 = match &e.source {
            EntrySource::File(src) => {
                let mut h = crate::digest::Hasher::new();
                std::io::copy(&mut fs_err::File::open(src)?, &mut h)
                    .with_context(|| format!("hashing {} for the SBOM", src.display()))?;
                h.finish_hex()
            }
            EntrySource::Bytes(b) => crate::digest::sha256_hex(b),
            EntrySource::Dir | EntrySource::Symlink(_) => continue,
        };
        files.push(FileInput {
            path: e.path.clone(),
            sha256,
        });
    }
    Ok(files)
}
