//! The release step after packing: gather what each binary contains (cargo's resolve graph
//! for its target, Go build info, `[c] components`, musl), the base's packages, the image
//! digests and the source/toolchain facts; let `attest` turn them into SBOMs, provenance,
//! archives and `SHA256SUMS`; write them under the output directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use serde_json::json;

use crate::attest::outputs::{
    self, OutputFile, OutputKind, ReleaseInput, ShippedBinary, platform_dir,
};
use crate::attest::provenance::{GitSource, ProvenanceInput, Subject};
use crate::attest::release::{ArchiveFile, is_release_doc};
use crate::attest::sources::{self, DebPackage, Found};
use crate::attest::{BaseInput, BaseSbom, BinaryInput, ImageInput, gather};
use crate::builders::{Artifact, Plan, rust};
use crate::config::BuildConfig;
use crate::elf::Libc;
use crate::exec::Cmd;
use crate::fsutil::{WriteOptions, write_atomic};
use crate::oci::buildkit::{Attestation as BuildkitAttestation, Statement as BuildkitStatement};
use crate::oci::referrers::{
    ANNOTATION_CREATED, ANNOTATION_PREDICATE_TYPE, ArtifactLayer, MEDIA_DSSE, MEDIA_MANIFEST,
    Referrer, Subject as RefSubject,
};
use crate::oci::{Base, BuiltIndex, distroless::DistrolessSource, distroless::LockFile};
use crate::progress::Progress;

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
    r.sbom.is_some() || r.provenance || r.strip || r.archives != outputs::Archives::default()
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
/// built, each per-platform SBOM listing the packages of every part.
pub fn release(
    cfg: &BuildConfig,
    parts: &[Part<'_>],
    index: Option<&BuiltIndex>,
    source_date_epoch: Option<u64>,
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

    let mut binaries = Vec::new();
    for part in parts {
        binaries.extend(self::binaries(
            part,
            cfg.release.strip,
            version.as_deref(),
            &mut warnings,
        )?);
    }
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
            base,
            created: source_date_epoch,
        });
    }
    let provenance = if cfg.release.provenance {
        let facts = Facts::gather(cfg, parts, source_date_epoch);
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

/// Each artifact of `part` with what is compiled into it; `strip`: its debug info was split
/// off and ships beside it.
fn binaries(
    part: &Part<'_>,
    strip: bool,
    version: Option<&str>,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Vec<ShippedBinary>> {
    let Part {
        cfg,
        plan,
        artifacts,
    } = *part;
    // One cargo resolve per target triple.
    let mut rust_by_triple: BTreeMap<String, Found> = BTreeMap::new();
    if plan.language == "rust" {
        let manifest = rust::manifest_path(&cfg.project_dir, &cfg.cargo);
        let mut feature_args = Vec::new();
        for f in &cfg.cargo.features {
            feature_args.extend(["--features".to_string(), f.clone()]);
        }
        if cfg.cargo.all_features {
            feature_args.push("--all-features".into());
        }
        if cfg.cargo.no_default_features {
            feature_args.push("--no-default-features".into());
        }
        for stage in &plan.stages {
            let triple = &stage.target.rust_triple;
            if rust_by_triple.contains_key(triple) {
                continue;
            }
            let meta = gather::cargo_metadata_for(
                &rust::cargo_program(),
                &manifest,
                triple,
                &feature_args,
            )?;
            rust_by_triple.insert(triple.clone(), gather::rust_found(&meta, &plan.bins));
        }
    }
    let needs_musl = artifacts.iter().any(|a| a.report.libc == Some(Libc::Musl));
    let musl_version = if needs_musl {
        crate::toolchain::find_zig()
            .ok()
            .and_then(|z| gather::musl_version(&z.path))
    } else {
        None
    };
    let mut out = Vec::new();
    for a in artifacts {
        let mut found = match plan.language {
            "rust" => rust_by_triple
                .get(&a.target.rust_triple)
                .cloned()
                .unwrap_or_default(),
            "go" => sources::go_modules(a.report.go.as_ref(), &a.name),
            _ => sources::c_components(&cfg.c.components),
        };
        if a.report.libc == Some(Libc::Musl) {
            let m = sources::musl(musl_version.as_deref());
            found.linked.push(m.id.clone());
            found.components.push(m);
        }
        warnings.append(&mut found.warnings);
        let data = fs_err::read(&a.path)?;
        let debug_file = super::strip::debug_path(&a.path);
        let debug = if strip && debug_file.is_file() {
            Some((
                Path::new(&platform_dir(&a.platform)).join(format!("{}.debug", a.name)),
                fs_err::read(&debug_file)?,
            ))
        } else {
            None
        };
        out.push(ShippedBinary {
            input: BinaryInput {
                platform: a.platform.clone(),
                name: a.name.clone(),
                version: version.map(str::to_string),
                sha256: a.sha256.clone(),
                found,
            },
            path: Path::new(&platform_dir(&a.platform)).join(&a.name),
            data,
            debug,
        });
    }
    Ok(out)
}

/// The base, for the SBOM: the distroless lock's packages, or a reference.
fn base_input(cfg: &BuildConfig, warnings: &mut Vec<String>) -> BaseInput {
    match &cfg.image.base {
        Base::Scratch => BaseInput::Scratch,
        Base::Distroless(DistrolessSource::Debs { lock, .. }) => match LockFile::read(lock) {
            Ok(l) => BaseInput::Debian(
                l.package
                    .iter()
                    .map(|p| DebPackage {
                        name: p.name.clone(),
                        version: p.version.clone(),
                        architecture: p.architecture.clone(),
                        sha256: Some(p.sha256.clone()),
                    })
                    .collect(),
            ),
            Err(e) => {
                warnings.push(format!(
                    "the distroless lock could not be read for the SBOM: {e:#}"
                ));
                BaseInput::Image {
                    reference: "distroless".into(),
                    digest: None,
                    sbom: None,
                }
            }
        },
        Base::Distroless(DistrolessSource::Host) => BaseInput::Image {
            reference: "distroless-host".into(),
            digest: None,
            sbom: None,
        },
        Base::Image(r) => BaseInput::Image {
            reference: r.clone(),
            digest: None,
            sbom: None,
        },
    }
}

/// A `--base` image for one platform: its manifest digest (`digest`, from the built
/// manifest's annotations) and the SBOM attached to that manifest, or else to the base's
/// index (SPDX preferred). A base without one, or one kiln cannot read, is NOASSERTION
/// (`platform_sbom` warns); a reading error is a warning too, never a failed release.
fn image_base(reference: &str, digest: Option<String>, warnings: &mut Vec<String>) -> BaseInput {
    let sbom = digest
        .as_deref()
        .and_then(|d| match attached_sbom(reference, d) {
            Ok(s) => s,
            Err(e) => {
                warnings.push(format!(
                    "reading the SBOM attached to the base {reference}: {e:#}"
                ));
                None
            }
        });
    BaseInput::Image {
        reference: reference.to_string(),
        digest,
        sbom,
    }
}

fn attached_sbom(reference: &str, manifest: &str) -> anyhow::Result<Option<BaseSbom>> {
    let image = crate::oci::read_image(reference)?;
    let mut found = crate::oci::read_attachments(reference, &image)?;
    found.retain(|a| {
        matches!(
            a.artifact_type.as_str(),
            crate::attest::spdx::MEDIA_TYPE | crate::attest::cyclonedx::MEDIA_TYPE
        )
    });
    // This platform's before the index's; SPDX before CycloneDX.
    found.sort_by_key(|a| {
        (
            a.subject != manifest,
            a.artifact_type != crate::attest::spdx::MEDIA_TYPE,
        )
    });
    let Some(a) = found
        .into_iter()
        .find(|a| a.subject == manifest || image.digest.as_deref() == Some(a.subject.as_str()))
    else {
        return Ok(None);
    };
    let doc = crate::oci::read_attached_document(reference, &a)?;
    Ok(Some(BaseSbom {
        digest: crate::digest::sha256_digest(&doc),
        components: crate::attest::import::base_components(&doc)?,
    }))
}

/// The base as the user names it (no paths of this machine).
fn base_name(base: &Base) -> String {
    match base {
        Base::Scratch => "scratch".into(),
        Base::Distroless(DistrolessSource::Debs { .. }) => "distroless".into(),
        Base::Distroless(DistrolessSource::Host) => "distroless-host".into(),
        Base::Image(r) => r.clone(),
    }
}

/// The base image digest a platform manifest records in its annotations.
fn base_digest(index: &BuiltIndex, manifest: &str) -> Option<String> {
    let m: serde_json::Value = serde_json::from_slice(index.blobs.get(manifest)?).ok()?;
    m["annotations"][oci_spec::image::ANNOTATION_BASE_IMAGE_DIGEST]
        .as_str()
        .map(str::to_string)
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

/// Source and toolchain facts for provenance, asked once per build.
struct Facts {
    source: Option<GitSource>,
    toolchains: BTreeMap<String, String>,
    source_date_epoch: Option<u64>,
}

fn first_line(cmd: Cmd) -> Option<String> {
    cmd.read()
        .ok()
        .and_then(|s| s.lines().next().map(str::to_string))
}

impl Facts {
    fn gather(cfg: &BuildConfig, parts: &[Part<'_>], source_date_epoch: Option<u64>) -> Facts {
        let dir = &cfg.project_dir;
        let git = |args: &[&str]| {
            which::which("git").ok()?;
            Cmd::new("git", "read the source's git state")
                .arg("-C")
                .arg(dir)
                .args(args)
                .read()
                .ok()
        };
        let source = git(&["rev-parse", "HEAD"])
            .filter(|c| c.len() == 40)
            .map(|commit| GitSource {
                repository: git(&["remote", "get-url", "origin"])
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| format!("file://{}", dir.display())),
                commit,
                dirty: git(&["status", "--porcelain"]).is_some_and(|s| !s.trim().is_empty()),
            });
        let mut toolchains = BTreeMap::new();
        let mut ask = |name: &str, cmd: Cmd| {
            if let Some(v) = first_line(cmd) {
                toolchains.insert(name.to_string(), v);
            }
        };
        if let Ok(z) = crate::toolchain::find_zig() {
            ask(
                "zig",
                Cmd::new(&z.path, "ask zig its version").arg("version"),
            );
        }
        for part in parts {
            match part.plan.language {
                "rust" => {
                    ask(
                        "cargo",
                        Cmd::new(rust::cargo_program(), "ask cargo its version").arg("-V"),
                    );
                    ask(
                        "rustc",
                        Cmd::new("rustc", "ask rustc its version").arg("-V"),
                    );
                }
                "go" => {
                    if let Ok(g) = crate::toolchain::go::find_go() {
                        ask("go", Cmd::new(&g.path, "ask go its version").arg("version"));
                    }
                }
                _ => {
                    if part.cfg.project_dir.join("CMakeLists.txt").is_file() {
                        ask(
                            "cmake",
                            Cmd::new("cmake", "ask cmake its version").arg("--version"),
                        );
                    }
                }
            }
        }
        Facts {
            source,
            toolchains,
            source_date_epoch,
        }
    }

    fn input(
        &self,
        cfg: &BuildConfig,
        name: &str,
        platform: &str,
        manifest: Option<String>,
        binaries: &[ShippedBinary],
        base_digest: Option<String>,
    ) -> ProvenanceInput {
        let mut subjects: Vec<Subject> = binaries
            .iter()
            .filter(|b| b.input.platform == platform)
            .map(|b| Subject {
                name: b.path.display().to_string(),
                sha256: b.input.sha256.clone(),
            })
            .collect();
        if let Some(m) = &manifest {
            subjects.push(Subject {
                name: format!("{name}@{platform}"),
                sha256: m.trim_start_matches("sha256:").to_string(),
            });
        }
        let base = match (&cfg.image.base, base_digest) {
            (Base::Image(r), Some(d)) => Some((r.clone(), d)),
            _ => None,
        };
        ProvenanceInput {
            subjects,
            command: cfg.release.command.clone(),
            config: json!({
                "platforms": cfg.targets.iter().map(|t| t.platform.to_string()).collect::<Vec<_>>(),
                "outputs": cfg.outputs,
                "smoke": cfg.smoke,
                "smoke_args": cfg.smoke_args,
                "bins": cfg.bins,
                "image": {
                    "name": cfg.image.name,
                    "user": cfg.image.user,
                    "entrypoint": cfg.image.entrypoint,
                    "cmd": cfg.image.cmd,
                    "env": cfg.image.env,
                    "bin_dir": cfg.image.bin_dir,
                    "base": base_name(&cfg.image.base),
                    "compression": format!("{:?}", cfg.image.compression).to_lowercase(),
                },
                "cargo": {
                    "release": cfg.cargo.release,
                    "profile": cfg.cargo.profile,
                    "packages": cfg.cargo.packages,
                    "features": cfg.cargo.features,
                    "all_features": cfg.cargo.all_features,
                    "no_default_features": cfg.cargo.no_default_features,
                    "locked": cfg.cargo.locked,
                },
            }),
            platform: platform.to_string(),
            source: self.source.clone(),
            toolchains: self.toolchains.clone(),
            base,
            source_date_epoch: self.source_date_epoch,
            kiln_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}
