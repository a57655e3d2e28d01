//! Pushing content to a repository: every blob HEADed first and uploaded only when missing
//! (a cross-repository mount first when the blob is known to be in another repository of
//! the same registry, an upload when the mount is refused), monolithic for small blobs and
//! chunked for large ones, on a bounded pool of threads; then manifests, children before
//! parents, with their exact bytes; tags last, only after everything they reach is there.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};

use super::client::{Body, Client};
use super::{Event, RegistryOptions, hints};

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

/// What one push sends to one repository.
#[derive(Debug, Clone, Default)]
pub struct Upload<'a> {
    /// Layers, configs, other blobs: `(digest, bytes)`.
    pub blobs: Vec<(&'a str, &'a [u8])>,
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
        push_blobs(client, repo, &upload.blobs, opts, events)?;
        return Ok(());
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
        for (digest, bytes) in blobs {
            events(Event::Blob {
                repository: &repository,
                digest,
                size: bytes.len() as u64,
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
    let uploaded = push_blobs(client, repo, &upload.blobs, opts, events)?;
    // Children are independent of each other: put them at once. When nothing had to be
    // uploaded they are likely there already, so each is looked up first; otherwise they
    // are new and put straight away (a PUT of a manifest the registry has changes nothing).
    let failures: Mutex<Vec<anyhow::Error>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    let workers = opts.jobs.clamp(1, 16).min(children.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some(m) = children.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let put = if uploaded {
                        put_manifest(client, repo, m, m.digest)
                    } else {
                        ensure_manifest(client, repo, m, m.digest)
                    };
                    match put {
                        Ok(()) => events(Event::Manifest {
                            repository: &format!("{}/{repo}", client.registry),
                            digest: m.digest,
                        }),
                        Err(e) => failures.lock().unwrap_or_else(|e| e.into_inner()).push(e),
                    }
                }
            });
        }
    });
    if let Some(e) = failures.into_inner().unwrap_or_default().into_iter().next() {
        return Err(e.context(format!(
            "pushing manifests to {}/{repo} (no tag was written)",
            client.registry
        )));
    }
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

/// Push `blobs` on a bounded pool of threads, largest first; true when any had to be
/// uploaded or mounted (none was in the repository yet).
fn push_blobs(
    client: &Client,
    repo: &str,
    blobs: &[(&str, &[u8])],
    opts: &RegistryOptions,
    events: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<bool> {
    // Largest first, so that the pool finishes together.
    let mut blobs = blobs.to_vec();
    blobs.sort_by_key(|(d, b)| (std::cmp::Reverse(b.len()), *d));
    blobs.dedup_by_key(|(d, _)| *d);
    let next = AtomicUsize::new(0);
    let sent = AtomicUsize::new(0);
    let failures: Mutex<Vec<anyhow::Error>> = Mutex::new(Vec::new());
    let workers = opts.jobs.clamp(1, 16).min(blobs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((digest, bytes)) = blobs.get(i) else {
                        break;
                    };
                    if !failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .is_empty()
                    {
                        break;
                    }
                    match push_blob(client, repo, digest, bytes, opts, events) {
                        Ok(action) => {
                            if action != BlobAction::Exists {
                                sent.fetch_add(1, Ordering::Relaxed);
                            }
                            hints::remember(opts, &client.registry, repo, digest);
                            events(Event::Blob {
                                repository: &format!("{}/{repo}", client.registry),
                                digest,
                                size: bytes.len() as u64,
                                action,
                            });
                        }
                        Err(e) => failures.lock().unwrap_or_else(|e| e.into_inner()).push(e),
                    }
                }
            });
        }
    });
    if let Some(e) = failures.into_inner().unwrap_or_default().into_iter().next() {
        return Err(e.context(format!(
            "pushing blobs to {}/{repo} (no tag was written)",
            client.registry
        )));
    }
    Ok(sent.into_inner() > 0)
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
    bytes: &[u8],
    opts: &RegistryOptions,
    events: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<BlobAction> {
    if blob_exists(client, repo, digest, Some(bytes.len() as u64))? {
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
    bytes: &[u8],
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
    bytes: &[u8],
    session: Option<String>,
    events: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<()> {
    let mut location = match session {
        Some(l) => l,
        None => start_session(client, repo)?,
    };
    let sc = scopes(repo, None);
    let octet = [("Content-Type", "application/octet-stream")];
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
    let resp = client.send(
        "PUT",
        &with_param(&location, &format!("digest={digest}")),
        &octet,
        Body::Bytes(last_body),
        &sc,
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
