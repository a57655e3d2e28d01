//! One target's C build, owned so the stage can run on any thread: the build command in a
//! private copy of the project, CMake, or the `sources` compiled directly.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;

use crate::builders::Built;
use crate::config::CConfig;
use crate::elf;
use crate::error::VerificationFailed;
use crate::exec::Cmd;
use crate::fsutil::{WriteOptions, write_atomic};
use crate::inspect::{self, Policy, Require};
use crate::target::Target;
use crate::toolchain::Wrappers;

use super::cmake::{cmake_executables, toolchain_file_text};

/// Everything one target's build needs, owned so the stage can run on any thread.
pub(super) struct Job {
    pub(super) project: PathBuf,
    /// This target's build directory.
    pub(super) dir: PathBuf,
    pub(super) target: Target,
    pub(super) config: CConfig,
    pub(super) wrappers: Wrappers,
    pub(super) env: Vec<(String, OsString)>,
    /// Directories never copied into the per-target source copy (kiln's own output).
    pub(super) skip: Vec<PathBuf>,
    pub(super) name: String,
    /// CMake: the executables to keep (empty = all).
    pub(super) wanted: Vec<String>,
    pub(super) cmake: Option<PathBuf>,
}

impl Job {
    fn with_env(&self, mut cmd: Cmd) -> Cmd {
        for (k, v) in &self.env {
            cmd = cmd.env(k, v);
        }
        cmd
    }

    /// Copy the project into `<dir>/src`, run the build command there, check the output.
    pub(super) fn run_command(&self, build: &str, output: &str) -> anyhow::Result<Vec<Built>> {
        let src = self.dir.join("src");
        self.start_clean_if_changed(&src, build)?;
        let skip: Vec<PathBuf> = self
            .skip
            .iter()
            .map(|p| fs_err::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect();
        mirror(&self.project, &src, &skip).with_context(|| {
            format!(
                "copying {} into the build directory for {}",
                self.project.display(),
                self.target.platform
            )
        })?;
        let cmd = self.with_env(
            Cmd::new(
                "sh",
                format!(
                    "build {} for {} (`{build}`)",
                    self.name, self.target.platform
                ),
            )
            .args(["-c", build])
            .dir(&src),
        );
        // A make in `build` joins kiln's jobserver (MAKEFLAGS): parallel within the limit.
        cmd.jobserver().run()?;
        let path = src.join(output);
        if !path.is_file() {
            return Err(anyhow::anyhow!(
                "`{build}` for {} succeeded but did not produce `{output}` ({} is missing). Check \
                 `output` under [c] in kiln.toml: it is relative to the project directory.",
                self.target.platform,
                path.display()
            ));
        }
        self.check_used_our_compiler(&path, build)?;
        Ok(vec![Built {
            name: self.name.clone(),
            path,
            hold: None,
        }])
    }

    /// Empty `dir` when the compiler, flags or command differ from the last build there: make
    /// compares file times only, so objects from another compiler (a new zig, other CFLAGS)
    /// would otherwise be linked as if current.
    pub(super) fn start_clean_if_changed(&self, dir: &Path, command: &str) -> anyhow::Result<()> {
        let stamp_file = dir.join(".kiln-stamp");
        let mut stamp = format!("command: {command}\n");
        for (k, v) in &self.env {
            stamp.push_str(&format!("{k}={}\n", v.to_string_lossy()));
        }
        if fs_err::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str()) {
            return Ok(());
        }
        if dir.exists() {
            fs_err::remove_dir_all(dir)?;
        }
        fs_err::create_dir_all(dir)?;
        fs_err::write(&stamp_file, stamp)?;
        Ok(())
    }

    /// A build command can ignore CC (a Makefile with `CC = gcc`): the output is then a host
    /// or dynamic binary. The shared gate would reject it too; this says why it happened.
    fn check_used_our_compiler(&self, path: &Path, build: &str) -> anyhow::Result<()> {
        let Ok(report) = elf::inspect_path(path) else {
            return Ok(()); // not an ELF: the shared gate reports it
        };
        let problems = inspect::verify(
            &report,
            &Policy {
                require: Require::Static,
                target: Some(self.target.clone()),
            },
        );
        if problems.is_empty() {
            return Ok(());
        }
        Err(VerificationFailed(format!(
            "{} for {}, built by `{build}`, failed verification:\n{}\n\
             The build did not use kiln's compiler: kiln sets CC={} (zig for {}) and LDFLAGS=-static, \
             and a Makefile that assigns `CC = gcc` or calls a compiler by name ignores them. Remove \
             the assignment (make then takes CC from the environment) and use $(CC), $(CFLAGS) and \
             $(LDFLAGS) in the rules, or pass them on the command line: \
             `build = \"make CC=\\\"$CC\\\" LDFLAGS=\\\"$LDFLAGS\\\"\"`.",
            self.name,
            self.target.platform,
            inspect::explain(&path.display().to_string(), &problems),
            self.wrappers.cc.display(),
            self.target.platform,
        ))
        .into())
    }

    /// Configure with kiln's toolchain file, build, and keep the executables CMake reports.
    pub(super) fn run_cmake(&self) -> anyhow::Result<Vec<Built>> {
        let cmake = self.cmake.clone().unwrap_or_else(|| "cmake".into());
        let build = self.dir.join("cmake");
        self.start_clean_if_changed(&build, &self.config.cmake_args.join(" "))?;
        let query = build.join(".cmake/api/v1/query");
        fs_err::create_dir_all(&query)?;
        // CMake's file API: after configuring, CMake describes every target (type, artifact
        // paths) under .cmake/api/v1/reply, so kiln needs no guessing about what was built.
        fs_err::write(query.join("codemodel-v2"), "")?;
        let toolchain_file = self.dir.join("toolchain.cmake");
        write_atomic(
            &toolchain_file,
            toolchain_file_text(&self.target, &self.wrappers, &self.config, &self.project)
                .as_bytes(),
            WriteOptions::cached(0o644),
        )?;
        let configure = self.with_env(
            Cmd::new(
                &cmake,
                format!("configure {} for {}", self.name, self.target.platform),
            )
            .arg("-S")
            .arg(&self.project)
            .arg("-B")
            .arg(&build)
            .arg(format!(
                "-DCMAKE_TOOLCHAIN_FILE={}",
                toolchain_file.display()
            ))
            .args(&self.config.cmake_args),
        );
        configure.run()?;
        let compile = self.with_env(
            Cmd::new(
                &cmake,
                format!("build {} for {}", self.name, self.target.platform),
            )
            .arg("--build")
            .arg(&build),
        );
        // No --parallel: the make it runs joins kiln's jobserver (MAKEFLAGS) instead.
        compile.jobserver().run()?;
        let exes = cmake_executables(&build).with_context(|| {
            format!(
                "reading CMake's description of the build in {}",
                build.display()
            )
        })?;
        let mut built = Vec::new();
        for (name, path) in exes {
            if self.wanted.is_empty() || self.wanted.contains(&name) {
                built.push(Built {
                    name,
                    path,
                    hold: None,
                });
            }
        }
        for w in &self.wanted {
            anyhow::ensure!(
                built.iter().any(|b| &b.name == w),
                "the CMake project builds no executable `{w}` for {}; it builds: {}",
                self.target.platform,
                cmake_executables(&build)?
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        anyhow::ensure!(
            !built.is_empty(),
            "the CMake project at {} defines no executable (add_executable)",
            self.project.display()
        );
        Ok(built)
    }

    /// Compile each source into this target's object directory, then link.
    pub(super) fn run_sources(&self) -> anyhow::Result<Vec<Built>> {
        let obj_dir = self.dir.join("obj");
        let cplusplus = self.config.sources.iter().any(|s| is_cxx(s));
        let mut objects = Vec::new();
        for source in &self.config.sources {
            let obj = obj_dir.join(format!("{}.o", flat_path(source)));
            if let Some(parent) = obj.parent() {
                fs_err::create_dir_all(parent)?;
            }
            let (driver, flags_var) = if is_cxx(source) {
                (&self.wrappers.cxx, "CXXFLAGS")
            } else {
                (&self.wrappers.cc, "CFLAGS")
            };
            let mut cmd = Cmd::new(
                driver,
                format!("compile {source} for {}", self.target.platform),
            )
            .dir(&self.project)
            .args(self.env_words(flags_var));
            for inc in &self.config.include {
                cmd = cmd.arg(format!("-I{}", self.project.join(inc).display()));
            }
            for d in &self.config.defines {
                cmd = cmd.arg(format!("-D{d}"));
            }
            cmd = cmd
                .arg("-c")
                .arg(self.project.join(source))
                .arg("-o")
                .arg(&obj);
            cmd.jobserver().run()?;
            objects.push(obj);
        }
        let exe = self.dir.join(&self.name);
        let driver = if cplusplus {
            &self.wrappers.cxx
        } else {
            &self.wrappers.cc
        };
        let mut link = Cmd::new(
            driver,
            format!("link {} for {}", self.name, self.target.platform),
        )
        .dir(&self.project)
        .args(self.env_words("LDFLAGS"))
        .args(&objects);
        for lib in &self.config.libs {
            link = link.arg(lib_arg(lib, &self.project));
        }
        link = link.arg("-o").arg(&exe);
        // The link runs a compiler driver like the compiles: it waits for a job token too.
        link.jobserver().run()?;
        Ok(vec![Built {
            name: self.name.clone(),
            path: exe,
            hold: None,
        }])
    }

    /// A flags variable of [`c_env`], split into words for a direct command line.
    fn env_words(&self, var: &str) -> Vec<String> {
        self.env
            .iter()
            .find(|(k, _)| k == var)
            .map(|(_, v)| {
                v.to_string_lossy()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub(super) fn is_cxx(source: &str) -> bool {
    [".cc", ".cpp", ".cxx", ".C", ".c++"]
        .iter()
        .any(|ext| source.ends_with(ext))
}

/// A source path as one file name under the object directory (`src/a.c` → `src/a.c`,
/// `../x.c` → `_up/x.c`), so two sources never share an object.
pub(super) fn flat_path(source: &str) -> String {
    Path::new(source)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("_up".into()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `m` → `-lm`; a flag stays; a path (to a `.a`) is made absolute against the project.
pub(super) fn lib_arg(lib: &str, project: &Path) -> OsString {
    if lib.starts_with('-') {
        lib.into()
    } else if lib.contains('/') || lib.ends_with(".a") || lib.ends_with(".o") {
        project.join(lib).into()
    } else {
        format!("-l{lib}").into()
    }
}

/// Copy `from` into `to`, skipping VCS directories and `skip` (kiln's own output), keeping
/// modification times and leaving files whose size and mtime already match, so `make` in the
/// copy rebuilds only what changed.
pub fn mirror(from: &Path, to: &Path, skip: &[PathBuf]) -> anyhow::Result<()> {
    fs_err::create_dir_all(to)?;
    for entry in fs_err::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let src = entry.path();
        if [".git", ".hg", ".svn"].iter().any(|v| name == *v) {
            continue;
        }
        let canonical = fs_err::canonicalize(&src).unwrap_or_else(|_| src.clone());
        if skip.iter().any(|s| s == &canonical) {
            continue;
        }
        let dest = to.join(&name);
        let ft = entry.file_type()?;
        if ft.is_symlink() {
            if std::fs::symlink_metadata(&dest).is_err() {
                std::os::unix::fs::symlink(fs_err::read_link(&src)?, &dest)?;
            }
        } else if ft.is_dir() {
            mirror(&src, &dest, skip)?;
        } else if ft.is_file() {
            let meta = entry.metadata()?;
            let same = std::fs::metadata(&dest)
                .is_ok_and(|d| d.len() == meta.len() && d.modified().ok() == meta.modified().ok());
            if !same {
                fs_err::copy(&src, &dest)?;
                let f = fs_err::File::options().write(true).open(&dest)?;
                f.file().set_modified(meta.modified()?)?;
            }
        }
    }
    Ok(())
}
