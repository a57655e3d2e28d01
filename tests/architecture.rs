//! The module graph is one-way (docs/architecture.md): read from the `use` lines of
//! `src/`, the rooms import only rooms at their level or below, the top-level graph has no
//! cycle, and inside each room no two files import each other in a circle (a room's
//! `mod.rs` declares and re-exports its files, so edges to and from it are not counted).
//! `cargo test --test integration architecture:: -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Rooms from the top; a room may import its own level and the levels below it. `config`
/// (the resolved settings, with the clap types in `cli` it resolves from) is read by the
/// builders, so it sits below them; it reaches only further down.
const LEVELS: &[&[&str]] = &[
    &["commands"],
    &["pipeline"],
    &["builders", "dockerfile"],
    &["config", "cli"],
    &["toolchain", "inspect", "attest"],
    &["oci", "elf"],
    &[
        "exec", "jobs", "progress", "fsutil", "digest", "par", "target", "error",
    ],
];

fn level(room: &str) -> Option<usize> {
    LEVELS.iter().position(|l| l.contains(&room))
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its unit tests (`#[cfg(test)]` items are test-only edges).
fn non_test_code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut pending_cfg_test = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(d) = skip_depth.as_mut() {
            *d += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            if *d <= 0 {
                skip_depth = None;
            }
            continue;
        }
        if t.starts_with("//") {
            continue;
        }
        if t == "#[cfg(test)]" {
            pending_cfg_test = true;
            continue;
        }
        if pending_cfg_test {
            pending_cfg_test = false;
            let opens = line.matches('{').count() as i32 - line.matches('}').count() as i32;
            if opens > 0 {
                skip_depth = Some(opens);
            }
            continue; // `mod tests;` or a one-line item
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Paths named after `crate::` (also inside `use crate::{a, b::c}` groups), as segments.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let segs: Vec<String> = item
                    .trim()
                    .split("::")
                    .map(|s| s.trim().to_string())
                    .collect();
                if !segs[0].is_empty() {
                    out.push(segs);
                }
            }
        } else {
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(path.split("::").map(str::to_string).collect());
        }
    }
    out
}

/// `super::x` references of a file, as the sibling file names they reach.
fn super_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("super::") {
        rest = &rest[i + "super::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                out.insert(item.trim().split("::").next().unwrap().trim().to_string());
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

struct Graph {
    /// room → rooms it imports
    rooms: BTreeMap<String, BTreeSet<String>>,
    /// (room, file stem) → sibling files it imports
    files: BTreeMap<(String, String), BTreeSet<String>>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut g = Graph {
        rooms: BTreeMap::new(),
        files: BTreeMap::new(),
    };
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        let room = parts[0].clone();
        if ["lib", "main", "bin"].contains(&room.as_str()) {
            continue;
        }
        let code = non_test_code(&std::fs::read_to_string(&f).unwrap());
        let entry = g.rooms.entry(room.clone()).or_default();
        for path in crate_paths(&code) {
            if path[0] != room && level(&path[0]).is_some() {
                entry.insert(path[0].clone());
            }
        }
        // Files directly in a room directory: siblings reached by `super::x` or
        // `crate::room::x`.
        if parts.len() == 2 && parts[1] != "mod" {
            let mut sib: BTreeSet<String> = super_refs(&code);
            for path in crate_paths(&code) {
                if path[0] == room && path.len() > 1 {
                    sib.insert(path[1].clone());
                }
            }
            let dir = src.join(&room);
            sib.retain(|s| {
                !s.is_empty()
                    && s != &parts[1]
                    && s != "mod"
                    && (dir.join(format!("{s}.rs")).is_file() || dir.join(s).is_dir())
            });
            g.files.insert((room, parts[1].clone()), sib);
        }
    }
    g
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(1) => {
                let start = stack.iter().position(|s| s == n).unwrap();
                let mut cycle = stack[start..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            Some(2) => return None,
            _ => {}
        }
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn rooms_import_downwards_only_and_without_cycles() {
    let g = graph();
    let mut wrong = Vec::new();
    for (room, deps) in &g.rooms {
        let Some(l) = level(room) else {
            wrong.push(format!(
                "src/{room} is in no level of LEVELS (add it where it belongs)"
            ));
            continue;
        };
        println!(
            "{room} -> {}",
            deps.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        for d in deps {
            if level(d).is_some_and(|dl| dl < l) {
                wrong.push(format!("{room} imports {d}, a room above it"));
            }
        }
    }
    for (room, deps) in &g.rooms {
        if deps.contains("cli") && !["commands", "config"].contains(&room.as_str()) {
            wrong.push(format!(
                "{room} imports cli: clap types stay in commands and config"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(find_cycle(&g.rooms), None, "a cycle between rooms");
}

#[test]
fn files_inside_a_room_import_without_cycles() {
    let g = graph();
    let mut by_room: BTreeMap<&str, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for ((room, file), deps) in &g.files {
        if !deps.is_empty() {
            println!(
                "{room}/{file} -> {}",
                deps.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        by_room
            .entry(room)
            .or_default()
            .insert(file.clone(), deps.clone());
    }
    for (room, edges) in by_room {
        assert_eq!(
            find_cycle(&edges),
            None,
            "a cycle between the files of src/{room}"
        );
    }
}

#[test]
fn the_checker_sees_imports_and_cycles() {
    let code = "use crate::{oci::x, elf};\nuse super::{a, b::c};\nfn f() { crate::par::par_map(); }\n#[cfg(test)]\nmod tests {\n    use crate::pipeline;\n}\n";
    let code = non_test_code(code);
    let rooms: BTreeSet<String> = crate_paths(&code)
        .into_iter()
        .map(|p| p[0].clone())
        .collect();
    assert_eq!(
        rooms,
        ["elf", "oci", "par"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(
        super_refs(&code),
        ["a", "b"].map(String::from).into_iter().collect()
    );
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    assert_eq!(find_cycle(&edges), None);
    edges.entry("b".into()).or_default().insert("a".into());
    assert!(find_cycle(&edges).is_some());
}
