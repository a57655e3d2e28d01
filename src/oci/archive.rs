//! Single-file sinks: `oci-archive` (the OCI layout in a tar) and `docker-archive` (what
//! `docker save` writes and `docker load` reads: `manifest.json`, the config and one
//! uncompressed `layer.tar` per layer). Both are deterministic tars written to a temporary
//! name and renamed.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::json;

use super::json::to_canonical_vec;
use super::layer::{self, LayerInfo};
use super::layout::{self, OCI_LAYOUT};
use super::{BuiltImage, BuiltIndex, EntrySource, LayerEntry};
use crate::error::UsageError;
use crate::target::{Platform, Targets};

fn file(path: String, bytes: Vec<u8>) -> LayerEntry {
    LayerEntry {
        path,
        source: EntrySource::Bytes(bytes),
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}

fn hex(digest: &str) -> anyhow::Result<&str> {
    digest
        .strip_prefix("sha256:")
        .with_context(|| format!("`{digest}` is not a sha256 digest"))
}

/// Write the OCI layout of `index` as one tar file.
pub fn write_oci_archive(
    file_path: &Path,
    index: &BuiltIndex,
    tag: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(t) = tag
        && !layout::valid_ref_name(t)
    {
        bail!("`{t}` is not a valid tag: use letters, digits and -._:@/+");
    }
    let mut entries = vec![
        file("oci-layout".into(), OCI_LAYOUT.to_vec()),
        file(
            "index.json".into(),
            layout::merge_index_json(None, layout::index_descriptor(index, tag))?,
        ),
        file(
            format!("blobs/sha256/{}", hex(&index.digest)?),
            index.index_json.clone(),
        ),
    ];
    for (d, b) in &index.blobs {
        entries.push(file(format!("blobs/sha256/{}", hex(d)?), b.clone()));
    }
    let tar = layer::build_tar(&entries, 0)?;
    crate::fsutil::write_atomic(file_path, &tar, crate::fsutil::WriteOptions::DURABLE)
}

/// `repo[:tag]` → `repo:tag` (tag `latest` when missing), checked as Docker checks it.
pub fn docker_reference(r: &str) -> Result<String, UsageError> {
    let bad = |why: &str| {
        UsageError(format!(
            "`{r}` is not a docker image reference ({why}): use REPO:TAG, e.g. hello:1.0 or example.com/team/hello:latest"
        ))
    };
    if r.contains('@') {
        return Err(bad("a docker archive takes a tag, not a digest"));
    }
    let (name, tag) = match r.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (r, "latest"),
    };
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !tag_ok {
        return Err(bad("bad tag"));
    }
    let comps: Vec<&str> = name.split('/').collect();
    for (i, c) in comps.iter().enumerate() {
        let registry =
            i == 0 && comps.len() > 1 && (c.contains('.') || c.contains(':') || *c == "localhost");
        let ok = if registry {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ".-:".contains(ch))
        } else {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if !ok {
            return Err(bad(
                "repository names are lower-case letters, digits and ._-",
            ));
        }
    }
    Ok(format!("{name}:{tag}"))
}

/// The image a single-image sink writes: `wanted`, else the only one, else the host's.
pub fn pick_image<'a>(
    index: &'a BuiltIndex,
    wanted: Option<&Platform>,
) -> anyhow::Result<&'a BuiltImage> {
    let have = || {
        index
            .images
            .iter()
            .map(|i| i.platform.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(w) = wanted {
        return index
            .images
            .iter()
            .find(|i| &i.platform == w)
            .with_context(|| format!("the image has no {w} platform; it has {}", have()));
    }
    if let [only] = index.images.as_slice() {
        return Ok(only);
    }
    let host = Targets::builtin().all.into_iter().find(|t| t.is_host());
    host.and_then(|h| index.images.iter().find(|i| i.platform == h.platform))
        .with_context(|| {
            format!(
                "a docker archive holds one platform and this image has several ({}) but not this machine's: choose one",
                have()
            )
        })
}

/// Write one platform of `index` in `docker load` format.
pub fn write_docker_archive(
    file_path: &Path,
    index: &BuiltIndex,
    reference: Option<&str>,
    platform: Option<&Platform>,
) -> anyhow::Result<()> {
    let img = pick_image(index, platform)?;
    let blob = |d: &str| {
        index
            .blobs
            .get(d)
            .with_context(|| format!("blob {d} is missing from the built index"))
    };
    let config_name = format!("{}.json", hex(&img.config)?);
    let mut entries = vec![file(config_name.clone(), blob(&img.config)?.clone())];
    let mut layer_names = Vec::new();
    for LayerInfo {
        media_type,
        digest,
        diff_id,
        ..
    } in &img.layers
    {
        let name = format!("{}/layer.tar", hex(diff_id)?);
        if !layer_names.contains(&name) {
            let tar = layer::decompress(blob(digest)?, media_type)?;
            entries.push(file(name.clone(), tar));
        }
        layer_names.push(name);
    }
    let repo_tags = match reference {
        Some(r) => json!([docker_reference(r)?]),
        None => json!(null),
    };
    let manifest = json!([{ "Config": config_name, "RepoTags": repo_tags, "Layers": layer_names }]);
    entries.push(file("manifest.json".into(), to_canonical_vec(&manifest)?));
    let tar = layer::build_tar(&entries, 0)?;
    crate::fsutil::write_atomic(file_path, &tar, crate::fsutil::WriteOptions::DURABLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_archive_takes_the_asked_the_only_or_the_host_platform() {
        let image = |p: &str| crate::oci::PlatformImage {
            platform: p.parse().unwrap(),
            entries: vec![LayerEntry::bytes("/a", p.as_bytes().to_vec(), 0o644)],
            spec: Default::default(),
        };
        let two = crate::oci::build_index(
            &[image("linux/riscv64"), image("linux/s390x")],
            &Default::default(),
        )
        .unwrap();
        let s390x: Platform = "linux/s390x".parse().unwrap();
        assert_eq!(pick_image(&two, Some(&s390x)).unwrap().platform, s390x);
        let err = pick_image(&two, Some(&"linux/arm64".parse().unwrap())).unwrap_err();
        assert!(
            err.to_string()
                .contains("it has linux/riscv64, linux/s390x"),
            "{err}"
        );
        // Neither is this machine's (the tests run on amd64 or arm64).
        assert!(pick_image(&two, None).is_err());
        let one = crate::oci::build_index(&[image("linux/s390x")], &Default::default()).unwrap();
        assert_eq!(pick_image(&one, None).unwrap().platform, s390x);
        let host = Targets::builtin()
            .all
            .into_iter()
            .find(|t| t.is_host())
            .unwrap();
        let with_host = crate::oci::build_index(
            &[image("linux/s390x"), image(&host.platform.to_string())],
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            pick_image(&with_host, None).unwrap().platform,
            host.platform
        );
    }

    #[test]
    fn docker_references() {
        assert_eq!(docker_reference("hello").unwrap(), "hello:latest");
        assert_eq!(docker_reference("hello:1.0").unwrap(), "hello:1.0");
        assert_eq!(
            docker_reference("localhost:5000/a/b").unwrap(),
            "localhost:5000/a/b:latest"
        );
        for bad in ["Hello:1", "a@sha256:00", "a:-x", "a//b", "a:", "/a"] {
            assert!(docker_reference(bad).is_err(), "{bad}");
        }
    }
}
