//! Where an image's files are: a directory (an OCI layout) or a tar file (an archive) whose
//! members are found by one pass over the headers and then read in place. Sizes claimed by
//! headers are checked against the file before anything is read.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest as _, Sha256};

use super::MAX_DOCUMENT;
use crate::digest::sha256_digest;

/// Where a blob's bytes are.
#[derive(Debug, Clone)]
pub(super) enum BlobSource {
    File(PathBuf),
    Member {
        archive: PathBuf,
        offset: u64,
        len: u64,
    },
    /// Brought onto the disk when first read (a registry's blob cache).
    Fetch {
        from: std::sync::Arc<dyn super::BlobFetch>,
        digest: String,
    },
}

impl BlobSource {
    pub(super) fn location(&self) -> anyhow::Result<(std::borrow::Cow<'_, Path>, u64, u64)> {
        use std::borrow::Cow;
        Ok(match self {
            BlobSource::File(p) => (Cow::Borrowed(p.as_path()), 0, fs_err::metadata(p)?.len()),
            BlobSource::Member {
                archive,
                offset,
                len,
            } => (Cow::Borrowed(archive.as_path()), *offset, *len),
            BlobSource::Fetch { from, digest } => {
                let p = from.fetch(digest)?;
                let len = fs_err::metadata(&p)?.len();
                (Cow::Owned(p), 0, len)
            }
        })
    }

    /// A reader over the blob's bytes, without loading them.
    pub(super) fn open(&self) -> anyhow::Result<std::io::Take<fs_err::File>> {
        let (path, offset, len) = self.location()?;
        let mut f = fs_err::File::open(path.as_ref())?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(f.take(len))
    }

    pub(super) fn read(&self, limit: u64) -> anyhow::Result<Vec<u8>> {
        let (path, _, len) = self.location()?;
        if len > limit {
            bail!(
                "{} holds a {len}-byte document where at most {limit} bytes are expected: is this an image?",
                path.display()
            );
        }
        // Never reserve what a header claims: grow as bytes really arrive.
        let mut buf = Vec::with_capacity(len.min(1 << 20) as usize);
        self.open()?.read_to_end(&mut buf)?;
        if (buf.len() as u64) != len {
            bail!("{} is truncated", path.display());
        }
        Ok(buf)
    }
}

/// A directory or a tar file holding named members.
pub(super) enum Store {
    Dir(PathBuf),
    Tar {
        file: PathBuf,
        /// Member name → (data offset, length).
        members: BTreeMap<String, (u64, u64)>,
    },
}

impl Store {
    pub(super) fn tar(file: &Path) -> anyhow::Result<Store> {
        let f = fs_err::File::open(file)?;
        let file_len = f.metadata()?.len();
        let mut a = tar::Archive::new(f);
        let mut members = BTreeMap::new();
        for e in a
            .entries_with_seek()
            .with_context(|| format!("reading {} as a tar", file.display()))?
        {
            let e = e.with_context(|| format!("reading {} as a tar", file.display()))?;
            if e.header().entry_type().is_file() {
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let name = name.trim_start_matches("./").to_string();
                let (offset, size) = (e.raw_file_position(), e.size());
                // A header's size is a claim; the file's length is a fact.
                if offset.checked_add(size).is_none_or(|end| end > file_len) {
                    bail!(
                        "{}: member {name} claims {size} bytes but the archive is only \
                         {file_len} bytes long: the archive is truncated or damaged",
                        file.display()
                    );
                }
                members.insert(name, (offset, size));
            }
        }
        Ok(Store::Tar {
            file: file.to_path_buf(),
            members,
        })
    }

    pub(super) fn source(&self, name: &str) -> anyhow::Result<BlobSource> {
        match self {
            Store::Dir(d) => {
                let p = d.join(name);
                if !p.is_file() {
                    bail!("{} is missing", p.display());
                }
                Ok(BlobSource::File(p))
            }
            Store::Tar { file, members } => {
                let (offset, len) = members
                    .get(name)
                    .with_context(|| format!("{} has no member {name}", file.display()))?;
                Ok(BlobSource::Member {
                    archive: file.clone(),
                    offset: *offset,
                    len: *len,
                })
            }
        }
    }

    pub(super) fn document(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        self.source(name)?.read(MAX_DOCUMENT)
    }

    /// A blob by digest, checked.
    pub(super) fn blob(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let b = self.document(&blob_name(digest)?)?;
        let got = sha256_digest(&b);
        if got != digest {
            bail!("blob {digest} is corrupt: its content hashes to {got}");
        }
        Ok(b)
    }
}

pub(super) fn blob_name(digest: &str) -> anyhow::Result<String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .with_context(|| format!("unsupported digest `{digest}`: kiln reads sha256 only"))?;
    Ok(format!("blobs/sha256/{hex}"))
}

/// `sha256:…`, length and first bytes of a stream, reading it in fixed-size chunks.
pub(super) fn hash_stream(mut r: impl Read) -> std::io::Result<(String, u64, Vec<u8>)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut n, mut head) = (0u64, Vec::new());
    loop {
        let got = r.read(&mut buf)?;
        if got == 0 {
            break;
        }
        if head.len() < 8 {
            head.extend_from_slice(&buf[..got.min(8 - head.len())]);
        }
        h.update(&buf[..got]);
        n += got as u64;
    }
    Ok((format!("sha256:{}", hex::encode(h.finalize())), n, head))
}
