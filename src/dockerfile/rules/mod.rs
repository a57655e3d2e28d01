//! Lint rules: each has a stable id (`KL001`…), a severity, a one-line message and a fix.
//! Rules read the parsed [`Dockerfile`] and its stages; they never touch the file system
//! (whether a `.dockerignore` exists is passed in).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

mod instructions;
mod stages;

use super::parse::{Args, Dockerfile, Instruction, Stage, split_words};
use instructions::*;
use stages::*;

/// How bad a finding is. Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// What a rule is, for docs, `--format sarif` and the tests.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: &'static str,
    /// Short kebab-case name.
    pub name: &'static str,
    pub severity: Severity,
    /// The one-line message (findings may add detail).
    pub message: &'static str,
    /// How to fix it.
    pub fix: &'static str,
    /// hadolint's rules for the same thing, if any.
    pub hadolint: &'static [&'static str],
}

/// Every rule, by id.
pub const RULES: &[Rule] = &[
    Rule {
        id: "KL000",
        name: "syntax",
        severity: Severity::Error,
        message: "the Dockerfile cannot be parsed here",
        fix: "fix the syntax (unknown instruction, unterminated heredoc, bad escape directive)",
        hadolint: &[],
    },
    Rule {
        id: "KL001",
        name: "root-final-stage",
        severity: Severity::Warning,
        message: "the final stage runs as root",
        fix: "add `USER 65532:65532` (or another non-root uid) to the final stage",
        hadolint: &["DL3002"],
    },
    Rule {
        id: "KL002",
        name: "unpinned-base",
        severity: Severity::Warning,
        message: "the base image is not pinned",
        fix: "name an exact tag (`debian:12.8-slim`), and with --strict a digest (`@sha256:…`)",
        hadolint: &["DL3006", "DL3007"],
    },
    Rule {
        id: "KL003",
        name: "add-local-files",
        severity: Severity::Warning,
        message: "ADD of local files",
        fix: "use COPY for local files and folders; ADD only for URLs and archives to unpack",
        hadolint: &["DL3020"],
    },
    Rule {
        id: "KL004",
        name: "copy-context-before-deps",
        severity: Severity::Warning,
        message: "the whole build context is copied before dependencies are installed",
        fix: "copy only the dependency manifests (package.json, go.mod/go.sum, Cargo.toml/Cargo.lock, requirements.txt), install, then copy the rest",
        hadolint: &[],
    },
    Rule {
        id: "KL005",
        name: "secret-in-arg-env",
        severity: Severity::Error,
        message: "a secret in ARG/ENV stays in the image history",
        fix: "pass it with `RUN --mount=type=secret,id=NAME` (`docker build --secret id=NAME,src=FILE`)",
        hadolint: &[],
    },
    Rule {
        id: "KL006",
        name: "no-dockerignore",
        severity: Severity::Warning,
        message: "no .dockerignore beside the Dockerfile: the whole directory is sent as context",
        fix: "add a .dockerignore (at least .git, target/, dist/, node_modules/, secrets); `kiln dockerfile` writes one",
        hadolint: &[],
    },
    Rule {
        id: "KL007",
        name: "apt-recommends",
        severity: Severity::Warning,
        message: "apt-get install without --no-install-recommends",
        fix: "use `apt-get install -y --no-install-recommends …`",
        hadolint: &["DL3015"],
    },
    Rule {
        id: "KL008",
        name: "apt-lists-kept",
        severity: Severity::Warning,
        message: "apt-get update in a layer of the image without removing /var/lib/apt/lists in the same RUN",
        fix: "run update and install in one RUN ending with `&& rm -rf /var/lib/apt/lists/*` (or mount a cache on /var/lib/apt/lists)",
        hadolint: &["DL3009"],
    },
    Rule {
        id: "KL009",
        name: "package-cache-kept",
        severity: Severity::Warning,
        message: "pip/npm install keeps its download cache in the layer",
        fix: "use `RUN --mount=type=cache,target=/root/.cache/pip` (npm: /root/.npm), or `pip install --no-cache-dir` / `npm cache clean --force`",
        hadolint: &[],
    },
    Rule {
        id: "KL010",
        name: "shell-form-cmd",
        severity: Severity::Warning,
        message: "shell-form CMD/ENTRYPOINT: signals go to /bin/sh, not to the program",
        fix: "use the JSON (exec) form: `ENTRYPOINT [\"/usr/local/bin/app\"]`",
        hadolint: &["DL3025"],
    },
    Rule {
        id: "KL011",
        name: "no-shell-in-stage",
        severity: Severity::Error,
        message: "a shell is needed but the stage is based on scratch/distroless, which has none",
        fix: "do the work in a builder stage and COPY --from it; use exec-form CMD/ENTRYPOINT",
        hadolint: &[],
    },
    Rule {
        id: "KL012",
        name: "unknown-copy-from",
        severity: Severity::Error,
        message: "COPY --from names no earlier stage",
        fix: "name a stage defined above (`FROM … AS NAME`), or give a full image reference with a tag",
        hadolint: &["DL3022"],
    },
    Rule {
        id: "KL013",
        name: "duplicate-stage-name",
        severity: Severity::Error,
        message: "two stages have the same name",
        fix: "give every stage its own name",
        hadolint: &["DL3024"],
    },
    Rule {
        id: "KL014",
        name: "expose-no-healthcheck",
        severity: Severity::Info,
        message: "EXPOSE without HEALTHCHECK in the final stage",
        fix: "add a HEALTHCHECK (exec form on scratch images), or `HEALTHCHECK NONE` to say there is none on purpose",
        hadolint: &[],
    },
    Rule {
        id: "KL015",
        name: "go-cgo-into-scratch",
        severity: Severity::Warning,
        message: "a Go binary built without CGO_ENABLED=0 is copied into a scratch image",
        fix: "set `ENV CGO_ENABLED=0` in the Go builder stage (or link statically and say so with `# kiln-ignore: KL015`)",
        hadolint: &[],
    },
];

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id.eq_ignore_ascii_case(id))
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    /// 1-based line.
    pub line: usize,
    pub message: String,
    pub fix: String,
}

/// What the rules need besides the file.
#[derive(Debug, Clone, Default)]
pub struct LintOptions {
    /// Also require digests on base images.
    pub strict: bool,
    /// Whether a .dockerignore exists beside the Dockerfile; `None` = unknown (stdin), no check.
    pub dockerignore: Option<bool>,
    /// Rule ids switched off (config).
    pub disabled: BTreeSet<String>,
}

fn finding(id: &'static str, line: usize, detail: Option<String>) -> Finding {
    let r = rule(id).expect("rule ids in this file are in RULES");
    Finding {
        rule: r.id,
        severity: r.severity,
        line,
        message: match detail {
            Some(d) => format!("{}: {d}", r.message),
            None => r.message.to_string(),
        },
        fix: r.fix.to_string(),
    }
}

/// Lint a parsed Dockerfile. Findings are sorted by line, then rule.
pub fn lint(df: &Dockerfile, opts: &LintOptions) -> Vec<Finding> {
    let stages = df.stages();
    let mut out = Vec::new();
    for e in &df.errors {
        out.push(finding("KL000", e.line, Some(e.message.clone())));
    }
    if let Some(false) = opts.dockerignore {
        out.push(finding("KL006", 1, None));
    }
    if stages.is_empty() && df.errors.is_empty() {
        out.push(finding("KL000", 1, Some("no FROM instruction".into())));
    }
    root_final_stage(df, &stages, &mut out);
    unpinned_bases(df, &stages, opts.strict, &mut out);
    instructions(df, &stages, &mut out);
    copy_context_before_deps(df, &stages, &mut out);
    stage_names(df, &stages, &mut out);
    expose_without_healthcheck(df, &stages, &mut out);
    go_cgo_into_scratch(df, &stages, &mut out);

    let suppressed = suppressions(df);
    out.retain(|f| {
        !opts.disabled.contains(f.rule)
            && !suppressed.contains(&(0, f.rule.to_string()))
            && !suppressed.contains(&(f.line, f.rule.to_string()))
    });
    out.sort_by(|a, b| (a.line, a.rule).cmp(&(b.line, b.rule)));
    out.dedup();
    out
}

/// `# kiln-ignore: ID[, ID…]` suppresses those rules on the next instruction;
/// `# kiln-ignore-file: ID…` in the whole file. Returns (instruction line or 0, id).
fn suppressions(df: &Dockerfile) -> BTreeSet<(usize, String)> {
    let mut out = BTreeSet::new();
    for (line, text) in &df.comments {
        let (file_wide, ids) = if let Some(r) = text.strip_prefix("kiln-ignore-file:") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("kiln-ignore:") {
            (false, r)
        } else {
            continue;
        };
        let target = if file_wide {
            Some(0)
        } else {
            df.instructions
                .iter()
                .find(|i| i.line > *line)
                .map(|i| i.line)
        };
        if let Some(t) = target {
            for id in ids
                .split([',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                // Anything after the ids (a reason) is ignored.
                if rule(id).is_some() {
                    out.insert((t, id.to_ascii_uppercase()));
                }
            }
        }
    }
    out
}

fn stage_instrs<'a>(df: &'a Dockerfile, st: &Stage) -> &'a [Instruction] {
    df.instructions.get(st.body.clone()).unwrap_or(&[])
}

/// Indices of the final stage and the stages it is built on (their layers are the image's).
fn final_chain(stages: &[Stage]) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let mut cur = stages.last();
    while let Some(s) = cur {
        if !out.insert(s.index) {
            break;
        }
        cur = s.parent.and_then(|p| stages.get(p));
    }
    out
}

/// Scratch or distroless (without a shell) at the root of the stage's ancestry.
fn root_image<'a>(stages: &'a [Stage], st: &'a Stage) -> &'a Stage {
    let mut cur = st;
    let mut hops = 0;
    while let Some(p) = cur.parent {
        match stages.get(p) {
            Some(s) if hops < stages.len() => {
                cur = s;
                hops += 1;
            }
            _ => break,
        }
    }
    cur
}

fn is_shellless(image: &str) -> bool {
    let i = image.to_ascii_lowercase();
    i == "scratch" || (i.contains("distroless") && !i.contains(":debug"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse::parse;

    fn ids(text: &str) -> Vec<(&'static str, usize)> {
        let opts = LintOptions::default();
        lint(&parse(text), &opts)
            .into_iter()
            .map(|f| (f.rule, f.line))
            .collect()
    }

    #[test]
    fn rule_table_is_consistent() {
        let mut seen = BTreeSet::new();
        for r in RULES {
            assert!(seen.insert(r.id), "duplicate {}", r.id);
            assert!(r.id.starts_with("KL") && r.id.len() == 5);
            assert!(!r.message.is_empty() && !r.fix.is_empty());
        }
    }

    #[test]
    fn clean_file_has_no_findings() {
        let f = "FROM golang:1.22.5 AS build\nENV CGO_ENABLED=0\nWORKDIR /src\nCOPY go.mod go.sum ./\nRUN --mount=type=cache,target=/go/pkg/mod go mod download\nCOPY . .\nRUN go build -o /out/app .\nFROM scratch\nCOPY --from=build /out/app /app\nUSER 65532:65532\nENTRYPOINT [\"/app\"]\n";
        assert_eq!(ids(f), []);
    }

    #[test]
    fn each_rule_fires() {
        assert_eq!(ids("FROM alpine:3.20\nCMD [\"x\"]\n"), [("KL001", 1)]);
        assert_eq!(ids("FROM alpine:3.20\nUSER root\n"), [("KL001", 2)]);
        assert_eq!(ids("FROM alpine\nUSER 1\n"), [("KL002", 1)]);
        assert_eq!(ids("FROM alpine:latest\nUSER 1\n"), [("KL002", 1)]);
        assert_eq!(
            ids("FROM alpine:3.2\nADD app /app\nUSER 1\n"),
            [("KL003", 2)]
        );
        assert_eq!(
            ids("FROM alpine:3.2\nADD https://x/y.tgz rootfs.tar.gz /\nUSER 1\n"),
            []
        );
        assert_eq!(
            ids(
                "FROM node:22.1\nCOPY . .\nRUN --mount=type=cache,target=/root/.npm npm ci\nUSER 1\n"
            ),
            [("KL004", 2)]
        );
        assert_eq!(
            ids(
                "FROM alpine:3.2\nARG NPM_TOKEN\nENV DB_PASSWORD=hunter2 KEY=AKIAIOSFODNN7EXAMPLE\nUSER 1\n"
            ),
            [("KL005", 2), ("KL005", 3), ("KL005", 3)]
        );
        assert_eq!(
            ids("FROM debian:12\nRUN apt-get update && apt-get install -y curl\nUSER 1\n"),
            [("KL007", 2), ("KL008", 2)]
        );
        assert_eq!(
            ids("FROM python:3.12\nRUN pip install flask\nUSER 1\n"),
            [("KL009", 2)]
        );
        assert_eq!(
            ids("FROM alpine:3.2\nUSER 1\nCMD run --me\n"),
            [("KL010", 3)]
        );
        assert_eq!(ids("FROM scratch\nRUN echo\nUSER 1\n"), [("KL011", 2)]);
        assert_eq!(
            ids("FROM scratch\nCOPY --from=nope /a /a\nUSER 1\n"),
            [("KL012", 2)]
        );
        assert_eq!(
            ids("FROM alpine:3 AS a\nFROM alpine:3 AS A\nUSER 1\n"),
            [("KL013", 2)]
        );
        assert_eq!(ids("FROM alpine:3\nUSER 1\nEXPOSE 80\n"), [("KL014", 3)]);
        assert_eq!(
            ids(
                "FROM golang:1.22 AS b\nRUN go build -o /a .\nFROM scratch\nCOPY --from=b /a /a\nUSER 1\nENTRYPOINT [\"/a\"]\n"
            ),
            [("KL015", 2)]
        );
        let o = LintOptions {
            dockerignore: Some(false),
            ..Default::default()
        };
        assert_eq!(lint(&parse("FROM scratch\nUSER 1\n"), &o)[0].rule, "KL006");
    }

    #[test]
    fn suppressions_and_config() {
        let f = "FROM alpine:3\n# kiln-ignore: KL001 this image needs root for ping\nUSER root\n";
        assert_eq!(ids(f), []);
        let f = "# kiln-ignore-file: KL002\nFROM alpine\nUSER 1\n";
        assert_eq!(ids(f), []);
        let mut o = LintOptions::default();
        o.disabled.insert("KL002".into());
        assert!(lint(&parse("FROM alpine\nUSER 1\n"), &o).is_empty());
    }

    #[test]
    fn strict_wants_digests() {
        let o = LintOptions {
            strict: true,
            ..Default::default()
        };
        assert_eq!(
            lint(&parse("FROM alpine:3.20\nUSER 1\n"), &o)[0].rule,
            "KL002"
        );
        assert!(lint(&parse("FROM alpine:3.20@sha256:abc\nUSER 1\n"), &o).is_empty());
    }

    #[test]
    fn global_arg_in_from_is_expanded() {
        assert_eq!(
            ids("ARG TAG=latest\nFROM alpine:${TAG}\nUSER 1\n"),
            [("KL002", 2)]
        );
        assert_eq!(ids("ARG TAG=3.20\nFROM alpine:${TAG}\nUSER 1\n"), []);
    }
}
