//! Host files a project config (`[image] files`) asks to copy into an image. A kiln.toml
//! from a cloned repository must not be able to pull host files (`/etc/shadow`, `../secret`,
//! an in-project symlink to `~/.ssh/id_ed25519`) into an image: every source, after
//! following symlinks, must lie inside the project directory unless the user passes
//! `--allow-outside-project`. FIFOs, sockets and devices are refused (reading one blocks
//! or never ends); directories are copied recursively.

use std::path::{Path, PathBuf};

use crate::error::UsageError;

/// Most files one `[image] files` directory may expand to.
pub const MAX_FILES: usize = 10_000;
/// Deepest directory copied.
const MAX_DEPTH: usize = 64;

/// One file or directory to put into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The resolved host path (symlinks followed).
    pub src: PathBuf,
    /// Absolute path in the image.
    pub dst: String,
    /// The mode given, or for files in a copied directory 0755/0644 by the host's exec bit.
    pub mode: Option<u32>,
}

/// Resolve `src` (relative to `project_dir`) for `dst`, expanding directories.
pub fn resolve(
    project_dir: &Path,
    src: &Path,
    dst: &str,
    mode: Option<u32>,
    allow_outside: bool,
) -> Result<Vec<Source>, UsageError> {
    let what = format!("[image] files entry `{}` -> `{dst}`", src.display());
    resolve_as(&what, project_dir, src, dst, mode, allow_outside)
}

/// [`resolve`], its errors naming the setting as `what` (a `[[component]] output`).
pub fn resolve_as(
    what: &str,
    project_dir: &Path,
    src: &Path,
    dst: &str,
    mode: Option<u32>,
    allow_outside: bool,
) -> Result<Vec<Source>, UsageError> {
    if !dst.starts_with('/') {
        return Err(UsageError(format!(
            "{what}: the destination must be an absolute path in the image, e.g. /etc/app.toml"
        )));
    }
    if let Some(m) = mode {
        super::validate::mode(m, what)?;
    }
    let root = project_dir.canonicalize().map_err(|e| {
        UsageError(format!(
            "cannot resolve the project directory {}: {e}",
            project_dir.display()
        ))
    })?;
    let mut out = Vec::new();
    let ctx = Ctx {
        root: &root,
        allow_outside,
        what,
    };
    ctx.add(&project_dir.join(src), dst, mode, 0, &mut out)?;
    Ok(out)
}

struct Ctx<'a> {
    root: &'a Path,
    allow_outside: bool,
    what: &'a str,
}

impl Ctx<'_> {
    fn add(
        &self,
        path: &Path,
        dst: &str,
        mode: Option<u32>,
        depth: usize,
        out: &mut Vec<Source>,
    ) -> Result<(), UsageError> {
        use std::os::unix::fs::PermissionsExt;
        let what = self.what;
        let real = path
            .canonicalize()
            .map_err(|e| UsageError(format!("{what}: cannot read {}: {e}", path.display())))?;
        if !self.allow_outside && !real.starts_with(self.root) {
            return Err(UsageError(format!(
                "{what}: {} resolves to {}, outside the project directory {}. A project's \
                 config may only copy files from the project; if you trust this config, run \
                 again with --allow-outside-project",
                path.display(),
                real.display(),
                self.root.display()
            )));
        }
        let meta = std::fs::metadata(&real)
            .map_err(|e| UsageError(format!("{what}: cannot read {}: {e}", real.display())))?;
        if meta.is_file() {
            let exec = meta.permissions().mode() & 0o111 != 0;
            out.push(Source {
                src: real,
                dst: dst.to_string(),
                mode: mode.or(Some(if exec { 0o755 } else { 0o644 })),
            });
        } else if meta.is_dir() {
            if depth > MAX_DEPTH {
                return Err(UsageError(format!(
                    "{what}: directories nest more than {MAX_DEPTH} deep"
                )));
            }
            out.push(Source {
                src: real.clone(),
                dst: dst.to_string(),
                mode: if depth == 0 { mode } else { None },
            });
            let mut children: Vec<PathBuf> = std::fs::read_dir(&real)
                .and_then(|rd| rd.map(|e| e.map(|e| e.path())).collect())
                .map_err(|e| UsageError(format!("{what}: cannot list {}: {e}", real.display())))?;
            children.sort();
            for c in children {
                let name = c
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                // The given mode is the directory's; its files keep their own exec bit.
                self.add(
                    &c,
                    &format!("{}/{name}", dst.trim_end_matches('/')),
                    None,
                    depth + 1,
                    out,
                )?;
                if out.len() > MAX_FILES {
                    return Err(UsageError(format!(
                        "{what}: more than {MAX_FILES} files; copy fewer or build them into the \
                         image another way"
                    )));
                }
            }
        } else {
            return Err(UsageError(format!(
                "{what}: {} is not a regular file or directory (a FIFO, socket or device): \
                 kiln copies files and directories only",
                real.display()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_copied_with_their_contents_and_sources_stay_inside() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("proj");
        std::fs::create_dir_all(p.join("conf/sub")).unwrap();
        std::fs::write(p.join("conf/a.toml"), "a").unwrap();
        std::fs::write(p.join("conf/sub/run.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(
            p.join("conf/sub/run.sh"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let got = resolve(&p, Path::new("conf"), "/etc/app", Some(0o750), false).unwrap();
        let rows: Vec<(String, Option<u32>)> =
            got.iter().map(|s| (s.dst.clone(), s.mode)).collect();
        assert_eq!(
            rows,
            [
                ("/etc/app".to_string(), Some(0o750)),
                ("/etc/app/a.toml".to_string(), Some(0o644)),
                ("/etc/app/sub".to_string(), None),
                ("/etc/app/sub/run.sh".to_string(), Some(0o755)),
            ]
        );
        std::fs::write(tmp.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../../secret", p.join("conf/leak")).unwrap();
        let e = resolve(&p, Path::new("conf"), "/etc/app", None, false).unwrap_err();
        assert!(e.0.contains("outside the project"), "{}", e.0);
        assert!(resolve(&p, Path::new("conf"), "/etc/app", None, true).is_ok());
    }
}
