//! The registry sink and source: push built images to an OCI distribution registry, read
//! images (bases, `kiln inspect docker://…`) from one into a content-addressed cache, and
//! merge per-platform images pushed by digest into one index.
//!
//! ```no_run
//! # fn f(built: &kiln::oci::BuiltIndex) -> anyhow::Result<()> {
//! use kiln::oci::registry::{self, RegistryOptions};
//! let dest = registry::parse("docker://127.0.0.1:5000/app:1.0")?;
//! let opts = RegistryOptions::default();
//! let pushed = registry::push_built(built, &[dest], false, &opts, &|_event| {})?;
//! println!("{}", pushed.digest); // equals built.digest
//! # Ok(()) }
//! ```
//!
//! Other content (attestations, OCI 1.1 artifacts with a `subject`) goes up with
//! [`push_upload`]: blobs, manifests in order, tags last.
//!
//! Modules: `reference` (names), `auth` (credentials, challenges), `client` (HTTP, TLS,
//! retries), `push`, `pull`, `hints` (which repository is known to hold a blob, for mounts).

pub mod auth;
pub mod client;
pub mod hints;
pub mod merge;
pub mod pull;
pub mod push;
pub mod reference;
pub mod referrers;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;

pub use client::Client;
pub use pull::read_image;
pub use push::{BlobAction, BlobBody, ManifestBytes, Upload};
pub use reference::{Reference, is_registry_ref, parse};
pub use referrers::push_referrers;

use super::BuiltIndex;

/// The manifest types kiln reads.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// How to talk to registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Extra CA certificates (PEM) trusted besides the system roots (`--registry-ca`).
    pub ca_files: Vec<PathBuf>,
    /// Hosts (`host` or `host:port`) that may be reached over plain HTTP
    /// (`--insecure-registry`); loopback addresses always may.
    pub insecure: Vec<String>,
    /// Uploads in flight at once (`KILN_REGISTRY_JOBS`, default 8, at most 16); as many
    /// manifests may go up meanwhile.
    pub jobs: usize,
    /// Connect, read and write timeout of one request (`KILN_REGISTRY_TIMEOUT`, seconds).
    pub timeout: Duration,
    /// Retries of one request on 5xx, 429 and dropped connections.
    pub retries: u32,
    /// Where pulled blobs and mount hints are kept (`KILN_CACHE_DIR`, else ~/.cache/kiln).
    pub cache_dir: PathBuf,
    /// No pull progress on stderr (`--quiet`, `--message-format json`).
    pub quiet: bool,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        let timeout = std::env::var("KILN_REGISTRY_TIMEOUT")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| *v > 0.0)
            .map_or(Duration::from_secs(60), Duration::from_secs_f64);
        let retries = std::env::var("KILN_REGISTRY_RETRIES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4);
        // A registry spends most of an upload syncing files to its disk, which overlaps
        // well: in `cargo xtask bench push` eight uploads at once beat four.
        let jobs = std::env::var("KILN_REGISTRY_JOBS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .map_or(8, |n| n.min(16));
        RegistryOptions {
            ca_files: Vec::new(),
            insecure: Vec::new(),
            jobs,
            timeout,
            retries,
            cache_dir: crate::fsutil::cache_dir(),
            quiet: false,
        }
    }
}

static CURRENT: Mutex<Option<RegistryOptions>> = Mutex::new(None);

impl RegistryOptions {
    /// The options the command line set with [`RegistryOptions::set_current`] (used where
    /// an image is read by name, such as `--base`), else the defaults.
    pub fn current() -> RegistryOptions {
        CURRENT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default()
    }

    pub fn set_current(self) {
        *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(self);
    }
}

/// What a push reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A blob is in the repository.
    Blob {
        repository: &'a str,
        digest: &'a str,
        size: u64,
        action: BlobAction,
    },
    /// Bytes of a chunked upload sent so far.
    Progress {
        digest: &'a str,
        done: u64,
        total: u64,
    },
    /// A manifest (or index) is in the repository, by digest.
    Manifest {
        repository: &'a str,
        digest: &'a str,
    },
    /// A tag points at `digest`.
    Tag { reference: &'a str, digest: &'a str },
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The digest of the top manifest pushed: the index, or with `by_digest` and one
    /// platform, that platform's manifest.
    pub digest: String,
    /// `registry/repo@digest` for each repository pushed to.
    pub references: Vec<String>,
}

/// One client per registry, kept for the run.
#[derive(Default)]
pub struct Clients(BTreeMap<String, std::sync::Arc<Client>>);

impl Clients {
    pub fn get(
        &mut self,
        registry: &str,
        opts: &RegistryOptions,
    ) -> anyhow::Result<std::sync::Arc<Client>> {
        if let Some(c) = self.0.get(registry) {
            return Ok(c.clone());
        }
        let c = std::sync::Arc::new(Client::new(registry, opts)?);
        self.0.insert(registry.to_string(), c.clone());
        Ok(c)
    }
}

/// Push a built index to every destination; destinations in the same repository share
/// one push and get all their tags at the end. With `by_digest`, nothing is tagged and a
/// single-platform build pushes only its manifest.
pub fn push_built(
    built: &BuiltIndex,
    dests: &[Reference],
    by_digest: bool,
    opts: &RegistryOptions,
    events: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<Pushed> {
    let manifest_digests: Vec<&str> = built.manifests.iter().map(|(_, d)| d.as_str()).collect();
    let mut manifests = Vec::new();
    for d in &manifest_digests {
        let bytes = built
            .blobs
            .get(*d)
            .with_context(|| format!("manifest {d} is missing from the built image"))?;
        manifests.push(ManifestBytes {
            digest: d,
            media_type: "application/vnd.oci.image.manifest.v1+json",
            bytes,
        });
    }
    let single = by_digest && manifests.len() == 1;
    // Other manifests the index lists (BuildKit attestation manifests) go up as manifests
    // too, before the index that names them.
    let extra = if single {
        Vec::new()
    } else {
        super::buildkit::listed_manifests(built)
    };
    let manifest_digests: Vec<&str> = manifest_digests
        .into_iter()
        .chain(extra.iter().map(String::as_str))
        .collect();
    for d in &extra {
        manifests.push(ManifestBytes {
            digest: d,
            media_type: "application/vnd.oci.image.manifest.v1+json",
            bytes: &built.blobs[d.as_str()],
        });
    }
    if !single {
        manifests.push(ManifestBytes {
            digest: &built.digest,
            media_type: "application/vnd.oci.image.index.v1+json",
            bytes: &built.index_json,
        });
    }
    let top = manifests
        .last()
        .map(|m| m.digest.to_string())
        .unwrap_or_default();
    let blobs: Vec<(&str, BlobBody)> = built
        .blobs
        .iter()
        .filter(|(d, _)| !manifest_digests.contains(&d.as_str()))
        .map(|(d, b)| (d.as_str(), BlobBody::Bytes(b)))
        .chain(
            built
                .unread
                .iter()
                .map(|(d, l)| (d.as_str(), BlobBody::Layer(l))),
        )
        .collect();
    let mut groups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for d in dests {
        let tags = groups
            .entry((d.registry.clone(), d.repository.clone()))
            .or_default();
        if !by_digest {
            tags.push(d.tag.clone().unwrap_or_else(|| "latest".into()));
        }
    }
    let mut clients = Clients::default();
    let mut references = Vec::new();
    for ((registry, repo), tags) in groups {
        let client = clients.get(&registry, opts)?;
        let upload = Upload {
            blobs: blobs.clone(),
            manifests: manifests.clone(),
            tags,
        };
        push::push(&client, &repo, &upload, opts, events)?;
        references.push(format!("{registry}/{repo}@{top}"));
    }
    Ok(Pushed {
        digest: top,
        references,
    })
}

/// Push any content (an OCI 1.1 artifact with a `subject`, an SBOM, …) to `repo` of
/// `registry`: `upload.blobs` first, then `upload.manifests` in order with their exact
/// bytes, then `upload.tags` on the last manifest.
pub fn push_upload(
    registry: &str,
    repo: &str,
    upload: &Upload<'_>,
    opts: &RegistryOptions,
    events: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<()> {
    let client = Client::new(registry, opts)?;
    push::push(&client, repo, upload, opts, events)
}
