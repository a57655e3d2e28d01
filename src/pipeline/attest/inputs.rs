//! What the SBOM says about each binary and about the base: compiled-in packages, the
//! distroless lock, a base image's attached SBOM.

use std::collections::BTreeMap;
use std::path::Path;

use crate::attest::outputs::{ShippedBinary, platform_dir};
use crate::attest::sources::{self, DebPackage, Found};
use crate::attest::{BaseInput, BaseSbom, BinaryInput, gather};
use crate::builders::rust;
use crate::config::BuildConfig;
use crate::elf::Libc;
use crate::oci::{Base, BuiltIndex, distroless::DistrolessSource, distroless::LockFile};

use super::Part;
use crate::builders::answers::{self as cache, Answers as Cache, Watch};
use crate::par::par_map;

/// Each artifact of `part` with what is compiled into it; `strip`: its debug info was split
/// off and ships beside it; `archives`: its bytes are read for the release archives. Both
/// are the release's settings (a `[[component]]` project's own config does not decide them).
pub(super) fn binaries(
    part: &Part<'_>,
    strip: bool,
    archives: bool,
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
    let cache = Cache::for_build(cfg.target_dir.as_deref(), "release-answers");
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
        let mut triples: Vec<&str> = Vec::new();
        for stage in &plan.stages {
            if !triples.contains(&stage.target.rust_triple.as_str()) {
                triples.push(&stage.target.rust_triple);
            }
        }
        // The targets cargo must be asked about (all at once: each `cargo metadata` spends
        // most of its time starting rustc probes), the others from the cache.
        let keyed: Vec<(&str, cache::Key)> = triples
            .iter()
            .map(|t| (*t, metadata_key(&manifest, t, &feature_args, artifacts)))
            .collect();
        let metas = par_map(&keyed, keyed.len(), |(triple, key)| {
            if let Some(json) = cache.get(key)
                && let Ok(meta) = gather::metadata_from_json(&json)
            {
                return Ok(meta);
            }
            let asked = std::time::SystemTime::now();
            let (meta, json) = gather::cargo_metadata_json(
                &rust::cargo_program(),
                &manifest,
                triple,
                &feature_args,
            )?;
            cache.put(key, &metadata_inputs(&meta), asked, &json);
            Ok::<_, anyhow::Error>(meta)
        });
        for (triple, meta) in triples.iter().zip(metas) {
            rust_by_triple.insert(triple.to_string(), gather::rust_found(&meta?, &plan.bins));
        }
    }
    let needs_musl = artifacts.iter().any(|a| a.report.libc == Some(Libc::Musl));
    let musl_version = if needs_musl {
        crate::toolchain::find_zig()
            .ok()
            .and_then(|z| musl_version(&z.path, &cache))
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
        // The bytes only for archives: the checksums take the sha256 the gate computed.
        let data = archives.then(|| fs_err::read(&a.path)).transpose()?;
        let debug_file = super::super::strip::debug_path(&a.path);
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

/// The musl zig links, kept with zig's own file as the key.
fn musl_version(zig: &Path, cache: &Cache) -> Option<String> {
    let key = cache::command_key(&crate::exec::Cmd::new(zig, "musl version").arg("env"), &[]);
    if let Some(v) = cache.get(&key) {
        return (!v.is_empty()).then_some(v);
    }
    let asked = std::time::SystemTime::now();
    let v = gather::musl_version(zig);
    cache.put(&key, &[], asked, v.as_deref().unwrap_or(""));
    v
}

/// The cache key of one target's `cargo metadata`: the command and the binaries built for
/// that target (their bytes change with the toolchain, the features and the flags).
fn metadata_key(
    manifest: &Path,
    triple: &str,
    feature_args: &[String],
    artifacts: &[crate::builders::Artifact],
) -> cache::Key {
    let manifest = std::path::absolute(manifest).unwrap_or_else(|_| manifest.to_path_buf());
    let cmd = crate::exec::Cmd::new(rust::cargo_program(), "cargo metadata")
        .arg("metadata")
        .arg(manifest)
        .args(["--filter-platform", triple])
        .args(feature_args);
    let mut built: Vec<String> = artifacts
        .iter()
        .filter(|a| a.target.rust_triple == triple)
        .map(|a| format!("{} {}", a.name, a.sha256))
        .collect();
    built.sort();
    let built: Vec<&str> = built.iter().map(String::as_str).collect();
    cache::command_key(&cmd, &built)
}

/// The files a resolve was read from: Cargo.lock, the workspace manifest and every path
/// package's manifest.
fn metadata_inputs(meta: &cargo_metadata::Metadata) -> Vec<(std::path::PathBuf, Watch)> {
    let root = meta.workspace_root.as_std_path();
    let mut files = vec![root.join("Cargo.lock"), root.join("Cargo.toml")];
    for p in &meta.packages {
        if p.source.is_none() {
            let m = p.manifest_path.as_std_path().to_path_buf();
            if !files.contains(&m) {
                files.push(m);
            }
        }
    }
    files.retain(|f| f.is_file());
    files.into_iter().map(|f| (f, Watch::Content)).collect()
}

/// The base, for the SBOM: the distroless lock's packages, or a reference.
pub(super) fn base_input(cfg: &BuildConfig, warnings: &mut Vec<String>) -> BaseInput {
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
pub(super) fn image_base(
    reference: &str,
    digest: Option<String>,
    warnings: &mut Vec<String>,
) -> BaseInput {
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

pub(super) fn attached_sbom(reference: &str, manifest: &str) -> anyhow::Result<Option<BaseSbom>> {
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
pub(super) fn base_name(base: &Base) -> String {
    match base {
        Base::Scratch => "scratch".into(),
        Base::Distroless(DistrolessSource::Debs { .. }) => "distroless".into(),
        Base::Distroless(DistrolessSource::Host) => "distroless-host".into(),
        Base::Image(r) => r.clone(),
    }
}

/// The base image digest a platform manifest records in its annotations.
pub(super) fn base_digest(index: &BuiltIndex, manifest: &str) -> Option<String> {
    let m: serde_json::Value = serde_json::from_slice(index.blobs.get(manifest)?).ok()?;
    m["annotations"][oci_spec::image::ANNOTATION_BASE_IMAGE_DIGEST]
        .as_str()
        .map(str::to_string)
}
