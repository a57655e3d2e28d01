//! The SBOM model both writers render: a root (an image or a release), components with
//! purls, licenses and checksums, and relationships between them. Plain data; `finish`
//! sorts and deduplicates so the same inputs always give the same bytes.

use std::collections::BTreeSet;

/// What a component is; maps to SPDX `primaryPackagePurpose` and CycloneDX `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An OCI image.
    Container,
    /// A binary or the program a release is.
    Application,
    /// A crate, Go module, C library, musl.
    Library,
    /// A Debian package of a base image.
    OperatingSystem,
    /// A file the image holds besides binaries and base: a `[[component]]` build step's
    /// output (a static site), `[image] files`.
    File,
}

/// One thing in the SBOM.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Component {
    /// A key unique inside the document (`pkg:cargo/itoa@1.0.15`, `binary:linux/arm64/hello`);
    /// relationships name components by it.
    pub id: String,
    pub kind: Kind,
    pub name: String,
    pub version: Option<String>,
    /// An SPDX license expression, or free text as the package declares it (see
    /// [`declared_license`]); `None` is NOASSERTION.
    pub license: Option<String>,
    pub purl: Option<String>,
    /// Where the source can be downloaded; `None` is NOASSERTION.
    pub download_location: Option<String>,
    /// Hex sha256 of the component (a binary, a registry crate's .crate, a .deb).
    pub sha256: Option<String>,
}

impl Component {
    /// A component named by its purl (which is then also its id).
    pub fn with_purl(kind: Kind, name: &str, version: Option<&str>, purl: String) -> Self {
        Component {
            id: purl.clone(),
            kind,
            name: name.to_string(),
            version: version.map(str::to_string),
            license: None,
            purl: Some(purl),
            download_location: None,
            sha256: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RelKind {
    /// An image contains a binary or a base package.
    Contains,
    /// A binary or package depends on (has linked in) another.
    DependsOn,
}

/// `from` → `to`, both component ids (or the root's).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Relation {
    pub from: String,
    pub kind: RelKind,
    pub to: String,
}

impl Relation {
    pub fn new(from: &str, kind: RelKind, to: &str) -> Self {
        Relation {
            from: from.to_string(),
            kind,
            to: to.to_string(),
        }
    }
}

/// A whole document before rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sbom {
    /// The document's name: `hello-rust linux/arm64`.
    pub name: String,
    /// What the document describes.
    pub root: Component,
    pub components: Vec<Component>,
    pub relationships: Vec<Relation>,
    /// `SOURCE_DATE_EPOCH`; `None` writes the epoch (SPDX requires a time) or none at all.
    pub created: Option<u64>,
    /// kiln's version, for the creator / tool fields.
    pub tool_version: String,
}

impl Sbom {
    pub fn new(name: impl Into<String>, root: Component, created: Option<u64>) -> Self {
        Sbom {
            name: name.into(),
            root,
            components: Vec::new(),
            relationships: Vec::new(),
            created,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Sort everything, drop duplicate components (same id) and relations, and relations
    /// naming a component that is not there.
    pub fn finish(mut self) -> Self {
        self.components.sort();
        self.components.dedup_by(|a, b| a.id == b.id);
        self.components.retain(|c| c.id != self.root.id);
        let ids: BTreeSet<&str> = self
            .components
            .iter()
            .map(|c| c.id.as_str())
            .chain([self.root.id.as_str()])
            .collect();
        let rels: BTreeSet<Relation> = self
            .relationships
            .iter()
            .filter(|r| {
                r.from != r.to && ids.contains(r.from.as_str()) && ids.contains(r.to.as_str())
            })
            .cloned()
            .collect();
        self.relationships = rels.into_iter().collect();
        self
    }

    /// The root and every component.
    pub fn all(&self) -> impl Iterator<Item = &Component> {
        std::iter::once(&self.root).chain(&self.components)
    }
}

pub use crate::digest::sha256_hex;
pub use crate::oci::image::rfc3339;

/// A license expression as SPDX wants it: cargo's old `MIT/Apache-2.0` becomes
/// `MIT OR Apache-2.0`. `None` when it is not an expression (free text), so the caller
/// writes NOASSERTION rather than an invalid document.
pub fn spdx_expression(license: &str) -> Option<String> {
    let text = license.trim().replace('/', " OR ");
    let spaced = text.replace('(', " ( ").replace(')', " ) ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    if tokens.is_empty() {
        return None;
    }
    let mut expect_id = true;
    let mut depth = 0i32;
    for t in &tokens {
        match *t {
            "(" if expect_id => depth += 1,
            ")" if !expect_id => depth -= 1,
            "AND" | "OR" | "WITH" if !expect_id => expect_id = true,
            id if expect_id
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | ':')) =>
            {
                expect_id = false
            }
            _ => return None,
        }
        if depth < 0 {
            return None;
        }
    }
    (depth == 0 && !expect_id).then(|| tokens.join(" ").replace("( ", "(").replace(" )", ")"))
}

/// A license as declared: its SPDX expression when it is one, else the text itself (free
/// text: `LicenseRef-…` in SPDX, a license name in CycloneDX); `None` when empty.
pub fn declared_license(text: &str) -> Option<String> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    Some(spdx_expression(t).unwrap_or_else(|| t.to_string()))
}

/// The `LicenseRef-…` id of a free-text license: readable, unique through a short hash.
pub fn license_ref(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(40);
    let name = name.trim_matches('-').to_string();
    format!("LicenseRef-{name}-{}", &sha256_hex(text.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn license_expressions() {
        assert_eq!(
            spdx_expression("MIT/Apache-2.0").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(
            spdx_expression("(MIT OR Apache-2.0) AND Unicode-3.0").as_deref(),
            Some("(MIT OR Apache-2.0) AND Unicode-3.0")
        );
        assert_eq!(
            spdx_expression("Apache-2.0 WITH LLVM-exception").as_deref(),
            Some("Apache-2.0 WITH LLVM-exception")
        );
        assert_eq!(spdx_expression("see LICENSE file"), None);
        assert_eq!(spdx_expression("MIT OR"), None);
        assert_eq!(spdx_expression("(MIT"), None);
        assert_eq!(spdx_expression(""), None);
        assert_eq!(
            declared_license(" MIT/Apache-2.0 ").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(
            declared_license("see LICENSE").as_deref(),
            Some("see LICENSE")
        );
        assert_eq!(declared_license("  "), None);
        let r = license_ref("see LICENSE file");
        assert!(r.starts_with("LicenseRef-see-LICENSE-file-"), "{r}");
        assert!(
            r.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        );
    }

    #[test]
    fn finish_sorts_and_drops_dangling() {
        let root = Component::with_purl(Kind::Container, "img", None, "pkg:oci/img".into());
        let mut s = Sbom::new("x", root, None);
        let b = Component::with_purl(Kind::Library, "b", Some("1"), "pkg:cargo/b@1".into());
        let a = Component::with_purl(Kind::Library, "a", Some("1"), "pkg:cargo/a@1".into());
        s.components = vec![b.clone(), a.clone(), b.clone()];
        s.relationships = vec![
            Relation::new("pkg:oci/img", RelKind::Contains, "pkg:cargo/b@1"),
            Relation::new("pkg:oci/img", RelKind::Contains, "pkg:cargo/gone@1"),
            Relation::new("pkg:oci/img", RelKind::Contains, "pkg:cargo/b@1"),
        ];
        let s = s.finish();
        assert_eq!(s.components, vec![a, b]);
        assert_eq!(s.relationships.len(), 1);
    }
}
