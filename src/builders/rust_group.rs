//! One `cargo build` for several targets. Targets that can share an invocation (the same
//! toolchain: prebuilt std on the default one, `-Zbuild-std` on nightly) build in one cargo
//! process with one target dir, so build scripts and proc-macros (host code) compile once
//! and every rustc shares one job pool; each target keeps its own linker, C compiler and
//! rustflags through cargo's per-triple environment variables.
//!
//! Every target is still a stage of its own. The first stage of a group to run starts the
//! shared cargo (with `--keep-going`), the others wait for it; each takes its executables
//! from cargo's JSON messages (the path `<triple>/<profile>/<bin>` names the target). A
//! target without all its executables builds again alone in the same target dir: what
//! already compiled is reused, and the failure is that target's own, with its compiler
//! output, while the other targets' results stand.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cargo_metadata::Message;

use crate::builders::Plan;
use crate::builders::answers::Answers;
use crate::builders::dir_lock::{self, BuildDirLock};
use crate::builders::rust::{
    self, Member, PLAN_ANSWERS, RustProject, build_command, manifest_path, plan,
};
use crate::builders::{Built, Stage};
use crate::config::BuildConfig;
use crate::config::CargoConfig;
use crate::exec::Cmd;
use crate::progress::Progress;
use crate::toolchain;
use crate::toolchain::RustPlan;

/// Whether `-Zbuild-std` targets can share one cargo invocation (cargo builds one std per
/// requested target in a multi-target build).
pub const BUILD_STD_SHARES: bool = true;

/// Targets that build in one cargo invocation.
#[derive(Debug, Clone)]
pub struct Group {
    pub plan: RustPlan,
    pub members: Vec<Member>,
}

/// Put targets with the same toolchain plan together (in the order given); build-std
/// targets only when [`BUILD_STD_SHARES`].
pub fn group(members: Vec<(RustPlan, Member)>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (plan, member) in members {
        let shares = !plan.build_std || BUILD_STD_SHARES;
        match groups.iter_mut().find(|g| shares && g.plan == plan) {
            Some(g) => g.members.push(member),
            None => groups.push(Group {
                plan,
                members: vec![member],
            }),
        }
    }
    groups
}

/// The target dir of a group: `<target dir>/kiln/cargo` for the default toolchain,
/// `…/kiln/cargo-<toolchain>` for another; a build-std target that builds alone keeps its
/// own (`…/kiln/<target name>`), so such targets still build side by side.
pub fn group_target_dir(project: &RustProject, group: &Group) -> PathBuf {
    let base = project.target_dir.join("kiln");
    match (&group.plan.toolchain, group.members.as_slice()) {
        (Some(_), [one]) if !BUILD_STD_SHARES => base.join(&one.target.name),
        (Some(tc), _) => base.join(format!("cargo-{tc}")),
        (None, _) => base.join("cargo"),
    }
}

/// The command that builds every member of `group`; with more than one it keeps going
/// past a failing target, so the others still finish.
pub fn shared_command(
    project: &RustProject,
    manifest: &Path,
    flags: &CargoConfig,
    group: &Group,
) -> Cmd {
    let dir = group_target_dir(project, group);
    let cmd = build_command(project, manifest, flags, &group.plan, &group.members, &dir);
    if group.members.len() > 1 {
        cmd.arg("--keep-going")
    } else {
        cmd
    }
}

/// One stage per member of `group`.
pub fn stages(
    project: &RustProject,
    manifest: &Path,
    flags: &CargoConfig,
    group: &Group,
) -> Vec<Stage> {
    let dir = group_target_dir(project, group);
    let bins = project.bins.clone();
    let command =
        |members: &[Member]| build_command(project, manifest, flags, &group.plan, members, &dir);
    let cmd = shared_command(project, manifest, flags, group);
    if let [only] = group.members.as_slice() {
        return vec![Stage {
            target: only.target.clone(),
            run: Box::new(move || build_target(&cmd, &dir, &bins)),
        }];
    }
    let shared = Arc::new(SharedBuild {
        cmd,
        dir: dir.clone(),
        bins: bins.clone(),
        outcome: OnceLock::new(),
    });
    group
        .members
        .iter()
        .map(|m| {
            let alone = command(std::slice::from_ref(m));
            let shared = Arc::clone(&shared);
            let triple = m.target.rust_triple.clone();
            let bins = bins.clone();
            let dir = dir.clone();
            Stage {
                target: m.target.clone(),
                run: Box::new(move || match shared.built_for(&triple)? {
                    Some(built) => Ok(built),
                    None => build_target(&alone, &dir, &bins),
                }),
            }
        })
        .collect()
}

/// The cargo run several stages share: run once, by whichever stage comes first.
struct SharedBuild {
    cmd: Cmd,
    /// Its target dir, locked from cargo's start until every stage has its binaries.
    dir: PathBuf,
    bins: Vec<String>,
    /// The triples that got every wanted executable; each stage takes its own out, so the
    /// lock they carry lives only as long as the stages' copies do.
    outcome: OnceLock<Mutex<HashMap<String, Vec<Built>>>>,
}

impl SharedBuild {
    /// This triple's executables, `None` when the shared run did not make them all.
    fn built_for(&self, triple: &str) -> anyhow::Result<Option<Vec<Built>>> {
        let complete = match self.outcome.get() {
            Some(done) => done,
            None => {
                let hold = dir_lock::lock(&self.dir)?;
                self.outcome.get_or_init(|| {
                    // A failure here is not reported: the targets it hit build again alone
                    // and report their own.
                    let Ok(out) = self.cmd.output() else {
                        return Mutex::default();
                    };
                    let complete = executables(&out.stdout, &self.bins)
                        .into_iter()
                        .filter(|(_, built)| built.len() == self.bins.len())
                        .map(|(t, built)| (t, held_by(built, &hold)))
                        .collect();
                    Mutex::new(complete)
                })
            }
        };
        Ok(complete
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(triple))
    }
}

fn held_by(built: Vec<Built>, hold: &Arc<BuildDirLock>) -> Vec<Built> {
    built
        .into_iter()
        .map(|b| Built {
            hold: Some(Arc::clone(hold)),
            ..b
        })
        .collect()
}

/// The wanted executables in cargo's JSON messages, by target triple (the directory two
/// levels above the executable: `<target dir>/<triple>/<profile>/<bin>`).
pub fn executables(stdout: &[u8], wanted: &[String]) -> HashMap<String, Vec<Built>> {
    let mut by_triple: HashMap<String, Vec<Built>> = HashMap::new();
    for msg in Message::parse_stream(stdout) {
        let Ok(Message::CompilerArtifact(a)) = msg else {
            continue;
        };
        let (true, Some(exe)) = (a.target.is_bin(), a.executable) else {
            continue;
        };
        let exe = exe.into_std_path_buf();
        let Some(triple) = exe
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .map(|t| t.to_string_lossy().into_owned())
        else {
            continue;
        };
        let name = a.target.name.clone();
        let built = by_triple.entry(triple).or_default();
        if wanted.contains(&name) && !built.iter().any(|b| b.name == name) {
            built.push(Built {
                name,
                path: exe,
                hold: None,
            });
        }
    }
    by_triple
}

/// Run cargo for one target in `dir` and return the binaries it produced (holding `dir`'s
/// lock).
pub fn build_target(cmd: &Cmd, dir: &Path, wanted: &[String]) -> anyhow::Result<Vec<Built>> {
    let hold = dir_lock::lock(dir)?;
    let out = cmd.run()?;
    let built = held_by(
        executables(&out.stdout, wanted)
            .into_values()
            .flatten()
            .collect(),
        &hold,
    );
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|w| !built.iter().any(|b| &b.name == *w))
        .map(String::as_str)
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "{} succeeded but cargo reported no executable for {}",
        cmd.summary(),
        missing.join(", ")
    );
    Ok(built)
}

/// Plan a Rust build: read the project, make sure every target has a std (installing with
/// rustup), write the zig wrappers, and return one stage per target; targets that share a
/// toolchain build in one cargo invocation ([`rust_group`]).
pub fn prepare(cfg: &BuildConfig, progress: &Progress) -> anyhow::Result<Plan> {
    let kiln_exe = toolchain::kiln_exe()?;
    let (project, manifest, groups) = groups(cfg, progress, &kiln_exe)?;
    let mut stages: Vec<Stage> = groups
        .iter()
        .flat_map(|g| stages(&project, &manifest, &cfg.cargo, g))
        .collect();
    // Stages in the order the targets were given (the summary and the index follow it).
    stages.sort_by_key(|s| cfg.targets.iter().position(|t| t.name == s.target.name));
    Ok(Plan {
        language: "rust",
        bins: project.bins.clone(),
        package: project.package.clone(),
        stages,
    })
}

/// The cargo commands a build of `cfg` runs when nothing fails, one per group (for the
/// benchmark, which times cargo's own no-op against kiln's).
pub fn cargo_commands(cfg: &BuildConfig, kiln_exe: &Path) -> anyhow::Result<Vec<Cmd>> {
    let (project, manifest, groups) = groups(cfg, &Progress::new(true), kiln_exe)?;
    Ok(groups
        .iter()
        .map(|g| shared_command(&project, &manifest, &cfg.cargo, g))
        .collect())
}

/// Read the project, make sure every target has a std, write the wrappers, and group the
/// targets by the cargo invocation they share.
fn groups(
    cfg: &BuildConfig,
    progress: &Progress,
    kiln_exe: &Path,
) -> anyhow::Result<(RustProject, PathBuf, Vec<Group>)> {
    let zig = toolchain::find_zig()?;
    // Both answers are usually kept from the last build (`<target dir>/kiln/plan-answers`):
    // no rustc or cargo starts before the build's own cargo. The sysroot comes first: the
    // toolchain's binaries are part of the project answer's key.
    let answers = Answers::for_build(cfg.target_dir.as_deref(), PLAN_ANSWERS);
    let sysroot = rust::sysroot(None, &cfg.project_dir, &answers);
    let mut rust = toolchain::RustToolchains::in_sysroot(sysroot.as_deref());
    let project = plan(
        &cfg.project_dir,
        &cfg.cargo,
        &cfg.bins,
        cfg.target_dir.clone(),
        &answers,
        sysroot.as_deref(),
    );
    let project = project?;
    let manifest = manifest_path(&cfg.project_dir, &cfg.cargo);
    let mut members = Vec::new();
    for target in &cfg.targets {
        let rplan = rust.ensure(target, &|m| progress.say(m))?;
        let wrappers = toolchain::write_wrappers(
            &project
                .target_dir
                .join("kiln")
                .join("wrappers")
                .join(&target.name),
            kiln_exe,
            &zig,
            target,
        )?;
        members.push((
            rplan,
            Member {
                target: target.clone(),
                wrappers,
            },
        ));
    }
    Ok((project, manifest, group(members)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Targets;
    use crate::toolchain::Wrappers;

    fn member(name: &str) -> Member {
        Member {
            target: Targets::builtin().find(name).unwrap().clone(),
            wrappers: Wrappers::in_dir(Path::new("/w").join(name).as_path()),
        }
    }

    fn stable() -> RustPlan {
        RustPlan {
            toolchain: None,
            build_std: false,
        }
    }

    fn nightly() -> RustPlan {
        RustPlan {
            toolchain: Some("nightly".into()),
            build_std: true,
        }
    }

    #[test]
    fn targets_group_by_toolchain_in_order() {
        let groups = group(vec![
            (stable(), member("amd64")),
            (nightly(), member("armv7")),
            (stable(), member("arm64")),
            (nightly(), member("riscv64")),
            (stable(), member("386")),
        ]);
        let names: Vec<Vec<&str>> = groups
            .iter()
            .map(|g| g.members.iter().map(|m| m.target.name.as_str()).collect())
            .collect();
        if BUILD_STD_SHARES {
            assert_eq!(
                names,
                [vec!["amd64", "arm64", "386"], vec!["armv7", "riscv64"]]
            );
        } else {
            assert_eq!(
                names,
                [
                    vec!["amd64", "arm64", "386"],
                    vec!["armv7"],
                    vec!["riscv64"]
                ]
            );
        }
    }

    #[test]
    fn executables_are_attributed_by_the_triple_in_their_path() {
        let artifact = |triple: &str, name: &str, kind: &str| {
            format!(
                r#"{{"reason":"compiler-artifact","package_id":"path+file:///p#hello@0.1.0","manifest_path":"/p/Cargo.toml","target":{{"kind":["{kind}"],"crate_types":["{kind}"],"name":"{name}","src_path":"/p/src/main.rs","edition":"2021","doc":true,"doctest":false,"test":false}},"profile":{{"opt_level":"3","debuginfo":0,"debug_assertions":false,"overflow_checks":false,"test":false}},"features":[],"filenames":["/t/{triple}/release/{name}"],"executable":{exe},"fresh":false}}"#,
                exe = if kind == "bin" {
                    format!(r#""/t/{triple}/release/{name}""#)
                } else {
                    "null".into()
                }
            )
        };
        let stream = [
            artifact("aarch64-unknown-linux-musl", "hello", "bin"),
            artifact("x86_64-unknown-linux-musl", "helper", "lib"),
            artifact("x86_64-unknown-linux-musl", "hello", "bin"),
            artifact("x86_64-unknown-linux-musl", "other", "bin"),
            r#"{"reason":"build-finished","success":false}"#.to_string(),
        ]
        .join("\n");
        let got = executables(stream.as_bytes(), &["hello".into()]);
        assert_eq!(got.len(), 2, "{got:?}");
        let x86 = &got["x86_64-unknown-linux-musl"];
        assert_eq!(x86.len(), 1);
        assert_eq!(
            x86[0].path,
            Path::new("/t/x86_64-unknown-linux-musl/release/hello")
        );
        assert_eq!(got["aarch64-unknown-linux-musl"][0].name, "hello");
    }
}
