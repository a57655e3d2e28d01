//! Bases an image is built on: what layers and config come before kiln's own layer.
//! [`BaseImage`] is what every kind of base resolves to; `from_image` makes one from an
//! existing image (distroless makes its own in `distroless.rs`; the choice between them is
//! made where the index is assembled, `index.rs`).

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::Context;
use oci_spec::image::ImageConfiguration;

use super::layer::Layer;
use super::read::ReadImage;
use super::whiteout::Entry as Whiteout;
use crate::target::Platform;

/// One platform's base, resolved.
#[derive(Debug, Clone, Default)]
pub struct BaseImage {
    /// Layers below kiln's, bottom first.
    pub layers: Vec<Layer>,
    /// The base image's config (its env, workdir, history ... are inherited).
    pub config: Option<ImageConfiguration>,
    /// Environment the base kind sets (`SSL_CERT_FILE` for distroless).
    pub env: Vec<String>,
    /// `created_by` for each of `layers` when there is no base config carrying history.
    pub history: Vec<String>,
    /// `org.opencontainers.image.base.*` annotations.
    pub annotations: BTreeMap<String, String>,
    /// What the user should know about this base.
    pub warnings: Vec<super::Warning>,
}

/// One platform of a base image: its layers as they are, its config to inherit from.
pub fn from_image(image: &ReadImage, p: &Platform) -> anyhow::Result<BaseImage> {
    let m = image.for_platform(p)?;
    let layers = m
        .layers
        .iter()
        .map(|l| l.load())
        .collect::<anyhow::Result<Vec<_>>>()
        .with_context(|| format!("reading the {p} layers of {}", image.reference))?;
    // base.name would be a path on this machine: only the digest is recorded, so the image
    // does not depend on where the base was.
    let mut annotations = BTreeMap::new();
    if image.digest.is_some() {
        annotations.insert(
            oci_spec::image::ANNOTATION_BASE_IMAGE_DIGEST.to_string(),
            m.manifest_digest.clone(),
        );
    }
    // Every layer needs a history entry; a base whose config has none gets one per layer.
    let history = if m.config.history().as_ref().is_none_or(|h| h.is_empty()) {
        layers
            .iter()
            .map(|l| format!("kiln: layer {} of the base image", l.digest))
            .collect()
    } else {
        Vec::new()
    };
    Ok(BaseImage {
        layers,
        config: Some(m.config.clone()),
        env: Vec::new(),
        history,
        annotations,
        warnings: Vec::new(),
    })
}

/// What a base's layers leave at one path, applying whiteouts the way a runtime unpacks them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum BaseFile {
    #[default]
    Absent,
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// Something kiln does not follow (a symlink, a hard link, a directory).
    Other,
}

/// `/etc/passwd` and `/etc/group` of a base.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AccountFiles {
    pub passwd: BaseFile,
    pub group: BaseFile,
}

/// Read [`AccountFiles`] from `layers` (bottom first). Only the two files are kept in memory.
pub fn account_files(layers: &[Layer]) -> anyhow::Result<AccountFiles> {
    let mut out = AccountFiles::default();
    for l in layers {
        let what = format!("base layer {}", l.digest);
        let tar = super::decode::decoder(&l.blob[..], &l.media_type, &what)?;
        let mut archive = tar::Archive::new(tar);
        for entry in archive
            .entries()
            .with_context(|| format!("reading {what}"))?
        {
            let mut entry = entry.with_context(|| format!("reading {what}"))?;
            let path = entry.path()?.to_string_lossy().into_owned();
            let (dir, file) = super::whiteout::split(&path);
            // Whiteouts hide the lower layers' files: /etc itself, everything in it or in
            // the root (opaque), or the one file.
            let (hidden, name) = match super::whiteout::classify(file)
                .with_context(|| format!("{what}: entry {path}"))?
            {
                Whiteout::Opaque if dir.is_empty() || dir == "etc" => {
                    out = AccountFiles::default();
                    continue;
                }
                Whiteout::Hide("etc") if dir.is_empty() => {
                    out = AccountFiles::default();
                    continue;
                }
                Whiteout::Hide(name) if dir == "etc" => (true, name),
                Whiteout::Plain if dir == "etc" => (false, file),
                _ => continue,
            };
            let slot = match name {
                "passwd" => &mut out.passwd,
                "group" => &mut out.group,
                _ => continue,
            };
            *slot = if hidden {
                BaseFile::Absent
            } else if entry.header().entry_type().is_file() {
                // Account files are small: a claimed huge one is read up to 1 MiB.
                let mut bytes = Vec::new();
                (&mut entry).take(1 << 20).read_to_end(&mut bytes)?;
                BaseFile::File(bytes)
            } else {
                BaseFile::Other
            };
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An uncompressed layer holding `files` (path, bytes; `None` makes a symlink).
    fn layer(files: &[(&str, Option<&[u8]>)]) -> Layer {
        let mut b = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            let mut h = tar::Header::new_gnu();
            match bytes {
                Some(bytes) => {
                    h.set_size(bytes.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, path, *bytes).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, path, "/elsewhere").unwrap();
                }
            }
        }
        let blob = b.into_inner().unwrap();
        Layer {
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            digest: "sha256:test".into(),
            diff_id: "sha256:test".into(),
            size: blob.len() as u64,
            blob,
        }
    }

    #[test]
    fn account_files_follow_layers_and_whiteouts() {
        let base = layer(&[
            ("etc/passwd", Some(b"a:x:1:1::/:/bin/sh\n")),
            ("./etc/group", Some(b"g:x:1:\n")),
        ]);
        let got = account_files(std::slice::from_ref(&base)).unwrap();
        assert_eq!(got.passwd, BaseFile::File(b"a:x:1:1::/:/bin/sh\n".to_vec()));
        assert_eq!(got.group, BaseFile::File(b"g:x:1:\n".to_vec()));
        // A later layer replaces, whites out one file, or hides all of /etc.
        let replaced = layer(&[("etc/passwd", Some(b"b:x:2:2::/:/bin/sh\n"))]);
        let got = account_files(&[base.clone(), replaced]).unwrap();
        assert_eq!(got.passwd, BaseFile::File(b"b:x:2:2::/:/bin/sh\n".to_vec()));
        let gone = layer(&[("etc/.wh.passwd", Some(b""))]);
        let got = account_files(&[base.clone(), gone]).unwrap();
        assert_eq!(
            (got.passwd, got.group.clone()),
            (BaseFile::Absent, got.group)
        );
        for hide in [".wh.etc", "etc/.wh..wh..opq"] {
            let got = account_files(&[base.clone(), layer(&[(hide, Some(b""))])]).unwrap();
            assert_eq!(got, AccountFiles::default(), "{hide}");
        }
        let linked = layer(&[("etc/passwd", None)]);
        assert_eq!(
            account_files(&[base, linked]).unwrap().passwd,
            BaseFile::Other
        );
    }

    #[test]
    fn user_names_are_checked_against_the_account_files() {
        use crate::oci::validate::user_in_base;
        let files = AccountFiles {
            passwd: BaseFile::File(b"root:x:0:0::/:/bin/sh\napp:x:9:9::/:/bin/sh\n".to_vec()),
            group: BaseFile::File(b"app:x:9:\n".to_vec()),
        };
        for ok in ["app", "app:app", "9:app", "app:9", "0", "1:2", "root"] {
            assert!(user_in_base(ok, "b", &files).is_ok(), "{ok}");
        }
        for bad in ["ap", "application", "app:root", "x:app"] {
            assert!(user_in_base(bad, "b", &files).is_err(), "{bad}");
        }
        let unknown = AccountFiles {
            passwd: BaseFile::Other,
            group: BaseFile::Absent,
        };
        assert!(user_in_base("app", "b", &unknown).is_ok());
        assert!(user_in_base("app:app", "b", &unknown).is_err());
    }
}
