//! OCI image writing: deterministic layers, per-platform images, the multi-platform index,
//! and the sinks that write them (OCI layout, archives).
//!
//! Everything is built in memory as plain data (`BuiltIndex`), then written by a sink.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::target::Platform;

/// The image configuration a user controls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// `uid[:gid]` or a name; default `65532:65532`.
    pub user: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `8080/tcp`.
    pub exposed_ports: Vec<String>,
    pub stop_signal: Option<String>,
    /// Annotations on the manifests and the index.
    pub annotations: BTreeMap<String, String>,
}

/// Where a file in a layer comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrySource {
    File(PathBuf),
    Bytes(Vec<u8>),
    Dir,
    Symlink(String),
}

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// Absolute path inside the image: `/usr/local/bin/hello`.
    pub path: String,
    pub source: EntrySource,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// One platform's image, before it is built.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    pub platform: Platform,
    pub entries: Vec<LayerEntry>,
    pub spec: ImageSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    None,
}

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// mtime of every entry and `created` when set; `SOURCE_DATE_EPOCH`, else 0.
    pub source_date_epoch: Option<u64>,
    pub compression: Compression,
}

/// A built multi-platform index, all blobs in memory.
#[derive(Debug, Clone)]
pub struct BuiltIndex {
    /// `sha256:…` of `index_json`.
    pub digest: String,
    pub index_json: Vec<u8>,
    /// Every blob by digest (`sha256:…`): layers, configs, manifests.
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// Per-platform manifest digests, in input order.
    pub manifests: Vec<(Platform, String)>,
}
