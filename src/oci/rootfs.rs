//! An image's root filesystem on disk: its layers unpacked in order into a directory
//! (whiteouts remove what lower layers put there), for `kiln debug`.

use std::path::{Component, Path};

use anyhow::Context;

use super::PlatformManifest;
use super::whiteout::{self, Entry as Whiteout};

/// Unpack every layer of `image` into `dir`, bottom first. Entries never land outside
/// `dir` (the tar crate's `unpack_in` refuses `..` and absolute paths).
pub fn unpack(image: &PlatformManifest, dir: &Path) -> anyhow::Result<()> {
    for (i, layer) in image.layers.iter().enumerate() {
        let tar = layer
            .tar()
            .with_context(|| format!("reading layer {} ({})", i + 1, layer.digest))?;
        unpack_layer(i, &tar, dir)?;
    }
    Ok(())
}

/// Unpack the `i`th layer's (0-based) tar into `dir`, over what lower layers put there.
fn unpack_layer(i: usize, tar: &[u8], dir: &Path) -> anyhow::Result<()> {
    let root = dir
        .canonicalize()
        .with_context(|| format!("reading {}", dir.display()))?;
    let mut archive = tar::Archive::new(tar);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let raw = path.to_string_lossy().into_owned();
        let (parent, name) = whiteout::split(&raw);
        let hidden = match whiteout::classify(name)
            .with_context(|| format!("layer {}: entry {raw}", i + 1))?
        {
            Whiteout::Plain => {
                entry.unpack_in(dir).with_context(|| {
                    format!("unpacking {} from layer {}", path.display(), i + 1)
                })?;
                continue;
            }
            Whiteout::Opaque => None,
            Whiteout::Hide(h) => Some(h),
        };
        // A whiteout acts below `dir` only, as `unpack_in` does for files: its directory
        // is a plain relative path that, symlinks resolved, stays inside the root.
        let outside = || {
            anyhow::anyhow!(
                "layer {}: whiteout {raw} points outside the image's root: the image is \
                 malformed",
                i + 1
            )
        };
        if Path::new(parent)
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(outside());
        }
        let Ok(real) = dir.join(parent).canonicalize() else {
            continue; // nothing there to hide
        };
        if !real.starts_with(&root) {
            return Err(outside());
        }
        match hidden {
            // An opaque directory: what lower layers put there is gone.
            None => {
                let _ = std::fs::remove_dir_all(&real);
                std::fs::create_dir_all(&real)?;
            }
            // `remove_dir_all` removes a symlink itself, not what it points at.
            Some(h) => {
                let gone = real.join(h);
                let _ = std::fs::remove_dir_all(&gone).or_else(|_| std::fs::remove_file(&gone));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            if let Some(link) = path.strip_suffix("@") {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, link, std::str::from_utf8(data).unwrap())
                    .unwrap();
                continue;
            }
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // Raw names: the tar crate's own checks would refuse the hostile ones.
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_act_inside_the_root_only() {
        let outer = tempfile::tempdir().unwrap();
        let keep = outer.path().join("keep");
        std::fs::write(&keep, b"mine").unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir(&root).unwrap();
        unpack_layer(
            0,
            &tar(&[("a/x", b"1"), ("a/y", b"2"), ("b/z", b"3")]),
            &root,
        )
        .unwrap();
        unpack_layer(1, &tar(&[("a/.wh.x", b""), ("b/.wh..wh..opq", b"")]), &root).unwrap();
        assert!(!root.join("a/x").exists());
        assert!(root.join("a/y").exists());
        assert!(root.join("b").is_dir() && !root.join("b/z").exists());
        // A lower layer's symlink to the outside: a whiteout below it must not follow it.
        let outside = outer.path().to_str().unwrap().to_string();
        unpack_layer(2, &tar(&[("ln@", outside.as_bytes())]), &root).unwrap();
        for hostile in [
            ".wh..",
            "a/.wh...",
            "../.wh.keep",
            "a/../../.wh.keep",
            "ln/.wh.keep",
            "ln/.wh..wh..opq",
        ] {
            let e = unpack_layer(2, &tar(&[(hostile, b"")]), &root).unwrap_err();
            let e = format!("{e:#}");
            assert!(
                e.contains("names no file") || e.contains("outside the image's root"),
                "{hostile}: {e}"
            );
            assert!(keep.exists() && root.join("a/y").exists(), "{hostile}");
        }
    }
}
