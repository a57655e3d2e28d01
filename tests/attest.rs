//! Supply-chain outputs against the real validators: SPDX documents through `pyspdxtools`
//! (PyPI spdx-tools), CycloneDX documents through `check-jsonschema` with the 1.5 schema
//! shipped in cyclonedx-python-lib — both installed by `cargo xtask setup`.

use crate::support::{self, have_tool, unavailable};

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::attest::sbom::{Component, Kind};
use kiln::attest::sources::{self, DebPackage, DeclaredComponent, Found};
use kiln::attest::{BaseInput, BinaryInput, Format, ImageInput, platform_sbom, release_sbom};

/// The CycloneDX 1.5 JSON schema as cyclonedx-python-lib ships it.
fn cyclonedx_schema() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import cyclonedx, os; print(os.path.join(os.path.dirname(cyclonedx.__file__), 'schema', '_res', 'bom-1.5.SNAPSHOT.schema.json'))",
        ])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    p.is_file().then_some(p)
}

fn validators() -> Option<PathBuf> {
    if !have_tool("pyspdxtools", "python3 -m pip install spdx-tools")
        || !have_tool(
            "check-jsonschema",
            "python3 -m pip install check-jsonschema",
        )
    {
        return None;
    }
    let schema = cyclonedx_schema();
    if schema.is_none() {
        unavailable(
            "the CycloneDX schema was not found: `python3 -m pip install cyclonedx-python-lib` (or run `cargo xtask setup`)",
        );
    }
    schema
}

/// Validate a document with the official tools; panics with their output.
pub fn validate(path: &Path, schema: &Path) {
    let name = path.to_string_lossy();
    let out = if name.ends_with(".spdx.json") {
        Command::new("pyspdxtools")
            .arg("-i")
            .arg(path)
            .output()
            .unwrap()
    } else {
        Command::new("check-jsonschema")
            .arg("--schemafile")
            .arg(schema)
            .arg(path)
            .output()
            .unwrap()
    };
    assert!(
        out.status.success(),
        "{name} is not valid:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn crate_component(name: &str, version: &str, license: &str) -> Component {
    let mut c = Component::with_purl(
        Kind::Library,
        name,
        Some(version),
        sources::cargo_purl(name, version),
    );
    c.license = Some(license.into());
    c.sha256 = Some("ab".repeat(32));
    c
}

fn binary(platform: &str) -> BinaryInput {
    let mut found = Found::default();
    for c in [
        crate_component("hello-rust", "0.1.0", "MIT OR Apache-2.0"),
        crate_component("itoa", "1.0.19", "MIT OR Apache-2.0"),
        // Free text: LicenseRef-… with its text in SPDX, a license name in CycloneDX.
        crate_component("odd", "0.1.0", "see LICENSE file (BSD-like)"),
        sources::musl(Some("1.2.5")),
    ] {
        found.linked.push(c.id.clone());
        found.components.push(c);
    }
    found.extend(sources::c_components(&[DeclaredComponent {
        name: "zlib".into(),
        version: Some("1.3.1".into()),
        license: Some("Zlib".into()),
        purl: Some("pkg:generic/zlib@1.3.1".into()),
        download_location: None,
    }]));
    BinaryInput {
        platform: platform.into(),
        name: "hello".into(),
        version: Some("0.1.0".into()),
        sha256: "cd".repeat(32),
        found,
    }
}

#[test]
fn sboms_validate_against_the_official_schemas() {
    let Some(schema) = validators() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let debian = BaseInput::Debian(vec![
        DebPackage {
            name: "base-files".into(),
            version: "12.4+deb12u12".into(),
            architecture: "amd64".into(),
            sha256: Some("01".repeat(32)),
        },
        DebPackage {
            name: "tzdata".into(),
            version: "2025b-0+deb12u2".into(),
            architecture: "all".into(),
            sha256: None,
        },
    ]);
    let mut docs = Vec::new();
    for (platform, base) in [
        ("linux/amd64", debian),
        (
            "linux/arm/v7",
            BaseInput::Image {
                reference: "oci:base".into(),
                digest: Some(format!("sha256:{}", "ef".repeat(32))),
                sbom: None,
            },
        ),
    ] {
        let (sbom, _) = platform_sbom(&ImageInput {
            name: "hello-rust".into(),
            platform: platform.into(),
            manifest: Some(format!("sha256:{}", "12".repeat(32))),
            binaries: vec![binary(platform)],
            // A file besides the binary (a site step's output): FILE / `file` pass both
            // validators too.
            files: vec![kiln::attest::FileInput {
                path: "/srv/www/index.html".into(),
                sha256: "55".repeat(32),
            }],
            base,
            created: Some(1700000000),
        });
        docs.push((platform.replace('/', "-"), sbom));
    }
    // A base that carries an SBOM (here the Debian-based image's own, as kiln wrote it):
    // its packages merged in, contained by the base, and no NOASSERTION warning.
    let carried = Format::Spdx.render(&docs[0].1);
    let (on_base, warnings) = platform_sbom(&ImageInput {
        name: "on-base".into(),
        platform: "linux/amd64".into(),
        manifest: Some(format!("sha256:{}", "34".repeat(32))),
        binaries: vec![binary("linux/amd64")],
        files: Vec::new(),
        base: BaseInput::Image {
            reference: "oci:base:1".into(),
            digest: Some(format!("sha256:{}", "12".repeat(32))),
            sbom: Some(kiln::attest::BaseSbom {
                digest: kiln::digest::sha256_digest(&carried),
                components: kiln::attest::import::base_components(&carried).unwrap(),
            }),
        },
        created: Some(1700000000),
    });
    assert!(
        !warnings.iter().any(|w| w.contains("NOASSERTION")),
        "{warnings:?}"
    );
    assert!(
        on_base.components.iter().any(|c| c
            .purl
            .as_deref()
            .is_some_and(|p| p.starts_with("pkg:deb/debian/tzdata@"))),
        "{:?}",
        on_base.components
    );
    docs.push(("on-base".into(), on_base));
    docs.push((
        "release".into(),
        release_sbom(
            "hello-rust",
            Some("0.1.0"),
            Some("MIT/Apache-2.0"),
            &[binary("linux/amd64"), binary("linux/arm64")],
            None,
        ),
    ));
    for (name, sbom) in &docs {
        for f in [Format::Spdx, Format::CycloneDx] {
            let path = tmp.path().join(format!("{name}.{}", f.suffix()));
            std::fs::write(&path, f.render(sbom)).unwrap();
            validate(&path, &schema);
            let text = std::fs::read_to_string(&path).unwrap();
            let free = match f {
                Format::Spdx => "\"extractedText\": \"see LICENSE file (BSD-like)\"",
                Format::CycloneDx => "\"name\": \"see LICENSE file (BSD-like)\"",
            };
            assert!(text.contains(free), "{name}: {text}");
        }
    }
}

/// Parse a provenance statement strictly against the in-toto attestation framework's
/// definitions (PyPI in-toto-attestation): the Statement v1 (validated), and the predicate
/// as SLSA provenance v1 — an unknown or mistyped field is an error.
const CHECK_PROVENANCE: &str = r#"
import json, sys
from google.protobuf import json_format
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
doc = json.load(open(sys.argv[1]))
Statement.copy_from_pb(json_format.ParseDict(doc, statement_pb2.Statement())).validate()
assert doc["predicateType"] == "https://slsa.dev/provenance/v1", doc["predicateType"]
p = json_format.ParseDict(doc["predicate"], provenance_pb2.Provenance())
assert p.build_definition.build_type and p.run_details.builder.id
for d in p.build_definition.resolved_dependencies:
    assert d.uri or d.digest or d.content, d
print("ok")
"#;

/// Check a provenance file with [`CHECK_PROVENANCE`]; `false` when the bindings are missing.
fn check_provenance(path: &Path) -> bool {
    let have = Command::new("python3")
        .args(["-c", "import in_toto_attestation"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        unavailable("in-toto-attestation not found: `python3 -m pip install in-toto-attestation`");
        return false;
    }
    let out = Command::new("python3")
        .args(["-c", CHECK_PROVENANCE])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} is not SLSA provenance v1:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// `name@version` of every `pkg:cargo` purl in an SPDX document.
fn spdx_cargo_packages(doc: &serde_json::Value) -> std::collections::BTreeSet<String> {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["externalRefs"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| {
            r["referenceLocator"]
                .as_str()?
                .strip_prefix("pkg:cargo/")
                .map(str::to_string)
        })
        .collect()
}

/// What `cargo tree` says is compiled into the target's binaries: normal edges, no
/// proc-macros (they run on the build machine).
fn cargo_tree(manifest: &Path, triple: &str) -> std::collections::BTreeSet<String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["tree", "--manifest-path"])
        .arg(manifest)
        .args([
            "--target",
            triple,
            "-e",
            "normal,no-proc-macro",
            "--prefix",
            "none",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?;
            let version = w.next()?.strip_prefix('v')?;
            Some(format!("{name}@{version}"))
        })
        .collect()
}

#[test]
fn hello_rust_release_lists_exactly_the_compiled_crates_and_is_reproducible() {
    let Some(schema) = validators() else { return };
    if !have_tool("unzip", "apt-get install -y unzip") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let project = support::example("hello-rust");
    let build = |dist: &str, sbom: &str| {
        let out = support::build_into(
            &project,
            "linux/arm64",
            &tmp.path().join(dist),
            &[
                "--release",
                "--sbom",
                sbom,
                "--archive",
                "tar.gz",
                "--archive",
                "zip",
                "-o",
                &format!("oci:{}", tmp.path().join(format!("{dist}-img")).display()),
                "--message-format",
                "json",
            ],
        );
        support::json_lines(&out)
    };
    let one = build("one", "both");
    let dist = tmp.path().join("one");
    let outputs: Vec<&serde_json::Value> = one.iter().filter(|m| m["reason"] == "output").collect();
    let kinds: Vec<&str> = outputs
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    for k in ["sbom", "provenance", "archive", "checksums"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    for m in &outputs {
        let path = PathBuf::from(m["path"].as_str().unwrap());
        let data = std::fs::read(&path).unwrap();
        assert_eq!(m["size"], data.len());
        assert_eq!(m["digest"], kiln::digest::sha256_digest(&data));
        let name = path.to_string_lossy().into_owned();
        if name.ends_with(".spdx.json") || name.ends_with(".cdx.json") {
            validate(&path, &schema);
        }
        if name.ends_with(".intoto.json") {
            check_provenance(&path);
        }
    }

    // Every file written under the output directory is in a message (binaries as
    // `artifact`, the rest as `output`), so a pipeline can upload them without globbing.
    let listed: std::collections::BTreeSet<PathBuf> = one
        .iter()
        .filter(|m| m["reason"] == "output" || m["reason"] == "artifact")
        .map(|m| PathBuf::from(m["path"].as_str().unwrap()))
        .collect();
    let mut written = Vec::new();
    let mut dirs = vec![dist.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                written.push(p);
            }
        }
    }
    for p in &written {
        assert!(
            listed.contains(p),
            "{} is in no message: {listed:?}",
            p.display()
        );
    }

    // The arm64 SBOM lists exactly what cargo compiles for aarch64, plus musl.
    let spdx: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dist.join("hello-rust-0.1.0-linux-arm64.spdx.json")).unwrap(),
    )
    .unwrap();
    let listed = spdx_cargo_packages(&spdx);
    let compiled = cargo_tree(&project.join("Cargo.toml"), "aarch64-unknown-linux-musl");
    assert!(
        compiled.iter().any(|p| p.starts_with("itoa@")),
        "{compiled:?}"
    );
    assert_eq!(listed, compiled);
    let text = serde_json::to_string(&spdx).unwrap();
    assert!(text.contains("pkg:generic/musl@"), "no musl in the SBOM");
    assert!(
        !text.contains("pkg:cargo/cc@"),
        "a build dependency is not in the binary"
    );

    // sha256sum -c passes from dist/.
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&dist)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // The zip and the tar.gz hold the same files, with their modes: unzip and tar (not
    // kiln) unpack them.
    let unpacked = |tool: &[&str], archive: &str, into: &str| {
        let dir = tmp.path().join(into);
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(tool[0])
            .args(&tool[1..])
            .arg(dist.join(archive))
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{tool:?} {archive}: {out:?}");
        dir.join("hello-rust-0.1.0-linux-arm64")
    };
    let from_tar = unpacked(
        &["tar", "-xzf"],
        "hello-rust-0.1.0-linux-arm64.tar.gz",
        "untar",
    );
    let from_zip = unpacked(
        &["unzip", "-q"],
        "hello-rust-0.1.0-linux-arm64.zip",
        "unzip",
    );
    let listing = |dir: &Path| {
        use std::os::unix::fs::PermissionsExt as _;
        let mut v: Vec<(String, u32, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, mode, std::fs::read(&p).unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let files = listing(&from_tar);
    assert!(
        files.iter().any(|(n, m, _)| n == "hello" && m & 0o111 != 0),
        "{:?}",
        files.iter().map(|(n, m, _)| (n, m)).collect::<Vec<_>>()
    );
    assert_eq!(
        files.iter().find(|(n, ..)| n == "hello").unwrap().2,
        std::fs::read(dist.join("linux-arm64/hello")).unwrap()
    );
    assert!(listing(&from_zip) == files, "the zip and the tar.gz differ");

    // Again into another directory: the same bytes; without SBOMs, the same index.
    let two = build("two", "both");
    for f in [
        "hello-rust-0.1.0-linux-arm64.tar.gz",
        "hello-rust-0.1.0-linux-arm64.zip",
        "hello-rust-0.1.0-linux-arm64.spdx.json",
        "hello-rust-0.1.0-linux-arm64.cdx.json",
        "hello-rust-0.1.0.spdx.json",
        "SHA256SUMS",
    ] {
        assert_eq!(
            std::fs::read(dist.join(f)).unwrap(),
            std::fs::read(tmp.path().join("two").join(f)).unwrap(),
            "{f} differs between two runs"
        );
    }
    let index = |msgs: &[serde_json::Value]| {
        msgs.iter()
            .find(|m| m["reason"] == "index")
            .map(|m| m["digest"].clone())
            .unwrap()
    };
    let three = build("three", "none");
    assert_eq!(index(&one), index(&two));
    assert_eq!(index(&one), index(&three));
    assert!(
        !tmp.path()
            .join("three/hello-rust-0.1.0-linux-arm64.spdx.json")
            .exists()
    );
}

/// `skopeo inspect --raw` of a registry reference, parsed.
fn skopeo_raw(reference: &str) -> serde_json::Value {
    serde_json::from_slice(&crate::registry::skopeo_raw(reference)).unwrap()
}

fn openssl(args: &[&str], dir: &Path) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One signed build of hello-rust for arm64 into a tagged OCI layout and the test registry:
/// the SBOM and provenance are referrers of the platform manifest (the release SBOM of the
/// index) in the layout's index.json and behind the registry's `sha256-<hex>` fallback tag;
/// the image digests are those of a build without attestations; openssl verifies the DSSE
/// signatures over their pre-authentication encoding.
#[test]
fn attestations_are_referrers_in_layouts_and_registries_and_signatures_verify() {
    if validators().is_none() {
        return;
    }
    for (tool, install) in [
        ("skopeo", "apt-get install -y skopeo"),
        ("openssl", "apt-get install -y openssl"),
    ] {
        if !have_tool(tool, install) {
            return;
        }
    }
    let Some(reg) = crate::registry::registry() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "key.pem",
        ],
        t,
    );
    openssl(&["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"], t);
    let project = support::example("hello-rust");
    let repo = format!("{}/attest/hello", reg.addr);
    let layout = t.join("img");
    let out = support::build_into(
        &project,
        "linux/arm64",
        &t.join("dist"),
        &[
            "--release",
            "--sbom",
            "both",
            "--sign-key",
            &t.join("key.pem").display().to_string(),
            "-o",
            &format!("oci:{}:v1", layout.display()),
            "-o",
            &format!("docker://{repo}:v1"),
            "--message-format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let msgs = support::json_lines(&out);
    let index_digest = msgs
        .iter()
        .find(|m| m["reason"] == "index")
        .and_then(|m| m["digest"].as_str())
        .unwrap()
        .to_string();
    let manifest = msgs
        .iter()
        .find(|m| m["reason"] == "image")
        .and_then(|m| m["manifest"].as_str())
        .unwrap()
        .to_string();
    assert!(
        msgs.iter()
            .any(|m| m["reason"] == "output" && m["kind"] == "signature"),
        "no signature output"
    );

    // The layout: index.json lists the image and its referrers; each names its subject.
    let index_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = index_json["manifests"].as_array().unwrap();
    let blob = |d: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let mut types: Vec<(String, String, bool)> = Vec::new();
    for e in entries.iter().filter(|e| e.get("artifactType").is_some()) {
        let m: serde_json::Value =
            serde_json::from_slice(&blob(e["digest"].as_str().unwrap())).unwrap();
        assert_eq!(m["artifactType"], e["artifactType"]);
        assert_eq!(
            m["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        let subject = m["subject"]["digest"].as_str().unwrap().to_string();
        assert!(subject == manifest || subject == index_digest, "{subject}");
        let signed = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["mediaType"] == "application/vnd.dsse.envelope.v1+json");
        types.push((
            m["artifactType"].as_str().unwrap().to_string(),
            subject,
            signed,
        ));
    }
    types.sort();
    let expect = |t: &str, s: &str| (t.to_string(), s.to_string(), true);
    let mut want = vec![
        expect("application/spdx+json", &manifest),
        expect("application/spdx+json", &index_digest),
        expect("application/vnd.cyclonedx+json", &manifest),
        expect("application/vnd.cyclonedx+json", &index_digest),
        expect("application/vnd.in-toto+json", &manifest),
    ];
    want.sort();
    assert_eq!(types, want);
    // kiln reads the tagged image as before.
    let read = kiln::oci::read_image(&format!("oci:{}:v1", layout.display())).unwrap();
    assert_eq!(read.digest.as_deref(), Some(index_digest.as_str()));

    // The registry: the fallback tag of the platform manifest lists the same referrers.
    let pushed = crate::registry::skopeo_raw(&format!("{repo}:v1"));
    assert_eq!(kiln::digest::sha256_digest(&pushed), index_digest);
    let fallback = skopeo_raw(&format!("{repo}:{}", manifest.replacen(':', "-", 1)));
    let listed = fallback["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{fallback}");
    for d in listed {
        let m = skopeo_raw(&format!("{repo}@{}", d["digest"].as_str().unwrap()));
        assert_eq!(m["subject"]["digest"], manifest.as_str());
        assert_eq!(m["artifactType"], d["artifactType"]);
    }
    let fallback_index = skopeo_raw(&format!("{repo}:{}", index_digest.replacen(':', "-", 1)));
    assert_eq!(fallback_index["manifests"].as_array().unwrap().len(), 2);

    // `kiln inspect` lists what is attached, in the layout and in the registry.
    for image in [
        format!("oci:{}:v1", layout.display()),
        format!("docker://{repo}:v1"),
    ] {
        let out = support::capture(support::kiln().args(["inspect", "--json", &image]));
        assert!(out.status.success(), "{}", support::stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let list = doc["attestations"].as_array().unwrap();
        assert_eq!(list.len(), 5, "{image}: {list:?}");
        assert!(list.iter().all(|a| a["signed"] == true));
        let on_platform = list
            .iter()
            .filter(|a| a["platform"] == "linux/arm64" && a["subject"] == manifest.as_str())
            .count();
        assert_eq!(on_platform, 3, "{list:?}");
        assert!(
            list.iter()
                .any(|a| a["predicate_type"] == "https://slsa.dev/provenance/v1")
        );
        let human = support::capture(support::kiln().args(["inspect", &image]));
        let text = support::stdout(&human);
        assert!(text.contains("ATTACHED TO"), "{text}");
        assert!(text.contains("index  "), "{text}");
        assert!(text.contains("application/vnd.in-toto+json"), "{text}");
    }

    // The same image without attestations has the same digests.
    let plain = support::build_into(
        &project,
        "linux/arm64",
        &t.join("dist-plain"),
        &[
            "--release",
            "--sbom",
            "none",
            "--attestations",
            "none",
            "-o",
            &format!("oci:{}:v1", t.join("plain").display()),
            "--message-format",
            "json",
        ],
    );
    let plain = support::json_lines(&plain);
    assert!(
        plain
            .iter()
            .any(|m| m["reason"] == "index" && m["digest"] == index_digest.as_str())
    );
    let plain_index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.join("plain/index.json")).unwrap()).unwrap();
    assert_eq!(plain_index["manifests"].as_array().unwrap().len(), 1);

    // The signatures: openssl verifies each envelope's signature over the DSSE PAE.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let dist = t.join("dist");
    let mut verified = 0;
    for e in std::fs::read_dir(&dist).unwrap() {
        let path = e.unwrap().path();
        if !path.to_string_lossy().ends_with(".dsse.json") {
            continue;
        }
        let env: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let payload_type = env["payloadType"].as_str().unwrap();
        assert_eq!(payload_type, "application/vnd.in-toto+json");
        let payload = b64.decode(env["payload"].as_str().unwrap()).unwrap();
        let statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
        std::fs::write(
            t.join("pae.bin"),
            kiln::attest::sign::pae(payload_type, &payload),
        )
        .unwrap();
        std::fs::write(
            t.join("sig.der"),
            b64.decode(env["signatures"][0]["sig"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        let ok = openssl(
            &[
                "dgst",
                "-sha256",
                "-verify",
                "pub.pem",
                "-signature",
                "sig.der",
                "pae.bin",
            ],
            t,
        );
        assert!(String::from_utf8_lossy(&ok.stdout).contains("Verified OK"));
        // A changed payload does not verify.
        let mut bad = kiln::attest::sign::pae(payload_type, &payload);
        bad.push(b' ');
        std::fs::write(t.join("bad.bin"), bad).unwrap();
        let refused = Command::new("openssl")
            .args([
                "dgst",
                "-sha256",
                "-verify",
                "pub.pem",
                "-signature",
                "sig.der",
                "bad.bin",
            ])
            .current_dir(t)
            .output()
            .unwrap();
        assert!(!refused.status.success());
        verified += 1;
    }
    // Provenance, two platform SBOMs and two release SBOMs.
    assert_eq!(verified, 5);
}

/// GET `path` from a plain-HTTP registry: status, content type, parsed JSON body.
fn registry_get(addr: &str, path: &str) -> (u16, String, serde_json::Value) {
    let resp = match ureq::get(&format!("http://{addr}{path}"))
        .set("Accept", "application/vnd.oci.image.index.v1+json")
        .call()
    {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {path}: {e}"),
    };
    let status = resp.status();
    let ctype = resp.content_type().to_string();
    let body = resp.into_string().unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    (status, ctype, body)
}

/// A registry WITH the OCI 1.1 referrers API (ferro-oci-server; Debian's docker-registry
/// lacks it): kiln pushes the SBOMs and provenance as manifests whose `subject` the registry
/// indexes, writes no `sha256-<hex>` fallback tag, and `kiln inspect` finds them through
/// `GET /v2/<repo>/referrers/<digest>`.
#[test]
fn attestations_use_the_referrers_api_where_the_registry_has_it() {
    let Some(reg) = crate::registry::registry_with_referrers_api() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let project = support::example("hello-rust");
    let repo = format!("{}/attest/api", reg.addr);
    let image = format!("docker://{repo}:v1");
    let push = |dist: &str| {
        let out = support::build_into(
            &project,
            "linux/arm64",
            &tmp.path().join(dist),
            &[
                "--release",
                "--sbom",
                "both",
                "--provenance",
                "-o",
                &image,
                "--message-format",
                "json",
            ],
        );
        assert!(out.status.success(), "{}", support::stderr(&out));
        out
    };
    let out = push("dist");
    let msgs = support::json_lines(&out);
    let field = |reason: &str, key: &str| {
        msgs.iter()
            .find(|m| m["reason"] == reason)
            .and_then(|m| m[key].as_str())
            .unwrap_or_else(|| panic!("no {reason} message with {key}: {msgs:?}"))
            .to_string()
    };
    let index_digest = field("index", "digest");
    let manifest = field("image", "manifest");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains(":sha256-"),
        "a fallback tag was reported: {text}"
    );

    // The registry's own referrers API lists them: three on the platform manifest (SPDX,
    // CycloneDX, provenance), two release SBOMs on the index.
    for (subject, want) in [
        (
            &manifest,
            vec![
                "application/spdx+json",
                "application/vnd.cyclonedx+json",
                "application/vnd.in-toto+json",
            ],
        ),
        (
            &index_digest,
            vec!["application/spdx+json", "application/vnd.cyclonedx+json"],
        ),
    ] {
        let (status, ctype, index) =
            registry_get(&reg.addr, &format!("/v2/attest/api/referrers/{subject}"));
        assert_eq!(status, 200, "{index}");
        assert!(
            ctype.starts_with("application/vnd.oci.image.index.v1+json"),
            "{ctype}"
        );
        let mut types: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["artifactType"].as_str().unwrap())
            .collect();
        types.sort();
        assert_eq!(types, want, "{index}");
    }
    // No fallback tag: the only tag is the image's.
    let (status, _, tags) = registry_get(&reg.addr, "/v2/attest/api/tags/list");
    assert_eq!(status, 200, "{tags}");
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));

    // `kiln inspect` reads them back through the API (there is no tag to follow).
    let out = support::capture(support::kiln().args(["inspect", "--json", &image]));
    assert!(out.status.success(), "{}", support::stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = doc["attestations"].as_array().unwrap();
    assert_eq!(list.len(), 5, "{list:?}");
    let on = |subject: &str| list.iter().filter(|a| a["subject"] == subject).count();
    assert_eq!(on(&manifest), 3, "{list:?}");
    assert_eq!(on(&index_digest), 2, "{list:?}");
    assert!(
        list.iter()
            .any(|a| a["predicate_type"] == "https://slsa.dev/provenance/v1")
    );

    // A second build into another directory: its provenance differs (the command line
    // names that directory), the SBOMs do not. The new provenance is attached beside the
    // old one, and nothing is listed twice.
    push("dist2");
    let (_, _, index) = registry_get(&reg.addr, &format!("/v2/attest/api/referrers/{manifest}"));
    let mut digests: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    digests.sort();
    let listed = digests.len();
    digests.dedup();
    assert_eq!(listed, digests.len(), "listed twice: {index}");
    assert_eq!(listed, 4, "{index}");
    for d in digests {
        let (status, _, _) = registry_get(&reg.addr, &format!("/v2/attest/api/manifests/{d}"));
        assert_eq!(status, 200, "{d}");
    }
}

#[test]
fn a_bad_signing_key_is_a_usage_error_before_building() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("rsa.pem");
    std::fs::write(
        &key,
        "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    for (k, says) in [
        (tmp.path().join("missing.pem"), "cannot read"),
        (key, "not supported"),
    ] {
        let out = support::build_into(
            &support::example("hello-rust"),
            "linux/arm64",
            &tmp.path().join("dist"),
            &["--provenance", "--sign-key", &k.display().to_string()],
        );
        assert_eq!(out.status.code(), Some(2));
        assert!(
            support::stderr(&out).contains(says),
            "{}",
            support::stderr(&out)
        );
    }
}

/// Real keys from openssl: encrypted PKCS#8 and encrypted SEC1 (`EC PRIVATE KEY` with
/// `Proc-Type`) are refused with a command that really writes a usable copy; RSA, P-384
/// and Ed25519 keys are refused as not P-256; a SEC1 P-256 key with its `EC PARAMETERS`
/// block (what `openssl ecparam -genkey` writes) is accepted.
#[test]
fn real_openssl_keys_are_accepted_or_refused_with_a_working_hint() {
    if !have_tool("openssl", "apt-get install -y openssl") {
        return;
    }
    use kiln::attest::sign::SigningKey;
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let p256 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
    openssl(
        &[
            &["genpkey"],
            &p256[..],
            &["-aes256", "-pass", "pass:pw", "-out", "enc8.pem"],
        ]
        .concat(),
        t,
    );
    openssl(
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "sec1.pem",
        ],
        t,
    );
    openssl(
        &[
            "ec", "-in", "sec1.pem", "-aes128", "-passout", "pass:pw", "-out", "enc1.pem",
        ],
        t,
    );
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.pem",
        ],
        t,
    );
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "p384.pem",
        ],
        t,
    );
    openssl(&["genpkey", "-algorithm", "ED25519", "-out", "ed.pem"], t);

    assert!(SigningKey::load(&t.join("sec1.pem")).is_ok());
    for k in ["rsa.pem", "p384.pem", "ed.pem"] {
        let e = SigningKey::load(&t.join(k)).err().unwrap().0;
        assert!(e.contains("not an ECDSA P-256"), "{k}: {e}");
    }
    for k in ["enc8.pem", "enc1.pem"] {
        let e = SigningKey::load(&t.join(k)).err().unwrap().0;
        assert!(e.contains("encrypted"), "{k}: {e}");
        // The hint's command, with the passphrase given, writes a key kiln reads.
        let hint = e.split('`').nth(1).unwrap();
        let _ = std::fs::remove_file(t.join("plain.pem"));
        let mut args: Vec<&str> = hint.split_whitespace().skip(1).collect();
        args.extend(["-passin", "pass:pw"]);
        openssl(&args, t);
        assert!(
            SigningKey::load(&t.join("plain.pem")).is_ok(),
            "{k}: `{hint}`"
        );
    }
}

/// `--strip`: the image and the output directory get the stripped binary, its debug info
/// goes to `linux-amd64/hello.debug`, and gdb finds a function's name at its address in
/// the stripped binary only through that file (`.gnu_debuglink`).
#[test]
fn strip_ships_small_binaries_and_gdb_symbolises_them_with_the_debug_file() {
    for (tool, install) in [
        ("gdb", "apt-get install -y gdb"),
        ("llvm-objcopy", "apt-get install -y llvm"),
        ("nm", "apt-get install -y binutils"),
    ] {
        if which::which(tool).is_err() {
            unavailable(&format!("{tool} not found: `{install}`"));
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let layout = t.join("img");
    // The dev profile: full debug info, as a crash report would want.
    let out = support::build_into(
        &support::example("hello-rust"),
        "linux/amd64",
        &t.join("dist"),
        &[
            "--strip",
            "-o",
            &format!("oci:{}:v1", layout.display()),
            "--message-format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let msgs = support::json_lines(&out);
    let dir = t.join("dist/linux-amd64");
    let (bin, debug) = (dir.join("hello"), dir.join("hello.debug"));
    assert!(
        msgs.iter().any(|m| m["reason"] == "output"
            && m["kind"] == "debug"
            && m["path"] == debug.display().to_string()),
        "no debug output message"
    );
    let artifact = msgs.iter().find(|m| m["reason"] == "artifact").unwrap();
    let data = std::fs::read(&bin).unwrap();
    assert_eq!(artifact["sha256"], kiln::digest::sha256_hex(&data));
    let report = kiln::elf::inspect_bytes(&data).unwrap();
    assert!(report.stripped && !report.debug_info, "{report:?}");
    // No symbols, no .comment: the standard library's panic-location paths still say Rust.
    assert_eq!(report.language, Some("rust"), "{report:?}");
    assert!(kiln::elf::inspect_path(&debug).unwrap().debug_info);
    assert!(std::fs::metadata(&debug).unwrap().len() > data.len() as u64);

    // The image holds the stripped binary.
    let insp = support::capture(support::kiln().args([
        "inspect",
        "--json",
        &format!("oci:{}:v1", layout.display()),
    ]));
    let doc: serde_json::Value = serde_json::from_slice(&insp.stdout).unwrap();
    let r = &doc["files"][0]["report"];
    assert_eq!(r["stripped"], true, "{doc}");
    assert_eq!(r["debug_info"], false, "{doc}");

    // The address of a function, from the debug file's symbols.
    let nm = Command::new("nm").arg(&debug).output().unwrap();
    let addr = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .find(|l| l.ends_with(" kiln_answer"))
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .expect("kiln_answer in the debug file's symbols");
    let gdb = |binary: &Path| {
        let out = Command::new("gdb")
            .args(["-nx", "-batch", "-ex"])
            .arg(format!("info symbol 0x{addr}"))
            .arg(binary)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let with = gdb(&bin);
    assert!(with.contains("kiln_answer in section .text"), "{with}");
    // Without its debug file the stripped binary has no name for that address.
    std::fs::create_dir(t.join("alone")).unwrap();
    std::fs::copy(&bin, t.join("alone/hello")).unwrap();
    let without = gdb(&t.join("alone/hello"));
    assert!(without.contains("No symbol matches"), "{without}");
    // addr2line gives the function (C, compiled by zig) and its source line from the
    // debug file alone.
    if have_tool("addr2line", "apt-get install -y binutils") {
        let out = Command::new("addr2line")
            .args(["-f", "-e"])
            .arg(&debug)
            .arg(format!("0x{addr}"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("kiln_answer"), "{text}");
        let at = lines.next().unwrap_or_default();
        assert!(
            at.contains("src/answer.c:") && !at.ends_with(":0") && !at.ends_with(":?"),
            "{text}"
        );
    }

    // SHA256SUMS covers the debug file.
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(t.join("dist"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(check.status.success(), "{listed}");
    assert!(listed.contains("linux-amd64/hello.debug: OK"), "{listed}");
}

/// `--auditable`: cargo-auditable embeds the crate list (`.dep-v0`), kiln's inspector reads
/// it back, and the crates compiled into the binary are exactly the SBOM's.
#[test]
fn auditable_binaries_carry_the_crates_the_sbom_lists() {
    if which::which("cargo-auditable").is_err() {
        unavailable("cargo-auditable not found: `cargo install --locked cargo-auditable`");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("dist");
    // Its own target dir: `cargo auditable` writes the same executable path as a plain
    // release build, and a parallel test's plain build in the shared target dir could
    // replace the binary between cargo's end and kiln's copy (seen once: no .dep-v0).
    let out = support::capture(
        support::kiln()
            .arg("build")
            .arg(support::example("hello-rust"))
            .args(["--platform", "linux/arm64"])
            .arg("--target-dir")
            .arg(tmp.path().join("target"))
            .arg("--out-dir")
            .arg(&dist)
            .args(["--release", "--auditable", "--sbom", "spdx"]),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let report = kiln::elf::inspect_path(&dist.join("linux-arm64/hello")).unwrap();
    let deps = report
        .auditable
        .expect("no .dep-v0 in an --auditable build");
    let compiled: std::collections::BTreeSet<String> = deps
        .iter()
        .filter(|d| d.kind.as_deref() != Some("build"))
        .map(|d| format!("{}@{}", d.name, d.version))
        .collect();
    assert!(
        compiled.iter().any(|d| d.starts_with("itoa@")),
        "{compiled:?}"
    );
    let spdx: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dist.join("hello-rust-0.1.0-linux-arm64.spdx.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(spdx_cargo_packages(&spdx), compiled);
}

/// Every `referenceLocator` (purl) of an SPDX document.
fn spdx_purls(doc: &serde_json::Value) -> Vec<String> {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["externalRefs"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["referenceLocator"].as_str().map(str::to_string))
        .collect()
}

/// The Go and C examples: their SBOMs validate, hello-go's lists its module and the Go
/// version its build info names as `pkg:golang/stdlib`, hello-c's the musl zig linked in.
#[test]
fn hello_go_and_hello_c_sboms_list_go_stdlib_and_musl_and_validate() {
    let Some(schema) = validators() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for example in ["hello-go", "hello-c"] {
        let dist = tmp.path().join(example);
        let out = support::build_into(
            &support::example(example),
            "linux/arm64",
            &dist,
            &["--sbom", "both"],
        );
        assert!(out.status.success(), "{}", support::stderr(&out));
        for f in [
            format!("{example}-linux-arm64.spdx.json"),
            format!("{example}-linux-arm64.cdx.json"),
            format!("{example}.spdx.json"),
            format!("{example}.cdx.json"),
        ] {
            validate(&dist.join(&f), &schema);
        }
        let spdx: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dist.join(format!("{example}-linux-arm64.spdx.json"))).unwrap(),
        )
        .unwrap();
        let purls = spdx_purls(&spdx);
        let report = kiln::elf::inspect_path(&dist.join("linux-arm64").join(example)).unwrap();
        if example == "hello-go" {
            let go = report.go.expect("hello-go has Go build info");
            let version = go.version.trim_start_matches("go");
            assert!(
                purls.contains(&format!("pkg:golang/stdlib@{version}")),
                "{purls:?}"
            );
            assert!(
                purls
                    .iter()
                    .any(|p| p
                        .starts_with(&format!("pkg:golang/{}", go.main.as_ref().unwrap().path))),
                "{purls:?}"
            );
            // Go's own linker, no libc: no musl.
            assert!(!purls.iter().any(|p| p.contains("musl")), "{purls:?}");
        } else {
            assert!(
                purls.iter().any(|p| p.starts_with("pkg:generic/musl@1.")),
                "{purls:?}"
            );
        }
    }
}

/// The manifests of an image index blob of `layout`, by digest.
fn layout_blob(layout: &Path, digest: &str) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap()
}

/// `--attestations buildkit` for hello-rust on amd64 and arm64, into an untagged layout, a
/// tagged one and the test registry: after the two platform images the index lists one
/// `unknown/unknown` attestation manifest per platform, annotated as BuildKit annotates
/// them, whose layers are in-toto statements about that platform's manifest (SPDX SBOM and
/// SLSA provenance); the platform manifests are those of a build without attestations;
/// skopeo copies the layout (all of it, or one platform, which umoci unpacks); kiln reads
/// it back.
#[test]
fn buildkit_attestations_sit_in_the_index_where_buildkit_puts_them() {
    for (tool, install) in [
        ("skopeo", "apt-get install -y skopeo"),
        ("umoci", "apt-get install -y umoci"),
    ] {
        if !have_tool(tool, install) {
            return;
        }
    }
    let Some(reg) = crate::registry::registry() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let project = support::example("hello-rust");
    let repo = format!("{}/buildkit/hello", reg.addr);
    let layout = t.join("img");
    let tagged = t.join("tagged");
    let build = |dist: &str, extra: &[&str]| {
        let mut args = vec!["--release", "--message-format", "json"];
        args.extend_from_slice(extra);
        let out = support::build_into(&project, "linux/amd64,linux/arm64", &t.join(dist), &args);
        assert!(out.status.success(), "{}", support::stderr(&out));
        support::json_lines(&out)
    };
    let msgs = build(
        "dist",
        &[
            "--attestations",
            "buildkit",
            "-o",
            &format!("oci:{}", layout.display()),
            "-o",
            &format!("oci:{}:v1", tagged.display()),
            "-o",
            &format!("docker://{repo}:v1"),
        ],
    );
    let index_digest = msgs
        .iter()
        .find(|m| m["reason"] == "index")
        .and_then(|m| m["digest"].as_str())
        .unwrap()
        .to_string();
    let images: Vec<(String, String)> = msgs
        .iter()
        .filter(|m| m["reason"] == "image")
        .map(|m| {
            (
                m["platform"].as_str().unwrap().to_string(),
                m["manifest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(images.len(), 2, "{msgs:?}");

    // The untagged layout: index.json names the one index (so skopeo and umoci take it).
    let top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let top = top["manifests"].as_array().unwrap();
    assert_eq!(top.len(), 1, "{top:?}");
    assert_eq!(top[0]["digest"], index_digest.as_str());
    support::check_layout(&layout);
    let index = layout_blob(&layout, &index_digest);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{index}");
    for (i, (platform, manifest)) in images.iter().enumerate() {
        assert_eq!(entries[i]["digest"], manifest.as_str());
        let a = &entries[i + 2];
        assert_eq!(a["platform"]["os"], "unknown", "{a}");
        assert_eq!(a["platform"]["architecture"], "unknown", "{a}");
        assert_eq!(
            a["annotations"]["vnd.docker.reference.type"],
            "attestation-manifest"
        );
        assert_eq!(
            a["annotations"]["vnd.docker.reference.digest"],
            manifest.as_str()
        );
        let m = layout_blob(&layout, a["digest"].as_str().unwrap());
        assert!(
            m.get("subject").is_none(),
            "BuildKit's manifests have no subject"
        );
        let config = layout_blob(&layout, m["config"]["digest"].as_str().unwrap());
        assert_eq!(config["os"], "unknown");
        let mut predicates = Vec::new();
        for l in m["layers"].as_array().unwrap() {
            assert_eq!(l["mediaType"], "application/vnd.in-toto+json");
            let statement = layout_blob(&layout, l["digest"].as_str().unwrap());
            assert_eq!(
                statement["predicateType"],
                l["annotations"]["in-toto.io/predicate-type"]
            );
            assert!(
                statement["subject"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| { s["digest"]["sha256"] == manifest.trim_start_matches("sha256:") }),
                "{platform}: {statement}"
            );
            predicates.push(statement["predicateType"].as_str().unwrap().to_string());
        }
        predicates.sort();
        assert_eq!(
            predicates,
            [
                "https://slsa.dev/provenance/v1",
                "https://spdx.dev/Document"
            ],
            "{platform}"
        );
    }

    // The same platform images as without attestations; the index differs.
    let plain = build(
        "dist-plain",
        &[
            "--attestations",
            "none",
            "-o",
            &format!("oci:{}", t.join("plain").display()),
        ],
    );
    for (platform, manifest) in &images {
        assert!(
            plain.iter().any(|m| m["reason"] == "image"
                && m["platform"] == platform.as_str()
                && m["manifest"] == manifest.as_str()),
            "{platform}: {plain:?}"
        );
    }
    assert!(
        !plain
            .iter()
            .any(|m| m["reason"] == "index" && m["digest"] == index_digest.as_str())
    );

    // Readers: kiln, skopeo (copying everything, and picking arm64), umoci.
    for image in [
        format!("oci:{}", layout.display()),
        format!("oci:{}:v1", tagged.display()),
        format!("docker://{repo}:v1"),
    ] {
        let read = kiln::oci::read_image(&image).unwrap();
        assert_eq!(read.platforms.len(), 2, "{image}");
        assert_eq!(
            read.digest.as_deref(),
            Some(index_digest.as_str()),
            "{image}"
        );
    }
    let skopeo = |args: &[&str]| {
        let out = Command::new("skopeo").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    skopeo(&[
        "copy",
        "--all",
        &format!("oci:{}", layout.display()),
        &format!("oci:{}:all", t.join("copy").display()),
    ]);
    support::check_layout(&t.join("copy"));
    skopeo(&[
        "copy",
        "--override-arch",
        "arm64",
        &format!("oci:{}:v1", tagged.display()),
        &format!("dir:{}", t.join("arm64").display()),
    ]);
    let copied: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.join("arm64/manifest.json")).unwrap()).unwrap();
    assert_eq!(
        kiln::digest::sha256_digest(&std::fs::read(t.join("arm64/manifest.json")).unwrap()),
        images[1].1,
        "{copied}"
    );
    let pushed = crate::registry::skopeo_raw(&format!("{repo}:v1"));
    assert_eq!(kiln::digest::sha256_digest(&pushed), index_digest);
    let attestation = &entries[2]["digest"];
    let m = skopeo_raw(&format!("{repo}@{}", attestation.as_str().unwrap()));
    assert_eq!(m["layers"].as_array().unwrap().len(), 2, "{m}");
    // umoci 0.4 unpacks only a tag naming one manifest (a two-platform index without
    // attestations is "ambiguous" to it as well): the platform skopeo picks, copied out.
    skopeo(&[
        "copy",
        &format!("oci:{}:v1", tagged.display()),
        &format!("oci:{}:v1", t.join("single").display()),
    ]);
    let unpacked = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:v1", t.join("single").display()))
        .arg(t.join("bundle"))
        .output()
        .unwrap();
    assert!(
        unpacked.status.success(),
        "{}",
        String::from_utf8_lossy(&unpacked.stderr)
    );
    assert!(t.join("bundle/rootfs/usr/local/bin/hello").is_file());
}

/// Docker pulls a `--attestations buildkit` image from the registry and runs it: the
/// `unknown/unknown` attestation manifests are passed over as they are in BuildKit's images.
#[test]
#[ignore = "docker engine; run by cargo xtask e2e"]
fn docker_pulls_and_runs_a_buildkit_attested_image() {
    let Some(reg) = crate::registry::registry() else {
        return;
    };
    if !support::docker_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let r = format!("{}/buildkit/run:1", reg.addr);
    let out = support::build_into(
        &support::example("hello-rust"),
        "linux/amd64,linux/arm64",
        &tmp.path().join("dist"),
        &[
            "--release",
            "--attestations",
            "buildkit",
            "-o",
            &format!("docker://{r}"),
        ],
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let ran = support::docker_pull_and_run(&r);
    assert!(ran.to_lowercase().contains("hello"), "{ran}");
}

/// The SPDX packages of `doc` by name, with their SPDX ids.
fn spdx_packages(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["SPDXID"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// An image on a `--base` that kiln built with an SBOM attached: its SBOM holds the base's
/// packages (the base's own binary), contained by the base; on a base without one the
/// base's contents are NOASSERTION with a warning. Both documents validate.
#[test]
fn a_base_image_sbom_is_merged_and_a_base_without_one_is_noassertion() {
    let Some(schema) = validators() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // Two bases made by kiln from hello-c: one with its SBOM attached (tagged layout), one
    // without (`--attestations none`).
    for (name, attach) in [("with", "referrers"), ("without", "none")] {
        let out = support::build_into(
            &support::example("hello-c"),
            "linux/amd64",
            &t.join(format!("dist-{name}")),
            &[
                "--attestations",
                attach,
                "-o",
                &format!("oci:{}:1", t.join(name).display()),
            ],
        );
        assert!(out.status.success(), "{}", support::stderr(&out));
    }
    let mut docs = Vec::new();
    for name in ["with", "without"] {
        let dist = t.join(format!("dist-on-{name}"));
        let out = support::build_into(
            &support::example("hello-go"),
            "linux/amd64",
            &dist,
            &[
                "--base",
                &format!("oci:{}:1", t.join(name).display()),
                "-o",
                &format!("oci:{}:1", t.join(format!("on-{name}")).display()),
            ],
        );
        assert!(out.status.success(), "{}", support::stderr(&out));
        let path = dist.join("hello-go-linux-amd64.spdx.json");
        validate(&path, &schema);
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        docs.push((name, doc, support::stderr(&out)));
    }
    let (_, with, warned) = &docs[0];
    let packages = spdx_packages(with);
    let base_id = &packages
        .iter()
        .find(|(n, _)| n.starts_with("oci:"))
        .unwrap_or_else(|| panic!("no base package: {packages:?}"))
        .1;
    let hello_c = &packages
        .iter()
        .find(|(n, _)| n == "hello-c")
        .unwrap_or_else(|| panic!("the base's binary is not listed: {packages:?}"))
        .1;
    assert!(
        with["relationships"].as_array().unwrap().iter().any(|r| {
            r["spdxElementId"] == base_id.as_str()
                && r["relationshipType"] == "CONTAINS"
                && r["relatedSpdxElement"] == hello_c.as_str()
        }),
        "{with}"
    );
    assert!(!warned.contains("NOASSERTION"), "{warned}");
    let (_, without, warned) = &docs[1];
    assert!(
        !spdx_packages(without).iter().any(|(n, _)| n == "hello-c"),
        "{without}"
    );
    assert!(warned.contains("NOASSERTION"), "{warned}");
}

/// `[image] files` of a single project are in its image, so in the image's SBOM (a FILE
/// package with the file's sha256); without an image there is nothing to list.
#[test]
fn image_files_are_in_the_image_sbom() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("hello-rust");
    support::copy_dir(&support::example("hello-rust"), &project);
    std::fs::write(project.join("motd"), "hello from the image\n").unwrap();
    std::fs::write(
        project.join("kiln.toml"),
        "[image]\nfiles = [{ src = \"motd\", dst = \"/etc/motd\" }]\n",
    )
    .unwrap();
    let build = |dist: &str, extra: &[&str]| {
        let out = support::build_into(
            &project,
            "linux/amd64",
            &tmp.path().join(dist),
            &[&["--sbom", "spdx"], extra].concat(),
        );
        assert!(out.status.success(), "{}", support::stderr(&out));
        let spdx: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                tmp.path()
                    .join(dist)
                    .join("hello-rust-0.1.0-linux-amd64.spdx.json"),
            )
            .unwrap(),
        )
        .unwrap();
        spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "/etc/motd")
            .cloned()
    };
    let image = format!("oci:{}:1", tmp.path().join("img").display());
    let motd = build("with-image", &["-o", &image]).expect("/etc/motd is not in the SBOM");
    assert_eq!(motd["primaryPackagePurpose"], "FILE");
    assert_eq!(
        motd["checksums"][0]["checksumValue"],
        kiln::digest::sha256_hex(b"hello from the image\n")
    );
    assert!(build("no-image", &[]).is_none());
}
