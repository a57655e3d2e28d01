//! Attaching OCI 1.1 artifacts (SBOMs, provenance) in a registry: their blobs and
//! manifests are pushed like any content; where the registry has no referrers API (GET
//! `/v2/<repo>/referrers/<digest>` is not a 200 index — Debian's docker-registry 2.8), the
//! `sha256-<hex>` tag of each subject holds the index of its referrers, merged with what
//! the tag already listed, as the distribution spec's fallback says.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::client::{Body, Client};
use super::push::{self, ManifestBytes, Upload};
use super::{Event, Reference, RegistryOptions};
use crate::oci::layout::MEDIA_INDEX;
use crate::oci::referrers::{MEDIA_MANIFEST, Referrer, fallback_tag, merge_referrers_index};

/// Does the registry answer the referrers API for `digest`?
pub fn has_referrers_api(client: &Client, repo: &str, digest: &str) -> anyhow::Result<bool> {
    let resp = client.send(
        "GET",
        &format!("/v2/{repo}/referrers/{digest}"),
        &[("Accept", MEDIA_INDEX)],
        Body::Empty,
        &[format!("repository:{repo}:pull")],
    )?;
    Ok(resp.status() == 200
        && resp
            .header("content-type")
            .is_some_and(|c| c.starts_with(MEDIA_INDEX)))
}

/// Push `referrers` to every repository of `dests` (their subjects must be there already);
/// returns the fallback tags written, as `registry/repo:sha256-…`.
pub fn push_referrers(
    dests: &[Reference],
    referrers: &[Referrer],
    opts: &RegistryOptions,
    events: &(dyn Fn(Event) + Sync),
) -> anyhow::Result<Vec<String>> {
    let mut repos: Vec<(String, String)> = dests
        .iter()
        .map(|d| (d.registry.clone(), d.repository.clone()))
        .collect();
    repos.sort();
    repos.dedup();
    let mut tags = Vec::new();
    if referrers.is_empty() {
        return Ok(tags);
    }
    let mut clients = super::Clients::default();
    for (registry, repo) in repos {
        let client = clients.get(&registry, opts)?;
        // One push per referrer: each is its own top manifest, so a registry that has it
        // has its blobs too and it is skipped, while a new one beside it still goes up
        // (one upload of them all would take the last one being there for all of them
        // being there, and put again those it has — which some registries then list twice).
        for r in referrers {
            let upload = Upload {
                blobs: r
                    .blobs
                    .iter()
                    .map(|(d, b)| (d.as_str(), super::BlobBody::Bytes(b)))
                    .collect(),
                manifests: vec![ManifestBytes {
                    digest: &r.digest,
                    media_type: MEDIA_MANIFEST,
                    bytes: &r.manifest,
                }],
                tags: Vec::new(),
            };
            push::push(&client, &repo, &upload, opts, events)?;
        }
        let mut by_subject: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
        for r in referrers {
            by_subject
                .entry(r.subject.digest.as_str())
                .or_default()
                .push(r.descriptor());
        }
        for (subject, descs) in by_subject {
            if has_referrers_api(&client, &repo, subject)? {
                continue;
            }
            let tag = fallback_tag(subject);
            let existing = match push::manifest_digest(&client, &repo, &tag)? {
                Some(d) if d.starts_with("sha256:") => {
                    let r = super::pull::Repo {
                        client: Arc::clone(&client),
                        repo: repo.clone(),
                        opts: opts.clone(),
                    };
                    Some(r.document(&d)?)
                }
                _ => None,
            };
            let index = merge_referrers_index(existing.as_deref(), &descs)?;
            let digest = crate::digest::sha256_digest(&index);
            push::push(
                &client,
                &repo,
                &Upload {
                    blobs: Vec::new(),
                    manifests: vec![ManifestBytes {
                        digest: &digest,
                        media_type: MEDIA_INDEX,
                        bytes: &index,
                    }],
                    tags: vec![tag.clone()],
                },
                opts,
                events,
            )?;
            tags.push(format!("{registry}/{repo}:{tag}"));
        }
    }
    Ok(tags)
}

/// The artifacts attached to each of `subjects` in `r`'s repository: from the referrers
/// API, else from the `sha256-<hex>` fallback tag.
pub fn attachments(
    r: &Reference,
    subjects: &[String],
    opts: &RegistryOptions,
) -> anyhow::Result<Vec<crate::oci::referrers::Attachment>> {
    use std::io::Read as _;
    let client = Arc::new(Client::new(&r.registry, opts)?);
    let repo = super::pull::Repo {
        client: Arc::clone(&client),
        repo: r.repository.clone(),
        opts: opts.clone(),
    };
    let mut out = Vec::new();
    for subject in subjects {
        let resp = client.send(
            "GET",
            &format!("/v2/{}/referrers/{subject}", r.repository),
            &[("Accept", MEDIA_INDEX)],
            Body::Empty,
            &[format!("repository:{}:pull", r.repository)],
        )?;
        let index: Vec<u8> = if resp.status() == 200
            && resp
                .header("content-type")
                .is_some_and(|c| c.starts_with(MEDIA_INDEX))
        {
            let mut b = Vec::new();
            resp.into_reader()
                .take(crate::oci::read::MAX_DOCUMENT)
                .read_to_end(&mut b)?;
            b
        } else {
            match push::manifest_digest(&client, &r.repository, &fallback_tag(subject))? {
                Some(d) if d.starts_with("sha256:") => repo.document(&d)?,
                _ => continue,
            }
        };
        let index: serde_json::Value = serde_json::from_slice(&index)?;
        for d in index["manifests"].as_array().into_iter().flatten() {
            let Some(digest) = d["digest"].as_str() else {
                continue;
            };
            if let Some(a) = crate::oci::referrers::attachment(digest, &repo.document(digest)?)
                && a.subject == *subject
            {
                out.push(a);
            }
        }
    }
    Ok(out)
}

/// A small blob (an attached document) of `r`'s repository.
pub fn document(r: &Reference, digest: &str, opts: &RegistryOptions) -> anyhow::Result<Vec<u8>> {
    let client = Arc::new(Client::new(&r.registry, opts)?);
    let repo = super::pull::Repo {
        client,
        repo: r.repository.clone(),
        opts: opts.clone(),
    };
    repo.small_blob(digest)
}
