//! Pushing content to a repository: every blob HEADed first and uploaded only when missing
//! (a cross-repository mount first when the blob is known to be in another repository of
//! the same registry, an upload when the mount is refused), monolithic for small blobs and
//! chunked for large ones, on a bounded pool of threads; each manifest as soon as what it
//! references is there (while other blobs still upload), with its exact bytes; the top
//! manifest and the tags last, only after everything they reach is there.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};

use super::client::{Body, Client};
use super::{Event, RegistryOptions, hints};
use crate::oci::read::LayerRef;

/// Blobs up to this size go up in one request; larger ones in chunks of this size.
pub const CHUNK: usize = 16 << 20;

/// A manifest or index to push, as kiln wrote it.
#[derive(Debug, Clone, Copy)]
pub struct ManifestBytes<'a> {
    pub digest: &'a str,
    /// Its `mediaType` (the Content-Type of the PUT).
    pub media_type: &'a str,
    pub bytes: &'a [u8],
}

/// A blob's content: in memory, or a layer still on disk, streamed when it is uploaded
/// (the registry checks its digest).
#[derive(Debug, Clone, Copy)]
pub enum BlobBody<'a> {
    Bytes(&'a [u8]),
    Layer(&'a LayerRef),
}

impl BlobBody<'_> {
    /// Its size, as the manifest says it.
    pub fn len(&self) -> u64 {
        match self {
            BlobBody::Bytes(b) => b.len() as u64,
            BlobBody::Layer(l) => l.size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one push sends to one repository.
#[derive(Debug, Clone, Default)]
pub struct Upload<'a> {
    /// Layers, configs, other blobs: `(digest, content)`.
    pub blobs: Vec<(&'a str, BlobBody<'a>)>,
    /// Manifests in push order: what a manifest references comes before it.
    pub manifests: Vec<ManifestBytes<'a>>,
    /// Tags given to the last manifest, after everything else is confirmed.
    pub tags: Vec<String>,
}

/// What happened to each blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobAction {
    /// The registry had it.
    Exists,
    Mounted,
    Uploaded,
}

/// The `mediaType` field of a manifest or index document.
pub fn media_type_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".to_string())
}

fn scopes(repo: &str, from: Option<&str>) -> Vec<String> {
    let mut s = vec![format!("repository:{repo}:pull,push")];
    if let Some(f) = from {
        s.push(format!("repository:{f}:pull"));
    }
    s
}

/// Push `upload` to `repo` of `client`'s registry.
pub fn push(
    client: &Client,
    repo: &str,
    upload: &Upload<'_>,
    opts: &RegistryOptions,
    events: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<()> {
    let Some((top, children)) = upload.manifests.split_last() else {
        return push_content(client, repo, &upload.blobs, &[], opts, events);
    };
    // The tags that already point at the top manifest. When all do (or, untagged, when the
    // registry has the top manifest by digest), the image is whole there: a registry
    // accepts a manifest only once every blob and child it references is in the repository
    // (docker-registry, like the others, checks that on every manifest PUT). An unchanged
    // re-push is then one request per tag and nothing else (go-containerregistry skips a
    // push whose manifest exists the same way).
    let mut current = Vec::new();
    for tag in &upload.tags {
        if manifest_digest(client, repo, tag)?.as_deref() == Some(top.digest) {
            current.push(tag.as_str());
        }
    }
    let whole = if upload.tags.is_empty() {
        manifest_digest(client, repo, top.digest)?.as_deref() == Some(top.digest)
    } else {
        current.len() == upload.tags.len()
    };
    if whole {
        let repository = format!("{}/{repo}", client.registry);
        let mut blobs = upload.blobs.clone();
        blobs.sort_by_key(|(d, _)| *d);
        blobs.dedup_by_key(|(d, _)| *d);
        for (digest, body) in blobs {
            events(Event::Blob {
                repository: &repository,
                digest,
                size: body.len(),
                action: BlobAction::Exists,
            });
        }
        for m in &upload.manifests {
            events(Event::Manifest {
                repository: &repository,
                digest: m.digest,
            });
        }
        for tag in &upload.tags {
            events(Event::Tag {
                reference: &format!("{repository}:{tag}"),
                digest: top.digest,
            });
        }
        return Ok(());
    }
    push_content(client, repo, &upload.blobs, children, opts, events)?;
    // The top manifest is not there (or not under every tag, as looked up above): it goes
    // up under its first tag that is not yet right (which puts it by digest as well), or by
    // digest when it has no tag.
    let missing: Vec<String> = upload
        .tags
        .iter()
        .filter(|t| !current.contains(&t.as_str()))
        .cloned()
        .collect();
    put_manifest(
        client,
        repo,
        top,
        missing.first().map_or(top.digest, String::as_str),
    )?;
    events(Event::Manifest {
        repository: &format!("{}/{repo}", client.registry),
        digest: top.digest,
    });
    for tag in &upload.tags {
        if missing.first() != Some(tag) && !current.contains(&tag.as_str()) {
            put_manifest(client, repo, top, tag)?;
        }
        events(Event::Tag {
            reference: &format!("{}/{repo}:{tag}", client.registry),
            digest: top.digest,
        });
    }
    Ok(())
}

/// The digests a manifest or index document names: its config, layers, blobs and
/// manifests (not its `subject`, which a registry does not require to be there).
fn references(bytes: &[u8]) -> Vec<String> {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Vec::new();
    };
    std::iter::once(&doc["config"])
        .chain(
            ["layers", "blobs", "manifests"]
                .iter()
                .flat_map(|k| doc[*k].as_array().into_iter().flatten()),
        )
        .filter_map(|d| d["digest"].as_str().map(str::to_string))
        .collect()
}

/// What is confirmed in the repository so far, shared by the blob and manifest workers.
#[derive(Default)]
struct Progress {
    /// Digests of blobs and manifests in the repository, with whether this push sent them.
    done: std::collections::HashMap<String, bool>,
    failures: Vec<anyhow::Error>,
}

/// Push `blobs` on a bounded pool of threads, largest first, and `children` (manifests,
/// in an order where what one references comes before it) each as soon as everything it
/// references in this push is there, so that a platform's manifest goes up while other
/// platforms' layers are still uploading. A manifest whose blobs were all there already
/// is looked up first (it is likely there too); otherwise it is put straight away (a PUT
/// of a manifest the registry has changes nothing).
fn push_content(
    client: &Client,
    repo: &str,
    blobs: &[(&str, BlobBody<'_>)],
    children: &[ManifestBytes<'_>],
    opts: &RegistryOptions,
    events: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<()> {
    let mut blobs = blobs.to_vec();
    blobs.sort_by_key(|(d, b)| (std::cmp::Reverse(b.len()), *d));
    blobs.dedup_by_key(|(d, _)| *d);
    let blob_digests: std::collections::HashSet<&str> = blobs.iter().map(|(d, _)| *d).collect();
    let state = Mutex::new(Progress::default());
    let changed = std::sync::Condvar::new();
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let finish = |digest: &str, result: anyhow::Result<bool>| {
        let mut st = lock();
        match result {
            Ok(sent) => {
                st.done.insert(digest.to_string(), sent);
            }
            Err(e) => st.failures.push(e),
        }
        changed.notify_all();
    };
    let repository = format!("{}/{repo}", client.registry);
    let next_blob = AtomicUsize::new(0);
    let next_manifest = AtomicUsize::new(0);
    let jobs = opts.jobs.clamp(1, 16);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(blobs.len()) {
            s.spawn(|| {
                while let Some((digest, body)) =
                    blobs.get(next_blob.fetch_add(1, Ordering::Relaxed))
                {
                    if !lock().failures.is_empty() {
                        break;
                    }
                    let result = push_blob(client, repo, digest, *body, opts, events);
                    if let Ok(action) = &result {
                        hints::remember(opts, &client.registry, repo, digest);
                        events(Event::Blob {
                            repository: &repository,
                            digest,
                            size: body.len(),
                            action: *action,
                        });
                    }
                    finish(digest, result.map(|a| a != BlobAction::Exists));
                }
            });
        }
        for _ in 0..jobs.min(children.len()) {
            s.spawn(|| {
                loop {
                    let i = next_manifest.fetch_add(1, Ordering::Relaxed);
                    let Some(m) = children.get(i) else { break };
                    // What it references among this push's blobs and the manifests before it.
                    let refs: Vec<String> = references(m.bytes)
                        .into_iter()
                        .filter(|r| {
                            blob_digests.contains(r.as_str())
                                || children[..i].iter().any(|c| c.digest == r)
                        })
                        .collect();
                    // Wait until everything it references is there (or something failed).
                    let mut st = lock();
                    while st.failures.is_empty() && !refs.iter().all(|r| st.done.contains_key(r)) {
                        st = changed.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    if !st.failures.is_empty() {
                        break;
                    }
                    let new = refs.iter().any(|r| st.done.get(r) == Some(&true));
                    drop(st);
                    let result = if new {
                        put_manifest(client, repo, m, m.digest)
                    } else {
                        ensure_manifest(client, repo, m, m.digest)
                    };
                    if result.is_ok() {
                        events(Event::Manifest {
                            repository: &repository,
                            digest: m.digest,
                        });
                    }
                    finish(m.digest, result.map(|()| true));
                }
            });
        }
    });
    if let Some(e) = state
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .failures
        .into_iter()
        .next()
    {
        return Err(e.context(format!(
            "pushing to {}/{repo} (no tag was written)",
            client.registry
        )));
    }
    Ok(())
}

/// Put one manifest or index, whose blobs and children are already in `repo`, by digest;
/// then point `tags` at it.
pub fn push_manifest(
    client: &Client,
    repo: &str,
    m: &ManifestBytes<'_>,
    tags: &[String],
    events: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<()> {
    ensure_manifest(client, repo, m, m.digest)?;
    events(Event::Manifest {
        repository: &format!("{}/{repo}", client.registry),
        digest: m.digest,
    });
    for tag in tags {
        ensure_manifest(client, repo, m, tag)?;
        events(Event::Tag {
            reference: &format!("{}/{repo}:{tag}", client.registry),
            digest: m.digest,
        });
    }
    Ok(())
}

/// Does `repo` have the blob? HEAD /v2/<repo>/blobs/<digest>.
pub fn blob_exists(
    client: &Client,
    repo: &str,
    digest: &str,
    size: Option<u64>,
) -> anyhow::Result<bool> {
    let resp = client.send(
        "HEAD",
        &format!("/v2/{repo}/blobs/{digest}"),
        &[],
        Body::Empty,
        &scopes(repo, None),
    )?;
    match resp.status() {
        200 => Ok(size.is_none_or(|n| {
            resp.header("content-length")
                .and_then(|l| l.parse::<u64>().ok())
                .is_none_or(|l| l == n)
        })),
        404 => Ok(false),
        _ => Err(client.status_error(&format!("checking blob {digest} in {repo}"), resp)),
    }
}

fn push_blob(
    client: &Client,
    repo: &str,
    digest: &str,
    bytes: BlobBody<'_>,
    opts: &RegistryOptions,
    events: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<BlobAction> {
    if blob_exists(client, repo, digest, Some(bytes.len()))? {
        return Ok(BlobAction::Exists);
    }
    // A mount from a repository of this registry known to hold the blob.
    let mut session = None;
    if let Some(from) = hints::source(opts, &client.registry, repo, digest) {
        match mount(client, repo, digest, &from) {
            Mount::Mounted => return Ok(BlobAction::Mounted),
            Mount::Refused(s) => session = s,
        }
    }
    upload(client, repo, digest, bytes, session, events)?;
    Ok(BlobAction::Uploaded)
}

/// What a cross-repository mount request got.
pub enum Mount {
    Mounted,
    /// Refused: a registry that refuses answers 202 with an upload session (its Location),
    /// which the upload then uses; any other answer gives none.
    Refused(Option<String>),
}

/// Ask `repo` to mount `digest` from `from`, another repository of the same registry.
pub fn mount(client: &Client, repo: &str, digest: &str, from: &str) -> Mount {
    let resp = client.send(
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"),
        &[],
        Body::Empty,
        &scopes(repo, Some(from)),
    );
    match resp {
        Ok(r) if r.status() == 201 => Mount::Mounted,
        Ok(r) if r.status() == 202 => Mount::Refused(r.header("location").map(str::to_string)),
        _ => Mount::Refused(None),
    }
}

/// Upload a blob, in `session` if one is open. An upload that fails half way starts over
/// with a new session (a resent chunk would not match what the registry already holds).
pub fn upload(
    client: &Client,
    repo: &str,
    digest: &str,
    bytes: BlobBody<'_>,
    mut session: Option<String>,
    events: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<()> {
    let mut last = None;
    for _ in 0..2 {
        match upload_blob(client, repo, digest, bytes, session.take(), events) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("upload failed")))
}

fn start_session(client: &Client, repo: &str) -> anyhow::Result<String> {
    let resp = client.send(
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        Body::Empty,
        &scopes(repo, None),
    )?;
    if resp.status() != 202 {
        return Err(client.status_error(&format!("starting an upload to {repo}"), resp));
    }
    resp.header("location")
        .map(str::to_string)
        .with_context(|| {
            format!(
                "{}: an upload to {repo} started without a Location",
                client.registry
            )
        })
}

fn with_param(location: &str, param: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{param}")
}

fn upload_blob(
    client: &Client,
    repo: &str,
    digest: &str,
    body: BlobBody<'_>,
    session: Option<String>,
    events: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<()> {
    let mut location = match session {
        Some(l) => l,
        None => start_session(client, repo)?,
    };
    let sc = scopes(repo, None);
    let octet = [("Content-Type", "application/octet-stream")];
    let loaded;
    let bytes = match body {
        BlobBody::Bytes(b) => b,
        // Small enough for one request: streamed from the file, opened again on a retry.
        BlobBody::Layer(l) if l.size <= CHUNK as u64 => {
            return finish_upload(client, digest, &location, Body::Stream(&|| l.stored()), &sc);
        }
        BlobBody::Layer(l) => {
            loaded = l.blob_unchecked()?;
            &loaded[..]
        }
    };
    let last_body = if bytes.len() <= CHUNK {
        bytes
    } else {
        let mut sent = 0;
        while sent < bytes.len() {
            let end = (sent + CHUNK).min(bytes.len());
            let range = format!("{sent}-{}", end - 1);
            let resp = client.send(
                "PATCH",
                &location,
                &[octet[0], ("Content-Range", range.as_str())],
                Body::Bytes(&bytes[sent..end]),
                &sc,
            )?;
            if resp.status() != 202 {
                return Err(
                    client.status_error(&format!("uploading blob {digest} (bytes {range})"), resp)
                );
            }
            if let Some(l) = resp.header("location") {
                location = l.to_string();
            }
            sent = end;
            events(Event::Progress {
                digest,
                done: sent as u64,
                total: bytes.len() as u64,
            });
        }
        &[][..]
    };
    finish_upload(client, digest, &location, Body::Bytes(last_body), &sc)
}

/// The PUT that ends an upload session with the last bytes (all of them, for a monolithic
/// upload) and the digest the registry checks them against.
fn finish_upload(
    client: &Client,
    digest: &str,
    location: &str,
    body: Body<'_>,
    sc: &[String],
) -> anyhow::Result<()> {
    let resp = client.send(
        "PUT",
        &with_param(location, &format!("digest={digest}")),
        &[("Content-Type", "application/octet-stream")],
        body,
        sc,
    )?;
    if resp.status() != 201 {
        return Err(client.status_error(&format!("finishing the upload of blob {digest}"), resp));
    }
    if let Some(got) = resp.header("docker-content-digest")
        && got != digest
    {
        bail!(
            "{}: blob {digest} was stored as {got}: the upload was corrupted on the way",
            client.registry
        );
    }
    Ok(())
}

/// Does `repo` have a manifest under `reference` (a digest or tag), and with which digest?
pub fn manifest_digest(
    client: &Client,
    repo: &str,
    reference: &str,
) -> anyhow::Result<Option<String>> {
    let resp = client.send(
        "HEAD",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Accept", super::ACCEPT)],
        Body::Empty,
        &[format!("repository:{repo}:pull")],
    )?;
    match resp.status() {
        200 => Ok(Some(
            resp.header("docker-content-digest")
                .unwrap_or(reference)
                .to_string(),
        )),
        404 => Ok(None),
        _ => Err(client.status_error(&format!("checking manifest {reference} in {repo}"), resp)),
    }
}

/// PUT the manifest's exact bytes under `reference` (its digest or a tag), unless the
/// registry already has exactly it there.
fn ensure_manifest(
    client: &Client,
    repo: &str,
    m: &ManifestBytes<'_>,
    reference: &str,
) -> anyhow::Result<()> {
    if manifest_digest(client, repo, reference)?.as_deref() == Some(m.digest) {
        return Ok(());
    }
    put_manifest(client, repo, m, reference)
}

/// PUT the manifest's exact bytes under `reference` (its digest or a tag).
fn put_manifest(
    client: &Client,
    repo: &str,
    m: &ManifestBytes<'_>,
    reference: &str,
) -> anyhow::Result<()> {
    let sc = scopes(repo, None);
    let resp = client.send(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", m.media_type)],
        Body::Bytes(m.bytes),
        &sc,
    )?;
    if resp.status() != 201 {
        return Err(client.status_error(
            &format!("pushing manifest {} as {repo}:{reference}", m.digest),
            resp,
        ));
    }
    if let Some(got) = resp.header("docker-content-digest")
        && got != m.digest
    {
        bail!(
            "{}: {repo}:{reference} was stored with digest {got}, not {}: the registry changed the manifest",
            client.registry,
            m.digest
        );
    }
    Ok(())
}
