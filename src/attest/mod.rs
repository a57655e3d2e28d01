//! Supply-chain outputs: SBOMs (SPDX 2.3 and CycloneDX 1.5 JSON) per platform image and
//! per release. Pure generators: plain data in, bytes out; the pipeline gathers the data
//! (cargo metadata, Go build info, the base's packages) and writes the files.

pub mod cyclonedx;
pub mod gather;
pub mod import;
pub mod outputs;
pub mod provenance;
pub mod release;
pub mod sbom;
pub mod sign;
pub mod sources;
pub mod spdx;

use sbom::{Component, Kind, RelKind, Relation, Sbom};
use sources::{DebPackage, Found};

/// `--sbom`: which documents to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SbomFormat {
    #[default]
    Spdx,
    Cyclonedx,
    Both,
    None,
}

impl SbomFormat {
    /// The formats to write, each with its file suffix.
    pub fn formats(self) -> Vec<Format> {
        match self {
            SbomFormat::Spdx => vec![Format::Spdx],
            SbomFormat::Cyclonedx => vec![Format::CycloneDx],
            SbomFormat::Both => vec![Format::Spdx, Format::CycloneDx],
            SbomFormat::None => Vec::new(),
        }
    }
}

/// `--attestations`: how SBOMs and provenance are attached to images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Attestations {
    /// OCI 1.1 referrers: artifact manifests whose `subject` is the platform manifest (or,
    /// for the release-wide SBOM, the index), in OCI layouts and registries.
    Referrers,
    /// As BuildKit stores them: an `unknown/unknown` attestation manifest per platform
    /// inside the image index (in-toto statements as layers), in every output but a
    /// docker-archive. The index digest changes; the platform manifests do not.
    Buildkit,
    /// Only the files under the output directory.
    None,
}

/// `--archive`: a release archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchiveKind {
    #[value(name = "tar.gz")]
    TarGz,
    Zip,
}

/// One SBOM format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Spdx,
    CycloneDx,
}

impl Format {
    /// `spdx.json` / `cdx.json`.
    pub fn suffix(self) -> &'static str {
        match self {
            Format::Spdx => "spdx.json",
            Format::CycloneDx => "cdx.json",
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::Spdx => spdx::MEDIA_TYPE,
            Format::CycloneDx => cyclonedx::MEDIA_TYPE,
        }
    }

    pub fn predicate_type(self) -> &'static str {
        match self {
            Format::Spdx => spdx::PREDICATE_TYPE,
            Format::CycloneDx => cyclonedx::PREDICATE_TYPE,
        }
    }

    pub fn render(self, sbom: &Sbom) -> Vec<u8> {
        match self {
            Format::Spdx => spdx::render(sbom),
            Format::CycloneDx => cyclonedx::render(sbom),
        }
    }
}

/// One built binary and what is compiled into it.
#[derive(Debug, Clone, Default)]
pub struct BinaryInput {
    /// `linux/arm64`.
    pub platform: String,
    pub name: String,
    /// The project's version.
    pub version: Option<String>,
    pub sha256: String,
    /// Its packages (crates, Go modules, C components, musl).
    pub found: Found,
}

impl BinaryInput {
    pub fn id(&self) -> String {
        format!("binary:{}/{}", self.platform, self.name)
    }

    fn component(&self) -> Component {
        Component {
            id: self.id(),
            kind: Kind::Application,
            name: self.name.clone(),
            version: self.version.clone(),
            license: None,
            purl: None,
            download_location: None,
            sha256: Some(self.sha256.clone()),
        }
    }
}

/// What the image is built on, for the SBOM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BaseInput {
    #[default]
    Scratch,
    /// kiln's distroless base: its Debian packages.
    Debian(Vec<DebPackage>),
    /// Any other image: listed by reference and digest; its contents the packages of the
    /// SBOM attached to it, else NOASSERTION.
    Image {
        reference: String,
        /// The base's platform manifest.
        digest: Option<String>,
        /// The SBOM the base carries for this platform, if it has one.
        sbom: Option<BaseSbom>,
    },
}

/// The SBOM a base image carries (an OCI 1.1 referrer of its manifest or index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseSbom {
    /// `sha256:…` of the document.
    pub digest: String,
    /// Its packages ([`import::base_components`]).
    pub components: Vec<Component>,
}

/// The per-platform image an SBOM describes.
#[derive(Debug, Clone, Default)]
pub struct ImageInput {
    /// Image or project name.
    pub name: String,
    /// `linux/arm64`.
    pub platform: String,
    /// `sha256:…` of the platform manifest, when an image was built.
    pub manifest: Option<String>,
    pub binaries: Vec<BinaryInput>,
    /// The other files the image holds (besides the base): `[[component]]` build steps'
    /// outputs, `[image] files`.
    pub files: Vec<FileInput>,
    pub base: BaseInput,
    /// `SOURCE_DATE_EPOCH`.
    pub created: Option<u64>,
}

/// A file in an image that is neither a binary kiln built nor part of the base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInput {
    /// Absolute path in the image: `/srv/site/index.html`.
    pub path: String,
    /// Hex sha256 of its bytes.
    pub sha256: String,
}

impl FileInput {
    fn component(&self) -> Component {
        Component {
            id: format!("file:{}", self.path),
            kind: Kind::File,
            name: self.path.clone(),
            version: None,
            license: None,
            purl: None,
            download_location: None,
            sha256: Some(self.sha256.clone()),
        }
    }
}

fn oci_arch(platform: &str) -> String {
    platform.split('/').skip(1).collect::<Vec<_>>().join("/")
}

fn add_binary(sbom: &mut Sbom, parent: &str, b: &BinaryInput) {
    let bin = b.component();
    sbom.relationships
        .push(Relation::new(parent, RelKind::Contains, &bin.id));
    for id in &b.found.linked {
        sbom.relationships
            .push(Relation::new(&bin.id, RelKind::DependsOn, id));
    }
    sbom.relationships.extend(b.found.relations.iter().cloned());
    sbom.components.extend(b.found.components.iter().cloned());
    sbom.components.push(bin);
}

/// The SBOM of one platform image: the image contains its binaries (each depending on
/// what is linked into it) and its base's packages.
pub fn platform_sbom(input: &ImageInput) -> (Sbom, Vec<String>) {
    let arch = oci_arch(&input.platform);
    let purl = match &input.manifest {
        Some(d) => format!(
            "pkg:oci/{}@{}?arch={}",
            input.name,
            d.replace(':', "%3A"),
            arch.replace('/', "%2F")
        ),
        None => format!("pkg:oci/{}?arch={}", input.name, arch.replace('/', "%2F")),
    };
    let root = Component::with_purl(
        Kind::Container,
        &input.name,
        input.manifest.as_deref(),
        purl,
    );
    let mut sbom = Sbom::new(
        format!("{} {}", input.name, input.platform),
        root.clone(),
        input.created,
    );
    let mut warnings = Vec::new();
    for b in &input.binaries {
        add_binary(&mut sbom, &root.id, b);
        warnings.extend(b.found.warnings.iter().cloned());
    }
    for f in &input.files {
        let c = f.component();
        sbom.relationships
            .push(Relation::new(&root.id, RelKind::Contains, &c.id));
        sbom.components.push(c);
    }
    match &input.base {
        BaseInput::Scratch => {}
        BaseInput::Debian(pkgs) => {
            for c in sources::deb_packages(pkgs) {
                sbom.relationships
                    .push(Relation::new(&root.id, RelKind::Contains, &c.id));
                sbom.components.push(c);
            }
        }
        BaseInput::Image {
            reference,
            digest,
            sbom: base_sbom,
        } => {
            let c = Component {
                id: format!("base:{reference}"),
                kind: Kind::Container,
                name: reference.clone(),
                version: digest.clone(),
                license: None,
                purl: None,
                download_location: None,
                sha256: None,
            };
            sbom.relationships
                .push(Relation::new(&root.id, RelKind::Contains, &c.id));
            match base_sbom {
                // Its packages are in the base, which the image contains.
                Some(b) => {
                    for p in &b.components {
                        sbom.relationships
                            .push(Relation::new(&c.id, RelKind::Contains, &p.id));
                    }
                    // A package kiln knows itself (linked into a binary too) keeps what
                    // kiln knows of it: a base's SBOM may say less (a dropped LicenseRef).
                    let known: Vec<String> =
                        sbom.components.iter().map(|c| c.id.clone()).collect();
                    sbom.components.extend(
                        b.components
                            .iter()
                            .filter(|p| !known.contains(&p.id))
                            .cloned(),
                    );
                }
                None => warnings.push(format!(
                    "the base image {reference} carries no SBOM kiln reads: its contents are NOASSERTION"
                )),
            }
            sbom.components.push(c);
        }
    }
    warnings.sort();
    warnings.dedup();
    (sbom.finish(), warnings)
}

/// The SBOM of a whole release: the program contains every platform's binaries.
pub fn release_sbom(
    name: &str,
    version: Option<&str>,
    license: Option<&str>,
    binaries: &[BinaryInput],
    created: Option<u64>,
) -> Sbom {
    let mut root = Component::with_purl(
        Kind::Application,
        name,
        version,
        format!("release:{name}@{}", version.unwrap_or("")),
    );
    root.purl = None;
    root.license = license.and_then(sbom::spdx_expression);
    let mut sbom = Sbom::new(format!("{name} release"), root.clone(), created);
    for b in binaries {
        add_binary(&mut sbom, &root.id, b);
    }
    sbom.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(platform: &str) -> BinaryInput {
        let mut found = Found::default();
        let itoa = Component::with_purl(
            Kind::Library,
            "itoa",
            Some("1.0.15"),
            "pkg:cargo/itoa@1.0.15".into(),
        );
        found.linked.push(itoa.id.clone());
        found.components.push(itoa);
        BinaryInput {
            platform: platform.into(),
            name: "hello".into(),
            version: Some("0.1.0".into()),
            sha256: "11".repeat(32),
            found,
        }
    }

    #[test]
    fn image_with_debian_base() {
        let input = ImageInput {
            name: "hello".into(),
            platform: "linux/arm/v7".into(),
            manifest: Some(format!("sha256:{}", "22".repeat(32))),
            binaries: vec![binary("linux/arm/v7")],
            files: Vec::new(),
            base: BaseInput::Debian(vec![DebPackage {
                name: "tzdata".into(),
                version: "2025b-0+deb12u1".into(),
                architecture: "all".into(),
                sha256: Some("33".repeat(32)),
            }]),
            created: None,
        };
        let (s, w) = platform_sbom(&input);
        assert!(w.is_empty());
        assert!(s.root.id.ends_with("?arch=arm%2Fv7"), "{}", s.root.id);
        assert_eq!(s.components.len(), 3);
        let contains = s
            .relationships
            .iter()
            .filter(|r| r.kind == RelKind::Contains)
            .count();
        assert_eq!(contains, 2);
    }

    /// A site step's files are in the image: the image contains each, with its sha256, as a
    /// FILE package (SPDX) / `file` component (CycloneDX).
    #[test]
    fn image_files_are_listed_with_their_digest() {
        let input = ImageInput {
            name: "web".into(),
            platform: "linux/amd64".into(),
            binaries: vec![binary("linux/amd64")],
            files: vec![FileInput {
                path: "/srv/site/index.html".into(),
                sha256: "44".repeat(32),
            }],
            ..Default::default()
        };
        let (s, _) = platform_sbom(&input);
        let file = s
            .components
            .iter()
            .find(|c| c.kind == Kind::File)
            .expect("no file component");
        assert_eq!(file.name, "/srv/site/index.html");
        assert_eq!(file.sha256.as_deref(), Some("44".repeat(32).as_str()));
        assert!(
            s.relationships
                .contains(&Relation::new(&s.root.id, RelKind::Contains, &file.id))
        );
        let spdx: serde_json::Value = serde_json::from_slice(&Format::Spdx.render(&s)).unwrap();
        let pkg = spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "/srv/site/index.html")
            .unwrap();
        assert_eq!(pkg["primaryPackagePurpose"], "FILE");
        let cdx: serde_json::Value = serde_json::from_slice(&Format::CycloneDx.render(&s)).unwrap();
        let comp = cdx["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "/srv/site/index.html")
            .unwrap();
        assert_eq!(comp["type"], "file");
    }

    #[test]
    fn release_lists_each_platforms_binary() {
        let s = release_sbom(
            "hello",
            Some("0.1.0"),
            Some("MIT/Apache-2.0"),
            &[binary("linux/amd64"), binary("linux/arm64")],
            None,
        );
        assert_eq!(s.root.license.as_deref(), Some("MIT OR Apache-2.0"));
        // Two binaries, one shared crate.
        assert_eq!(s.components.len(), 3);
    }
}
