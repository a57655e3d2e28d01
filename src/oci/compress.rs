//! Layer compression with fixed settings, on every core: gzip as fixed-size members
//! compressed in parallel (libdeflate), zstd one tar per core. The bytes never depend on
//! the number of cores.

use std::io::Write;

use anyhow::Context;

use super::Compression;
use super::layer::{GZIP_LEVEL, GZIP_MEMBER, ZSTD_LEVEL, sha256_digest};
use super::tarstream::TarStream;

/// A compressed layer blob and its `sha256:` digest.
pub struct Compressed {
    pub blob: Vec<u8>,
    pub digest: String,
}

impl Compressed {
    pub(super) fn of(blob: Vec<u8>) -> Compressed {
        Compressed {
            digest: sha256_digest(&blob),
            blob,
        }
    }
}

/// The members of one layer's gzip as they come in from the workers.
struct Parts {
    members: Vec<Option<Vec<u8>>>,
    left: usize,
}

/// Compress each tar with fixed settings and hash the result, using every core: gzip
/// members of all the tars are one pool of work, and the worker that finishes a layer's
/// last member joins and hashes that layer while the others compress on; zstd compresses
/// one tar per core. The gzip header of each member carries no file name, mtime 0 and OS
/// 255 ("unknown"), so nothing depends on the machine.
pub fn compress_all(tars: &[&TarStream], c: Compression) -> anyhow::Result<Vec<Compressed>> {
    match c {
        Compression::None => Ok(super::par_map(tars, |t| Compressed::of(t.to_vec()))),
        Compression::Zstd => super::par_map(tars, |t| zstd_compress(t).map(Compressed::of))
            .into_iter()
            .collect(),
        Compression::Gzip => {
            let counts: Vec<usize> = tars
                .iter()
                .map(|t| t.len().div_ceil(GZIP_MEMBER).max(1))
                .collect();
            let jobs: Vec<(usize, usize)> = counts
                .iter()
                .enumerate()
                .flat_map(|(t, &n)| (0..n).map(move |m| (t, m)))
                .collect();
            let parts: Vec<std::sync::Mutex<Parts>> = counts
                .iter()
                .map(|&n| {
                    std::sync::Mutex::new(Parts {
                        members: vec![None; n],
                        left: n,
                    })
                })
                .collect();
            let done = super::par_map(&jobs, |&(t, m)| {
                let member = gzip_member(tars[t], m)?;
                let finished = {
                    let mut p = parts[t].lock().unwrap_or_else(|e| e.into_inner());
                    p.members[m] = Some(member);
                    p.left -= 1;
                    (p.left == 0).then(|| std::mem::take(&mut p.members))
                };
                Ok::<_, anyhow::Error>(finished.map(|members| {
                    let members: Vec<Vec<u8>> = members.into_iter().flatten().collect();
                    let mut blob = Vec::with_capacity(members.iter().map(Vec::len).sum());
                    for m in &members {
                        blob.extend_from_slice(m);
                    }
                    (t, Compressed::of(blob))
                }))
            });
            let mut out: Vec<Option<Compressed>> = tars.iter().map(|_| None).collect();
            for d in done {
                if let Some((t, c)) = d? {
                    out[t] = Some(c);
                }
            }
            Ok(out
                .into_iter()
                .map(|c| c.expect("every layer's last member joins it"))
                .collect())
        }
    }
}

/// One worker's gzip state: the compressor, its output buffer, and a buffer for a member
/// that spans several pieces of the tar.
struct GzipWorker {
    compressor: libdeflater::Compressor,
    out: Vec<u8>,
    gather: Vec<u8>,
}

thread_local! {
    static GZIP: std::cell::RefCell<Option<GzipWorker>> = const { std::cell::RefCell::new(None) };
}

/// Member `m` of a tar's gzip: the tar bytes `[m * GZIP_MEMBER, (m + 1) * GZIP_MEMBER)`.
pub(super) fn gzip_member(tar: &TarStream, m: usize) -> anyhow::Result<Vec<u8>> {
    GZIP.with(|cell| {
        let mut state = cell.borrow_mut();
        if state.is_none() {
            let level = libdeflater::CompressionLvl::new(GZIP_LEVEL)
                .map_err(|e| anyhow::anyhow!("gzip level {GZIP_LEVEL}: {e:?}"))?;
            *state = Some(GzipWorker {
                compressor: libdeflater::Compressor::new(level),
                out: Vec::new(),
                gather: Vec::new(),
            });
        }
        let GzipWorker {
            compressor,
            out,
            gather,
        } = state.as_mut().expect("set above");
        let start = m * GZIP_MEMBER;
        let end = (start + GZIP_MEMBER).min(tar.len());
        let input = tar.range(start, end, gather);
        let bound = compressor.gzip_compress_bound(input.len());
        if out.len() < bound {
            out.resize(bound, 0);
        }
        let n = compressor
            .gzip_compress(input, out)
            .map_err(|e| anyhow::anyhow!("gzip-compressing a layer: {e}"))?;
        Ok(out[..n].to_vec())
    })
}

fn zstd_compress(tar: &TarStream) -> anyhow::Result<Vec<u8>> {
    let mut enc = zstd::stream::Encoder::new(Vec::with_capacity(tar.len() / 2), ZSTD_LEVEL)
        .context("starting zstd")?;
    enc.include_checksum(true).context("zstd option")?;
    enc.set_pledged_src_size(Some(tar.len() as u64))
        .context("zstd option")?;
    enc.include_contentsize(true).context("zstd option")?;
    for piece in tar.pieces() {
        enc.write_all(piece).context("zstd-compressing a layer")?;
    }
    enc.finish().context("zstd-compressing a layer")
}
