//! Rules on single instructions: RUN (package managers, caches, secrets in commands), COPY
//! and ADD (sources, archives, `--from`), ENV/ARG (secrets).

use super::*;

pub(super) fn is_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    ["http://", "https://", "git@", "git://", "ssh://"]
        .iter()
        .any(|p| l.starts_with(p))
}

pub(super) fn is_archive(s: &str) -> bool {
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
pub(super) fn commands(text: &str) -> Vec<Vec<String>> {
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

pub(super) fn prog_is(w: &str, names: &[&str]) -> bool {
    let base = w.rsplit('/').next().unwrap_or(w);
    names.contains(&base)
}

pub(super) fn cache_mount_to(ins: &Instruction, needle: &[&str]) -> bool {
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
pub(super) fn instructions(df: &Dockerfile, stages: &[Stage], out: &mut Vec<Finding>) {
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

pub(super) fn copy_from(
    from: &str,
    st: &Stage,
    stages: &[Stage],
    line: usize,
    out: &mut Vec<Finding>,
) {
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

pub(super) fn secret_name(name: &str) -> bool {
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

pub(super) fn secret_value(v: &str) -> bool {
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

pub(super) fn secrets(ins: &Instruction, out: &mut Vec<Finding>) {
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

pub(super) fn run_rules(
    ins: &Instruction,
    pip_no_cache_env: bool,
    in_image: bool,
    out: &mut Vec<Finding>,
) {
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
pub(super) fn installs_deps(text: &str) -> bool {
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
