//! Source and toolchain facts for provenance.

use std::collections::BTreeMap;

use serde_json::json;

use crate::attest::outputs::ShippedBinary;
use crate::attest::provenance::{GitSource, ProvenanceInput, Subject};
use crate::builders::rust;
use crate::config::BuildConfig;
use crate::exec::Cmd;
use crate::oci::Base;
use crate::pipeline::git::GitProbe;

use super::Part;
use super::inputs::base_name;
use crate::builders::answers::{self as cache, Answers as Cache};
use crate::par::par_map;

/// Source and toolchain facts for provenance, asked once per build.
pub(super) struct Facts {
    pub(super) source: Option<GitSource>,
    pub(super) toolchains: BTreeMap<String, String>,
    pub(super) source_date_epoch: Option<u64>,
}

pub(super) fn first_line(cmd: Cmd) -> Option<String> {
    cmd.read()
        .ok()
        .and_then(|s| s.lines().next().map(str::to_string))
}

impl Facts {
    pub(super) fn gather(
        cfg: &BuildConfig,
        parts: &[Part<'_>],
        source_date_epoch: Option<u64>,
        git: &GitProbe,
    ) -> Facts {
        // Every question is a process of its own: ask them all at once. The tools' versions
        // are kept between builds (`cache`), keyed by the tool's file and the binaries built;
        // git's answers have been coming in since the build started (`git`).
        let mut asks: Vec<(&str, Cmd)> = Vec::new();
        if let Ok(z) = crate::toolchain::find_zig() {
            asks.push((
                "zig",
                Cmd::new(&z.path, "ask zig its version").arg("version"),
            ));
        }
        for part in parts {
            match part.plan.language {
                "rust" => {
                    asks.push((
                        "cargo",
                        Cmd::new(rust::cargo_program(), "ask cargo its version").arg("-V"),
                    ));
                    asks.push((
                        "rustc",
                        Cmd::new("rustc", "ask rustc its version").arg("-V"),
                    ));
                }
                "go" => {
                    if let Ok(g) = crate::toolchain::go::find_go() {
                        asks.push(("go", Cmd::new(&g.path, "ask go its version").arg("version")));
                    }
                }
                _ => {
                    if part.cfg.project_dir.join("CMakeLists.txt").is_file() {
                        asks.push((
                            "cmake",
                            Cmd::new("cmake", "ask cmake its version").arg("--version"),
                        ));
                    }
                }
            }
        }
        let mut seen = Vec::new();
        asks.retain(|(name, _)| {
            let first = !seen.contains(name);
            seen.push(*name);
            first
        });
        let mut built: Vec<&str> = parts
            .iter()
            .flat_map(|p| p.artifacts)
            .map(|a| a.sha256.as_str())
            .collect();
        built.sort();
        let cache = Cache::for_build(cfg.target_dir.as_deref(), "release-answers");
        let answers = par_map(&asks, asks.len(), |(_, cmd)| {
            let key = cache::command_key(cmd, &built);
            if let Some(v) = cache.get(&key) {
                return Some(v);
            }
            let asked = std::time::SystemTime::now();
            let v = first_line(cmd.clone())?;
            cache.put(&key, &[], asked, &v);
            Some(v)
        });
        let mut toolchains = BTreeMap::new();
        for ((name, _), answer) in asks.iter().zip(answers) {
            if let Some(answer) = answer {
                toolchains.insert(name.to_string(), answer);
            }
        }
        Facts {
            source: git.source(),
            toolchains,
            source_date_epoch,
        }
    }

    pub(super) fn input(
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
