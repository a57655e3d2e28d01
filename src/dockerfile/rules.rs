//! Lint rules: each has a stable id (`KL001`…), a severity, a one-line message and a fix.
//! Rules read the parsed [`Dockerfile`] and its stages; they never touch the file system
//! (whether a `.dockerignore` exists is passed in).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::parse::{Args, Dockerfile, Instruction, Stage, split_words};

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

fn root_final_stage(df: &Dockerfile, stages: &[Stage], out: &mut Vec<Finding>) {
    let Some(last) = stages.last() else { return };
    // The last USER along the chain of stages the final one is built on.
    let mut cur = Some(last);
    let mut hops = 0;
    while let Some(st) = cur {
        if let Some(user) = stage_instrs(df, st)
            .iter()
            .rev()
            .find(|i| i.keyword == "USER")
        {
            let u = user.words().first().cloned().unwrap_or_default();
            let name = u.split(':').next().unwrap_or("");
            if name == "root" || name == "0" {
                out.push(finding(
                    "KL001",
                    user.line,
                    Some(format!("the last USER is `{u}`")),
                ));
            }
            return;
        }
        hops += 1;
        cur = st
            .parent
            .and_then(|p| stages.get(p))
            .filter(|_| hops <= stages.len());
        if cur.is_none() {
            // An image base: distroless `:nonroot` images already run as 65532.
            if ["nonroot", "unprivileged", "rootless"]
                .iter()
                .any(|n| st.base_resolved.contains(n))
                || st.base_resolved.contains('$')
            {
                return;
            }
        }
    }
    out.push(finding(
        "KL001",
        last.line,
        Some("no USER instruction".into()),
    ));
}

/// (name, tag, digest) of an image reference.
fn split_image(r: &str) -> (String, Option<String>, Option<String>) {
    let (rest, digest) = match r.split_once('@') {
        Some((a, d)) => (a, Some(d.to_string())),
        None => (r, None),
    };
    let slash = rest.rfind('/').map(|p| p + 1).unwrap_or(0);
    match rest[slash..].rfind(':') {
        Some(c) => (
            rest[..slash + c].to_string(),
            Some(rest[slash + c + 1..].to_string()),
            digest,
        ),
        None => (rest.to_string(), None, digest),
    }
}

fn unpinned_bases(df: &Dockerfile, stages: &[Stage], strict: bool, out: &mut Vec<Finding>) {
    let _ = df;
    for st in stages {
        let image = &st.base_resolved;
        if st.parent.is_some()
            || image.eq_ignore_ascii_case("scratch")
            || image.is_empty()
            || image.contains('$')
        {
            continue;
        }
        let (_, tag, digest) = split_image(image);
        let detail = match (tag.as_deref(), digest.is_some()) {
            (None, false) => Some(format!("`{image}` has no tag (means latest)")),
            (Some("latest"), false) => Some(format!("`{image}` uses the latest tag")),
            (_, false) if strict => Some(format!("`{image}` has no digest")),
            _ => None,
        };
        if let Some(d) = detail {
            out.push(finding("KL002", st.line, Some(d)));
        }
    }
}

fn is_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    ["http://", "https://", "git@", "git://", "ssh://"]
        .iter()
        .any(|p| l.starts_with(p))
}

fn is_archive(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    [
        ".tar",
        ".tar.gz",
        ".tgz",
        ".tar.bz",
        ".tar.bz2",
        ".tbz",
        ".tbz2",
        ".tar.xz",
        ".txz",
        ".tar.lz",
        ".tlz",
        ".tar.lzma",
        ".tar.z",
        ".tz",
        ".tar.zst",
        ".tzst",
        ".gz",
        ".bz2",
        ".xz",
        ".lz",
        ".lzma",
        ".zst",
    ]
    .iter()
    .any(|e| l.ends_with(e))
}

/// Shell commands of a RUN: split at `&&`, `||`, `;`, `|` and newlines, each as words,
/// with leading `sudo`, `env X=y` and `VAR=value` assignments dropped.
fn commands(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let normalized = text
        .replace("&&", "\n")
        .replace("||", "\n")
        .replace([';', '|'], "\n");
    for part in normalized.split('\n') {
        let mut words = split_words(part);
        while let Some(w) = words.first() {
            if w == "sudo"
                || w == "env"
                || w == "exec"
                || w == "("
                || w == "{"
                || w == "then"
                || w == "do"
                || w == "else"
                || (w.contains('=') && !w.starts_with('-'))
            {
                words.remove(0);
            } else {
                break;
            }
        }
        if !words.is_empty() {
            out.push(words);
        }
    }
    out
}

fn prog_is(w: &str, names: &[&str]) -> bool {
    let base = w.rsplit('/').next().unwrap_or(w);
    names.contains(&base)
}

fn cache_mount_to(ins: &Instruction, needle: &[&str]) -> bool {
    ins.flag_values("mount").any(|m| {
        m.split(',').any(|kv| kv == "type=cache")
            && m.split(',').any(|kv| {
                kv.split_once('=').is_some_and(|(k, v)| {
                    (k == "target" || k == "dst" || k == "destination")
                        && needle.iter().any(|n| v.contains(n))
                })
            })
    })
}

/// RUN-level rules, ADD, CMD/ENTRYPOINT forms, shell-less stages, ARG/ENV secrets, COPY --from.
fn instructions(df: &Dockerfile, stages: &[Stage], out: &mut Vec<Finding>) {
    // Global ARGs (before the first FROM) are checked for secrets too.
    let first_from = stages
        .first()
        .map(|s| s.body.start.saturating_sub(1))
        .unwrap_or(df.instructions.len());
    for ins in df.instructions.get(..first_from).unwrap_or(&[]) {
        if ins.keyword == "ARG" {
            secrets(ins, out);
        }
    }
    let in_image = final_chain(stages);
    for st in stages {
        let shellless = is_shellless(&root_image(stages, st).base_resolved);
        let mut pip_no_cache_env = false;
        for ins in stage_instrs(df, st) {
            match ins.keyword.as_str() {
                "ARG" | "ENV" => {
                    secrets(ins, out);
                    if ins.keyword == "ENV" && ins.text().contains("PIP_NO_CACHE_DIR") {
                        pip_no_cache_env = true;
                    }
                }
                "ADD" if ins.heredocs.is_empty() => {
                    let words = ins.words();
                    let srcs = words.split_last().map(|(_, s)| s).unwrap_or(&[]);
                    if let Some(local) = srcs.iter().find(|s| !is_url(s) && !is_archive(s)) {
                        out.push(finding("KL003", ins.line, Some(format!("`{local}`"))));
                    }
                }
                "CMD" | "ENTRYPOINT" => {
                    if let Args::Shell(s) = &ins.args
                        && !s.trim().is_empty()
                    {
                        out.push(finding(
                            "KL010",
                            ins.line,
                            Some(format!("{} {}", ins.keyword, s.trim())),
                        ));
                        if shellless {
                            out.push(finding(
                                "KL011",
                                ins.line,
                                Some(format!("shell-form {}", ins.keyword)),
                            ));
                        }
                    }
                }
                "RUN" => {
                    if shellless {
                        out.push(finding("KL011", ins.line, Some("RUN".into())));
                    }
                    run_rules(ins, pip_no_cache_env, in_image.contains(&st.index), out);
                }
                "HEALTHCHECK" => {
                    let w = ins.words();
                    if shellless
                        && w.first().is_some_and(|c| c.eq_ignore_ascii_case("CMD"))
                        && !ins
                            .text()
                            .trim_start()
                            .get(3..)
                            .unwrap_or("")
                            .trim_start()
                            .starts_with('[')
                    {
                        out.push(finding(
                            "KL011",
                            ins.line,
                            Some("shell-form HEALTHCHECK CMD".into()),
                        ));
                    }
                }
                "COPY" => {
                    if let Some(from) = ins.flag("from") {
                        copy_from(from, st, stages, ins.line, out);
                    }
                }
                _ => {}
            }
        }
    }
}

fn copy_from(from: &str, st: &Stage, stages: &[Stage], line: usize, out: &mut Vec<Finding>) {
    if from.contains('$') {
        return;
    }
    let lower = from.to_ascii_lowercase();
    if let Ok(n) = lower.parse::<usize>() {
        if n >= st.index {
            out.push(finding(
                "KL012",
                line,
                Some(format!("stage index {n} is not an earlier stage")),
            ));
        }
        return;
    }
    if stages[..st.index.min(stages.len())]
        .iter()
        .any(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        return;
    }
    // An image reference (`nginx:1.27`, `ghcr.io/x/y@sha256:…`) is allowed.
    if from.contains(':') || from.contains('@') {
        return;
    }
    let later = stages
        .iter()
        .any(|s| s.name.as_deref() == Some(lower.as_str()));
    out.push(finding(
        "KL012",
        line,
        Some(if later {
            format!("`{from}` is defined after this stage")
        } else {
            format!("`{from}`")
        }),
    ));
}

fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    let hit = [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "ACCESS_KEY",
        "CREDENTIAL",
        "AUTH_KEY",
    ]
    .iter()
    .any(|p| n.contains(p));
    let benign = [
        "_FILE",
        "_PATH",
        "_DIR",
        "_URL",
        "_ENDPOINT",
        "_ID",
        "_NAME",
    ]
    .iter()
    .any(|s| n.ends_with(s));
    hit && !benign
}

fn secret_value(v: &str) -> bool {
    let looks = |p: &str, min: usize| v.starts_with(p) && v.len() >= min;
    looks("AKIA", 20)
        || looks("ghp_", 30)
        || looks("gho_", 30)
        || looks("github_pat_", 30)
        || looks("glpat-", 20)
        || looks("xoxb-", 20)
        || looks("xoxp-", 20)
        || looks("sk_live_", 20)
        || looks("npm_", 30)
        || v.contains("-----BEGIN")
}

fn secrets(ins: &Instruction, out: &mut Vec<Finding>) {
    let words = ins.words();
    let pairs: Vec<(String, Option<String>)> =
        if ins.keyword == "ENV" && words.len() >= 2 && !words[0].contains('=') {
            // Legacy `ENV NAME value with spaces`.
            vec![(words[0].clone(), Some(words[1..].join(" ")))]
        } else {
            words
                .iter()
                .map(|w| match w.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (w.clone(), None),
                })
                .collect()
        };
    for (name, value) in pairs {
        let by_value = value.as_deref().is_some_and(secret_value);
        let by_name = secret_name(&name)
            && !value.as_deref().is_some_and(|v| {
                v.starts_with("/run/secrets") || v.is_empty() && ins.keyword == "ENV"
            });
        if by_value || by_name {
            out.push(finding(
                "KL005",
                ins.line,
                Some(format!("{} {name}", ins.keyword)),
            ));
        }
    }
}

fn run_rules(ins: &Instruction, pip_no_cache_env: bool, in_image: bool, out: &mut Vec<Finding>) {
    let text = ins.text();
    let cmds = commands(&text);
    let apt = |c: &Vec<String>, sub: &str| {
        c.first().is_some_and(|p| prog_is(p, &["apt-get"])) && c.iter().skip(1).any(|w| w == sub)
    };
    let recommends = cmds.iter().any(|c| {
        apt(c, "install")
            && !c.iter().any(|w| {
                w == "--no-install-recommends"
                    || w.contains("Install-Recommends=false")
                    || w.contains("Install-Recommends=0")
            })
    });
    if recommends {
        out.push(finding("KL007", ins.line, None));
    }
    // `apt-get update` writes the package lists; only a layer of the final image keeps them.
    if in_image && cmds.iter().any(|c| apt(c, "update")) {
        let cleaned = cmds.iter().any(|c| {
            c.first().is_some_and(|p| prog_is(p, &["rm"]))
                && c.iter().any(|w| w.starts_with("/var/lib/apt/lists"))
        }) || cache_mount_to(ins, &["/var/lib/apt/lists"]);
        if !cleaned {
            out.push(finding("KL008", ins.line, None));
        }
    }
    for c in &cmds {
        let pip = match c.first().map(String::as_str) {
            Some(p) if prog_is(p, &["pip", "pip3"]) => c.get(1).is_some_and(|w| w == "install"),
            Some(p) if prog_is(p, &["python", "python3"]) => {
                c.get(1).is_some_and(|w| w == "-m")
                    && c.get(2).is_some_and(|w| w == "pip" || w == "pip3")
                    && c.get(3).is_some_and(|w| w == "install")
            }
            _ => false,
        };
        if pip
            && !pip_no_cache_env
            && !c.iter().any(|w| w == "--no-cache-dir")
            && !text.contains("PIP_NO_CACHE_DIR")
            && !cache_mount_to(ins, &[".cache/pip", ".cache"])
        {
            out.push(finding("KL009", ins.line, Some("pip install".into())));
        }
        let npm = c.first().is_some_and(|p| prog_is(p, &["npm"]))
            && c.get(1)
                .is_some_and(|w| w == "install" || w == "ci" || w == "i");
        // `--cache DIR` removed again in the same RUN keeps nothing either.
        let own_cache_removed = c
            .iter()
            .position(|w| w == "--cache" || w.starts_with("--cache="))
            .is_some_and(|i| {
                let dir = c[i]
                    .strip_prefix("--cache=")
                    .or(c.get(i + 1).map(String::as_str))
                    .unwrap_or("");
                !dir.is_empty()
                    && cmds.iter().any(|r| {
                        r.first().is_some_and(|p| prog_is(p, &["rm"])) && r.iter().any(|w| w == dir)
                    })
            });
        if npm
            && !own_cache_removed
            && !cache_mount_to(ins, &[".npm"])
            && !cmds.iter().any(|c| {
                c.first().is_some_and(|p| prog_is(p, &["npm"]))
                    && c.get(1).is_some_and(|w| w == "cache")
                    && c.get(2).is_some_and(|w| w == "clean")
            })
        {
            out.push(finding("KL009", ins.line, Some(format!("npm {}", c[1]))));
        }
    }
}

/// Commands that install dependencies from manifests.
fn installs_deps(text: &str) -> bool {
    commands(text).iter().any(|c| {
        let p = c
            .first()
            .map(|p| p.rsplit('/').next().unwrap_or(p))
            .unwrap_or("");
        let a = |k: usize| c.get(k).map(String::as_str).unwrap_or("");
        match p {
            "npm" => matches!(a(1), "ci" | "install" | "i") && c.len() == 2 || a(1) == "ci",
            "yarn" => c.len() == 1 || a(1) == "install",
            "pnpm" => a(1) == "install" || a(1) == "i",
            "pip" | "pip3" => {
                a(1) == "install"
                    && c.iter()
                        .any(|w| w == "-r" || w.starts_with("--requirement"))
            }
            "poetry" | "bundle" | "composer" | "pipenv" => a(1) == "install",
            "go" => a(1) == "mod" && a(2) == "download",
            "cargo" => a(1) == "fetch",
            "mvn" => c.iter().any(|w| w.contains("go-offline")),
            _ => false,
        }
    })
}

fn copy_context_before_deps(df: &Dockerfile, stages: &[Stage], out: &mut Vec<Finding>) {
    for st in stages {
        let mut whole: Option<usize> = None;
        for ins in stage_instrs(df, st) {
            match ins.keyword.as_str() {
                "COPY" | "ADD" if ins.flag("from").is_none() && ins.heredocs.is_empty() => {
                    let w = ins.words();
                    if let Some((_, srcs)) = w.split_last()
                        && srcs
                            .iter()
                            .any(|s| matches!(s.as_str(), "." | "./" | "*" | "./*"))
                        && whole.is_none()
                    {
                        whole = Some(ins.line);
                    }
                }
                "RUN" => {
                    if let Some(line) = whole
                        && installs_deps(&ins.text())
                    {
                        out.push(finding(
                            "KL004",
                            line,
                            Some(format!("installed at line {}", ins.line)),
                        ));
                        break;
                    }
                }
                _ => {}
            }
        }
    }
}

fn stage_names(_df: &Dockerfile, stages: &[Stage], out: &mut Vec<Finding>) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for st in stages {
        if let Some(n) = &st.name {
            if let Some(first) = seen.get(n.as_str()) {
                out.push(finding(
                    "KL013",
                    st.line,
                    Some(format!("`{n}` is also the stage at line {first}")),
                ));
            } else {
                seen.insert(n, st.line);
            }
        }
    }
}

fn expose_without_healthcheck(df: &Dockerfile, stages: &[Stage], out: &mut Vec<Finding>) {
    let Some(last) = stages.last() else { return };
    let mut chain = vec![last];
    let mut cur = last;
    while let Some(p) = cur.parent.and_then(|p| stages.get(p)) {
        if chain.len() > stages.len() {
            break;
        }
        chain.push(p);
        cur = p;
    }
    let instrs: Vec<&Instruction> = chain.iter().flat_map(|s| stage_instrs(df, s)).collect();
    if instrs.iter().any(|i| i.keyword == "HEALTHCHECK") {
        return;
    }
    if let Some(e) = stage_instrs(df, last)
        .iter()
        .find(|i| i.keyword == "EXPOSE")
    {
        out.push(finding("KL014", e.line, None));
    }
}

fn go_cgo_into_scratch(df: &Dockerfile, stages: &[Stage], out: &mut Vec<Finding>) {
    for st in stages {
        let root = root_image(stages, st);
        let (name, _, _) = split_image(&root.base_resolved.to_ascii_lowercase());
        if !(name == "golang" || name.ends_with("/golang")) {
            continue;
        }
        let mut cgo_off = false;
        let mut build_line = None;
        let mut chain = Vec::new();
        let mut cur = Some(st);
        while let Some(s) = cur {
            if chain.len() > stages.len() {
                break;
            }
            chain.push(s);
            cur = s.parent.and_then(|p| stages.get(p));
        }
        for s in chain.iter().rev() {
            for ins in stage_instrs(df, s) {
                let t = ins.text();
                if matches!(ins.keyword.as_str(), "ENV" | "ARG") && t.contains("CGO_ENABLED=0") {
                    cgo_off = true;
                }
                if ins.keyword == "RUN" && std::ptr::eq(*s, st) {
                    let builds = commands(&t).iter().any(|c| {
                        c.first().is_some_and(|p| prog_is(p, &["go"]))
                            && c.get(1).is_some_and(|w| w == "build" || w == "install")
                    });
                    if builds && !t.contains("CGO_ENABLED=0") && build_line.is_none() {
                        build_line = Some(ins.line);
                    }
                }
            }
        }
        let Some(line) = build_line.filter(|_| !cgo_off) else {
            continue;
        };
        let copied_into_scratch = stages.iter().any(|t| {
            root_image(stages, t)
                .base_resolved
                .eq_ignore_ascii_case("scratch")
                && stage_instrs(df, t).iter().any(|i| {
                    i.keyword == "COPY"
                        && i.flag("from").is_some_and(|f| {
                            let f = f.to_ascii_lowercase();
                            st.name.as_deref() == Some(f.as_str()) || f == st.index.to_string()
                        })
                })
        });
        if copied_into_scratch {
            out.push(finding("KL015", line, None));
        }
    }
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
