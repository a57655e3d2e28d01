//! `kiln lint [Dockerfile…]`: check Dockerfiles for the mistakes that make images big, slow
//! to build, insecure or unable to start. Exit 0 clean, 3 on findings at or above
//! `--fail-level`, 1 when a file cannot be read, 2 on a bad flag or config.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::Ctx;
use crate::cli::{FailLevel, LintArgs, LintFormat};
use crate::dockerfile::{self, FileFindings, LintOptions, Severity};
use crate::error::{UsageError, VerificationFailed};

/// Lint the files; returns the findings per file (also printed).
pub fn run(args: &LintArgs, ctx: &Ctx) -> anyhow::Result<Vec<FileFindings>> {
    let files: Vec<PathBuf> = if args.files.is_empty() {
        vec![PathBuf::from("Dockerfile")]
    } else {
        args.files.clone()
    };
    let mut results = Vec::new();
    let mut unreadable = Vec::new();
    for path in &files {
        match lint_one(path, args) {
            Ok(r) => results.push(r),
            Err(e) if e.is::<UsageError>() => return Err(e),
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "error: {e:#}");
                unreadable.push(path.display().to_string());
            }
        }
    }
    let format = match args.format {
        LintFormat::Human if ctx.json => LintFormat::Json,
        f => f,
    };
    let mut out = std::io::stdout().lock();
    match format {
        LintFormat::Human => dockerfile::report::write_human(&mut out, &results)?,
        LintFormat::Json => dockerfile::report::write_json(&mut out, &results)?,
        LintFormat::Sarif => dockerfile::report::write_sarif(&mut out, &results)?,
    }
    out.flush()?;
    if !unreadable.is_empty() {
        bail!("cannot read {}", unreadable.join(", "));
    }
    let threshold = match args.fail_level {
        FailLevel::None => None,
        FailLevel::Info => Some(Severity::Info),
        FailLevel::Warning => Some(Severity::Warning),
        FailLevel::Error => Some(Severity::Error),
    };
    if let Some(t) = threshold {
        let n = results
            .iter()
            .flat_map(|r| &r.findings)
            .filter(|f| f.severity >= t)
            .count();
        if n > 0 {
            return Err(
                VerificationFailed(format!("{n} finding(s) at or above {}", t.as_str())).into(),
            );
        }
    }
    Ok(results)
}

fn lint_one(path: &Path, args: &LintArgs) -> anyhow::Result<FileFindings> {
    let stdin = path.as_os_str() == "-";
    let text = if stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the Dockerfile from stdin")?;
        s
    } else {
        let bytes = fs_err::read(path)?;
        String::from_utf8(bytes).map_err(|_| {
            anyhow::anyhow!("{} is not UTF-8 text: is it a Dockerfile?", path.display())
        })?
    };
    let dir = if stdin {
        std::env::current_dir()?
    } else {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    };
    let mut opts = LintOptions {
        strict: args.strict,
        ..Default::default()
    };
    let file = crate::config::read_file_config(&dir)?;
    for id in file
        .lint
        .iter()
        .flat_map(|l| l.disable.iter().map(String::as_str))
        .chain(args.disable.iter().flat_map(|d| d.split(',')))
    {
        let id = id.trim();
        match dockerfile::rules::rule(id) {
            Some(r) => {
                opts.disabled.insert(r.id.to_string());
            }
            None => {
                return Err(UsageError(format!(
                    "unknown lint rule `{id}`: `kiln lint --help` and docs/dockerfile.md list them (KL000…KL015)"
                ))
                .into());
            }
        }
    }
    let findings = dockerfile::lint_text(&text, (!stdin).then_some(path), &opts);
    Ok(FileFindings {
        path: path.display().to_string(),
        findings,
    })
}
