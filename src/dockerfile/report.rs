//! Printing lint findings: human lines, one JSON document, or SARIF 2.1.0 (what code-scanning
//! tools load). All printers write to `impl Write`, so tests compare their output directly.

use std::io::Write;

use serde_json::json;

use super::rules::{Finding, RULES, Severity};

/// The findings of one file.
#[derive(Debug, Clone)]
pub struct FileFindings {
    /// The path as the user gave it (`-` for stdin).
    pub path: String,
    pub findings: Vec<Finding>,
}

/// `Dockerfile:3: warning KL001 message` and an indented fix line per finding, then a summary.
pub fn write_human(w: &mut impl Write, files: &[FileFindings]) -> std::io::Result<()> {
    let mut counts = [0usize; 3];
    for f in files {
        for x in &f.findings {
            counts[x.severity as usize] += 1;
            writeln!(
                w,
                "{}:{}: {} {} {}",
                f.path,
                x.line,
                x.severity.as_str(),
                x.rule,
                x.message
            )?;
            writeln!(w, "    fix: {}", x.fix)?;
        }
    }
    let total: usize = counts.iter().sum();
    if total == 0 {
        writeln!(w, "{} file(s) checked, no findings", files.len())
    } else {
        writeln!(
            w,
            "{} file(s) checked: {} error(s), {} warning(s), {} info",
            files.len(),
            counts[Severity::Error as usize],
            counts[Severity::Warning as usize],
            counts[Severity::Info as usize]
        )
    }
}

/// One JSON document: `{"findings":[{"file","line","rule","severity","message","fix"}…]}`.
pub fn write_json(w: &mut impl Write, files: &[FileFindings]) -> std::io::Result<()> {
    let findings: Vec<_> = files
        .iter()
        .flat_map(|f| {
            f.findings.iter().map(move |x| {
                json!({
                    "file": f.path,
                    "line": x.line,
                    "rule": x.rule,
                    "severity": x.severity,
                    "message": x.message,
                    "fix": x.fix,
                })
            })
        })
        .collect();
    serde_json::to_writer_pretty(&mut *w, &json!({ "findings": findings }))?;
    writeln!(w)
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// A relative URI reference for a path: `/` separators, reserved bytes percent-encoded.
fn uri(path: &str) -> String {
    let mut out = String::new();
    for b in path.replace('\\', "/").bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// SARIF 2.1.0: one run, every rule in `tool.driver.rules`, one result per finding.
pub fn sarif(files: &[FileFindings]) -> serde_json::Value {
    let rules: Vec<_> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": { "text": r.message },
                "help": { "text": r.fix },
                "defaultConfiguration": { "level": sarif_level(r.severity) },
            })
        })
        .collect();
    let results: Vec<_> = files
        .iter()
        .flat_map(|f| {
            f.findings.iter().map(move |x| {
                json!({
                    "ruleId": x.rule,
                    "ruleIndex": RULES.iter().position(|r| r.id == x.rule).unwrap_or(0),
                    "level": sarif_level(x.severity),
                    "message": { "text": format!("{} (fix: {})", x.message, x.fix) },
                    "locations": [{
                        "physicalLocation": {
                            "artifactLocation": { "uri": uri(&f.path) },
                            "region": { "startLine": x.line.max(1) },
                        }
                    }],
                })
            })
        })
        .collect();
    json!({
        "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "kiln",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

pub fn write_sarif(w: &mut impl Write, files: &[FileFindings]) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, &sarif(files))?;
    writeln!(w)
}
