//! Polyglot builds: the `[[component]]` tables of a root kiln.toml. They are checked and
//! ordered first (names, outputs, destinations, `needs` cycles: usage errors before anything
//! builds), each project component is planned by its own builder, every stage starts as
//! soon as the components it needs are built (all through the one jobserver), and each
//! platform gets one image holding every component, one layer per component.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::builders::Plan;
use crate::config::{BuildConfig, FileComponent};
use crate::error::UsageError;

mod build;

pub use build::build;

/// A checked component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub name: String,
    pub kind: Kind,
    /// Names of the components built before it.
    pub needs: Vec<String>,
    /// When it builds: 0 for a component needing nothing, else one more than the latest
    /// wave of what it needs (the order of results; a stage starts as soon as what it
    /// needs is built).
    pub wave: usize,
    /// The table as written (features, bins, smoke arguments).
    pub table: FileComponent,
}

/// What a component is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A Rust, Go or C project, built for every platform like `kiln build DIR`.
    Project { dir: PathBuf },
    /// A command run once (`sh -c`) in `dir`, whose `output` goes to `dst` in every image.
    Command {
        build: String,
        dir: PathBuf,
        output: PathBuf,
        dst: String,
    },
}

fn err(msg: String) -> UsageError {
    UsageError(msg)
}

/// Check `tables` (relative paths against `root`) and order them; with `only`, keep those
/// components and what they need. Components come back in the order written (the layer
/// order), each with its wave.
pub fn resolve(
    root: &Path,
    tables: &[FileComponent],
    only: &[String],
) -> Result<Vec<Component>, UsageError> {
    let mut comps: Vec<Component> = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let c = checked(root, i, t, &comps)?;
        comps.push(c);
    }
    let index: BTreeMap<String, usize> = comps
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.clone(), i))
        .collect();
    for c in &comps {
        for n in &c.needs {
            if !index.contains_key(n) {
                return Err(err(format!(
                    "component `{}` needs `{n}`, which is not a component (components: {})",
                    c.name,
                    names(&comps)
                )));
            }
        }
    }
    let waves = waves(&comps, &index)?;
    for (c, w) in comps.iter_mut().zip(waves) {
        c.wave = w;
    }
    check_command_destinations(&comps)?;
    if only.is_empty() {
        return Ok(comps);
    }
    keep_only(comps, &index, only)
}

/// The components named by `--component` and everything they need, in the order written.
fn keep_only(
    comps: Vec<Component>,
    index: &BTreeMap<String, usize>,
    only: &[String],
) -> Result<Vec<Component>, UsageError> {
    let mut keep = BTreeSet::new();
    let mut todo: Vec<&str> = Vec::new();
    for o in only {
        if !index.contains_key(o) {
            return Err(err(format!(
                "--component {o}: no such component (components: {})",
                names(&comps)
            )));
        }
        todo.push(o);
    }
    while let Some(n) = todo.pop() {
        if keep.insert(n.to_string()) {
            todo.extend(comps[index[n]].needs.iter().map(String::as_str));
        }
    }
    Ok(comps
        .into_iter()
        .filter(|c| keep.contains(&c.name))
        .collect())
}

/// The `i`th table (0-based) checked: its name (not one of `earlier`'s) and what kind of
/// component it is.
fn checked(
    root: &Path,
    i: usize,
    t: &FileComponent,
    earlier: &[Component],
) -> Result<Component, UsageError> {
    let name = match (&t.name, &t.path) {
        (Some(n), _) => n.clone(),
        (None, Some(p)) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        (None, None) => {
            return Err(err(format!(
                "[[component]] number {} has neither `path` (a Rust, Go or C project) nor \
                 `name` + `build` (a command producing files): give one of them",
                i + 1
            )));
        }
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(err(format!(
            "component name `{name}` is not valid: use letters, digits, `.`, `_` and `-` \
             (set `name = \"...\"`)"
        )));
    }
    if earlier.iter().any(|c| c.name == name) {
        return Err(err(format!(
            "two components are named `{name}`: give one of them another `name`"
        )));
    }
    let dir = root.join(t.path.clone().unwrap_or_default());
    let kind = match &t.build {
        Some(build) => command_kind(&name, t, build, dir)?,
        None => project_kind(&name, t, root, dir)?,
    };
    Ok(Component {
        name,
        kind,
        needs: t.needs.clone(),
        wave: 0,
        table: t.clone(),
    })
}

/// A `build` component: `output`, an absolute `dst` and `platform-independent` are required.
fn command_kind(
    name: &str,
    t: &FileComponent,
    build: &str,
    dir: PathBuf,
) -> Result<Kind, UsageError> {
    let Some(output) = t.output.clone() else {
        return Err(err(format!(
            "component `{name}` has no `output`: name the file or directory its \
             `build` command produces (relative to {})",
            dir.display()
        )));
    };
    let dst = match &t.dst {
        Some(d) if d.starts_with('/') && d.len() > 1 => d.trim_end_matches('/').to_string(),
        Some(d) => {
            return Err(err(format!(
                "component `{name}`: dst `{d}` must be an absolute path below / in \
                 the image, e.g. \"/srv/www\""
            )));
        }
        None => {
            return Err(err(format!(
                "component `{name}` has no `dst`: say where its output goes in the \
                 image, e.g. dst = \"/srv/{name}\""
            )));
        }
    };
    if !t.platform_independent {
        return Err(err(format!(
            "component `{name}`: a `build` command runs once, for every platform: \
             set `platform-independent = true`. A command that builds per-platform \
             binaries is a C project: give `path` to a directory with `[c] build` \
             in its kiln.toml"
        )));
    }
    Ok(Kind::Command {
        build: build.to_string(),
        dir,
        output,
        dst,
    })
}

/// A project component: a directory, and none of the `build` component's keys.
fn project_kind(
    name: &str,
    t: &FileComponent,
    root: &Path,
    dir: PathBuf,
) -> Result<Kind, UsageError> {
    if t.path.is_none() {
        return Err(err(format!(
            "component `{name}` has no output: give `path` (a Rust, Go or C \
             project) or `build` + `output` + `dst` (a command producing files)"
        )));
    }
    if t.output.is_some() || t.dst.is_some() || t.platform_independent {
        return Err(err(format!(
            "component `{name}`: `output`, `dst` and `platform-independent` belong \
             to `build` components; a project's binaries go to the image's bin \
             directory"
        )));
    }
    if !dir.is_dir() {
        return Err(err(format!(
            "component `{name}`: {} is not a directory: `path` is relative to {}",
            dir.display(),
            root.display()
        )));
    }
    Ok(Kind::Project { dir })
}

fn names(comps: &[Component]) -> String {
    comps
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each component's wave, or the first `needs` cycle found, spelled out.
fn waves(comps: &[Component], index: &BTreeMap<String, usize>) -> Result<Vec<usize>, UsageError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        i: usize,
        comps: &[Component],
        index: &BTreeMap<String, usize>,
        marks: &mut [Mark],
        wave: &mut [usize],
        path: &mut Vec<usize>,
    ) -> Result<(), UsageError> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Open => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut cycle: Vec<&str> = path[start..]
                    .iter()
                    .map(|&p| comps[p].name.as_str())
                    .collect();
                cycle.push(&comps[i].name);
                return Err(err(format!(
                    "the components' `needs` form a cycle: {}. Remove one of these `needs`",
                    cycle.join(" -> ")
                )));
            }
            Mark::New => {}
        }
        marks[i] = Mark::Open;
        path.push(i);
        let mut w = 0;
        for n in &comps[i].needs {
            let j = index[n];
            visit(j, comps, index, marks, wave, path)?;
            w = w.max(wave[j] + 1);
        }
        path.pop();
        marks[i] = Mark::Done;
        wave[i] = w;
        Ok(())
    }
    let mut marks = vec![Mark::New; comps.len()];
    let mut wave = vec![0; comps.len()];
    for i in 0..comps.len() {
        visit(i, comps, index, &mut marks, &mut wave, &mut Vec::new())?;
    }
    Ok(wave)
}

/// Whether one image path holds the other (or they are the same).
fn overlaps(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
}

/// Two `build` components must not write into the same place.
fn check_command_destinations(comps: &[Component]) -> Result<(), UsageError> {
    let dsts: Vec<(&str, &str)> = comps
        .iter()
        .filter_map(|c| match &c.kind {
            Kind::Command { dst, .. } => Some((c.name.as_str(), dst.as_str())),
            Kind::Project { .. } => None,
        })
        .collect();
    for (i, (a, da)) in dsts.iter().enumerate() {
        for (b, db) in &dsts[i + 1..] {
            if overlaps(da, db) {
                return Err(err(format!(
                    "components `{a}` and `{b}` both write {}: give each its own `dst`",
                    if da.len() <= db.len() { db } else { da }
                )));
            }
        }
    }
    Ok(())
}

/// Every image path a project component's binary lands on belongs to one component, and no
/// `build` component's `dst` covers one.
fn check_binary_destinations(
    comps: &[Component],
    plans: &[Option<(BuildConfig, Plan)>],
    bin_path: impl Fn(&str) -> String,
) -> Result<(), UsageError> {
    let mut owner: BTreeMap<String, &str> = BTreeMap::new();
    for (c, p) in comps.iter().zip(plans) {
        let Some((_, plan)) = p else { continue };
        for b in &plan.bins {
            let path = bin_path(b);
            if let Some(other) = owner.insert(path.clone(), &c.name) {
                return Err(err(format!(
                    "components `{other}` and `{}` both write {path}: rename one binary, or \
                     build only some binaries of one of them (`bins = [...]`)",
                    c.name
                )));
            }
        }
    }
    for c in comps {
        if let Kind::Command { dst, .. } = &c.kind
            && let Some((path, other)) = owner.iter().find(|(p, _)| overlaps(p, dst))
        {
            return Err(err(format!(
                "components `{other}` and `{}` both write {path}: give `{}` another `dst`",
                c.name, c.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(name: &str, needs: &[&str]) -> FileComponent {
        FileComponent {
            name: Some(name.into()),
            path: Some(".".into()),
            needs: needs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn command(name: &str, dst: &str) -> FileComponent {
        FileComponent {
            name: Some(name.into()),
            build: Some("true".into()),
            output: Some("out".into()),
            dst: Some(dst.into()),
            platform_independent: true,
            ..Default::default()
        }
    }

    fn resolve_err(tables: &[FileComponent]) -> String {
        let dir = tempfile::tempdir().unwrap();
        resolve(dir.path(), tables, &[]).unwrap_err().0
    }

    #[test]
    fn waves_follow_needs_and_only_keeps_what_is_needed() {
        let dir = tempfile::tempdir().unwrap();
        let tables = [
            command("web", "/srv/www"),
            project("api", &["web"]),
            project("worker", &[]),
            project("tool", &["api"]),
        ];
        let comps = resolve(dir.path(), &tables, &[]).unwrap();
        let waves: Vec<(&str, usize)> = comps.iter().map(|c| (c.name.as_str(), c.wave)).collect();
        assert_eq!(waves, [("web", 0), ("api", 1), ("worker", 0), ("tool", 2)]);
        let only = resolve(dir.path(), &tables, &["api".into()]).unwrap();
        let names: Vec<&str> = only.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["web", "api"]);
        let e = resolve(dir.path(), &tables, &["nope".into()])
            .unwrap_err()
            .0;
        assert!(
            e.contains("--component nope") && e.contains("web, api, worker, tool"),
            "{e}"
        );
    }

    #[test]
    fn a_cycle_is_spelled_out() {
        let e = resolve_err(&[
            project("a", &["b"]),
            project("b", &["c"]),
            project("c", &["a"]),
        ]);
        assert!(e.contains("a -> b -> c -> a"), "{e}");
        let e = resolve_err(&[project("a", &["a"])]);
        assert!(e.contains("a -> a"), "{e}");
    }

    #[test]
    fn bad_tables_are_usage_errors() {
        let mut no_output = command("web", "/srv/www");
        no_output.output = None;
        assert!(resolve_err(&[no_output]).contains("component `web` has no `output`"));
        let e = resolve_err(&[command("a", "/srv/www"), command("b", "/srv/www/img")]);
        assert!(e.contains("`a` and `b` both write /srv/www/img"), "{e}");
        let e = resolve_err(&[command("a", "/srv"), command("a", "/opt")]);
        assert!(e.contains("two components are named `a`"), "{e}");
        let e = resolve_err(&[project("a", &["ghost"])]);
        assert!(e.contains("needs `ghost`"), "{e}");
        let mut per_platform = command("web", "/srv");
        per_platform.platform_independent = false;
        assert!(resolve_err(&[per_platform]).contains("platform-independent = true"));
        let e = resolve_err(&[FileComponent {
            name: Some("x".into()),
            ..Default::default()
        }]);
        assert!(e.contains("component `x` has no output"), "{e}");
        let e = resolve_err(&[FileComponent {
            path: Some("missing".into()),
            ..Default::default()
        }]);
        assert!(e.contains("is not a directory"), "{e}");
    }
}
