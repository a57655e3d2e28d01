//! `kiln dockerfile [PATH]`: write the BuildKit multi-stage Dockerfile (and .dockerignore,
//! and with `--bake` docker-bake.hcl) that does what `kiln build` does, from the same config.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Ctx;
use crate::builders::rust;
use crate::cli::{BuildArgs, DockerfileArgs};
use crate::config;
use crate::dockerfile::generate::{self, FinalBase, GENERATED_MARK, Input, Language};
use crate::error::UsageError;
use crate::fsutil::{WriteOptions, write_atomic};

pub fn run(args: &DockerfileArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let build_args = BuildArgs {
        path: args.path.clone(),
        platforms: args.platforms.clone(),
        cargo: args.cargo.clone(),
        ..Default::default()
    };
    let cfg = config::resolve_build(&build_args)?;
    let file = config::read_file_config(&cfg.project_dir)?;
    let dir = &cfg.project_dir;
    let input = plan(args, &cfg, &file)?;
    let out = generate::generate(&input);

    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    if to_stdout {
        std::io::stdout().write_all(out.dockerfile.as_bytes())?;
        return Ok(());
    }
    let dockerfile = args
        .output
        .clone()
        .unwrap_or_else(|| dir.join("Dockerfile"));
    let mut writes = vec![(dockerfile.clone(), out.dockerfile.clone())];
    // The ignore file belongs to the context, which is the project directory.
    writes.push((dir.join(".dockerignore"), out.dockerignore.clone()));
    if args.bake {
        let bake_dir = dockerfile
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        writes.push((bake_dir.join("docker-bake.hcl"), out.bake.clone()));
    }
    // Check every file first, so a refusal leaves nothing half-written.
    for (path, _) in &writes {
        if path.exists() && !args.force && !written_by_kiln(path) {
            return Err(UsageError(format!(
                "{} exists and was not written by kiln: move it away, write elsewhere with -o, or pass --force to overwrite it",
                path.display()
            ))
            .into());
        }
    }
    for (path, text) in &writes {
        write_atomic(path, text.as_bytes(), WriteOptions::DURABLE)?;
        if !ctx.quiet {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

fn written_by_kiln(path: &Path) -> bool {
    fs_err::read_to_string(path)
        .is_ok_and(|t| t.lines().take(3).any(|l| l.contains(GENERATED_MARK)))
}

/// The project's facts, as `kiln build` would see them.
fn plan(
    args: &DockerfileArgs,
    cfg: &config::BuildConfig,
    file: &config::FileConfig,
) -> anyhow::Result<Input> {
    let dir = &cfg.project_dir;
    let mut labels = std::collections::BTreeMap::new();
    let mut kiln_build_args = Vec::new();
    let Facts {
        language,
        bins,
        manifests,
        default_name,
    } = project_facts(cfg, &mut labels, &mut kiln_build_args)?;
    let cgo = language == Language::Go && cfg.go.cgo == Some(true);

    let image = &cfg.image;
    let image_name = image
        .name
        .clone()
        .or(default_name)
        .unwrap_or_else(|| "app".into());
    labels.insert("org.opencontainers.image.title".into(), image_name.clone());
    for (k, v) in &image.labels {
        labels.insert(k.clone(), v.clone());
    }
    let base = final_base(args, file)?;
    let platforms = cfg.targets.iter().map(|t| t.platform.to_string()).collect();
    let files = image
        .files
        .iter()
        .map(|f| {
            let rel = f.src.strip_prefix(dir).unwrap_or(&f.src);
            (rel.to_string_lossy().replace('\\', "/"), f.dst.clone())
        })
        .collect();
    Ok(Input {
        language,
        image_name,
        bins,
        platforms,
        base,
        kiln_build_args,
        manifests,
        cgo,
        cmake: language == Language::C && dir.join("CMakeLists.txt").is_file(),
        syntax: !args.no_syntax,
        user: image.user.clone(),
        entrypoint: image.entrypoint.clone(),
        cmd: image.cmd.clone(),
        env: image.env.clone(),
        workdir: image.workdir.clone(),
        ports: image.ports.clone(),
        stop_signal: image.stop_signal.clone(),
        bin_dir: image.bin_dir.clone(),
        labels,
        files,
    })
}

/// What the Dockerfile needs from the project itself.
struct Facts {
    language: Language,
    bins: Vec<String>,
    /// Files the fetch stage copies first (Cargo.toml, Cargo.lock, go.mod, go.sum).
    manifests: Vec<String>,
    /// The image name when `[image] name` gives none.
    default_name: Option<String>,
}

/// Which builder the project takes and its facts; labels and `kiln build` arguments the
/// project implies are added to `labels` and `kiln_build_args`.
fn project_facts(
    cfg: &config::BuildConfig,
    labels: &mut BTreeMap<String, String>,
    kiln_build_args: &mut Vec<String>,
) -> anyhow::Result<Facts> {
    use crate::builders::{c, go, rust};
    let dir = &cfg.project_dir;
    if rust::detect(dir, &cfg.cargo) {
        rust_facts(cfg, labels, kiln_build_args)
    } else if go::detect(dir) {
        go_facts(cfg, labels)
    } else if c::detect(dir) {
        c_facts(cfg, labels)
    } else {
        Err(UsageError(format!(
            "{} has no Cargo.toml, go.mod, CMakeLists.txt, Makefile or [c] table: `kiln dockerfile` needs a project `kiln build` can build",
            dir.display()
        ))
        .into())
    }
}

fn rust_facts(
    cfg: &config::BuildConfig,
    labels: &mut BTreeMap<String, String>,
    kiln_build_args: &mut Vec<String>,
) -> anyhow::Result<Facts> {
    let dir = &cfg.project_dir;
    let flags = &cfg.cargo;
    let answers =
        crate::builders::answers::Answers::for_build(cfg.target_dir.as_deref(), rust::PLAN_ANSWERS);
    let sysroot = rust::sysroot(None, dir, &answers);
    let project = rust::plan(
        dir,
        flags,
        &cfg.bins,
        cfg.target_dir.clone(),
        &answers,
        sysroot.as_deref(),
    )?;
    if let Some(p) = &project.package {
        labels.insert(
            "org.opencontainers.image.version".to_string(),
            p.version.clone(),
        );
        if let Some(d) = &p.description {
            labels.insert("org.opencontainers.image.description".into(), d.clone());
        }
        if let Some(l) = &p.license {
            labels.insert("org.opencontainers.image.licenses".into(), l.clone());
        }
        if let Some(r) = &p.repository {
            labels.insert("org.opencontainers.image.source".into(), r.clone());
        }
    }
    // An image is a release: --release unless a profile was asked for.
    if flags.profile.is_none() {
        kiln_build_args.push("--release".to_string());
    }
    if let Some(p) = &flags.profile {
        kiln_build_args.extend(["--profile".to_string(), p.clone()]);
    }
    for b in &cfg.bins {
        kiln_build_args.extend(["--bin".to_string(), b.clone()]);
    }
    for p in &flags.packages {
        kiln_build_args.extend(["--package".to_string(), p.clone()]);
    }
    for f in &flags.features {
        kiln_build_args.extend(["--features".to_string(), f.clone()]);
    }
    if flags.all_features {
        kiln_build_args.push("--all-features".into());
    }
    if flags.no_default_features {
        kiln_build_args.push("--no-default-features".into());
    }
    let mut manifests = vec!["Cargo.toml".to_string()];
    if dir.join("Cargo.lock").is_file() {
        manifests.push("Cargo.lock".into());
        kiln_build_args.push("--locked".into());
    }
    Ok(Facts {
        language: Language::Rust,
        bins: project.bins.clone(),
        manifests,
        default_name: project.package.as_ref().map(|p| p.name.clone()),
    })
}

fn go_facts(
    cfg: &config::BuildConfig,
    labels: &mut BTreeMap<String, String>,
) -> anyhow::Result<Facts> {
    use crate::builders::go;
    let dir = &cfg.project_dir;
    let module = go_module(&dir.join("go.mod"))?;
    let bins: Vec<String> = if cfg.go.packages.is_empty() {
        vec![go::exec_name(&module)]
    } else {
        cfg.go
            .packages
            .iter()
            .map(|p| {
                let p = p.trim_start_matches("./").trim_end_matches("/...");
                if p.is_empty() || p == "." {
                    go::exec_name(&module)
                } else {
                    go::exec_name(&format!("{module}/{p}"))
                }
            })
            .collect()
    };
    let mut manifests = vec!["go.mod".to_string()];
    if dir.join("go.sum").is_file() {
        manifests.push("go.sum".into());
    }
    if let Some(v) = &cfg.go.version {
        labels.insert("org.opencontainers.image.version".into(), v.clone());
    }
    Ok(Facts {
        language: Language::Go,
        default_name: bins.first().cloned(),
        bins,
        manifests,
    })
}

fn c_facts(
    cfg: &config::BuildConfig,
    labels: &mut BTreeMap<String, String>,
) -> anyhow::Result<Facts> {
    use crate::builders::c;
    let dir = &cfg.project_dir;
    let shape = c::shape(&cfg.c, dir)?;
    let dir_name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "app".into());
    let name = cfg.c.name.clone().unwrap_or_else(|| match &shape {
        c::Shape::Command { output, .. } => Path::new(output)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(dir_name.clone()),
        _ => dir_name.clone(),
    });
    if let Some(v) = &cfg.c.version {
        labels.insert("org.opencontainers.image.version".into(), v.clone());
    }
    Ok(Facts {
        language: Language::C,
        bins: vec![name.clone()],
        manifests: Vec::new(),
        default_name: Some(name),
    })
}

/// The final stage's base: `--base`, else `[image] base`, else scratch. A local image file
/// cannot be named in a Dockerfile.
fn final_base(args: &DockerfileArgs, file: &config::FileConfig) -> anyhow::Result<FinalBase> {
    let base_text = args
        .base
        .clone()
        .or_else(|| file.image.as_ref().and_then(|i| i.base.clone()));
    Ok(match base_text.as_deref() {
        None | Some("scratch") => FinalBase::Scratch,
        Some("distroless") => FinalBase::Distroless,
        Some(b) if crate::oci::transport::is_image_ref(b) => {
            return Err(UsageError(format!(
                "the base `{b}` is a local image file, which a Dockerfile cannot name: pass --base with an image reference (`alpine:3.20`), `scratch` or `distroless`"
            ))
            .into());
        }
        Some(b) => FinalBase::Image(b.to_string()),
    })
}

/// The `module` line of go.mod.
fn go_module(go_mod: &PathBuf) -> anyhow::Result<String> {
    let text = fs_err::read_to_string(go_mod)?;
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("module ")
                .map(|m| m.trim().trim_matches('"').to_string())
        })
        .ok_or_else(|| UsageError(format!("{} has no `module` line", go_mod.display())).into())
}
