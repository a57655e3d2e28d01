//! An image's root filesystem on disk: its layers unpacked in order into a directory
//! (whiteouts remove what lower layers put there), for `kiln debug`.

use std::path::Path;

use anyhow::Context;

use super::PlatformManifest;

/// Unpack every layer of `image` into `dir`, bottom first. Entries never land outside
/// `dir` (the tar crate's `unpack_in` refuses `..` and absolute paths).
pub fn unpack(image: &PlatformManifest, dir: &Path) -> anyhow::Result<()> {
    for (i, layer) in image.layers.iter().enumerate() {
        let tar = layer
            .tar()
            .with_context(|| format!("reading layer {} ({})", i + 1, layer.digest))?;
        let mut archive = tar::Archive::new(&tar[..]);
        archive.set_preserve_permissions(true);
        archive.set_overwrite(true);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.into_owned();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if let Some(hidden) = name.as_deref().and_then(|n| n.strip_prefix(".wh.")) {
                let parent = dir.join(path.parent().unwrap_or(Path::new("")));
                if hidden == ".wh..opq" {
                    // An opaque directory: what lower layers put there is gone.
                    let _ = std::fs::remove_dir_all(&parent);
                    std::fs::create_dir_all(&parent)?;
                } else {
                    let gone = parent.join(hidden);
                    let _ = std::fs::remove_dir_all(&gone).or_else(|_| std::fs::remove_file(&gone));
                }
                continue;
            }
            entry
                .unpack_in(dir)
                .with_context(|| format!("unpacking {} from layer {}", path.display(), i + 1))?;
        }
    }
    Ok(())
}
