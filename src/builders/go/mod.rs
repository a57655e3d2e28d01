//! The Go builder: `go list` finds the main packages (and whether cgo is needed); one
//! `go build` per target with GOOS/GOARCH/GOARM/GO386 from the target table, one shared
//! GOCACHE and GOMODCACHE, `CGO_ENABLED=0` by default, and in cgo mode kiln's zig wrapper as
//! CC with external static linking.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;

mod command;
mod list;
mod plan_cache;

use command::merged_tags;
pub use command::{GoBuild, UserGoFlags, build_command};
use list::{LIST_FIELDS, is_version_element};
pub use list::{ListedModule, ListedPackage, exec_name, parse_list, select_mains};
use plan_cache::{cached_plan, save_plan};

use crate::builders::dir_lock::{self, BuildDirLock};
use crate::builders::fresh::{self, Fingerprint};
use crate::builders::{Built, PackageInfo, Plan, Stage};
use crate::config::{BuildConfig, GoConfig};
use crate::exec::Cmd;
use crate::progress::Progress;
use crate::target::Target;
use crate::toolchain;
use crate::toolchain::go::Go;

/// Whether `dir` is a Go module.
pub fn detect(project_dir: &Path) -> bool {
    project_dir.join("go.mod").is_file()
}

/// A main package kiln builds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct MainPackage {
    pub import_path: String,
    /// The executable's name, as `go build` names it.
    pub bin: String,
    /// It or a non-standard dependency has cgo files.
    pub needs_cgo: bool,
}

/// What `plan` found in a Go module.
#[derive(Debug, Clone)]
pub struct GoProject {
    pub dir: PathBuf,
    /// The module path from go.mod.
    pub module: String,
    pub mains: Vec<MainPackage>,
}

/// Plan a Go build: find Go and the main packages, write the zig wrappers when cgo is on,
/// and return one stage per target.
pub fn prepare(cfg: &BuildConfig, progress: &Progress) -> anyhow::Result<Plan> {
    let go = toolchain::go::find_go()?;
    let project_dir = std::path::absolute(&cfg.project_dir)?;
    let env = toolchain::go::go_env(&go, &project_dir).context(
        "asking Go for its caches and GOFLAGS (`go env` failed; does `go version` work?)",
    )?;
    let first = cfg.targets.first().context("no target to build")?;
    let outputs = crate::builders::project_work_dir(cfg, "go");
    // What `go list` and the builds read, when kiln can see all of it (see fresh.rs).
    let base = fresh_base(&go, &env, &project_dir, cfg);
    let list_key = base.as_ref().map(|b| {
        let mut f = Fingerprint::extending("go list", b);
        f.field("goarch", first.goarch.as_bytes());
        f.field("packages", cfg.go.packages.join("\n").as_bytes());
        f.field("tags", cfg.go.tags.join(",").as_bytes());
        f.field("bins", cfg.bins.join("\n").as_bytes());
        f.finish()
    });
    let project = match list_key
        .as_deref()
        .and_then(|k| cached_plan(&outputs, k, &project_dir))
    {
        Some(project) => project,
        None => {
            let project = plan(&go, &project_dir, &env.goflags, &cfg.go, &cfg.bins, first)?;
            if let Some(k) = &list_key {
                save_plan(&outputs, k, &project);
            }
            project
        }
    };
    let cgo = cgo_mode(
        &cfg.go,
        std::env::var("CGO_ENABLED").ok().as_deref(),
        &project.mains,
    );
    if cgo {
        progress.say("cgo on: C code is compiled by zig for each target and linked statically");
    }
    let flags = UserGoFlags {
        cgo_ldflags: std::env::var_os("CGO_LDFLAGS").is_some(),
        ..UserGoFlags::parse(&env.goflags)
    };
    let (zig, kiln_exe) = if cgo {
        (Some(toolchain::find_zig()?), Some(toolchain::kiln_exe()?))
    } else {
        (None, None)
    };
    let root = crate::builders::work_dir(cfg);
    // A build is skipped when its fingerprint matches its last success. Not with cgo (C
    // headers and libraries can come from anywhere) nor with VCS stamping (the binary then
    // depends on .git).
    let skippable = base.filter(|_| !cgo && !cfg.go.buildvcs && !flags.buildvcs);
    let mut stages = Vec::new();
    // Each target's `go build` gets an equal share of the jobserver's tokens.
    let targets_building = cfg.targets.len().max(1);
    let shared = GoBuild {
        go: &go,
        env: &env,
        user: &flags,
        project: &project,
        config: &cfg.go,
    };
    for target in &cfg.targets {
        let wrappers = match (&zig, &kiln_exe) {
            (Some(zig), Some(exe)) => Some(toolchain::write_wrappers(
                &root.join("wrappers"),
                exe,
                zig,
                target,
            )?),
            _ => None,
        };
        let out = outputs.join(&target.name);
        let cmd = build_command(shared, target, wrappers.as_ref(), &out);
        let bins: Vec<String> = project.mains.iter().map(|m| m.bin.clone()).collect();
        let key = skippable.as_ref().map(|b| {
            let mut f = Fingerprint::extending("go build", b);
            f.command(&cmd);
            f.finish()
        });
        stages.push(Stage {
            target: target.clone(),
            run: Box::new(move || {
                // Another kiln building this project into the same target dir writes the
                // same executables: one at a time, until the binaries are copied out.
                let hold = dir_lock::lock(&out)?;
                if let Some(k) = &key
                    && fresh::is_fresh(&out, k, &bins)
                {
                    return Ok(built_list(&out, &bins, &hold));
                }
                fresh::forget(&out);
                remove_non_elf(&out, &bins);
                // `go build` does not join a jobserver: it holds its share of the tokens and
                // gets as many parallel actions (after fingerprinting, so -p never makes a
                // build look changed).
                let jobs = crate::jobs::global();
                let asked = std::time::SystemTime::now();
                let tokens = jobs.acquire(jobs.limit() / targets_building)?;
                crate::exec::trace(
                    &format!("tokens for go build {}", cmd.summary()),
                    asked,
                    std::time::SystemTime::now(),
                    tokens.count(),
                );
                let cmd = cmd.clone().insert_arg(1, format!("-p={}", tokens.count()));
                let built = build_target(&cmd, &out, &bins, cgo, &hold)?;
                drop(tokens);
                if let Some(k) = &key {
                    // Not recording only costs the next run a `go build`.
                    let _ = fresh::record(&out, k, &bins);
                }
                Ok(built)
            }),
        });
    }
    Ok(Plan {
        language: "go",
        bins: project.mains.iter().map(|m| m.bin.clone()).collect(),
        package: Some(package_info(&project, &cfg.go)),
        stages,
    })
}

/// The fingerprint of everything a Go build of this project reads that kiln can see: the
/// go binary and version, GOFLAGS (also from go's env file), the GO*/CGO_* environment
/// and every file under the project (outputs excepted). None where a build
/// reads more than that: a go.work workspace, or a go.mod `replace` to a local directory.
fn fresh_base(
    go: &Go,
    env: &toolchain::go::GoEnv,
    dir: &Path,
    cfg: &BuildConfig,
) -> Option<String> {
    let workspace = std::env::var("GOWORK").is_ok_and(|w| !w.is_empty() && w != "off")
        || dir.ancestors().any(|d| d.join("go.work").exists());
    let gomod = std::fs::read_to_string(dir.join("go.mod")).ok()?;
    let local_replace = gomod.lines().any(|l| {
        l.split_once("=>")
            .is_some_and(|(_, to)| to.trim_start().starts_with(['.', '/']))
    });
    if workspace || local_replace {
        return None;
    }
    let mut f = Fingerprint::new("go");
    f.file("go", &go.path);
    f.field("goversion", env.goversion.as_bytes());
    f.field("goflags", env.goflags.as_bytes());
    // Not KILN_*: what kiln's own settings change is in the command line, fingerprinted
    // per build (and a KILN_GO naming the same go as PATH does is the same build).
    f.env(&["GO", "CGO_"], &["CC", "CXX", "AR", "PKG_CONFIG_PATH"]);
    let target_dir = crate::builders::work_dir(cfg);
    let skip: Vec<PathBuf> = [
        target_dir.parent().map(Path::to_path_buf),
        Some(cfg.out_dir.clone()),
    ]
    .into_iter()
    .flatten()
    .collect();
    f.tree(dir, &skip)?;
    Some(f.finish())
}

/// `go build -o` refuses to replace a file that is not an executable it wrote: a work-dir
/// output damaged by something else is removed first (it is kiln's, never the user's).
fn remove_non_elf(out: &Path, bins: &[String]) {
    for name in bins {
        let path = out.join(name);
        if path.is_file() && !crate::elf::file_is_elf(&path) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The executables a build left in `out` (whose lock `hold` is).
fn built_list(out: &Path, bins: &[String], hold: &Arc<BuildDirLock>) -> Vec<Built> {
    bins.iter()
        .map(|name| Built {
            name: name.clone(),
            path: out.join(name),
            hold: Some(Arc::clone(hold)),
        })
        .collect()
}

/// Read the module with `go list` and pick the main packages to build.
pub fn plan(
    go: &Go,
    dir: &Path,
    goflags: &str,
    config: &GoConfig,
    wanted_bins: &[String],
    target: &Target,
) -> anyhow::Result<GoProject> {
    let tags = merged_tags(&UserGoFlags::parse(goflags), config);
    let patterns: Vec<String> = if config.packages.is_empty() {
        vec!["./...".into()]
    } else {
        config.packages.clone()
    };
    // CGO_ENABLED=1 so cgo files count as cgo files (with 0 Go lists them as ignored), and
    // the first target's GOARCH so architecture-specific files are the ones built.
    let mut list = Cmd::new(&go.path, "list the module's packages")
        .args(["list", "-e", "-deps"])
        .arg(format!("-json={LIST_FIELDS}"));
    if !tags.is_empty() {
        list = list.arg(format!("-tags={}", tags.join(",")));
    }
    let out = list
        .args(&patterns)
        .dir(dir)
        .env("CGO_ENABLED", "1")
        .env("GOOS", "linux")
        .env("GOARCH", &target.goarch)
        .run()
        .map_err(anyhow::Error::new)
        .with_context(|| {
            format!(
                "reading the Go module at {} (`go list` failed; does `go build ./...` work there?)",
                dir.display()
            )
        })?;
    let listed = parse_list(&out.stdout)?;
    select_mains(&listed, wanted_bins, dir)
}

/// Whether to build with cgo: the config, else `CGO_ENABLED` from the environment, else
/// whether a main package needs it.
pub fn cgo_mode(config: &GoConfig, env_cgo: Option<&str>, mains: &[MainPackage]) -> bool {
    if let Some(c) = config.cgo {
        return c;
    }
    match env_cgo.map(str::trim) {
        Some("1") => true,
        Some("0") => false,
        _ => mains.iter().any(|m| m.needs_cgo),
    }
}

/// Run `go build` for one target and return the executables (which keep `hold`, the lock
/// on `out`).
pub fn build_target(
    cmd: &Cmd,
    out: &Path,
    bins: &[String],
    cgo: bool,
    hold: &Arc<BuildDirLock>,
) -> anyhow::Result<Vec<Built>> {
    fs_err::create_dir_all(out)?;
    if let Err(e) = cmd.run() {
        if cgo && e.stderr_tail.contains("file not found") {
            // After the compiler's own words, so the missing header is read first.
            return Err(anyhow::anyhow!(
                "{e}\nhint: cgo could not find a C header. kiln compiles C with zig for the \
                 target's musl libc, so headers of host libraries (/usr/include) are not used: put \
                 the header in the package directory, or add its directory with `#cgo CFLAGS: -I…` \
                 or CGO_CFLAGS."
            ));
        }
        return Err(e.into());
    }
    for name in bins {
        let path = out.join(name);
        anyhow::ensure!(
            path.is_file(),
            "{} succeeded but did not write {}",
            cmd.summary(),
            path.display()
        );
    }
    Ok(built_list(out, bins, hold))
}

/// Image annotations: the module path's last element as the name, the config's version, and
/// the module path as the source when it names a host (`github.com/a/b`).
pub fn package_info(project: &GoProject, config: &GoConfig) -> PackageInfo {
    let module = project.module.as_str();
    let name = if module.is_empty() {
        project
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        exec_name(module)
    };
    let host = module.split('/').next().unwrap_or("");
    PackageInfo {
        name,
        version: config.version.clone().unwrap_or_default(),
        description: None,
        license: None,
        repository: (host.contains('.') && module.contains('/')).then(|| {
            let base = match module.rsplit_once('/') {
                Some((b, last)) if is_version_element(last) => b,
                _ => module,
            };
            format!("https://{base}")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_names_follow_go() {
        for (path, want) in [
            ("example.com/hello", "hello"),
            ("example.com/tool/v2", "tool"),
            ("example.com/tool/v1", "v1"),
            ("example.com/tool/v0", "v0"),
            ("example.com/tool/v02", "v02"),
            ("example.com/tool/cmd/srv", "srv"),
            ("hello", "hello"),
            ("v2", "v2"),
        ] {
            assert_eq!(exec_name(path), want, "{path}");
        }
    }

    const LIST: &str = r#"
{"ImportPath":"runtime/cgo","Name":"cgo","Standard":true,"DepOnly":true,"CgoFiles":["cgo.go"]}
{"ImportPath":"example.com/m/cbits","Name":"cbits","DepOnly":true,"CgoFiles":["c.go"],"Module":{"Path":"example.com/m"}}
{"ImportPath":"example.com/m/cmd/plain","Name":"main","Deps":["fmt","runtime/cgo"],"Module":{"Path":"example.com/m"}}
{"ImportPath":"example.com/m/cmd/withc","Name":"main","Deps":["example.com/m/cbits"],"Module":{"Path":"example.com/m"}}
{"ImportPath":"example.com/m/lib","Name":"lib","Module":{"Path":"example.com/m"}}
"#;

    #[test]
    fn mains_and_cgo_need_come_from_go_list() {
        let listed = parse_list(LIST.as_bytes()).unwrap();
        let p = select_mains(&listed, &[], Path::new("/m")).unwrap();
        assert_eq!(p.module, "example.com/m");
        assert_eq!(
            p.mains,
            [
                MainPackage {
                    import_path: "example.com/m/cmd/plain".into(),
                    bin: "plain".into(),
                    // runtime/cgo is standard: it does not force cgo on.
                    needs_cgo: false,
                },
                MainPackage {
                    import_path: "example.com/m/cmd/withc".into(),
                    bin: "withc".into(),
                    needs_cgo: true,
                },
            ]
        );
        let only = select_mains(&listed, &["withc".into()], Path::new("/m")).unwrap();
        assert_eq!(only.mains.len(), 1);
        let err = select_mains(&listed, &["nope".into()], Path::new("/m"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`nope`") && err.contains("plain, withc"),
            "{err}"
        );
        let none = select_mains(&listed[..2], &[], Path::new("/m"))
            .unwrap_err()
            .to_string();
        assert!(none.contains("no main package"), "{none}");
    }

    #[test]
    fn two_mains_with_one_name_are_refused() {
        let listed = parse_list(
            br#"{"ImportPath":"a/cmd/x","Name":"main"} {"ImportPath":"a/tools/x","Name":"main"}"#,
        )
        .unwrap();
        let err = select_mains(&listed, &[], Path::new("/a"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("a/cmd/x and a/tools/x"), "{err}");
    }

    #[test]
    fn cgo_mode_precedence() {
        let needs = [MainPackage {
            import_path: "a".into(),
            bin: "a".into(),
            needs_cgo: true,
        }];
        let plain = GoConfig::default();
        assert!(cgo_mode(&plain, None, &needs));
        assert!(!cgo_mode(&plain, None, &[]));
        assert!(!cgo_mode(&plain, Some("0"), &needs));
        assert!(cgo_mode(&plain, Some("1"), &[]));
        let off = GoConfig {
            cgo: Some(false),
            ..Default::default()
        };
        assert!(!cgo_mode(&off, Some("1"), &needs));
    }

    pub(super) fn project() -> GoProject {
        GoProject {
            dir: "/m".into(),
            module: "github.com/acme/hello/v2".into(),
            mains: vec![MainPackage {
                import_path: "github.com/acme/hello/v2".into(),
                bin: "hello".into(),
                needs_cgo: false,
            }],
        }
    }

    #[test]
    fn package_info_from_module_path() {
        let info = package_info(
            &project(),
            &GoConfig {
                version: Some("1.2.3".into()),
                ..Default::default()
            },
        );
        assert_eq!(info.name, "hello");
        assert_eq!(info.version, "1.2.3");
        assert_eq!(
            info.repository.as_deref(),
            Some("https://github.com/acme/hello")
        );
        let mut local = project();
        local.module = "hello".into();
        assert_eq!(package_info(&local, &GoConfig::default()).repository, None);
    }
}
