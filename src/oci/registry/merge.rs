//! `kiln index merge` within a registry: the index is made from the manifests already
//! there (documents and configs only, no layer is downloaded) and pushed with its tags.
//! Images in another repository of the registry are brought over by mounting their blobs
//! (an upload from the source only where the registry refuses the mount).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};

use super::client::Client;
use super::pull::{self, Repo};
use super::push::{self, BlobAction, ManifestBytes, Mount};
use super::{Clients, Event, Reference, RegistryOptions, hints};
use crate::oci::layer::LayerInfo;
use crate::oci::merge::{self, Part};
use crate::oci::{BuiltImage, read};

/// What a merge made.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The index's digest.
    pub digest: String,
    /// Each platform's image, in index order.
    pub images: Vec<BuiltImage>,
    /// Bytes of every blob the index reaches plus the index, as `BuiltIndex::total_size`
    /// counts them for a merge on disk.
    pub size: u64,
    /// `registry/repo:tag` written.
    pub references: Vec<String>,
}

struct Input {
    repo: Arc<Repo>,
    parts: Vec<(Part, serde_json::Value)>,
}

/// `(digest, size)` of a manifest's config and layers, config first.
fn blobs_of(doc: &serde_json::Value) -> Vec<(String, u64)> {
    std::iter::once(&doc["config"])
        .chain(doc["layers"].as_array().into_iter().flatten())
        .filter_map(|d| Some((d["digest"].as_str()?.to_string(), d["size"].as_u64()?)))
        .collect()
}

/// What the messages say about one platform's image.
fn built_image(part: &Part, doc: &serde_json::Value) -> BuiltImage {
    let layers = doc["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| LayerInfo {
            media_type: l["mediaType"].as_str().unwrap_or_default().to_string(),
            digest: l["digest"].as_str().unwrap_or_default().to_string(),
            diff_id: String::new(),
            size: l["size"].as_u64().unwrap_or(0),
        })
        .collect();
    BuiltImage {
        platform: part.platform.clone(),
        manifest: part.digest.clone(),
        config: doc["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        layers,
    }
}

/// Merge `inputs` (manifests or indexes) into one index tagged at each of `dests`.
pub fn merge(
    inputs: &[Reference],
    dests: &[Reference],
    opts: &RegistryOptions,
    events: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<Merged> {
    let mut clients = Clients::default();
    let mut read_inputs = Vec::new();
    for r in inputs {
        let (repo, top) = Repo::open(r, clients.get(&r.registry, opts)?, opts)?;
        let mut parts = Vec::new();
        for f in pull::manifests(&repo, &top, 0).with_context(|| format!("reading {r}"))? {
            let platform = match f.platform {
                Some(p) => p,
                None => {
                    let cd = f.doc["config"]["digest"]
                        .as_str()
                        .with_context(|| format!("manifest {} has no config", f.digest))?;
                    let cfg = read::parse_config(&repo.small_blob(cd)?, cd)?;
                    read::platform_of(&cfg)
                }
            };
            parts.push((
                Part {
                    platform,
                    digest: f.digest,
                    bytes: f.bytes,
                    annotations: merge::annotations_of(&f.doc),
                },
                f.doc,
            ));
        }
        read_inputs.push(Input { repo, parts });
    }
    let mut all: Vec<Part> = read_inputs
        .iter()
        .flat_map(|i| i.parts.iter().map(|(p, _)| p.clone()))
        .collect();
    let index = merge::merged_index(&mut all)?;
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    let mut images = Vec::new();
    for (part, doc) in read_inputs.iter().flat_map(|i| &i.parts) {
        sizes.insert(part.digest.clone(), part.bytes.len() as u64);
        sizes.extend(blobs_of(doc));
        images.push(built_image(part, doc));
    }
    images.sort_by(|a, b| a.platform.cmp(&b.platform));
    let size = sizes.values().sum::<u64>() + index.bytes.len() as u64;

    let mut references = Vec::new();
    let mut groups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for d in dests {
        groups
            .entry((d.registry.clone(), d.repository.clone()))
            .or_default()
            .push(d.tag.clone().unwrap_or_else(|| "latest".into()));
    }
    for ((registry, repo), tags) in groups {
        let client = clients.get(&registry, opts)?;
        // Manifests from other repositories come over first, blobs before them.
        for input in &read_inputs {
            if input.repo.client.registry == registry && input.repo.repo == repo {
                continue;
            }
            if input.repo.client.registry != registry {
                bail!(
                    "{}/{} is on another registry than {registry}/{repo}: merge within one registry, or merge local layouts (oci:DIR)",
                    input.repo.client.registry,
                    input.repo.repo
                );
            }
            for (part, doc) in &input.parts {
                for (d, n) in blobs_of(doc) {
                    copy_blob(&client, &input.repo, &repo, &d, n, events)?;
                }
                let m = ManifestBytes {
                    digest: &part.digest,
                    media_type: &push::media_type_of(&part.bytes),
                    bytes: &part.bytes,
                };
                push::push_manifest(&client, &repo, &m, &[], events)?;
            }
        }
        let m = ManifestBytes {
            digest: &index.digest,
            media_type: "application/vnd.oci.image.index.v1+json",
            bytes: &index.bytes,
        };
        push::push_manifest(&client, &repo, &m, &tags, events)?;
        references.extend(tags.iter().map(|t| format!("{registry}/{repo}:{t}")));
    }
    Ok(Merged {
        digest: index.digest,
        images,
        size,
        references,
    })
}

/// Bring `digest` from `from` into `repo` of the same registry: a mount, else a download
/// from the source and an upload (in the session a refused mount opened).
fn copy_blob(
    client: &Client,
    from: &Repo,
    repo: &str,
    digest: &str,
    size: u64,
    events: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<()> {
    let action = if push::blob_exists(client, repo, digest, None)? {
        BlobAction::Exists
    } else {
        match push::mount(client, repo, digest, &from.repo) {
            Mount::Mounted => BlobAction::Mounted,
            Mount::Refused(session) => {
                use read::BlobFetch as _;
                let bytes = fs_err::read(from.fetch(digest)?)?;
                push::upload(
                    client,
                    repo,
                    digest,
                    push::BlobBody::Bytes(&bytes),
                    session,
                    events,
                )?;
                BlobAction::Uploaded
            }
        }
    };
    hints::remember(&from.opts, &client.registry, repo, digest);
    events(Event::Blob {
        repository: &format!("{}/{repo}", client.registry),
        digest,
        size,
        action,
    });
    Ok(())
}
