//! `kiln build --print-config`: every resolved setting and where it came from.

use std::path::{Path, PathBuf};

use crate::cli::BuildArgs;

use super::{BuildConfig, Sources, resolve_build, resolve_from};

/// `--print-config`: every setting of the resolved configuration (build, cargo, go, c,
/// image, release, components, variants) with where its value came from: `command line`,
/// `variant NAME`, `environment`, `file` or `default`. Each row is `(key, value, source)`;
/// `None` is an unset value. Lists that add up across sources (features, Go tags, C
/// defines, image env and labels, files) have a row per item, each with its own source.
///
/// The sources are found by resolving again without each of them, highest first: a value
/// that goes away without the command line came from it, and so on down to the defaults.
pub fn explain_build(args: &BuildArgs) -> anyhow::Result<Vec<(String, Option<String>, String)>> {
    let full = resolve_build(args)?;
    // The command line without its values; the project, the variant asked for and the
    // permission to read outside the project stay.
    let bare = BuildArgs {
        path: args.path.clone(),
        variant: args.variant.clone(),
        allow_outside_project: args.allow_outside_project,
        ..Default::default()
    };
    let without = |sources: Sources| -> Vec<(String, Option<String>)> {
        resolve_from(&bare, sources)
            .map(|c| config_rows(&c))
            .unwrap_or_default()
    };
    let no_variant = Sources {
        variant: false,
        ..Sources::ALL
    };
    let no_env = Sources {
        env: false,
        ..no_variant
    };
    let none = Sources {
        file: false,
        ..no_env
    };
    let layers = [
        (without(Sources::ALL), "command line".to_string()),
        (
            without(no_variant),
            format!("variant {}", full.variant.as_deref().unwrap_or_default()),
        ),
        (without(no_env), "environment".to_string()),
        (without(none), "file".to_string()),
    ];
    // A value set to what the default is does not go away without its source: the keys
    // given on the command line and written in the file tell those.
    let written = file_keys(&full.project_dir)?;
    let in_variant = |key: &str| {
        let v = full.variant.as_deref()?;
        let prefix = format!("variant.{v}.");
        written
            .iter()
            .filter_map(|w| w.strip_prefix(&prefix))
            .any(|w| variant_key(w) == key)
            .then(|| format!("variant {v}"))
    };
    let mut out = Vec::new();
    for row in config_rows(&full) {
        let key = row.0.as_str();
        let source = match layers.iter().find(|(rows, _)| !rows.contains(&row)) {
            _ if key == "variant" && row.1.is_some() => "command line".into(),
            Some((_, s)) => s.clone(),
            None if cli_sets(args, key) => "command line".into(),
            None if key == "project" && args.path.is_some() => "command line".into(),
            None => in_variant(key).unwrap_or_else(|| {
                if written.contains(key) {
                    "file".into()
                } else {
                    "default".into()
                }
            }),
        };
        out.push((row.0, row.1, source));
    }
    Ok(out)
}

/// Whether the command line gives the setting `key` (a row key of [`config_rows`]).
fn cli_sets(a: &BuildArgs, key: &str) -> bool {
    let c = &a.cargo;
    match key {
        "platforms" => !a.platforms.is_empty(),
        "output" => !a.outputs.is_empty(),
        "out-dir" => a.out_dir.is_some(),
        "smoke" => a.smoke,
        "smoke-args" => !a.smoke_args.is_empty(),
        "docker-platform" => a.docker_platform.is_some(),
        "jobs" => a.jobs.is_some(),
        "bins" => !c.bins.is_empty(),
        "target-dir" => c.target_dir.is_some(),
        "debug-image" => a.debug_image,
        "cargo.release" => c.release,
        "cargo.profile" => c.profile.is_some(),
        "cargo.all-features" => c.all_features,
        "cargo.no-default-features" => c.no_default_features,
        "cargo.locked" => c.locked,
        "cargo.offline" => c.offline,
        "cargo.frozen" => c.frozen,
        "cargo.auditable" => a.auditable,
        "image.base" => a.base.is_some(),
        "image.compression" => a.compression.is_some(),
        "release.sbom" => a.sbom.is_some(),
        "release.archives" => !a.archives.is_empty(),
        "release.provenance" => a.provenance,
        "release.attestations" => a.attestations.is_some(),
        "release.sign-key" => a.sign_key.is_some(),
        "release.split-debuginfo" => a.strip,
        "component" => !a.components.is_empty(),
        _ => false,
    }
}

/// The row key a `[variant.NAME]` key sets.
fn variant_key(k: &str) -> String {
    match k {
        "features" => "cargo.features".into(),
        "go-tags" => "go.tags".into(),
        "go-ldflags" => "go.ldflags".into(),
        "c-defines" => "c.defines".into(),
        "base" => "image.base".into(),
        "debug" => "debug-image".into(),
        _ if k.starts_with("env.") || k.starts_with("labels.") => format!("image.{k}"),
        _ => k.to_string(),
    }
}

/// Every key the project's config file writes, dotted (`image.env.APP_ENV`,
/// `variant.dev.go-tags`); arrays of tables (`[[component]]`) are not entered.
fn file_keys(project_dir: &Path) -> anyhow::Result<std::collections::BTreeSet<String>> {
    fn walk(prefix: &str, t: &toml::Table, out: &mut std::collections::BTreeSet<String>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if let toml::Value::Table(inner) = v {
                walk(&key, inner, out);
            }
            out.insert(key);
        }
    }
    let mut out = std::collections::BTreeSet::new();
    let kiln_toml = project_dir.join("kiln.toml");
    let cargo_toml = project_dir.join("Cargo.toml");
    let table: Option<toml::Table> = if kiln_toml.is_file() {
        toml::from_str(&fs_err::read_to_string(&kiln_toml)?).ok()
    } else if cargo_toml.is_file() {
        let v: Option<toml::Table> = toml::from_str(&fs_err::read_to_string(&cargo_toml)?).ok();
        v.and_then(|v| {
            ["package", "workspace"]
                .iter()
                .find_map(|s| v.get(*s)?.get("metadata")?.get("kiln")?.as_table().cloned())
        })
    } else {
        None
    };
    if let Some(t) = table {
        walk("", &t, &mut out);
    }
    Ok(out)
}

/// Every setting of `cfg` as `(key, value)` rows, keys named as in kiln.toml (cargo's as
/// its flags), in a fixed order.
fn config_rows(cfg: &BuildConfig) -> Vec<(String, Option<String>)> {
    let mut r = Rows::default();
    build_rows(cfg, &mut r);
    language_rows(cfg, &mut r);
    image_rows(cfg, &mut r);
    release_rows(cfg, &mut r);
    component_rows(cfg, &mut r);
    r.0
}

/// `(key, value)` rows; `None`: unset.
#[derive(Default)]
struct Rows(Vec<(String, Option<String>)>);

impl Rows {
    fn set(&mut self, k: &str, v: Option<String>) {
        self.0.push((k.to_string(), v));
    }

    /// A row per item of a list that adds up across sources; one unset row when empty.
    fn each(&mut self, k: &str, items: Vec<String>) {
        if items.is_empty() {
            self.set(k, None);
        }
        for x in items {
            self.set(k, Some(x));
        }
    }
}

fn join(v: &[String], sep: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.join(sep))
}

fn flag(b: bool) -> Option<String> {
    Some(b.to_string())
}

fn path(p: &Option<PathBuf>) -> Option<String> {
    p.as_ref().map(|p| p.display().to_string())
}

/// What is built, for which platforms, and where it goes.
fn build_rows(cfg: &BuildConfig, r: &mut Rows) {
    r.set("project", Some(cfg.project_dir.display().to_string()));
    r.set("variant", cfg.variant.clone());
    let platforms: Vec<String> = cfg.targets.iter().map(|t| t.platform.to_string()).collect();
    r.set("platforms", join(&platforms, ","));
    r.set("output", join(&cfg.outputs, ","));
    r.set("docker-platform", cfg.docker_platform.clone());
    r.set("out-dir", Some(cfg.out_dir.display().to_string()));
    r.set("smoke", flag(cfg.smoke));
    r.set("smoke-args", join(&cfg.smoke_args, " "));
    r.set("jobs", cfg.jobs.map(|j| j.to_string()));
    r.set("bins", join(&cfg.bins, ","));
    r.set("target-dir", path(&cfg.target_dir));
    r.set("debug-image", flag(cfg.debug_image));
}

/// `cargo.*`, `go.*` and `c.*`.
fn language_rows(cfg: &BuildConfig, r: &mut Rows) {
    let c = &cfg.cargo;
    r.set("cargo.release", flag(c.release));
    r.set("cargo.profile", c.profile.clone());
    r.set("cargo.packages", join(&c.packages, ","));
    r.each("cargo.features", c.features.clone());
    r.set("cargo.all-features", flag(c.all_features));
    r.set("cargo.no-default-features", flag(c.no_default_features));
    r.set("cargo.locked", flag(c.locked));
    r.set("cargo.offline", flag(c.offline));
    r.set("cargo.frozen", flag(c.frozen));
    r.set("cargo.manifest-path", path(&c.manifest_path));
    r.set("cargo.auditable", flag(c.auditable));

    let g = &cfg.go;
    r.set("go.packages", join(&g.packages, " "));
    r.each("go.tags", g.tags.clone());
    r.set("go.cgo", g.cgo.map(|b| b.to_string()));
    r.set("go.debug", flag(g.debug));
    r.set("go.buildvcs", flag(g.buildvcs));
    r.set("go.ldflags", g.ldflags.clone());
    r.set("go.version", g.version.clone());

    let cc = &cfg.c;
    r.set("c.name", cc.name.clone());
    r.set("c.version", cc.version.clone());
    r.set("c.build", cc.build.clone());
    r.set("c.output", cc.output.clone());
    r.set("c.cmake-args", join(&cc.cmake_args, " "));
    r.set("c.sources", join(&cc.sources, " "));
    r.set("c.include", join(&cc.include, " "));
    r.each("c.defines", cc.defines.clone());
    r.set("c.libs", join(&cc.libs, " "));
    r.set("c.opt", cc.opt.clone());
    r.set("c.debug", flag(cc.debug));
    r.set("c.cflags", join(&cc.cflags, " "));
    r.set("c.ldflags", join(&cc.ldflags, " "));
    let declared: Vec<String> = cc.components.iter().map(|d| d.name.clone()).collect();
    r.set("c.components", join(&declared, ","));
}

fn image_rows(cfg: &BuildConfig, r: &mut Rows) {
    let i = &cfg.image;
    r.set("image.name", i.name.clone());
    r.set("image.user", Some(i.user.clone()));
    r.set(
        "image.entrypoint",
        i.entrypoint.as_ref().map(|e| e.join(" ")),
    );
    r.set("image.cmd", join(&i.cmd, " "));
    if i.env.is_empty() {
        r.set("image.env", None);
    }
    for (k, v) in &i.env {
        r.set(&format!("image.env.{k}"), Some(v.clone()));
    }
    r.set("image.workdir", i.workdir.clone());
    if i.labels.is_empty() {
        r.set("image.labels", None);
    }
    for (k, v) in &i.labels {
        r.set(&format!("image.labels.{k}"), Some(v.clone()));
    }
    r.set("image.ports", join(&i.ports, ","));
    r.set("image.stop-signal", i.stop_signal.clone());
    r.set("image.bin-dir", Some(i.bin_dir.clone()));
    r.set("image.base", Some(base_name(&i.base)));
    r.set(
        "image.compression",
        Some(format!("{:?}", i.compression).to_lowercase()),
    );
    let files = i
        .files
        .iter()
        .map(|f| format!("{} -> {}", f.src.display(), f.dst));
    r.each("image.files", files.collect());
}

fn release_rows(cfg: &BuildConfig, out: &mut Rows) {
    let r = &cfg.release;
    out.set(
        "release.sbom",
        Some(
            r.sbom
                .map_or("none".into(), |s| format!("{s:?}").to_lowercase()),
        ),
    );
    let mut archives = Vec::new();
    if r.archives.tar_gz {
        archives.push("tar.gz".to_string());
    }
    if r.archives.zip {
        archives.push("zip".to_string());
    }
    out.set("release.archives", join(&archives, ","));
    out.set("release.provenance", flag(r.provenance));
    out.set(
        "release.attestations",
        r.attestations.map(|a| format!("{a:?}").to_lowercase()),
    );
    out.set(
        "release.sign-key",
        r.sign_key.as_ref().map(|k| format!("keyid {}", k.keyid)),
    );
    out.set("release.split-debuginfo", flag(r.strip));
}

/// `component.NAME.*` per `[[component]]` table, `--component` and the variants' names.
fn component_rows(cfg: &BuildConfig, r: &mut Rows) {
    for (n, t) in cfg.components.iter().enumerate() {
        let name = t
            .name
            .clone()
            .or_else(|| {
                t.path
                    .as_ref()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| (n + 1).to_string());
        let mut c = |k: &str, v: Option<String>| r.set(&format!("component.{name}.{k}"), v);
        c("path", path(&t.path));
        c("build", t.build.clone());
        c("output", path(&t.output));
        c("dst", t.dst.clone());
        c("platform-independent", flag(t.platform_independent));
        c("needs", join(&t.needs, ","));
        c("features", join(&t.features, ","));
        c("bins", join(&t.bins, ","));
        c("smoke-args", t.smoke_args.as_ref().map(|a| a.join(" ")));
    }
    r.set("component", join(&cfg.only_components, ","));
    r.set("variants", join(&cfg.variant_names, ","));
}

/// The base as the user names it.
fn base_name(base: &crate::oci::Base) -> String {
    use crate::oci::{Base, distroless::DistrolessSource};
    match base {
        Base::Scratch => "scratch".into(),
        Base::Distroless(DistrolessSource::Debs { .. }) => "distroless".into(),
        Base::Distroless(DistrolessSource::Host) => "distroless (from this machine)".into(),
        Base::Image(r) => r.clone(),
    }
}
