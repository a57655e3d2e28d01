//! `kiln doctor`: what is found, what is missing, and the command that fixes it.
//! Exit 0 when everything `kiln build` needs is there, 4 when a required piece is missing.

use std::io::Write;
use std::path::PathBuf;

use crate::cli::DoctorArgs;
use crate::commands::Ctx;
use crate::config::DEFAULT_PLATFORMS;
use crate::error::ToolchainMissing;
use crate::exec::Cmd;
use crate::target::{RustStd, Target, Targets};
use crate::toolchain::{self, Runner};

/// One line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// Whether `kiln build` needs it (a missing optional tool is only a warning).
    pub required: bool,
    /// Version or location when found; what is wrong otherwise.
    pub detail: String,
    /// The command that fixes it.
    pub fix: Option<String>,
}

fn version_of(program: &str, args: &[&str]) -> Option<String> {
    let path = which::which(program).ok()?;
    let out = Cmd::new(&path, format!("ask {program} its version"))
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    })
    .into_owned();
    Some(text.lines().next().unwrap_or("").trim().to_string())
}

fn tool(name: &str, program: &str, args: &[&str], required: bool, fix: &str) -> Check {
    match version_of(program, args) {
        Some(v) => Check {
            name: name.into(),
            ok: true,
            required,
            detail: v,
            fix: None,
        },
        None => Check {
            name: name.into(),
            ok: false,
            required,
            detail: "not found".into(),
            fix: Some(fix.into()),
        },
    }
}

/// A toolchain kiln finds itself: its version, path and where it was found, or the fix.
fn found(
    name: &str,
    required: bool,
    result: Result<(anyhow::Result<String>, PathBuf, &str), ToolchainMissing>,
) -> Check {
    match result {
        Ok((version, path, source)) => Check {
            name: name.into(),
            ok: true,
            required,
            detail: format!(
                "{} at {} ({source})",
                version.unwrap_or_else(|e| format!("unusable: {e}")),
                path.display()
            ),
            fix: None,
        },
        Err(e) => Check {
            name: name.into(),
            ok: false,
            required,
            detail: "not found".into(),
            fix: Some(e.install),
        },
    }
}

/// Every check, in report order.
pub fn checks(platforms: &[String]) -> anyhow::Result<Vec<Check>> {
    let table = Targets::builtin();
    let specs: Vec<String> = if platforms.is_empty() {
        DEFAULT_PLATFORMS.iter().map(|s| s.to_string()).collect()
    } else {
        platforms.to_vec()
    };
    let targets = table.resolve(&specs)?;
    let mut out = Vec::new();

    out.push(found(
        "zig",
        true,
        toolchain::find_zig().map(|z| {
            let v = toolchain::zig_version(&z);
            (v, z.path, z.source)
        }),
    ));
    out.push(tool(
        "cargo",
        &toolchain_cargo(),
        &["--version"],
        true,
        "install Rust with rustup",
    ));
    out.push(tool(
        "rustup",
        "rustup",
        &["--version"],
        false,
        "install rustup to let kiln add Rust targets",
    ));
    out.extend(rust_std_checks(&targets));
    out.push(found(
        "go",
        false,
        toolchain::go::find_go().map(|g| {
            let v = toolchain::go::go_version(&g);
            (v, g.path, g.source)
        }),
    ));
    out.push(tool(
        "cmake",
        "cmake",
        &["--version"],
        false,
        "apt-get install cmake (needed for CMake projects only)",
    ));
    out.extend(targets.iter().map(qemu_check));
    out.push(tool(
        "docker",
        "docker",
        &["--version"],
        false,
        "install docker.io (only to load images into Docker)",
    ));
    out.push(tool(
        "skopeo",
        "skopeo",
        &["--version"],
        false,
        "apt-get install skopeo (optional: copy images to registries)",
    ));
    Ok(out)
}

/// The Rust standard library of each target: prebuilt ones installed, nightly with
/// rust-src for the `-Zbuild-std` ones.
fn rust_std_checks(targets: &[Target]) -> Vec<Check> {
    let mut out = Vec::new();
    let installed = toolchain::rust_targets_installed(None);
    let mut need_nightly = false;
    for t in targets {
        match t.rust_std {
            RustStd::Prebuilt => {
                let ok = installed.iter().any(|i| i == &t.rust_triple);
                out.push(Check {
                    name: format!("rust std {}", t.rust_triple),
                    ok,
                    required: false,
                    detail: if ok {
                        "installed".into()
                    } else {
                        "missing (kiln build adds it)".into()
                    },
                    fix: (!ok).then(|| format!("rustup target add {}", t.rust_triple)),
                });
            }
            RustStd::BuildStd => need_nightly = true,
        }
    }
    if need_nightly {
        let ok = toolchain::nightly_with_rust_src();
        out.push(Check {
            name: "nightly + rust-src".into(),
            ok,
            required: false,
            detail: if ok {
                "installed (for -Zbuild-std targets)".into()
            } else {
                "missing (kiln build installs it)".into()
            },
            fix: (!ok).then(|| {
                "rustup toolchain install nightly --profile minimal --component rust-src".into()
            }),
        });
    }
    out
}

/// Whether `t`'s binaries can run here for `--smoke`.
fn qemu_check(t: &Target) -> Check {
    let name = format!("qemu-user for {}", t.platform);
    match toolchain::runner(t) {
        Ok(Runner::Direct) => Check {
            name,
            ok: true,
            required: false,
            detail: if t.is_host() {
                "host architecture".into()
            } else {
                "binfmt_misc registered".into()
            },
            fix: None,
        },
        Ok(Runner::Qemu(p)) => Check {
            name,
            ok: true,
            required: false,
            detail: format!(
                "{} (binfmt not registered; kiln calls it directly)",
                p.display()
            ),
            fix: None,
        },
        Err(ToolchainMissing { install, .. }) => Check {
            name,
            ok: false,
            required: false,
            detail: "not found (needed for --smoke)".into(),
            fix: Some(install),
        },
    }
}

fn toolchain_cargo() -> String {
    crate::builders::rust::cargo_program()
        .to_string_lossy()
        .into_owned()
}

pub fn run(args: &DoctorArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let checks = checks(&args.platforms)?;
    let mut out = std::io::stdout().lock();
    if ctx.json {
        for c in &checks {
            writeln!(out, "{}", serde_json::to_string(c)?)?;
        }
    } else {
        let w = checks.iter().map(|c| c.name.len()).max().unwrap_or(10);
        for c in &checks {
            let mark = match (c.ok, c.required) {
                (true, _) => "ok     ",
                (false, true) => "MISSING",
                (false, false) => "missing",
            };
            writeln!(out, "{mark}  {:<w$}  {}", c.name, c.detail)?;
            if let Some(fix) = &c.fix {
                writeln!(out, "         {:<w$}  fix: {fix}", "")?;
            }
        }
    }
    let missing: Vec<&Check> = checks.iter().filter(|c| c.required && !c.ok).collect();
    if let Some(first) = missing.first() {
        return Err(ToolchainMissing {
            what: missing
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            install: first.fix.clone().unwrap_or_default(),
        }
        .into());
    }
    Ok(())
}
