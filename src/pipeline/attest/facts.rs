//! Source and toolchain facts for provenance.

use std::collections::BTreeMap;

use serde_json::json;

use crate::attest::outputs::ShippedBinary;
use crate::attest::provenance::{GitSource, ProvenanceInput, Subject};
use crate::builders::rust;
use crate::config::BuildConfig;
use crate::exec::Cmd;
use crate::oci::Base;

use super::Part;
use super::inputs::base_name;

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
    ) -> Facts {
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
