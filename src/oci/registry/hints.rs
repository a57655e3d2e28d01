//! Which repositories are known to hold a blob (kiln pushed or pulled it there), so a push
//! to another repository of the same registry can mount it instead of uploading it.
//! One small file per blob under the cache: `registry-hints/<hex>`, one `registry/repo` a line.

use std::io::Write;
use std::path::PathBuf;

use super::RegistryOptions;

fn file(opts: &RegistryOptions, digest: &str) -> Option<PathBuf> {
    let hex = digest.strip_prefix("sha256:")?;
    Some(opts.cache_dir.join("registry-hints").join(hex))
}

/// Note that `registry/repo` holds `digest`. Best effort: a hint is only a hint.
pub fn remember(opts: &RegistryOptions, registry: &str, repo: &str, digest: &str) {
    let Some(f) = file(opts, digest) else { return };
    let line = format!("{registry}/{repo}");
    let known = std::fs::read_to_string(&f).unwrap_or_default();
    if known.lines().any(|l| l == line) {
        return;
    }
    if let Some(dir) = f.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut out) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&f)
    {
        let _ = writeln!(out, "{line}");
    }
}

/// Another repository of `registry` that is known to hold `digest`.
pub fn source(opts: &RegistryOptions, registry: &str, repo: &str, digest: &str) -> Option<String> {
    let known = std::fs::read_to_string(file(opts, digest)?).ok()?;
    let prefix = format!("{registry}/");
    known
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix(&prefix))
        .find(|r| *r != repo)
        .map(str::to_string)
}
