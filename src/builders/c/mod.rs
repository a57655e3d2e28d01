//! The C builder, for three project shapes from `[c]` in kiln.toml: any build command
//! (`make`) with an `output`, run in a per-target copy of the project; a CMake project, with a
//! toolchain file pointing at kiln's zig wrappers; or a list of `sources` compiled directly.
//! Every target gets its own build directory, so targets never share object files.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

mod cmake;
mod job;

use job::Job;
pub use job::mirror;

use cmake::cmake_executables_declared;
pub use cmake::{cmake_executables, toolchain_file_text};

use crate::builders::{Built, PackageInfo, Plan, Stage, dir_lock};
use crate::config::{BuildConfig, CConfig};
use crate::error::UsageError;
use crate::progress::Progress;
use crate::target::Target;
use crate::toolchain::{self, Wrappers};

/// Makefile names make looks for.
const MAKEFILES: &[&str] = &["GNUmakefile", "makefile", "Makefile"];

/// Whether `dir` is a C project kiln can build: a `[c]` table in kiln.toml, a
/// CMakeLists.txt, or a Makefile (which then needs `[c]` to say what it builds).
pub fn detect(project_dir: &Path) -> bool {
    project_dir.join("CMakeLists.txt").is_file()
        || MAKEFILES.iter().any(|m| project_dir.join(m).is_file())
        || crate::config::read_file_config(project_dir).is_ok_and(|f| f.c.is_some())
}

/// How the project is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// `build` run with `sh -c` in a per-target copy of the project; `output` is the binary.
    Command { build: String, output: String },
    /// `cmake -S project -B <per-target dir>` with kiln's toolchain file.
    CMake,
    /// `sources` compiled and linked with the zig wrappers.
    Sources,
}

/// Work out the project's shape from its config and files.
pub fn shape(config: &CConfig, dir: &Path) -> Result<Shape, UsageError> {
    let kiln_toml = dir.join("kiln.toml");
    match (&config.build, &config.output) {
        (Some(build), Some(output)) => {
            return Ok(Shape::Command {
                build: build.clone(),
                output: output.clone(),
            });
        }
        (Some(build), None) => {
            return Err(UsageError(format!(
                "the C project at {} says how to build (`build = \"{build}\"`) but not what: add \
                 `output = \"path/to/binary\"` (relative to the project) under [c] in {}",
                dir.display(),
                kiln_toml.display()
            )));
        }
        _ => {}
    }
    if !config.sources.is_empty() {
        return Ok(Shape::Sources);
    }
    if dir.join("CMakeLists.txt").is_file() {
        return Ok(Shape::CMake);
    }
    if let Some(m) = MAKEFILES.iter().find(|m| dir.join(m).is_file()) {
        return Err(UsageError(format!(
            "{} has a {m} but kiln does not know which binary it builds: add\n\n  [c]\n  build = \"make\"\n  \
             output = \"path/to/binary\"\n\nto {}",
            dir.display(),
            kiln_toml.display()
        )));
    }
    Err(UsageError(format!(
        "the C project at {} has no build command, CMakeLists.txt or source list: under [c] in {} set \
         `build` and `output`, or `sources = [\"main.c\", …]`",
        dir.display(),
        kiln_toml.display()
    )))
}

/// Plan a C build: pick the shape, write the zig wrappers, and return one stage per target.
pub fn prepare(cfg: &BuildConfig, progress: &Progress) -> anyhow::Result<Plan> {
    let config = &cfg.c;
    let shape = shape(config, &cfg.project_dir)?;
    // Absolute: sources and -I paths are joined to it and commands run in other directories.
    let project = std::path::absolute(&cfg.project_dir)?;
    let zig = toolchain::find_zig()?;
    let kiln_exe = toolchain::kiln_exe()?;
    let root = crate::builders::work_dir(cfg);
    let builds = crate::builders::project_work_dir(cfg, "c");
    let cmake = match shape {
        Shape::CMake => {
            Some(
                which::which("cmake").map_err(|_| crate::error::ToolchainMissing {
                    what: "cmake".into(),
                    install: "install CMake (Debian/Ubuntu: `apt-get install cmake make`)".into(),
                })?,
            )
        }
        _ => None,
    };
    let name = binary_name(config, &shape, &cfg.project_dir);
    // CMake: the executables to keep (`--bin`, else `output`; empty = every one).
    let wanted: Vec<String> = match (&shape, cfg.bins.is_empty()) {
        (Shape::CMake, false) => cfg.bins.clone(),
        (Shape::CMake, true) => config.output.iter().cloned().collect(),
        _ => Vec::new(),
    };
    let bins: Vec<String> = match &shape {
        Shape::CMake if wanted.is_empty() => cmake_executables_declared(&cfg.project_dir),
        Shape::CMake => wanted.clone(),
        _ => vec![name.clone()],
    };
    if !matches!(shape, Shape::CMake)
        && let Some(b) = cfg.bins.iter().find(|b| **b != name)
    {
        return Err(UsageError(format!(
            "no binary `{b}` in the C project at {}: it builds `{name}` (set `name` under [c] \
             in kiln.toml to rename it)",
            cfg.project_dir.display()
        ))
        .into());
    }
    let user = |k: &str| std::env::var_os(k);
    let mut stages = Vec::new();
    for target in &cfg.targets {
        let wrappers = toolchain::write_wrappers(&root.join("wrappers"), &kiln_exe, &zig, target)?;
        let dir = builds.join(&target.name);
        // Where the compiler sees the sources: the per-target copy, or the project itself.
        let source_root = match &shape {
            Shape::Command { .. } => dir.join("src"),
            _ => project.clone(),
        };
        let env = c_env(&wrappers, config, target, &source_root, user);
        let job = Job {
            project: project.clone(),
            dir,
            target: target.clone(),
            config: config.clone(),
            wrappers,
            env,
            skip: vec![root.clone(), cfg.out_dir.clone()],
            name: name.clone(),
            wanted: wanted.clone(),
            cmake: cmake.clone(),
        };
        let shape = shape.clone();
        stages.push(Stage {
            target: target.clone(),
            run: Box::new(move || {
                // Another kiln building this project into the same target dir (other flags)
                // rebuilds in the same directory: one at a time, until the binaries are
                // copied out.
                let hold = dir_lock::lock(&job.dir)?;
                let built = match &shape {
                    Shape::Command { build, output } => job.run_command(build, output),
                    Shape::CMake => job.run_cmake(),
                    Shape::Sources => job.run_sources(),
                }?;
                Ok(built
                    .into_iter()
                    .map(|b| Built {
                        hold: Some(Arc::clone(&hold)),
                        ..b
                    })
                    .collect())
            }),
        });
    }
    if matches!(shape, Shape::CMake) {
        progress.say("CMake project: each target is configured with kiln's zig toolchain file");
    }
    Ok(Plan {
        language: "c",
        bins,
        package: Some(PackageInfo {
            name: config
                .name
                .clone()
                .unwrap_or_else(|| dir_name(&cfg.project_dir)),
            version: config.version.clone().unwrap_or_default(),
            ..Default::default()
        }),
        stages,
    })
}

fn dir_name(dir: &Path) -> String {
    let canonical = fs_err::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "main".into())
}

/// The binary's name: `name`, else the file name of `output`, else the directory's name.
fn binary_name(config: &CConfig, shape: &Shape, dir: &Path) -> String {
    if let Some(n) = &config.name {
        return n.clone();
    }
    match shape {
        Shape::Command { output, .. } => Path::new(output)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| output.clone()),
        _ => dir_name(dir),
    }
}

/// kiln's compiler and linker flags: optimisation, and a static link. The optimisation level
/// goes to the link too (zig picks its runtime libraries by it), and symbols are stripped
/// unless `debug` is set, as Go's `-s -w` does (debug info is most of a static binary).
///
/// `-ffile-prefix-map` makes `__FILE__` and debug paths relative to `source_root`, as Go's
/// `-trimpath` does: the per-target build directory's path must not reach the binary, or two
/// machines would build different bytes (left out for a path with spaces, which a flags
/// variable cannot carry).
fn flags(config: &CConfig, source_root: &Path) -> (Vec<String>, Vec<String>) {
    let opt = format!("-O{}", config.opt.as_deref().unwrap_or("2"));
    let mut cflags = vec![opt.clone()];
    if config.debug {
        cflags.push("-g".into());
    }
    let root = source_root.to_string_lossy();
    if !root.contains(char::is_whitespace) {
        cflags.push(format!("-ffile-prefix-map={root}=."));
    }
    cflags.extend(config.cflags.iter().cloned());
    let mut ldflags = vec!["-static".to_string(), opt];
    if !config.debug {
        ldflags.push("-s".into());
    }
    ldflags.extend(config.ldflags.iter().cloned());
    (cflags, ldflags)
}

/// The environment every shape's tools see: kiln's wrappers as CC/CXX/AR/RANLIB, and flags
/// for a static, optimised build. The user's CFLAGS/CXXFLAGS/LDFLAGS (read through `get`)
/// come last so they win. CC and friends are kiln's even when the user set them: one
/// compiler cannot serve every CPU of a multi-platform build.
pub fn c_env(
    wrappers: &Wrappers,
    config: &CConfig,
    target: &Target,
    source_root: &Path,
    get: impl Fn(&str) -> Option<OsString>,
) -> Vec<(String, OsString)> {
    let join = |mut parts: Vec<String>, user: &str| {
        parts.extend(get(user).map(|v| v.to_string_lossy().into_owned()));
        OsString::from(parts.join(" "))
    };
    let (cflags, ldflags) = flags(config, source_root);
    vec![
        ("CC".into(), wrappers.cc.clone().into()),
        ("CXX".into(), wrappers.cxx.clone().into()),
        ("AR".into(), wrappers.ar.clone().into()),
        ("RANLIB".into(), wrappers.ranlib.clone().into()),
        ("CFLAGS".into(), join(cflags.clone(), "CFLAGS")),
        ("CXXFLAGS".into(), join(cflags, "CXXFLAGS")),
        ("LDFLAGS".into(), join(ldflags, "LDFLAGS")),
        ("KILN_PLATFORM".into(), target.platform.to_string().into()),
        ("KILN_TARGET".into(), target.name.clone().into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::job::{flat_path, is_cxx, lib_arg};
    use super::*;
    use crate::target::Targets;

    fn wrappers() -> Wrappers {
        Wrappers::in_dir(Path::new("/w"))
    }

    fn arm64() -> Target {
        Targets::builtin().find("arm64").unwrap().clone()
    }

    #[test]
    fn shapes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let make = CConfig {
            build: Some("make".into()),
            output: Some("bin/app".into()),
            ..Default::default()
        };
        assert_eq!(
            shape(&make, d).unwrap(),
            Shape::Command {
                build: "make".into(),
                output: "bin/app".into()
            }
        );
        let no_output = CConfig {
            build: Some("make".into()),
            ..Default::default()
        };
        let err = shape(&no_output, d).unwrap_err().to_string();
        assert!(err.contains("output = "), "{err}");
        let err = shape(&CConfig::default(), d).unwrap_err().to_string();
        assert!(err.contains("no build command"), "{err}");
        fs_err::write(d.join("Makefile"), "all:\n").unwrap();
        let err = shape(&CConfig::default(), d).unwrap_err().to_string();
        assert!(
            err.contains("has a Makefile") && err.contains("build = \"make\""),
            "{err}"
        );
        fs_err::write(d.join("CMakeLists.txt"), "add_executable(a a.c)\n").unwrap();
        assert_eq!(shape(&CConfig::default(), d).unwrap(), Shape::CMake);
        let sources = CConfig {
            sources: vec!["a.c".into()],
            ..Default::default()
        };
        assert_eq!(shape(&sources, d).unwrap(), Shape::Sources);
    }

    #[test]
    fn env_is_static_optimised_and_user_flags_come_last() {
        let cfg = CConfig {
            opt: Some("s".into()),
            cflags: vec!["-Wall".into()],
            ldflags: vec!["-Wl,--gc-sections".into()],
            ..Default::default()
        };
        let env = c_env(&wrappers(), &cfg, &arm64(), Path::new("/p"), |k| {
            (k == "CFLAGS").then(|| "-g".into())
        });
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.to_string_lossy().into_owned())
                .unwrap()
        };
        assert_eq!(get("CC"), "/w/cc");
        assert_eq!(get("AR"), "/w/ar");
        assert_eq!(get("CFLAGS"), "-Os -ffile-prefix-map=/p=. -Wall -g");
        assert_eq!(get("CXXFLAGS"), "-Os -ffile-prefix-map=/p=. -Wall");
        assert_eq!(get("LDFLAGS"), "-static -Os -s -Wl,--gc-sections");
        let debug = CConfig {
            debug: true,
            ..Default::default()
        };
        let env = c_env(&wrappers(), &debug, &arm64(), Path::new("/p"), |_| None);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("CFLAGS"), "-O2 -g -ffile-prefix-map=/p=.");
        assert_eq!(get("LDFLAGS"), "-static -O2");
        assert_eq!(get("KILN_PLATFORM"), "linux/arm64");
    }

    #[test]
    fn toolchain_file_points_at_the_wrappers() {
        let text = toolchain_file_text(
            &arm64(),
            &wrappers(),
            &CConfig::default(),
            Path::new("/src dir"),
        );
        for want in [
            "set(CMAKE_SYSTEM_PROCESSOR aarch64)",
            "set(CMAKE_C_COMPILER \"/w/cc\")",
            "set(CMAKE_AR \"/w/ar\" CACHE FILEPATH",
            "set(CMAKE_EXE_LINKER_FLAGS_INIT \"-static -O2 -s\")",
            // No prefix map for a path with a space: it would split into two flags.
            "set(CMAKE_C_FLAGS_INIT \"-O2\")",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }

    #[test]
    fn paths_libs_and_languages() {
        assert_eq!(flat_path("src/a.c"), "src/a.c");
        assert_eq!(flat_path("../x/./b.c"), "_up/x/b.c");
        let p = Path::new("/p");
        assert_eq!(lib_arg("m", p), "-lm");
        assert_eq!(lib_arg("-pthread", p), "-pthread");
        assert_eq!(lib_arg("lib/libx.a", p), "/p/lib/libx.a");
        assert!(is_cxx("a.cpp") && is_cxx("b.cc") && !is_cxx("c.c"));
    }

    #[test]
    fn declared_cmake_executables() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(
            dir.path().join("CMakeLists.txt"),
            "project(x C)\nADD_EXECUTABLE( tool a.c)\nadd_executable(${PROJECT_NAME} b.c)\nadd_library(l c.c)\nadd_executable(srv\n s.c)\n",
        )
        .unwrap();
        assert_eq!(cmake_executables_declared(dir.path()), ["tool", "srv"]);
    }

    #[test]
    fn build_dir_starts_clean_when_compiler_or_flags_change() {
        let tmp = tempfile::tempdir().unwrap();
        let mut job = Job {
            project: tmp.path().join("p"),
            dir: tmp.path().join("b"),
            target: arm64(),
            config: CConfig::default(),
            wrappers: wrappers(),
            env: c_env(
                &wrappers(),
                &CConfig::default(),
                &arm64(),
                Path::new("/p"),
                |_| None,
            ),
            skip: Vec::new(),
            name: "app".into(),
            wanted: Vec::new(),
            cmake: None,
        };
        let src = job.dir.join("src");
        job.start_clean_if_changed(&src, "make").unwrap();
        fs_err::write(src.join("main.o"), "old").unwrap();
        job.start_clean_if_changed(&src, "make").unwrap();
        assert!(src.join("main.o").is_file(), "same build: objects are kept");
        job.start_clean_if_changed(&src, "make -j2").unwrap();
        assert!(!src.join("main.o").exists(), "another command: start clean");
        fs_err::write(src.join("main.o"), "old").unwrap();
        job.env = c_env(
            &Wrappers::in_dir(Path::new("/new-zig")),
            &CConfig::default(),
            &arm64(),
            Path::new("/p"),
            |_| None,
        );
        job.start_clean_if_changed(&src, "make -j2").unwrap();
        assert!(
            !src.join("main.o").exists(),
            "another compiler: start clean"
        );
    }

    #[test]
    fn mirror_copies_keeps_mtimes_and_skips() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("p");
        fs_err::create_dir_all(src.join("sub")).unwrap();
        fs_err::create_dir_all(src.join(".git")).unwrap();
        fs_err::create_dir_all(src.join("target/kiln")).unwrap();
        fs_err::write(src.join("Makefile"), "all:\n").unwrap();
        fs_err::write(src.join("sub/a.c"), "int a;\n").unwrap();
        fs_err::write(src.join("target/kiln/x.o"), "").unwrap();
        std::os::unix::fs::symlink("sub/a.c", src.join("link.c")).unwrap();
        let dest = src.join("target/kiln/arm64/c/src");
        let skip = vec![fs_err::canonicalize(src.join("target/kiln")).unwrap()];
        mirror(&src, &dest, &skip).unwrap();
        assert!(dest.join("sub/a.c").is_file());
        assert!(!dest.join(".git").exists());
        assert!(!dest.join("target/kiln").exists());
        assert_eq!(
            fs_err::read_link(dest.join("link.c")).unwrap(),
            Path::new("sub/a.c")
        );
        let m = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        assert_eq!(m(&src.join("sub/a.c")), m(&dest.join("sub/a.c")));
        // An object built in the copy survives a second mirror.
        fs_err::write(dest.join("sub/a.o"), "obj").unwrap();
        mirror(&src, &dest, &skip).unwrap();
        assert!(dest.join("sub/a.o").is_file());
    }
}
