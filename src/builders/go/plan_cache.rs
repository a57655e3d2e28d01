//! The cached result of `go list`, kept beside the outputs and keyed by the fingerprint of
//! everything `go list` read, so an unchanged module is planned without running go.

use std::path::Path;

use serde::Deserialize;

use crate::builders::go::{GoProject, MainPackage};

/// The cached `go list` result kiln keeps next to its Go outputs.
#[derive(serde::Serialize, Deserialize)]
struct CachedPlan {
    key: String,
    module: String,
    mains: Vec<MainPackage>,
}

const PLAN_FILE: &str = ".kiln-go-list.json";

pub(super) fn cached_plan(outputs: &Path, key: &str, dir: &Path) -> Option<GoProject> {
    let c: CachedPlan =
        serde_json::from_slice(&std::fs::read(outputs.join(PLAN_FILE)).ok()?).ok()?;
    (c.key == key).then(|| GoProject {
        dir: dir.to_path_buf(),
        module: c.module,
        mains: c.mains,
    })
}

pub(super) fn save_plan(outputs: &Path, key: &str, project: &GoProject) {
    let c = CachedPlan {
        key: key.to_string(),
        module: project.module.clone(),
        mains: project.mains.clone(),
    };
    // A cache: failing to write it only costs the next run a `go list`.
    let _ = fs_err::create_dir_all(outputs)
        .map_err(anyhow::Error::from)
        .and_then(|_| {
            crate::fsutil::write_atomic(
                &outputs.join(PLAN_FILE),
                &serde_json::to_vec(&c)?,
                crate::fsutil::WriteOptions::cached(0o644),
            )
        });
}
