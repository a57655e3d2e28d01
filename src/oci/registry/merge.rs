//! `kiln index merge` within a registry: the index is made from the manifests already
//! there (documents and configs only, no layer is downloaded) and pushed with its tags.
//! Images in another repository of the registry are brought over by mounting their blobs
//! (an upload from the source only where the registry refuses the mount).

use std::sync::Arc;

use anyhow::{Context, bail};

use super::client::{Body, Client};
use super::pull::{self, Repo};
use super::push::{self, ManifestBytes, Upload};
use super::{Clients, Event, Reference, RegistryOptions};
use crate::oci::merge::{self, Part};
use crate::oci::read;

/// What a merge made.
#[derive(Debug, Clone)]
pub struct Merged {
    pub digest: String,
    pub platforms: Vec<String>,
    /// `registry/repo:tag` written.
    pub references: Vec<String>,
}

struct Input {
    repo: Arc<Repo>,
    parts: Vec<(Part, serde_json::Value)>,
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
    let mut references = Vec::new();
    let mut groups: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
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
            let same = input.repo.client.registry == registry && input.repo.repo == repo;
            if same {
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
                let mut digests = vec![doc["config"]["digest"].as_str().unwrap_or("").to_string()];
                for l in doc["layers"].as_array().into_iter().flatten() {
                    digests.push(l["digest"].as_str().unwrap_or("").to_string());
                }
                for d in digests.iter().filter(|d| !d.is_empty()) {
                    copy_blob(&client, &input.repo, &repo, d)?;
                }
                push::push(
                    &client,
                    &repo,
                    &Upload {
                        blobs: Vec::new(),
                        manifests: vec![ManifestBytes {
                            digest: &part.digest,
                            media_type: &push::media_type_of(&part.bytes),
                            bytes: &part.bytes,
                        }],
                        tags: Vec::new(),
                    },
                    opts,
                    events,
                )?;
            }
        }
        push::push(
            &client,
            &repo,
            &Upload {
                blobs: Vec::new(),
                manifests: vec![ManifestBytes {
                    digest: &index.digest,
                    media_type: "application/vnd.oci.image.index.v1+json",
                    bytes: &index.bytes,
                }],
                tags: tags.clone(),
            },
            opts,
            events,
        )?;
        references.extend(tags.iter().map(|t| format!("{registry}/{repo}:{t}")));
    }
    Ok(Merged {
        digest: index.digest,
        platforms: all.iter().map(|p| p.platform.to_string()).collect(),
        references,
    })
}

/// Bring `digest` from `from` into `repo` of the same registry: a mount, else a download
/// from the source and an upload.
fn copy_blob(client: &Client, from: &Repo, repo: &str, digest: &str) -> anyhow::Result<()> {
    if push::blob_exists(client, repo, digest, None)? {
        return Ok(());
    }
    let scopes = vec![
        format!("repository:{repo}:pull,push"),
        format!("repository:{}:pull", from.repo),
    ];
    let resp = client.send(
        "POST",
        &format!(
            "/v2/{repo}/blobs/uploads/?mount={digest}&from={}",
            from.repo
        ),
        &[],
        Body::Empty,
        &scopes,
    )?;
    if resp.status() == 201 {
        return Ok(());
    }
    use read::BlobFetch as _;
    let bytes = fs_err::read(from.fetch(digest)?)?;
    push::push(
        client,
        repo,
        &Upload {
            blobs: vec![(digest, bytes.as_slice())],
            ..Default::default()
        },
        &from.opts,
        &|_| {},
    )
}
