//! `kiln build --print-config`: the resolved settings and where each came from.

use crate::cli::BuildArgs;

use super::{env_list, read_file_config, resolve_build, variant};

/// `--print-config`: every setting a variant can change and those that pick what is built,
/// with where its value came from (command line, environment, variant, file, default).
pub fn explain_build(args: &BuildArgs) -> anyhow::Result<Vec<(String, String, String)>> {
    let cfg = resolve_build(args)?;
    let file = read_file_config(&cfg.project_dir)?;
    let var = match &cfg.variant {
        Some(n) => Some((n.as_str(), variant(&file, n)?)),
        None => None,
    };
    let from_variant = |set: bool| var.filter(|_| set).map(|(n, _)| format!("variant {n}"));
    let fi = file.image.clone().unwrap_or_default();
    let mut out: Vec<(String, String, String)> = Vec::new();
    let mut row = |k: &str, v: String, src: &str| out.push((k.to_string(), v, src.to_string()));
    let source = |cli: bool, env: bool, file: bool| {
        if cli {
            "command line"
        } else if env {
            "environment"
        } else if file {
            "file"
        } else {
            "default"
        }
    };
    let platforms: Vec<String> = cfg.targets.iter().map(|t| t.platform.to_string()).collect();
    row(
        "platforms",
        platforms.join(","),
        source(
            !args.platforms.is_empty(),
            env_list("KILN_PLATFORMS").is_some(),
            file.platforms.is_some(),
        ),
    );
    row(
        "output",
        cfg.outputs.join(","),
        source(!args.outputs.is_empty(), false, file.output.is_some()),
    );
    row(
        "out-dir",
        cfg.out_dir.display().to_string(),
        source(
            args.out_dir.is_some(),
            std::env::var_os("KILN_OUT_DIR").is_some(),
            file.out_dir.is_some(),
        ),
    );
    row(
        "smoke",
        cfg.smoke.to_string(),
        source(args.smoke, false, file.smoke.is_some()),
    );
    for f in &args.cargo.features {
        row("features", f.clone(), "command line");
    }
    for (name, list, field) in [
        ("features", var.map(|v| &v.1.features), None),
        ("go.tags", var.map(|v| &v.1.go_tags), Some(&cfg.go.tags)),
        (
            "c.defines",
            var.map(|v| &v.1.c_defines),
            Some(&cfg.c.defines),
        ),
    ] {
        let from_var: &[String] = list.map(Vec::as_slice).unwrap_or_default();
        if let Some(all) = field {
            for x in all.iter().filter(|x| !from_var.contains(x)) {
                row(name, x.clone(), "file");
            }
        }
        for x in from_var {
            row(name, x.clone(), &from_variant(true).unwrap_or_default());
        }
    }
    if let Some(l) = &cfg.go.ldflags {
        let src = from_variant(var.is_some_and(|v| v.1.go_ldflags.is_some()));
        row(
            "go.ldflags",
            l.clone(),
            &src.unwrap_or_else(|| "file".into()),
        );
    }
    let file_env = fi.env.clone().unwrap_or_default();
    for (k, v) in &cfg.image.env {
        let src = from_variant(var.is_some_and(|x| x.1.env.contains_key(k)));
        let src = src.unwrap_or_else(|| source(false, false, file_env.contains_key(k)).into());
        row(&format!("image.env.{k}"), v.clone(), &src);
    }
    let file_labels = fi.labels.clone().unwrap_or_default();
    for (k, v) in &cfg.image.labels {
        let src = from_variant(var.is_some_and(|x| x.1.labels.contains_key(k)));
        let src = src.unwrap_or_else(|| source(false, false, file_labels.contains_key(k)).into());
        row(&format!("image.labels.{k}"), v.clone(), &src);
    }
    let base = args
        .base
        .clone()
        .or_else(|| var.and_then(|v| v.1.base.clone()))
        .or(fi.base.clone())
        .unwrap_or_else(|| "scratch".into());
    let src = if args.base.is_some() {
        "command line".to_string()
    } else {
        from_variant(var.is_some_and(|v| v.1.base.is_some()))
            .unwrap_or_else(|| source(false, false, fi.base.is_some()).into())
    };
    row("image.base", base, &src);
    let src = if args.debug_image {
        "command line".to_string()
    } else {
        from_variant(var.is_some_and(|v| v.1.debug))
            .unwrap_or_else(|| source(false, false, file.debug_image.is_some()).into())
    };
    row("debug-image", cfg.debug_image.to_string(), &src);
    Ok(out)
}
