//! Printing an [`Inspection`]: a compact aligned table (one line per file), per-file
//! details for `-v`, and the `--json` document. Everything writes to `impl Write`, so golden
//! and snapshot tests need no process.

use std::io::{self, Write};

use serde::Serialize;

use super::report::{AttestationEntry, FileEntry, Inspection, Status, Summary};
use super::verify::{Require, problem_label};
use crate::elf::{ElfReport, Kind, Relro};

/// Version of the `--json` document's schema (docs/inspector.md). Bumped only when a field
/// is removed or changes meaning; new fields may appear at any time.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// The policy a run used, as printed in the JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyOut {
    pub require: &'static str,
    pub arch: Option<String>,
}

impl PolicyOut {
    pub fn new(require: Require, arch: Option<String>) -> Self {
        PolicyOut {
            require: match require {
                Require::Static => "static",
                Require::StaticPie => "static-pie",
                Require::Any => "any",
            },
            arch,
        }
    }
}

#[derive(Serialize)]
struct JsonDoc<'a> {
    schema_version: u32,
    policy: &'a PolicyOut,
    summary: &'a Summary,
    files: &'a [FileEntry],
    #[serde(skip_serializing_if = "<[AttestationEntry]>::is_empty")]
    attestations: &'a [AttestationEntry],
}

/// The `--json` document, pretty-printed, with a trailing newline.
pub fn write_json(
    out: &mut impl Write,
    inspection: &Inspection,
    policy: &PolicyOut,
) -> io::Result<()> {
    let doc = JsonDoc {
        schema_version: JSON_SCHEMA_VERSION,
        policy,
        summary: &inspection.summary,
        files: &inspection.files,
        attestations: &inspection.attestations,
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

/// Short type column: `exec` (non-PIE program), `pie`, `lib`, `obj`, `core`.
fn kind_label(r: &ElfReport) -> &'static str {
    match r.kind {
        Kind::Executable if r.hardening.pie => "pie",
        Kind::Executable => "exec",
        Kind::SharedLibrary => "lib",
        Kind::Relocatable => "obj",
        Kind::Core => "core",
        Kind::Other => "other",
    }
}

fn status_text(e: &FileEntry) -> String {
    match e.status {
        Status::Ok => "ok".into(),
        Status::Error => "error".into(),
        Status::Fail => {
            let labels: Vec<&str> = e
                .problems
                .iter()
                .map(|p| problem_label(&p.problem))
                .collect();
            format!("FAIL {}", labels.join(","))
        }
    }
}

/// The human table, then details (with `verbose`), explanations, errors and a summary.
pub fn write_human(out: &mut impl Write, inspection: &Inspection, verbose: bool) -> io::Result<()> {
    const HEAD: [&str; 7] = [
        "PATH", "PLATFORM", "TYPE", "LINKAGE", "LIBC", "LANG", "STATUS",
    ];
    let rows: Vec<[String; 7]> = inspection
        .files
        .iter()
        .map(|e| match &e.report {
            Some(r) => [
                e.path.clone(),
                r.platform_string(),
                kind_label(r).into(),
                r.linkage.to_string(),
                r.libc.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
                r.language.unwrap_or("-").into(),
                status_text(e),
            ],
            None => [
                e.path.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                status_text(e),
            ],
        })
        .collect();
    let mut widths = HEAD.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // A very long path should not push every other column off the screen.
    widths[0] = widths[0].min(60);
    if !rows.is_empty() {
        write_row(out, &HEAD.map(String::from), &widths)?;
    }
    let mut group: Option<(&Option<String>, &Option<String>)> = None;
    for (row, entry) in rows.iter().zip(&inspection.files) {
        if entry.image.is_some() && group != Some((&entry.image, &entry.platform)) {
            group = Some((&entry.image, &entry.platform));
            writeln!(
                out,
                "# {} {}",
                entry.image.as_deref().unwrap_or(""),
                entry.platform.as_deref().unwrap_or("")
            )?;
        }
        write_row(out, row, &widths)?;
    }
    if verbose {
        for e in &inspection.files {
            if let Some(r) = &e.report {
                writeln!(out)?;
                write_details(out, &e.path, r)?;
            }
        }
    }
    let failures: Vec<&FileEntry> = inspection
        .files
        .iter()
        .filter(|e| e.status != Status::Ok)
        .collect();
    if !failures.is_empty() {
        writeln!(out)?;
    }
    for e in failures {
        for p in &e.problems {
            writeln!(out, "{}", p.message)?;
        }
        if let Some(err) = &e.error {
            writeln!(out, "{}: {err}", e.path)?;
        }
    }
    write_attestations(out, &inspection.attestations)?;
    let s = &inspection.summary;
    let mut skipped = Vec::new();
    if s.skipped_non_elf > 0 {
        skipped.push(format!("{} non-ELF", s.skipped_non_elf));
    }
    if s.skipped_symlinks > 0 {
        skipped.push(format!("{} symlinks", s.skipped_symlinks));
    }
    if s.skipped_special > 0 {
        skipped.push(format!("{} special files", s.skipped_special));
    }
    write!(
        out,
        "{} ELF file{}: {} ok, {} failed",
        s.elf,
        if s.elf == 1 { "" } else { "s" },
        s.passed,
        s.failed
    )?;
    if s.errors > 0 {
        write!(out, ", {} unreadable", s.errors)?;
    }
    if !skipped.is_empty() {
        write!(out, "; skipped {}", skipped.join(", "))?;
    }
    writeln!(out)
}

/// What is attached to the images: one aligned line per artifact, under a heading.
fn write_attestations(out: &mut impl Write, list: &[AttestationEntry]) -> io::Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let rows: Vec<[String; 5]> = list
        .iter()
        .map(|a| {
            [
                a.platform.clone().unwrap_or_else(|| "index".into()),
                a.attachment.artifact_type.clone(),
                a.attachment.digest.chars().take(19).collect(),
                if a.attachment.signed {
                    "signed".into()
                } else {
                    "unsigned".into()
                },
                a.attachment.predicate_type.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let head = [
        "ATTACHED TO",
        "ARTIFACT",
        "DIGEST",
        "SIGNATURE",
        "PREDICATE",
    ]
    .map(String::from);
    let mut widths = head.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&head).chain(&rows) {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn write_row(out: &mut impl Write, row: &[String; 7], widths: &[usize; 7]) -> io::Result<()> {
    let mut line = String::new();
    for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
        if i + 1 == row.len() {
            line.push_str(cell);
        } else {
            line.push_str(&format!("{cell:<w$}  "));
        }
    }
    writeln!(out, "{}", line.trim_end())
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn list_or_dash(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

/// Everything the report holds, one `key: value` line each, for `-v`.
pub fn write_details(out: &mut impl Write, path: &str, r: &ElfReport) -> io::Result<()> {
    writeln!(out, "{path}")?;
    let mut kv = |k: &str, v: String| writeln!(out, "  {k:<14} {v}");
    kv(
        "format",
        format!(
            "ELF{} {}-endian, {} ({}), type {}",
            r.class,
            r.endian,
            r.machine_name.unwrap_or("?"),
            r.machine,
            r.elf_type.to_uppercase()
        ),
    )?;
    kv("platform", r.platform_string())?;
    if let Some(a) = &r.arm {
        kv(
            "arm",
            format!(
                "Tag_CPU_arch {}, cpu {}, profile {}, float ABI {}",
                a.cpu_arch.as_deref().unwrap_or("-"),
                a.cpu_name.as_deref().unwrap_or("-"),
                a.profile.as_deref().unwrap_or("-"),
                a.float_abi.unwrap_or("-")
            ),
        )?;
    }
    kv("kind", format!("{:?}", r.kind).to_lowercase())?;
    kv("linkage", r.linkage.to_string())?;
    kv(
        "interpreter",
        r.interpreter.clone().unwrap_or_else(|| "-".into()),
    )?;
    kv("needed", list_or_dash(&r.needed))?;
    if let Some(s) = &r.soname {
        kv("soname", s.clone())?;
    }
    if !r.rpath.is_empty() {
        kv("rpath", r.rpath.join(":"))?;
    }
    if !r.runpath.is_empty() {
        kv("runpath", r.runpath.join(":"))?;
    }
    kv(
        "libc",
        r.libc
            .map(|l| l.to_string())
            .unwrap_or_else(|| "unknown".into()),
    )?;
    if let Some(v) = &r.glibc_version {
        kv("glibc needed", format!(">= {v}"))?;
    }
    kv("stripped", yes_no(r.stripped).into())?;
    kv("debug info", yes_no(r.debug_info).into())?;
    kv("build-id", r.build_id.clone().unwrap_or_else(|| "-".into()))?;
    let h = &r.hardening;
    kv(
        "hardening",
        format!(
            "PIE {}, RELRO {}, NX {}, canary {}, fortify {}",
            yes_no(h.pie),
            match h.relro {
                Relro::None => "none",
                Relro::Partial => "partial",
                Relro::Full => "full",
            },
            yes_no(h.nx),
            h.canary.map(yes_no).unwrap_or("unknown"),
            match &h.fortify {
                None => "unknown".to_string(),
                Some(f) if f.is_empty() => "no".to_string(),
                Some(f) => format!("{} ({})", f.len(), f.join(", ")),
            }
        ),
    )?;
    if !r.comment.is_empty() {
        kv("toolchain", r.comment.join(" | "))?;
    }
    if let Some(g) = &r.go {
        kv("go", g.version.clone())?;
        if let Some(m) = &g.main {
            kv("go module", format!("{} {}", m.path, m.version))?;
        }
        let settings: Vec<String> = g.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        kv("go settings", list_or_dash(&settings))?;
        let deps: Vec<String> = g
            .deps
            .iter()
            .map(|d| format!("{}@{}", d.path, d.version))
            .collect();
        kv("go deps", list_or_dash(&deps))?;
    }
    if let Some(pkgs) = &r.auditable {
        let deps: Vec<String> = pkgs
            .iter()
            .map(|p| format!("{}@{}", p.name, p.version))
            .collect();
        kv("rust deps", list_or_dash(&deps))?;
    }
    for w in &r.warnings {
        kv("warning", w.clone())?;
    }
    Ok(())
}
