//! CMake projects: the toolchain file that points CMake at kiln's zig wrappers, and the
//! executables a configured build declares, read from CMake's file API (codemodel-v2).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use super::flags;
use crate::config::CConfig;
use crate::target::Target;
use crate::toolchain::Wrappers;

/// The CMake toolchain file for one target: the zig wrappers as compilers and archiver, a
/// static link, and find_* kept away from the host's libraries.
pub fn toolchain_file_text(
    target: &Target,
    w: &Wrappers,
    config: &CConfig,
    source_root: &Path,
) -> String {
    let q = |p: &Path| cmake_quote(&p.to_string_lossy());
    let (cflags, ldflags) = flags(config, source_root);
    format!(
        "# Written by kiln for {platform}: zig (through kiln's wrappers) compiles and links.\n\
         set(CMAKE_SYSTEM_NAME Linux)\n\
         set(CMAKE_SYSTEM_PROCESSOR {processor})\n\
         set(CMAKE_C_COMPILER {cc})\n\
         set(CMAKE_CXX_COMPILER {cxx})\n\
         set(CMAKE_AR {ar} CACHE FILEPATH \"kiln: zig ar\")\n\
         set(CMAKE_RANLIB {ranlib} CACHE FILEPATH \"kiln: zig ranlib\")\n\
         set(CMAKE_C_FLAGS_INIT {cflags})\n\
         set(CMAKE_CXX_FLAGS_INIT {cflags})\n\
         set(CMAKE_EXE_LINKER_FLAGS_INIT {ldflags})\n\
         set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)\n\
         set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)\n\
         set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)\n\
         set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)\n",
        platform = target.platform,
        processor = target.qemu,
        cc = q(&w.cc),
        cxx = q(&w.cxx),
        ar = q(&w.ar),
        ranlib = q(&w.ranlib),
        cflags = cmake_quote(&cflags.join(" ")),
        ldflags = cmake_quote(&ldflags.join(" ")),
    )
}

fn cmake_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[derive(Deserialize)]
struct ApiIndex {
    reply: std::collections::BTreeMap<String, ApiReplyRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiReplyRef {
    json_file: Option<String>,
}

#[derive(Deserialize)]
struct Codemodel {
    configurations: Vec<CodemodelConfig>,
    paths: CodemodelPaths,
}

#[derive(Deserialize)]
struct CodemodelPaths {
    build: PathBuf,
}

#[derive(Deserialize)]
struct CodemodelConfig {
    targets: Vec<CodemodelTarget>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CodemodelTarget {
    json_file: String,
}

#[derive(Deserialize)]
struct TargetReply {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    artifacts: Vec<TargetArtifact>,
}

#[derive(Deserialize)]
struct TargetArtifact {
    path: PathBuf,
}

/// The executables CMake built in `build`, as (name, path), from its file API reply.
pub fn cmake_executables(build: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let reply = build.join(".cmake/api/v1/reply");
    let index = fs_err::read_dir(&reply)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("index-"))
        })
        .max()
        .with_context(|| format!("CMake wrote no file API index in {}", reply.display()))?;
    let index: ApiIndex = serde_json::from_slice(&fs_err::read(&index)?)?;
    let codemodel_file = index
        .reply
        .get("codemodel-v2")
        .and_then(|r| r.json_file.clone())
        .context("CMake's reply has no codemodel (CMake 3.14 or newer is needed)")?;
    let model: Codemodel = serde_json::from_slice(&fs_err::read(reply.join(codemodel_file))?)?;
    let mut out = Vec::new();
    for config in &model.configurations {
        for t in &config.targets {
            let target: TargetReply =
                serde_json::from_slice(&fs_err::read(reply.join(&t.json_file))?)?;
            if target.kind != "EXECUTABLE" {
                continue;
            }
            if let Some(a) = target.artifacts.first()
                && !out.iter().any(|(n, _)| n == &target.name)
            {
                out.push((target.name, model.paths.build.join(&a.path)));
            }
        }
    }
    Ok(out)
}

/// Executable names a CMake project declares with a literal `add_executable(NAME …)` in its
/// top-level CMakeLists.txt: what the plan can know before configuring. The stages report
/// what CMake really built.
pub(super) fn cmake_executables_declared(dir: &Path) -> Vec<String> {
    let text = fs_err::read_to_string(dir.join("CMakeLists.txt")).unwrap_or_default();
    let mut names = Vec::new();
    let lower = text.to_ascii_lowercase();
    let mut rest = lower.as_str();
    let mut offset = 0;
    while let Some(i) = rest.find("add_executable") {
        let after = &text[offset + i + "add_executable".len()..];
        if let Some(args) = after.trim_start().strip_prefix('(') {
            let name: String = args
                .trim_start()
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != ')')
                .collect();
            if !name.is_empty() && !name.contains("${") && !names.contains(&name) {
                names.push(name);
            }
        }
        offset += i + "add_executable".len();
        rest = &lower[offset..];
    }
    names
}
