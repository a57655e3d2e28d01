//! Where SBOM components come from, each a pure function of data kiln already has: the
//! cargo resolve graph for one target, a Go binary's build info, the `[c]` components the
//! config declares, musl, and the Debian packages of the distroless base.

use std::collections::{BTreeMap, BTreeSet};

use cargo_metadata::{DependencyKind, Metadata, PackageId, TargetKind};
use serde::Deserialize;

use super::sbom::{
    Component, Kind, RelKind, Relation, declared_license, license_ref, spdx_expression,
};
use crate::elf::GoInfo;

/// Components, the relations among them, and what the user should be told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub components: Vec<Component>,
    pub relations: Vec<Relation>,
    /// Ids of the components a binary links in directly or indirectly (the binary
    /// `DEPENDS_ON` each of them).
    pub linked: Vec<String>,
    pub warnings: Vec<String>,
}

impl Found {
    pub fn extend(&mut self, other: Found) {
        self.components.extend(other.components);
        self.relations.extend(other.relations);
        self.linked.extend(other.linked);
        self.warnings.extend(other.warnings);
    }
}

/// `Cargo.lock`'s checksums by (name, version, source).
#[derive(Debug, Clone, Default)]
pub struct LockChecksums(BTreeMap<(String, String, String), String>);

#[derive(Deserialize)]
struct LockFile {
    #[serde(default)]
    package: Vec<LockPackage>,
}

#[derive(Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

impl LockChecksums {
    /// Parse a `Cargo.lock`; a lock kiln cannot read gives no checksums, not an error.
    pub fn parse(text: &str) -> Self {
        let lock: LockFile = toml::from_str(text).unwrap_or(LockFile {
            package: Vec::new(),
        });
        LockChecksums(
            lock.package
                .into_iter()
                .filter_map(|p| {
                    Some((
                        (p.name, p.version, p.source.unwrap_or_default()),
                        p.checksum?,
                    ))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str, version: &str, source: &str) -> Option<&String> {
        self.0
            .get(&(name.to_string(), version.to_string(), source.to_string()))
    }
}

/// `pkg:cargo/NAME@VERSION`.
pub fn cargo_purl(name: &str, version: &str) -> String {
    format!("pkg:cargo/{name}@{version}")
}

/// The packages compiled into `root`'s binaries for the target `meta` was resolved for
/// (`cargo metadata --filter-platform TRIPLE` with the build's feature flags): `root` and
/// everything reachable over normal dependency edges. Build dependencies run on the build
/// machine and proc-macros are compiled for it, so neither (nor what only they pull in) is
/// in the binary.
pub fn rust_packages(meta: &Metadata, root: &PackageId, lock: &LockChecksums) -> Found {
    let mut found = Found::default();
    let Some(resolve) = &meta.resolve else {
        found
            .warnings
            .push("cargo metadata gave no resolve graph: the SBOM lists no crates".into());
        return found;
    };
    let nodes: BTreeMap<&PackageId, &cargo_metadata::Node> =
        resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    let packages: BTreeMap<&PackageId, &cargo_metadata::Package> =
        meta.packages.iter().map(|p| (&p.id, p)).collect();
    let is_proc_macro = |id: &PackageId| {
        packages.get(id).is_some_and(|p| {
            p.targets
                .iter()
                .any(|t| t.kind.contains(&TargetKind::ProcMacro))
        })
    };
    let mut seen: BTreeSet<&PackageId> = BTreeSet::new();
    let mut todo = vec![root];
    let mut edges: Vec<(&PackageId, &PackageId)> = Vec::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(node) = nodes.get(id) else { continue };
        for d in &node.deps {
            let normal = d.dep_kinds.iter().any(|k| k.kind == DependencyKind::Normal);
            if normal && !is_proc_macro(&d.pkg) {
                edges.push((id, &d.pkg));
                todo.push(&d.pkg);
            }
        }
    }
    let mut unlicensed = Vec::new();
    let mut free_text = Vec::new();
    let id_of = |id: &PackageId| {
        packages
            .get(id)
            .map(|p| cargo_purl(&p.name, &p.version.to_string()))
            .unwrap_or_else(|| id.repr.clone())
    };
    for id in &seen {
        let Some(p) = packages.get(id) else { continue };
        let version = p.version.to_string();
        let source = p
            .source
            .as_ref()
            .map(|s| s.repr.clone())
            .unwrap_or_default();
        let mut c = Component::with_purl(
            Kind::Library,
            &p.name,
            Some(&version),
            cargo_purl(&p.name, &version),
        );
        c.license = p.license.as_deref().and_then(declared_license);
        match &c.license {
            None => unlicensed.push(format!("{} {}", p.name, version)),
            Some(l) if spdx_expression(l).is_none() => free_text.push(format!(
                "{} {} (`{l}`: {})",
                p.name,
                version,
                license_ref(l)
            )),
            Some(_) => {}
        }
        c.sha256 = lock.get(&p.name, &version, &source).cloned();
        if let Some(repo) = p
            .repository
            .as_deref()
            .filter(|_| source.starts_with("git+"))
        {
            c.download_location = Some(format!("git+{repo}"));
        }
        found.linked.push(c.id.clone());
        found.components.push(c);
    }
    for (from, to) in edges {
        found
            .relations
            .push(Relation::new(&id_of(from), RelKind::DependsOn, &id_of(to)));
    }
    if !unlicensed.is_empty() {
        found.warnings.push(format!(
            "no license for {}: NOASSERTION in the SBOM",
            unlicensed.join(", ")
        ));
    }
    if !free_text.is_empty() {
        found.warnings.push(format!(
            "a license that is not an SPDX expression: {} in the SPDX SBOM",
            free_text.join(", ")
        ));
    }
    found
}

/// `pkg:golang/PATH@VERSION`.
pub fn go_purl(path: &str, version: &str) -> String {
    format!("pkg:golang/{path}@{version}")
}

/// The Go modules of a binary (main module, dependencies as replaced, the standard
/// library at the toolchain's version). `None` — a Go binary without build info — gives a
/// warning and no components.
pub fn go_modules(info: Option<&GoInfo>, binary: &str) -> Found {
    let mut found = Found::default();
    let Some(info) = info else {
        found.warnings.push(format!(
            "{binary} carries no Go build info: its Go modules are NOASSERTION in the SBOM"
        ));
        return found;
    };
    let version = info.version.trim_start_matches("go");
    let std = Component::with_purl(
        Kind::Library,
        "stdlib",
        Some(version),
        go_purl("stdlib", version),
    );
    let std = Component {
        license: Some("BSD-3-Clause".into()),
        ..std
    };
    found.linked.push(std.id.clone());
    found.components.push(std);
    let mut main_id = None;
    let mods = info
        .main
        .iter()
        .map(|m| (true, m))
        .chain(info.deps.iter().map(|m| (false, m)));
    for (is_main, m) in mods {
        let m = m.replace.as_deref().unwrap_or(m);
        let version = Some(m.version.as_str()).filter(|v| !v.is_empty() && *v != "(devel)");
        let purl = match version {
            Some(v) => go_purl(&m.path, v),
            None => format!("pkg:golang/{}", m.path),
        };
        let c = Component::with_purl(Kind::Library, &m.path, version, purl);
        if is_main {
            main_id = Some(c.id.clone());
        } else if let Some(main) = &main_id {
            found
                .relations
                .push(Relation::new(main, RelKind::DependsOn, &c.id));
        }
        found.linked.push(c.id.clone());
        found.components.push(c);
    }
    found
}

/// A component a C project declares in `[c] components`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DeclaredComponent {
    pub name: String,
    pub version: Option<String>,
    /// SPDX expression.
    pub license: Option<String>,
    pub purl: Option<String>,
    /// Where the source comes from (a URL).
    pub download_location: Option<String>,
}

/// What `[c] components` declares; none gives one warning.
pub fn c_components(declared: &[DeclaredComponent]) -> Found {
    let mut found = Found::default();
    if declared.is_empty() {
        found.warnings.push(
            "the C project declares no components ([c] components in kiln.toml): the SBOM lists only the binaries and musl"
                .into(),
        );
    }
    for d in declared {
        let id = d.purl.clone().unwrap_or_else(|| match &d.version {
            Some(v) => format!("c:{}@{v}", d.name),
            None => format!("c:{}", d.name),
        });
        let c = Component {
            id,
            kind: Kind::Library,
            name: d.name.clone(),
            version: d.version.clone(),
            license: d.license.as_deref().and_then(declared_license),
            purl: d.purl.clone(),
            download_location: d.download_location.clone(),
            sha256: None,
        };
        found.linked.push(c.id.clone());
        found.components.push(c);
    }
    found
}

/// musl as zig links it into every static C or Rust binary.
pub fn musl(version: Option<&str>) -> Component {
    let mut c = match version {
        Some(v) => Component::with_purl(
            Kind::Library,
            "musl",
            Some(v),
            format!("pkg:generic/musl@{v}"),
        ),
        None => Component::with_purl(Kind::Library, "musl", None, "pkg:generic/musl".into()),
    };
    c.license = Some("MIT".into());
    c.download_location =
        version.map(|v| format!("https://musl.libc.org/releases/musl-{v}.tar.gz"));
    c
}

/// One Debian package of a base image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// sha256 of the .deb.
    pub sha256: Option<String>,
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=DISTRO`.
pub fn deb_purl(p: &DebPackage, distro: &str) -> String {
    // `+` and `~` are legal in Debian versions; purl encodes `+`.
    let version = p.version.replace('+', "%2B");
    format!(
        "pkg:deb/debian/{}@{version}?arch={}&distro={distro}",
        p.name, p.architecture
    )
}

/// `debian-12` from base-files' version (`12.4+deb12u9`), else `debian`.
pub fn debian_distro(packages: &[DebPackage]) -> String {
    packages
        .iter()
        .find(|p| p.name == "base-files")
        .and_then(|p| {
            let major: String = p.version.chars().take_while(char::is_ascii_digit).collect();
            (!major.is_empty()).then(|| format!("debian-{major}"))
        })
        .unwrap_or_else(|| "debian".into())
}

/// The base's Debian packages, each contained in the image.
pub fn deb_packages(packages: &[DebPackage]) -> Vec<Component> {
    let distro = debian_distro(packages);
    packages
        .iter()
        .map(|p| {
            let mut c = Component::with_purl(
                Kind::OperatingSystem,
                &p.name,
                Some(&p.version),
                deb_purl(p, &distro),
            );
            c.sha256 = p.sha256.clone();
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::GoModule;

    #[test]
    fn go_modules_with_replacements_and_stdlib() {
        let m = |p: &str, v: &str| GoModule {
            path: p.into(),
            version: v.into(),
            sum: None,
            replace: None,
        };
        let mut dep = m("example.com/old", "v1.0.0");
        dep.replace = Some(Box::new(m("example.com/new", "v1.2.0")));
        let info = GoInfo {
            version: "go1.27.3".into(),
            path: Some("example.com/hello".into()),
            main: Some(m("example.com/hello", "(devel)")),
            deps: vec![dep],
            settings: Default::default(),
        };
        let f = go_modules(Some(&info), "hello");
        let ids: Vec<&str> = f.components.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "pkg:golang/stdlib@1.27.3",
                "pkg:golang/example.com/hello",
                "pkg:golang/example.com/new@v1.2.0"
            ]
        );
        assert_eq!(f.relations.len(), 1);
        assert!(f.warnings.is_empty());
        let none = go_modules(None, "hello");
        assert!(none.components.is_empty());
        assert_eq!(none.warnings.len(), 1);
    }

    #[test]
    fn debian_purls() {
        let p = DebPackage {
            name: "base-files".into(),
            version: "12.4+deb12u9".into(),
            architecture: "amd64".into(),
            sha256: None,
        };
        assert_eq!(debian_distro(std::slice::from_ref(&p)), "debian-12");
        assert_eq!(
            deb_purl(&p, "debian-12"),
            "pkg:deb/debian/base-files@12.4%2Bdeb12u9?arch=amd64&distro=debian-12"
        );
    }

    #[test]
    fn c_without_components_warns_once() {
        assert_eq!(c_components(&[]).warnings.len(), 1);
        let f = c_components(&[DeclaredComponent {
            name: "zlib".into(),
            version: Some("1.3.1".into()),
            license: Some("Zlib".into()),
            purl: None,
            download_location: Some("https://zlib.net/zlib-1.3.1.tar.gz".into()),
        }]);
        assert_eq!(f.components[0].id, "c:zlib@1.3.1");
        assert!(f.warnings.is_empty());
    }

    #[test]
    fn lock_checksums() {
        let l = LockChecksums::parse(
            "version = 4\n[[package]]\nname = \"itoa\"\nversion = \"1.0.15\"\nsource = \"registry+x\"\nchecksum = \"ab\"\n",
        );
        assert_eq!(l.get("itoa", "1.0.15", "registry+x").unwrap(), "ab");
        assert!(l.get("itoa", "1.0.15", "").is_none());
    }
}
