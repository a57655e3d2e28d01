//! Rules on stages and their order: the final stage's user, pinned bases, dependency
//! manifests copied before the whole context, stage names, EXPOSE without HEALTHCHECK, cgo
//! binaries copied into scratch.

use super::*;

pub(super) fn root_final_stage(df: &Dockerfile, stages: &[Stage], out: &mut Vec<Finding>) {
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
pub(super) fn split_image(r: &str) -> (String, Option<String>, Option<String>) {
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

pub(super) fn unpinned_bases(
    df: &Dockerfile,
    stages: &[Stage],
    strict: bool,
    out: &mut Vec<Finding>,
) {
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

pub(super) fn copy_context_before_deps(df: &Dockerfile, stages: &[Stage], out: &mut Vec<Finding>) {
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

pub(super) fn stage_names(_df: &Dockerfile, stages: &[Stage], out: &mut Vec<Finding>) {
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

pub(super) fn expose_without_healthcheck(
    df: &Dockerfile,
    stages: &[Stage],
    out: &mut Vec<Finding>,
) {
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

pub(super) fn go_cgo_into_scratch(df: &Dockerfile, stages: &[Stage], out: &mut Vec<Finding>) {
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
