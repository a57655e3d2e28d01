//! Layer compression with fixed settings, on every core: gzip as fixed-size members
//! compressed in parallel (libdeflate), zstd one tar per core. The bytes never depend on
//! the number of cores. One pass: the tar is hashed (diff_id) and the blob hashed (digest)
//! and handed to the outputs ([`BlobSink`]) while the compressors work.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::Context;

use super::Compression;
use super::tarstream::TarStream;
use crate::digest;

/// A gzip layer is a series of gzip members, one per this many bytes of tar (RFC 1952
/// allows any number; Go's gzip reader, and so docker, containerd, skopeo and umoci, reads
/// them as one stream, as eStargz layers rely on). Members are compressed in parallel, so a
/// single large binary uses every core; the cut points are fixed, so the bytes do not
/// depend on the number of cores. At 1 MiB the size cost is under 0.1%.
pub const GZIP_MEMBER: usize = 1 << 20;

/// gzip level: fixed, because the compressed bytes (and so the layer digest) depend on it.
/// libdeflate's level 1: on a 20 MiB binary it is as fast as zlib's level 1 and within 5%
/// of zlib's level 6 in size (zlib's level 1 is 30% larger), so packing stays fast without
/// making pulls slower. libdeflate writes no name, mtime 0 and OS 255 in the header.
pub const GZIP_LEVEL: i32 = 1;
/// zstd level, fixed for the same reason.
pub const ZSTD_LEVEL: i32 = 3;

/// A compressed layer blob, its `sha256:` digest and its tar's (the diff_id).
pub struct Compressed {
    /// Empty when the blob went only to the sinks ([`compress_all`] with `keep` false).
    pub blob: Vec<u8>,
    /// The blob's length.
    pub size: u64,
    pub digest: String,
    pub diff_id: String,
}

/// Where a layer's compressed bytes go while they are made, besides memory: an output that
/// writes each blob as soon as it is complete, while the other layers still compress (an
/// OCI layout, `layout::LayoutWriter`).
pub trait BlobSink: Sync {
    /// Start one blob; its bytes come in order through the writer.
    fn start(&self) -> anyhow::Result<Box<dyn BlobWriter + '_>>;
}

/// One blob on its way into a [`BlobSink`]. Dropped without [`BlobWriter::finish`] (a
/// layer that failed), it leaves nothing that looks whole.
pub trait BlobWriter: Send {
    /// The next bytes of the blob.
    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()>;
    /// Every byte was written; `digest` is their `sha256:`.
    fn finish(self: Box<Self>, digest: &str) -> anyhow::Result<()>;
}

/// One pass over the bytes of a blob as they are made, in order: hashed, kept in memory
/// (unless `keep` is false) and handed to every sink, which start when the first bytes come.
struct Out<'s> {
    sinks: &'s [&'s dyn BlobSink],
    writers: Option<Vec<Box<dyn BlobWriter + 's>>>,
    hash: digest::Hasher,
    keep: bool,
    blob: Vec<u8>,
    size: u64,
}

impl<'s> Out<'s> {
    fn new(sinks: &'s [&'s dyn BlobSink], keep: bool, capacity: usize) -> Self {
        Out {
            sinks,
            writers: None,
            hash: digest::Hasher::new(),
            keep,
            blob: Vec::with_capacity(if keep { capacity } else { 0 }),
            size: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let writers = match &mut self.writers {
            Some(w) => w,
            None => self.writers.insert(
                self.sinks
                    .iter()
                    .map(|s| s.start())
                    .collect::<anyhow::Result<_>>()?,
            ),
        };
        for w in writers.iter_mut() {
            w.write(bytes)?;
        }
        self.hash.update(bytes);
        if self.keep {
            self.blob.extend_from_slice(bytes);
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// The blob and its digest; every sink is told the blob is whole.
    fn finish(mut self, diff_id: String) -> anyhow::Result<Compressed> {
        if self.writers.is_none() {
            self.push(&[])?;
        }
        let digest = self.hash.finish_digest();
        for w in self.writers.take().into_iter().flatten() {
            w.finish(&digest)?;
        }
        Ok(Compressed {
            blob: self.blob,
            size: self.size,
            digest,
            diff_id,
        })
    }
}

impl std::io::Write for Out<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compress each tar with fixed settings, hashing the tar (its diff_id) and the blob (its
/// digest) in the same pass, and hand each blob to `sinks` as it is made; on every core.
/// gzip: the members of all tars are one pool of work, and a layer's members are taken up
/// in order (tar hashed, blob hashed, written) by whichever worker finds the next one
/// done, while the others compress on, so a layer's blob is whole (and can be synced to
/// disk) as soon as its last member is compressed. zstd compresses one tar per core. The
/// gzip header of each member carries no file name, mtime 0 and OS 255 ("unknown"), so
/// nothing depends on the machine. With `keep` false (every output is a sink) the blobs
/// are not kept in memory: [`Compressed::blob`] is empty. Keeping them cost a page fault
/// per 4 KiB and a copy (~25 ms of system time for 4 x 7 MiB blobs).
pub fn compress_all(
    tars: &[&TarStream],
    c: Compression,
    sinks: &[&dyn BlobSink],
    keep: bool,
) -> anyhow::Result<Vec<Compressed>> {
    assert!(keep || !sinks.is_empty(), "a blob must go somewhere");
    match c {
        Compression::None => super::par_map(tars, |t| {
            let mut out = Out::new(sinks, keep, t.len());
            for piece in t.pieces() {
                out.push(piece)?;
            }
            let digest = out.hash.clone().finish_digest();
            out.finish(digest)
        })
        .into_iter()
        .collect(),
        Compression::Zstd => super::par_map(tars, |t| zstd_compress(t, sinks, keep))
            .into_iter()
            .collect(),
        Compression::Gzip => gzip_all(tars, sinks, keep),
    }
}

/// The gzip members of one layer on their way out: compressed members wait in `ready`
/// until every member before them is out; one worker at a time (`taking`) takes them.
struct Layer<'t, 's> {
    tar: &'t TarStream,
    pool: &'t Pool,
    members: usize,
    queue: Mutex<Queue>,
    out: Mutex<Taken<'s>>,
}

struct Queue {
    ready: Vec<Option<Member>>,
    next: usize,
    taking: bool,
}

struct Taken<'s> {
    diff_id: digest::Hasher,
    out: Option<Out<'s>>,
    done: Option<Compressed>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<'t, 's> Layer<'t, 's> {
    fn new(tar: &'t TarStream, pool: &'t Pool, sinks: &'s [&'s dyn BlobSink], keep: bool) -> Self {
        let members = tar.len().div_ceil(GZIP_MEMBER).max(1);
        Layer {
            tar,
            pool,
            members,
            queue: Mutex::new(Queue {
                ready: (0..members).map(|_| None).collect(),
                next: 0,
                taking: false,
            }),
            // level 1 makes about half the size of code; the blob grows if it must.
            out: Mutex::new(Taken {
                diff_id: digest::Hasher::new(),
                out: Some(Out::new(sinks, keep, tar.len() / 2)),
                done: None,
            }),
        }
    }

    /// Member `m` is compressed: take it and every member after it that is ready, in
    /// order, unless another worker is already doing so (it will find this one too).
    fn arrive(&self, m: usize, member: Member) -> anyhow::Result<()> {
        let mut q = lock(&self.queue);
        q.ready[m] = Some(member);
        if q.taking {
            return Ok(());
        }
        q.taking = true;
        loop {
            let mut batch = Vec::new();
            loop {
                let next = q.next;
                let Some(member) = q.ready.get_mut(next).and_then(Option::take) else {
                    break;
                };
                batch.push((next, member));
                q.next += 1;
            }
            if batch.is_empty() {
                q.taking = false;
                return Ok(());
            }
            drop(q);
            let taken = self.take(batch);
            q = lock(&self.queue);
            if taken.is_err() {
                q.taking = false;
                return taken;
            }
        }
    }

    /// Hash the tar bytes of each member (the diff_id), and pass the member on: hashed
    /// (the blob's digest), written to the sinks, its buffer back to the pool, its tar
    /// bytes let go ([`TarStream::release`]), each while the other workers compress. After
    /// a failure the layer's output is gone (its sinks' writers dropped): nothing more is
    /// written for it, and the error is the failing worker's to report.
    fn take(&self, batch: Vec<(usize, Member)>) -> anyhow::Result<()> {
        let mut t = lock(&self.out);
        let Some(mut out) = t.out.take() else {
            return Ok(());
        };
        for (m, member) in batch {
            let start = m * GZIP_MEMBER;
            self.tar
                .for_each_in(start, start + GZIP_MEMBER, |b| t.diff_id.update(b));
            self.tar.release(start, start + GZIP_MEMBER);
            let pushed = out.push(member.bytes());
            self.pool.put(member);
            pushed?;
            if m + 1 == self.members {
                let diff_id = std::mem::take(&mut t.diff_id).finish_digest();
                t.done = Some(out.finish(diff_id)?);
                return Ok(());
            }
        }
        t.out = Some(out);
        Ok(())
    }
}

fn gzip_all(
    tars: &[&TarStream],
    sinks: &[&dyn BlobSink],
    keep: bool,
) -> anyhow::Result<Vec<Compressed>> {
    let members: Vec<usize> = tars
        .iter()
        .map(|t| t.len().div_ceil(GZIP_MEMBER).max(1))
        .collect();
    let pool = Pool::new(members.iter().sum());
    let layers: Vec<Layer<'_, '_>> = tars
        .iter()
        .map(|t| Layer::new(t, &pool, sinks, keep))
        .collect();
    // Layer by layer, member by member: the first layers are whole (and on their way to
    // the disk) while the last ones still compress.
    let jobs: Vec<(usize, usize)> = members
        .iter()
        .enumerate()
        .flat_map(|(l, &n)| (0..n).map(move |m| (l, m)))
        .collect();
    let failed = AtomicBool::new(false);
    let results = super::par_map(&jobs, |&(l, m)| {
        if failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let r = gzip_member(layers[l].tar, m, &pool).and_then(|member| layers[l].arrive(m, member));
        if r.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        r
    });
    // The first error in job order: a sink's own, not a later "skipped".
    results.into_iter().collect::<anyhow::Result<()>>()?;
    Ok(layers
        .into_iter()
        .map(|l| {
            l.out
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .done
                .expect("every member was taken")
        })
        .collect())
}

/// A compressed gzip member: the first `len` bytes of a buffer from the [`Pool`].
pub(super) struct Member {
    buf: Vec<u8>,
    len: usize,
}

impl Member {
    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Output buffers of members that were taken, for the next members: members are
/// compressed into the same few buffers again and again, where a fresh buffer per member
/// cost a page fault per 4 KiB, a copy, and unmapping it when freed. It keeps at most
/// [`POOLED`] buffers, and no more than members are left to compress: the others are
/// freed by the worker that took their member, while the rest still compress, not all at
/// the end.
pub(super) struct Pool {
    buffers: Mutex<Vec<Vec<u8>>>,
    /// Members not yet started.
    left: AtomicUsize,
}

/// Buffers a [`Pool`] keeps: on 2 cores, one per member being compressed and one or two
/// waiting to be taken.
const POOLED: usize = 4;

impl Pool {
    /// A pool for compressing `members` members.
    pub(super) fn new(members: usize) -> Pool {
        Pool {
            buffers: Mutex::new(Vec::new()),
            left: AtomicUsize::new(members),
        }
    }

    /// A buffer for the next member. Buffers beyond what the members still to start
    /// need are freed here, by a worker while the others compress.
    pub(super) fn get(&self) -> Vec<u8> {
        let left = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .map_or(0, |n| n - 1);
        let mut buffers = lock(&self.buffers);
        let buf = buffers.pop().unwrap_or_default();
        let spare = buffers.len().saturating_sub(left);
        let freed: Vec<Vec<u8>> = buffers.drain(..spare).collect();
        drop(buffers);
        drop(freed);
        buf
    }

    /// `member` was taken: its buffer is kept for a later member, or freed.
    pub(super) fn put(&self, member: Member) {
        let mut buffers = lock(&self.buffers);
        if buffers.len() < POOLED.min(self.left.load(Ordering::Relaxed)) {
            buffers.push(member.buf);
            return;
        }
        drop(buffers);
        drop(member);
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        lock(&self.buffers).len()
    }
}

/// One worker's gzip state: the compressor, and a buffer for a member that spans several
/// pieces of the tar.
struct GzipWorker {
    compressor: libdeflater::Compressor,
    gather: Vec<u8>,
}

thread_local! {
    static GZIP: std::cell::RefCell<Option<GzipWorker>> = const { std::cell::RefCell::new(None) };
}

/// Member `m` of a tar's gzip: the tar bytes `[m * GZIP_MEMBER, (m + 1) * GZIP_MEMBER)`,
/// compressed into a buffer from `pool`.
pub(super) fn gzip_member(tar: &TarStream, m: usize, pool: &Pool) -> anyhow::Result<Member> {
    GZIP.with(|cell| {
        let mut state = cell.borrow_mut();
        if state.is_none() {
            let level = libdeflater::CompressionLvl::new(GZIP_LEVEL)
                .map_err(|e| anyhow::anyhow!("gzip level {GZIP_LEVEL}: {e:?}"))?;
            *state = Some(GzipWorker {
                compressor: libdeflater::Compressor::new(level),
                gather: Vec::new(),
            });
        }
        let GzipWorker { compressor, gather } = state.as_mut().expect("set above");
        let start = m * GZIP_MEMBER;
        let end = (start + GZIP_MEMBER).min(tar.len());
        let input = tar.range(start, end, gather);
        let bound = compressor.gzip_compress_bound(input.len());
        let mut buf = pool.get();
        if buf.len() < bound {
            buf.resize(bound, 0);
        }
        let compressed = compressor.gzip_compress(input, &mut buf);
        match compressed {
            Ok(len) => Ok(Member { buf, len }),
            Err(e) => {
                pool.put(Member { buf, len: 0 });
                Err(anyhow::anyhow!("gzip-compressing a layer: {e}"))
            }
        }
    })
}

/// One tar as one zstd frame with its checksum, hashed as it passes.
fn zstd_compress(
    tar: &TarStream,
    sinks: &[&dyn BlobSink],
    keep: bool,
) -> anyhow::Result<Compressed> {
    let mut enc = zstd::stream::Encoder::new(Out::new(sinks, keep, tar.len() / 2), ZSTD_LEVEL)
        .context("starting zstd")?;
    enc.include_checksum(true).context("zstd option")?;
    enc.set_pledged_src_size(Some(tar.len() as u64))
        .context("zstd option")?;
    enc.include_contentsize(true).context("zstd option")?;
    let mut diff_id = digest::Hasher::new();
    let mut at = 0;
    for piece in tar.pieces() {
        // In pieces the cache holds, so the hash reads what zstd just read.
        for chunk in piece.chunks(GZIP_MEMBER) {
            enc.write_all(chunk).context("zstd-compressing a layer")?;
            diff_id.update(chunk);
            // zstd copies what it still needs (its window) into its own buffers.
            tar.release(at, at + chunk.len());
            at += chunk.len();
        }
    }
    enc.finish()
        .context("zstd-compressing a layer")?
        .finish(diff_id.finish_digest())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_digest;
    use crate::oci::LayerEntry;

    /// Records every blob it is given: (bytes, digest told at the end).
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(Vec<u8>, Option<String>)>>);

    struct Recording<'a> {
        sink: &'a Recorder,
        slot: usize,
    }

    impl BlobSink for Recorder {
        fn start(&self) -> anyhow::Result<Box<dyn BlobWriter + '_>> {
            let mut all = lock(&self.0);
            all.push((Vec::new(), None));
            Ok(Box::new(Recording {
                sink: self,
                slot: all.len() - 1,
            }))
        }
    }

    impl BlobWriter for Recording<'_> {
        fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
            lock(&self.sink.0)[self.slot].0.extend_from_slice(bytes);
            Ok(())
        }

        fn finish(self: Box<Self>, digest: &str) -> anyhow::Result<()> {
            lock(&self.sink.0)[self.slot].1 = Some(digest.to_string());
            Ok(())
        }
    }

    #[test]
    fn one_pass_hashes_and_hands_out_what_a_second_pass_would_find() {
        // Layers of one member and of several (uneven, so the members of different
        // layers finish out of order on several workers).
        let layers: Vec<Vec<LayerEntry>> = [10, GZIP_MEMBER * 3 + 5, 700_000, GZIP_MEMBER * 2]
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let data: Vec<u8> = (0..n).map(|b| ((b * 31 + i) % 251) as u8).collect();
                vec![LayerEntry::bytes(format!("/bin/app{i}"), data, 0o755)]
            })
            .collect();
        let tars: Vec<TarStream> = layers
            .iter()
            .map(|e| TarStream::build(e, 0).unwrap())
            .collect();
        let tars: Vec<&TarStream> = tars.iter().collect();
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let (a, b) = (Recorder::default(), Recorder::default());
            let done = compress_all(&tars, c, &[&a, &b], true).unwrap();
            for (t, d) in tars.iter().zip(&done) {
                assert_eq!(d.diff_id, sha256_digest(&t.to_vec()), "{c:?}");
                assert_eq!(d.digest, sha256_digest(&d.blob), "{c:?}");
                let tar = crate::oci::layer::decompress(&d.blob, crate::oci::layer::media_type(c));
                assert_eq!(tar.unwrap(), t.to_vec(), "{c:?}");
                for sink in [&a, &b] {
                    let got = lock(&sink.0);
                    assert!(
                        got.contains(&(d.blob.clone(), Some(d.digest.clone()))),
                        "{c:?}: a sink lacks a whole blob"
                    );
                }
            }
            assert_eq!(lock(&a.0).len(), tars.len(), "{c:?}: one blob per layer");
            // Not kept (every output a sink): the same blobs reach the sink, with their
            // sizes and digests, and none stays in memory.
            let only = Recorder::default();
            let alone = compress_all(&tars, c, &[&only], false).unwrap();
            for (kept, gone) in done.iter().zip(&alone) {
                assert!(gone.blob.is_empty(), "{c:?}: a blob was kept");
                assert_eq!(
                    (kept.size, &kept.digest, &kept.diff_id),
                    (gone.size, &gone.digest, &gone.diff_id),
                    "{c:?}"
                );
                assert_eq!(kept.size, kept.blob.len() as u64, "{c:?}");
                assert!(
                    lock(&only.0).contains(&(kept.blob.clone(), Some(kept.digest.clone()))),
                    "{c:?}: the sink lacks a whole blob"
                );
            }
        }
    }

    #[test]
    fn members_taken_out_of_order_give_the_blob_its_digest_and_let_go_of_the_tar() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app");
        let data: Vec<u8> = (0..4 * GZIP_MEMBER + 999)
            .map(|b| ((b * 7 + b / 3000) % 253) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let entries = [LayerEntry::file("/bin/app", &path, 0o755)];
        let tar = TarStream::build(&entries, 0).unwrap();
        let whole = tar.to_vec();
        assert!(
            tar.mapped_resident() >= data.len() / 2,
            "the file is mapped and read"
        );
        let pool = Pool::new(6);
        let sink = Recorder::default();
        let sinks: [&dyn BlobSink; 1] = [&sink];
        let layer = Layer::new(&tar, &pool, &sinks, true);
        assert_eq!(layer.members, 5);
        let mut members: Vec<Option<Member>> = (0..5)
            .map(|m| Some(gzip_member(&tar, m, &pool).unwrap()))
            .collect();
        let each: Vec<Vec<u8>> = members
            .iter()
            .map(|m| m.as_ref().unwrap().bytes().to_vec())
            .collect();
        let expected = each.concat();
        let mut arrive = |m: usize| layer.arrive(m, members[m].take().unwrap()).unwrap();
        // Later members first: nothing goes out before the first one is there.
        for m in [3, 1, 4] {
            arrive(m);
        }
        assert!(
            lock(&sink.0).is_empty(),
            "a blob started before its first member"
        );
        arrive(0);
        assert_eq!(
            lock(&sink.0)[0],
            (each[..2].concat(), None),
            "members 0 and 1"
        );
        arrive(2);
        let done = layer
            .out
            .into_inner()
            .unwrap()
            .done
            .expect("every member taken");
        assert_eq!(done.blob, expected);
        assert_eq!(done.digest, sha256_digest(&expected));
        assert_eq!(done.diff_id, sha256_digest(&whole));
        assert_eq!(
            lock(&sink.0)[0],
            (expected.clone(), Some(done.digest.clone()))
        );
        let back = crate::oci::layer::decompress(
            &done.blob,
            crate::oci::layer::media_type(Compression::Gzip),
        );
        assert_eq!(back.unwrap(), whole);
        // Every member's tar bytes were let go once taken.
        let page = crate::fsutil::page_size();
        assert!(
            tar.mapped_resident() <= page,
            "{} bytes still mapped",
            tar.mapped_resident()
        );
        assert_eq!(tar.to_vec(), whole, "released bytes read again");
        // One member is left to compress: the pool kept one buffer for it and freed the
        // others.
        assert_eq!(pool.kept(), 1);
        let reused = gzip_member(&tar, 2, &pool).unwrap();
        assert_eq!(
            reused.bytes(),
            each[2],
            "a member compressed into a used buffer"
        );
        pool.put(reused);
        assert_eq!(pool.kept(), 0, "nothing left to compress, nothing kept");

        // The same through compress_all, gzip and zstd: the digests are the blobs' own and
        // the mapped tar is let go as it is compressed.
        for c in [Compression::Gzip, Compression::Zstd] {
            let tar = TarStream::build(&entries, 0).unwrap();
            assert_eq!(tar.to_vec(), whole);
            let done = compress_all(&[&tar], c, &[], true).unwrap().pop().unwrap();
            assert_eq!(done.digest, sha256_digest(&done.blob), "{c:?}");
            assert_eq!(done.diff_id, sha256_digest(&whole), "{c:?}");
            assert!(
                tar.mapped_resident() <= page,
                "{c:?}: {} bytes still mapped",
                tar.mapped_resident()
            );
        }
    }
}
