//! Reading images from a registry into kiln's content-addressed cache
//! (`<cache>/blobs/sha256/<hex>`, shared by every run and project). A reference by digest
//! whose documents are cached makes no request; by tag, one manifest HEAD. Layers are
//! downloaded only when read (a base reads only the platforms it builds), streamed to disk
//! and checked against their digests.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::client::{Body, Client};
use super::{ACCEPT, Reference, RegistryOptions, hints};
use crate::oci::read::{self, BlobFetch, LayerRef, MAX_DOCUMENT, PlatformManifest, ReadImage};
use crate::progress::human_size;
use crate::target::Platform;

/// A repository's blobs, fetched into the cache.
#[derive(Debug)]
pub struct Repo {
    pub client: Arc<Client>,
    pub repo: String,
    pub opts: RegistryOptions,
}

fn cache_path(opts: &RegistryOptions, digest: &str) -> anyhow::Result<PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .with_context(|| format!("unsupported digest `{digest}`: kiln reads sha256 only"))?;
    Ok(opts.cache_dir.join("blobs").join("sha256").join(hex))
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Client({})", self.registry)
    }
}

impl Repo {
    /// The repository of `r` and the digest `r` names: its own, or its tag's (one HEAD).
    pub fn open(
        r: &super::Reference,
        client: Arc<Client>,
        opts: &RegistryOptions,
    ) -> anyhow::Result<(Arc<Repo>, String)> {
        let repo = Arc::new(Repo {
            client,
            repo: r.repository.clone(),
            opts: opts.clone(),
        });
        let top = match &r.digest {
            Some(d) => d.clone(),
            None => repo.resolve_tag(r.tag.as_deref().unwrap_or("latest"))?,
        };
        Ok((repo, top))
    }

    fn scopes(&self) -> Vec<String> {
        vec![format!("repository:{}:pull", self.repo)]
    }

    /// Stream `path` (a blob or manifest URL path) into the cache under `digest`,
    /// checking the digest (and at most `limit` bytes).
    fn download(
        &self,
        path: &str,
        digest: &str,
        limit: u64,
        accept: bool,
    ) -> anyhow::Result<PathBuf> {
        let dest = cache_path(&self.opts, digest)?;
        if dest.is_file() {
            return Ok(dest);
        }
        let dir = dest.parent().unwrap_or(&self.opts.cache_dir).to_path_buf();
        fs_err::create_dir_all(&dir)?;
        let what = format!(
            "{} {digest} from {}/{}",
            if accept { "manifest" } else { "blob" },
            self.client.registry,
            self.repo
        );
        // Layers show progress on stderr (a bar on a terminal, a line when done elsewhere);
        // documents are too small to mention.
        let progress = (!accept && limit > MAX_DOCUMENT)
            .then(|| crate::progress::Progress::new(self.opts.quiet));
        let task = progress
            .as_ref()
            .map(|p| p.task(&digest.chars().take(19).collect::<String>()));
        let live = progress.as_ref().is_some_and(|p| p.live());
        let mut last = None;
        // A body cut short is fetched again, as a dropped connection would be.
        for _ in 0..=self.opts.retries.min(3) {
            let headers: &[(&str, &str)] = if accept { &[("Accept", ACCEPT)] } else { &[] };
            let resp = self
                .client
                .send("GET", path, headers, Body::Empty, &self.scopes())?;
            if resp.status() != 200 {
                return Err(self.client.status_error(&format!("fetching {what}"), resp));
            }
            let mut tmp = tempfile::Builder::new()
                .prefix(".kiln-tmp-")
                .tempfile_in(&dir)
                .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
            let expected: Option<u64> = resp.header("content-length").and_then(|l| l.parse().ok());
            let mut hasher = Sha256::new();
            let mut reader = resp.into_reader().take(limit.saturating_add(1));
            let mut shown = 0u64;
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0u64;
            let copied: std::io::Result<()> = (|| {
                loop {
                    let n = reader.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    total += n as u64;
                    hasher.update(&buf[..n]);
                    tmp.write_all(&buf[..n])?;
                    if let Some(t) = task.as_ref().filter(|_| live && total - shown >= 1 << 20) {
                        shown = total;
                        t.set(&match expected {
                            Some(e) => format!("pulling {} / {}", human_size(total), human_size(e)),
                            None => format!("pulling {}", human_size(total)),
                        });
                    }
                }
            })();
            if let Err(e) = copied {
                last = Some(anyhow::anyhow!(
                    "{}: reading {what} failed: {e}",
                    self.client.registry
                ));
                continue;
            }
            if total > limit {
                bail!(
                    "{}: {what} is larger than {limit} bytes: is this an image?",
                    self.client.registry
                );
            }
            let got = format!("sha256:{}", hex::encode(hasher.finalize()));
            if got != digest {
                last = Some(anyhow::anyhow!(
                    "{}: {what} is corrupt: its {total} bytes hash to {got}",
                    self.client.registry
                ));
                continue;
            }
            tmp.as_file().sync_all()?;
            tmp.persist(&dest)
                .map_err(|e| e.error)
                .with_context(|| format!("renaming into {}", dest.display()))?;
            hints::remember(&self.opts, &self.client.registry, &self.repo, digest);
            if let Some(t) = &task {
                t.finish(&format!(
                    "pulled {} from {}/{}",
                    human_size(total),
                    self.client.registry,
                    self.repo
                ));
            }
            return Ok(dest);
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("fetching {what} failed")))
    }

    /// A manifest or index by digest, from the cache or the registry.
    pub fn document(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let p = self.download(
            &format!("/v2/{}/manifests/{digest}", self.repo),
            digest,
            MAX_DOCUMENT,
            true,
        )?;
        Ok(fs_err::read(p)?)
    }

    /// A small blob (a config) by digest.
    pub fn small_blob(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let p = self.download(
            &format!("/v2/{}/blobs/{digest}", self.repo),
            digest,
            MAX_DOCUMENT,
            false,
        )?;
        Ok(fs_err::read(p)?)
    }

    /// The digest a tag points at now: one HEAD.
    pub fn resolve_tag(&self, tag: &str) -> anyhow::Result<String> {
        match super::push::manifest_digest(&self.client, &self.repo, tag)? {
            Some(d) if d.starts_with("sha256:") => Ok(d),
            Some(_) => bail!(
                "{}: {}:{tag} has no Docker-Content-Digest: name the image by digest (@sha256:…)",
                self.client.registry,
                self.repo
            ),
            None => bail!(
                "{}/{}:{tag} does not exist",
                self.client.registry,
                self.repo
            ),
        }
    }
}

impl BlobFetch for Repo {
    fn fetch(&self, digest: &str) -> anyhow::Result<PathBuf> {
        self.download(
            &format!("/v2/{}/blobs/{digest}", self.repo),
            digest,
            u64::MAX,
            false,
        )
    }
}

/// One platform's manifest as found under an index (or alone).
pub struct Found {
    pub platform: Option<Platform>,
    pub digest: String,
    pub bytes: Vec<u8>,
    pub doc: Value,
}

/// Walk `digest` down to image manifests (skipping attestations), documents only.
pub fn manifests(repo: &Repo, digest: &str, depth: usize) -> anyhow::Result<Vec<Found>> {
    if depth > 4 {
        bail!("image indexes are nested too deeply");
    }
    let bytes = repo.document(digest)?;
    let doc: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("manifest {digest} is not valid JSON"))?;
    let Some(children) = doc["manifests"].as_array() else {
        return Ok(vec![Found {
            platform: None,
            digest: digest.to_string(),
            bytes,
            doc,
        }]);
    };
    let mut out = Vec::new();
    for c in children {
        if c["platform"]["os"] == "unknown"
            || c["annotations"]["vnd.docker.reference.type"].is_string()
        {
            continue;
        }
        let d = c["digest"].as_str().context("a descriptor has no digest")?;
        let mut found = manifests(repo, d, depth + 1)?;
        if let (Some(os), Some(arch)) = (
            c["platform"]["os"].as_str(),
            c["platform"]["architecture"].as_str(),
        ) {
            for f in &mut found {
                f.platform.get_or_insert_with(|| Platform {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: c["platform"]["variant"].as_str().map(str::to_string),
                });
            }
        }
        out.extend(found);
    }
    Ok(out)
}

/// Read `r` (named `reference` by the user): documents now, layers when read.
pub fn read_image(
    reference: &str,
    r: &Reference,
    opts: &RegistryOptions,
) -> anyhow::Result<ReadImage> {
    let (repo, top) = Repo::open(r, Arc::new(Client::new(&r.registry, opts)?), opts)?;
    let mut platforms = Vec::new();
    for f in manifests(&repo, &top, 0).with_context(|| format!("reading {r}"))? {
        let config_digest = f.doc["config"]["digest"]
            .as_str()
            .with_context(|| format!("manifest {} has no config", f.digest))?
            .to_string();
        let config_json = repo.small_blob(&config_digest)?;
        let config = read::parse_config(&config_json, &config_digest)?;
        let diff_ids = config.rootfs().diff_ids().clone();
        let descs = f.doc["layers"].as_array().cloned().unwrap_or_default();
        if descs.len() != diff_ids.len() {
            bail!(
                "manifest {} has {} layers but its config lists {} diff_ids",
                f.digest,
                descs.len(),
                diff_ids.len()
            );
        }
        let mut layers = Vec::new();
        for (d, diff_id) in descs.iter().zip(diff_ids) {
            let fetch: Arc<dyn BlobFetch> = repo.clone();
            layers.push(LayerRef::fetched(
                d["mediaType"].as_str().unwrap_or(""),
                d["digest"].as_str().context("a layer has no digest")?,
                &diff_id,
                d["size"].as_u64().unwrap_or(0),
                fetch,
            )?);
        }
        let annotations = crate::oci::merge::annotations_of(&f.doc);
        platforms.push(PlatformManifest {
            platform: f.platform.unwrap_or_else(|| read::platform_of(&config)),
            manifest_digest: f.digest,
            manifest_json: f.bytes,
            annotations,
            config_digest,
            config_json,
            config,
            layers,
        });
    }
    Ok(ReadImage {
        reference: reference.to_string(),
        digest: Some(top),
        platforms,
    })
}
