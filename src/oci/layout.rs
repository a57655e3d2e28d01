//! The OCI image layout on disk (`oci-layout`, `index.json`, `blobs/sha256/…`). Blobs are
//! written first under temporary names and renamed; `index.json` is replaced last, so an
//! interrupted write never leaves an index pointing at missing blobs. Writing into an
//! existing layout adds to it: blobs already there are reused, other tags are kept and the
//! same tag is replaced.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::BuiltIndex;
use super::json::to_canonical_vec;
use super::referrers::{Referrer, is_artifact_descriptor};
use crate::fsutil::{TEMP_PREFIX, WriteOptions, write_atomic, write_atomic_in};

pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Is `tag` a valid `org.opencontainers.image.ref.name` (alphanumerics joined by `-._:@/+`)?
pub fn valid_ref_name(tag: &str) -> bool {
    let starts_and_ends = tag.starts_with(|c: char| c.is_ascii_alphanumeric())
        && tag.ends_with(|c: char| c.is_ascii_alphanumeric());
    // Runs of separators between alphanumerics: one of `-._:@/+`, or `--`.
    let runs_ok = tag
        .split(|c: char| c.is_ascii_alphanumeric())
        .all(|run| run.is_empty() || run == "--" || (run.len() == 1 && "-._:@/+".contains(run)));
    starts_and_ends && runs_ok
}

/// Remove kiln's leftover temporary files (regular files only) directly in `dir`.
fn remove_stale_temps(dir: &Path) -> anyhow::Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let stale = e.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            && e.file_type().is_ok_and(|t| t.is_file());
        if stale {
            fs_err::remove_file(e.path()).context("removing a stale temporary file")?;
        }
    }
    Ok(())
}

/// Does `path` hold exactly the blob `digest` of `len` bytes? (Read and hashed in chunks.)
fn blob_is_intact(path: &Path, digest: &str, len: u64) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.len() != len {
        return false;
    }
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut h = crate::digest::Hasher::new();
    std::io::copy(&mut f, &mut h).is_ok() && h.finish_digest() == digest
}

/// Path of a blob inside a layout.
pub fn blob_path(dir: &Path, digest: &str) -> anyhow::Result<PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .with_context(|| format!("`{digest}` is not a sha256 digest"))?;
    Ok(dir.join("blobs").join("sha256").join(hex))
}

/// The `index.json` descriptor for a built index.
pub fn index_descriptor(index: &BuiltIndex, tag: Option<&str>) -> Value {
    let mut d = json!({
        "mediaType": MEDIA_INDEX,
        "digest": index.digest,
        "size": index.index_json.len(),
    });
    if let Some(t) = tag {
        d["annotations"] = json!({ REF_NAME: t });
    }
    d
}

/// `index.json` after adding `new` to `existing` (None: a new layout). A tagged entry
/// replaces the entry with the same tag; an untagged one replaces the untagged entries
/// (they could not be told apart by a reader anyway).
pub fn merge_index_json(existing: Option<&[u8]>, new: Value) -> anyhow::Result<Vec<u8>> {
    let mut doc: Value = match existing {
        Some(b) => serde_json::from_slice(b).context("index.json is not valid JSON")?,
        None => json!({ "schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [] }),
    };
    let tag_of = |d: &Value| d["annotations"][REF_NAME].as_str().map(str::to_string);
    let new_tag = tag_of(&new);
    let Some(manifests) = doc.get_mut("manifests").and_then(Value::as_array_mut) else {
        bail!("index.json has no `manifests` array: is this an OCI image layout?");
    };
    // Attached artifacts (OCI 1.1 referrers) are not images: a new image keeps them.
    manifests.retain(|d| is_artifact_descriptor(d) || tag_of(d) != new_tag);
    manifests.push(new);
    if doc.get("mediaType").is_none() {
        doc["mediaType"] = json!(MEDIA_INDEX);
    }
    to_canonical_vec(&doc)
}

/// `index.json` with `referrers` listed (each digest once): an OCI 1.1 artifact in a
/// layout is found from `index.json`, its manifest naming its `subject`.
pub fn with_referrers(index_json: &[u8], referrers: &[Referrer]) -> anyhow::Result<Vec<u8>> {
    if referrers.is_empty() {
        return Ok(index_json.to_vec());
    }
    let mut doc: Value =
        serde_json::from_slice(index_json).context("index.json is not valid JSON")?;
    let Some(manifests) = doc.get_mut("manifests").and_then(Value::as_array_mut) else {
        bail!("index.json has no `manifests` array: is this an OCI image layout?");
    };
    manifests.retain(|d| !referrers.iter().any(|r| d["digest"] == r.digest.as_str()));
    manifests.extend(referrers.iter().map(Referrer::descriptor));
    to_canonical_vec(&doc)
}

/// Every blob of `index` and of `referrers`, with the index and artifact manifests.
pub(crate) fn all_blobs<'a>(
    index: &'a BuiltIndex,
    referrers: &'a [Referrer],
) -> impl Iterator<Item = (&'a str, &'a [u8])> {
    index
        .blobs
        .iter()
        .map(|(d, b)| (d.as_str(), b.as_slice()))
        .chain(std::iter::once((
            index.digest.as_str(),
            index.index_json.as_slice(),
        )))
        .chain(referrers.iter().flat_map(|r| {
            r.blobs
                .iter()
                .map(|(d, b)| (d.as_str(), b.as_slice()))
                .chain(std::iter::once((r.digest.as_str(), r.manifest.as_slice())))
        }))
}

/// Write `index` into the layout at `dir`, tagged `tag`.
pub fn write_oci_dir(dir: &Path, index: &BuiltIndex, tag: Option<&str>) -> anyhow::Result<()> {
    write_oci_dir_with(dir, index, tag, &[])
}

/// Write `index` into the layout at `dir`, tagged `tag`, with `referrers` attached.
pub fn write_oci_dir_with(
    dir: &Path,
    index: &BuiltIndex,
    tag: Option<&str>,
    referrers: &[Referrer],
) -> anyhow::Result<()> {
    if let Some(t) = tag
        && !valid_ref_name(t)
    {
        bail!("`{t}` is not a valid tag: use letters, digits and -._:@/+ (e.g. `1.0` or `latest`)");
    }
    fs_err::create_dir_all(dir).context("creating the OCI layout")?;
    // Writers of the same layout (parallel CI jobs, two kiln runs) take turns, so that
    // neither loses the other's tag when index.json is read, merged and replaced. The lock
    // is on the directory itself: no extra file in the layout.
    let lock = std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    lock.lock()
        .with_context(|| format!("locking {} for writing", dir.display()))?;
    let layout_file = dir.join("oci-layout");
    match fs_err::read(&layout_file) {
        Ok(b) => {
            let v: Value = serde_json::from_slice(&b)
                .with_context(|| format!("{} is not valid JSON", layout_file.display()))?;
            if v["imageLayoutVersion"] != "1.0.0" {
                bail!(
                    "{} has imageLayoutVersion {}: kiln writes only 1.0.0 layouts; choose another directory",
                    layout_file.display(),
                    v["imageLayoutVersion"]
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Never spread blobs over a directory that holds something else.
            if fs_err::read_dir(dir)?.next().is_some() {
                bail!(
                    "{} is not empty and is not an OCI image layout: write to a new or empty directory",
                    dir.display()
                );
            }
            // First, so that a run stopped after it leaves a recognisable (empty) layout.
            write_atomic(&layout_file, OCI_LAYOUT, WriteOptions::DURABLE)?;
        }
        Err(e) => return Err(e).context("reading the OCI layout"),
    }
    let sha_dir = dir.join("blobs").join("sha256");
    fs_err::create_dir_all(&sha_dir).context("creating the OCI layout")?;
    let all = all_blobs(index, referrers);
    // Temporary files of runs that were killed (SIGKILL, power loss): under the lock no
    // other writer is busy, so every one is stale. Older kilns left them in blobs/sha256.
    remove_stale_temps(dir)?;
    remove_stale_temps(&sha_dir)?;
    let mut todo = Vec::new();
    for (digest, bytes) in all {
        let path = blob_path(dir, digest)?;
        if todo.iter().any(|(p, _): &(PathBuf, &[u8])| *p == path) {
            continue;
        }
        // A blob under its digest is reused only if it really has that digest: a damaged or
        // planted file of the right size is rewritten, not pointed at by the new tag.
        if !blob_is_intact(&path, digest, bytes.len() as u64) {
            todo.push((path, bytes));
        }
    }
    // Large blobs are written (and synced) side by side: the disk, not the CPU, is the limit.
    // Their temporary files live in the layout's root, never in blobs/sha256 where readers
    // (umoci gc, skopeo) expect only digests.
    crate::par::par_map(&todo, 8, |(path, bytes)| {
        write_atomic_in(dir, path, bytes, WriteOptions::DURABLE)
    })
    .into_iter()
    .collect::<anyhow::Result<()>>()?;
    // The blobs' directory entries reach the disk before index.json names them.
    sync_dir(&sha_dir)?;
    let index_file = dir.join("index.json");
    let existing = match fs_err::read(&index_file) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context("reading the OCI layout's index"),
    };
    let merged = merge_index_json(existing.as_deref(), index_descriptor(index, tag))
        .and_then(|m| with_referrers(&m, referrers))
        .with_context(|| format!("updating {}", index_file.display()))?;
    write_atomic(&index_file, &merged, WriteOptions::DURABLE)?;
    sync_dir(dir)
}

/// fsync a directory, so renames in it are durable.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    fs_err::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names() {
        for ok in ["latest", "1.0", "v1.2.3-rc.1", "a--b", "reg/x:1", "x@y+z"] {
            assert!(valid_ref_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a b", "a/", ".a", "a:"] {
            assert!(!valid_ref_name(bad), "{bad}");
        }
    }

    #[test]
    fn merging_keeps_other_tags_and_replaces_the_same() {
        let d = |digest: &str, tag: Option<&str>| {
            let mut v = json!({"mediaType": MEDIA_INDEX, "digest": digest, "size": 1});
            if let Some(t) = tag {
                v["annotations"] = json!({ REF_NAME: t });
            }
            v
        };
        let a = merge_index_json(None, d("sha256:a", Some("one"))).unwrap();
        let b = merge_index_json(Some(&a), d("sha256:b", Some("two"))).unwrap();
        let c = merge_index_json(Some(&b), d("sha256:c", Some("one"))).unwrap();
        let u = merge_index_json(Some(&c), d("sha256:u", None)).unwrap();
        let u2 = merge_index_json(Some(&u), d("sha256:v", None)).unwrap();
        let v: Value = serde_json::from_slice(&u2).unwrap();
        let got: Vec<(&str, Option<&str>)> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["digest"].as_str().unwrap(),
                    m["annotations"][REF_NAME].as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("sha256:b", Some("two")),
                ("sha256:c", Some("one")),
                ("sha256:v", None)
            ]
        );
        assert_eq!(v["schemaVersion"], 2);
        assert!(merge_index_json(Some(b"{}"), d("sha256:x", None)).is_err());
    }
}
