//! `kiln inspect` on images: layouts and archives written by kiln's image writer and by
//! skopeo, multi-platform, multi-layer with whiteouts, holding the committed zig-built
//! fixtures and this machine's real glibc loader and libc with their real symlink layout.
//! Checks architecture per platform (ARM variant included), and whether dynamic files'
//! interpreters and libraries resolve inside the image.

use crate::support::{elf_fixture, have_tool, kiln};

use std::path::Path;
use std::process::Command;

use assert_cmd::Command as Cmd;
use kiln::oci::{
    Base, BuildOptions, ImageSpec, LayerEntry, OutputSpec, PlatformImage, build_index, write_output,
};
use predicates::prelude::*;

fn image(platform: &str, entries: Vec<LayerEntry>) -> PlatformImage {
    PlatformImage {
        platform: platform.parse().unwrap(),
        entries,
        layers: Vec::new(),
        spec: ImageSpec::default(),
    }
}

fn symlink(path: &str, target: &str) -> LayerEntry {
    LayerEntry {
        path: path.into(),
        source: kiln::oci::EntrySource::Symlink(target.into()),
        mode: 0o777,
        uid: 0,
        gid: 0,
    }
}

/// Build and write an OCI layout; `base` stacks the new layer on an existing image.
fn layout(dir: &Path, images: &[PlatformImage], base: Option<&Path>) -> String {
    let opts = BuildOptions {
        base: match base {
            Some(b) => Base::Image(format!("oci:{}", b.display())),
            None => Base::Scratch,
        },
        ..Default::default()
    };
    let built = build_index(images, &opts).expect("kiln builds the test image");
    write_output(
        &OutputSpec::OciDir {
            dir: dir.to_path_buf(),
            tag: None,
        },
        &built,
    )
    .unwrap();
    format!("oci:{}", dir.display())
}

fn inspect_json(args: &[&str], code: i32) -> serde_json::Value {
    let out = Cmd::from_std(kiln())
        .args(["inspect", "--json"])
        .args(args)
        .assert()
        .code(code)
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).expect("one JSON document")
}

/// (platform, path, status, problem kinds) of every file, for compact assertions.
fn rows(doc: &serde_json::Value) -> Vec<(String, String, String, Vec<String>)> {
    doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["platform"].as_str().unwrap_or("").to_string(),
                f["path"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
                f["problems"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["kind"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn row(p: &str, path: &str, status: &str, kinds: &[&str]) -> (String, String, String, Vec<String>) {
    (
        p.into(),
        path.into(),
        status.into(),
        kinds.iter().map(|s| s.to_string()).collect(),
    )
}

#[test]
fn multi_platform_image_passes_and_arch_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let images: Vec<PlatformImage> = [
        ("linux/amd64", "amd64-static-pie"),
        ("linux/arm64", "arm64-static"),
        ("linux/arm/v7", "armv7-static"),
        ("linux/arm/v6", "armv6-static"),
        ("linux/s390x", "s390x-static"),
    ]
    .iter()
    .map(|(p, f)| {
        image(
            p,
            vec![
                LayerEntry::file("/usr/local/bin/hello", elf_fixture(f), 0o755),
                LayerEntry::bytes("/etc/motd", "not elf", 0o644),
            ],
        )
    })
    .collect();
    let r = layout(&tmp.path().join("img"), &images, None);
    let doc = inspect_json(&[&r], 0);
    assert_eq!(
        rows(&doc),
        // The index lists platforms in canonical order (os, architecture, variant).
        [
            row("linux/amd64", "/usr/local/bin/hello", "ok", &[]),
            row("linux/arm/v6", "/usr/local/bin/hello", "ok", &[]),
            row("linux/arm/v7", "/usr/local/bin/hello", "ok", &[]),
            row("linux/arm64", "/usr/local/bin/hello", "ok", &[]),
            row("linux/s390x", "/usr/local/bin/hello", "ok", &[]),
        ]
    );
    assert_eq!(doc["summary"]["skipped_non_elf"], 5);
    assert_eq!(doc["files"][0]["image"], r.as_str());

    // --arch picks one platform's image.
    let doc = inspect_json(&["--arch", "armv6", &r], 0);
    assert_eq!(
        rows(&doc),
        [row("linux/arm/v6", "/usr/local/bin/hello", "ok", &[])]
    );
    // ... and names the platforms there are when it is missing.
    Cmd::from_std(kiln())
        .args(["inspect", "--arch", "riscv64", &r])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("has no linux/riscv64 image")
                .and(predicate::str::contains("linux/arm/v6")),
        );
}

#[test]
fn binaries_under_the_wrong_platform_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let images = vec![
        image(
            "linux/arm/v6",
            vec![LayerEntry::file("/app", elf_fixture("armv7-static"), 0o755)],
        ),
        image(
            "linux/arm64",
            vec![LayerEntry::file("/app", elf_fixture("amd64-static"), 0o755)],
        ),
    ];
    let r = layout(&tmp.path().join("img"), &images, None);
    let doc = inspect_json(&[&r], 3);
    assert_eq!(
        rows(&doc),
        [
            row("linux/arm/v6", "/app", "fail", &["wrong-variant"]),
            row("linux/arm64", "/app", "fail", &["wrong-arch"]),
        ]
    );
    let msg = doc["files"][0]["problems"][0]["message"].as_str().unwrap();
    assert!(msg.contains("SIGILL"), "{msg}");
}

/// A glibc base layer made of this machine's own loader and libc, laid out as Debian lays
/// them out (merged /usr, /lib64 symlink, multiarch directory).
fn glibc_base_entries() -> Option<Vec<LayerEntry>> {
    let ld = Path::new("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    let libc = Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6");
    if !ld.exists() || !libc.exists() {
        eprintln!(
            "{} or {} missing (not an x86-64 glibc host): the glibc image cases are not checked",
            ld.display(),
            libc.display()
        );
        return None;
    }
    Some(vec![
        symlink("/lib", "usr/lib"),
        symlink("/lib64", "usr/lib64"),
        symlink(
            "/usr/lib64/ld-linux-x86-64.so.2",
            "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        ),
        LayerEntry::file("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", ld, 0o755),
        LayerEntry::file("/usr/lib/x86_64-linux-gnu/libc.so.6", libc, 0o755),
    ])
}

#[test]
fn dynamic_files_resolve_only_when_the_image_has_their_libraries() {
    let tmp = tempfile::tempdir().unwrap();
    // Scratch: neither loader resolves.
    let scratch = layout(
        &tmp.path().join("scratch"),
        &[image(
            "linux/amd64",
            vec![
                LayerEntry::file("/app/glibc", elf_fixture("amd64-glibc-pie"), 0o755),
                LayerEntry::file("/app/musl", elf_fixture("amd64-musl-dynamic"), 0o755),
            ],
        )],
        None,
    );
    let doc = inspect_json(&["--require", "any", &scratch], 3);
    assert_eq!(
        rows(&doc),
        [
            row("linux/amd64", "/app/glibc", "fail", &["unresolved"]),
            row("linux/amd64", "/app/musl", "fail", &["unresolved"]),
        ]
    );
    let missing = &doc["files"][0]["problems"][0]["missing"];
    assert_eq!(
        missing,
        &serde_json::json!(["the loader /lib64/ld-linux-x86-64.so.2", "libc.so.6"])
    );
    // musl's loader answers for libc.so itself: only the loader is missing.
    assert_eq!(
        doc["files"][1]["problems"][0]["missing"],
        serde_json::json!(["the loader /lib/ld-musl-x86_64.so.1"])
    );
    let msg = doc["files"][0]["problems"][0]["message"].as_str().unwrap();
    assert!(msg.contains("will not start in this image"), "{msg}");
    // The default policy also reports them as dynamic.
    let doc = inspect_json(&[&scratch], 3);
    assert_eq!(doc["files"][0]["problems"][0]["kind"], "dynamic");

    let Some(mut base) = glibc_base_entries() else {
        return;
    };
    // The musl loader only has to be present at its path (reached through the /lib
    // symlink); its own entry is inspected separately (a static-pie stands in for it).
    base.push(LayerEntry::file(
        "/usr/lib/ld-musl-x86_64.so.1",
        elf_fixture("amd64-static-pie"),
        0o755,
    ));
    let base_dir = tmp.path().join("base");
    layout(&base_dir, &[image("linux/amd64", base)], None);
    let app = vec![
        LayerEntry::file("/app/glibc", elf_fixture("amd64-glibc-pie"), 0o755),
        LayerEntry::file("/app/musl", elf_fixture("amd64-musl-dynamic"), 0o755),
    ];
    let full = layout(
        &tmp.path().join("full"),
        &[image("linux/amd64", app.clone())],
        Some(&base_dir),
    );
    let doc = inspect_json(&["--require", "any", &full], 0);
    let paths: Vec<String> = rows(&doc).into_iter().map(|r| r.1).collect();
    assert_eq!(
        paths,
        [
            "/app/glibc",
            "/app/musl",
            "/usr/lib/ld-musl-x86_64.so.1",
            "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
        ]
    );

    // A layer above deletes libc.so.6 with a whiteout: the app no longer resolves.
    let full_dir = tmp.path().join("full");
    let wh = layout(
        &tmp.path().join("whiteout"),
        &[image(
            "linux/amd64",
            vec![LayerEntry::bytes(
                "/usr/lib/x86_64-linux-gnu/.wh.libc.so.6",
                "",
                0o644,
            )],
        )],
        Some(&full_dir),
    );
    let doc = inspect_json(&["--require", "any", &wh], 3);
    let glibc_app = &doc["files"][0];
    assert_eq!(glibc_app["path"], "/app/glibc");
    assert_eq!(
        glibc_app["problems"][0]["missing"],
        serde_json::json!(["libc.so.6"])
    );
    assert!(
        !rows(&doc).iter().any(|r| r.1.ends_with("libc.so.6")),
        "the whited-out file is gone"
    );

    // An opaque whiteout hides the whole directory of the layers below, but not what its
    // own layer adds there.
    let opq = layout(
        &tmp.path().join("opaque"),
        &[image(
            "linux/amd64",
            vec![
                LayerEntry::bytes("/usr/lib/x86_64-linux-gnu/.wh..wh..opq", "", 0o644),
                LayerEntry::file(
                    "/usr/lib/x86_64-linux-gnu/libc.so.6",
                    elf_fixture("amd64-static"),
                    0o755,
                ),
            ],
        )],
        Some(&full_dir),
    );
    let doc = inspect_json(&["--require", "any", &opq], 3);
    let r = rows(&doc);
    assert!(
        r.iter()
            .any(|r| r.1 == "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        "{r:?}"
    );
    assert!(
        !r.iter().any(|r| r.1.ends_with("ld-linux-x86-64.so.2")),
        "{r:?}"
    );
    assert_eq!(
        doc["files"][0]["problems"][0]["missing"],
        serde_json::json!(["the loader /lib64/ld-linux-x86-64.so.2"])
    );
}

#[test]
fn archives_written_by_kiln_and_skopeo_read_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let images = vec![image(
        "linux/amd64",
        vec![
            LayerEntry::file("/hello", elf_fixture("amd64-static"), 0o755),
            LayerEntry::file("/dyn", elf_fixture("amd64-musl-dynamic"), 0o755),
        ],
    )];
    let built = build_index(&images, &BuildOptions::default()).unwrap();
    let archive = tmp.path().join("img.tar");
    write_output(
        &OutputSpec::OciArchive {
            file: archive.clone(),
            tag: None,
        },
        &built,
    )
    .unwrap();
    let dir = tmp.path().join("dir");
    write_output(
        &OutputSpec::OciDir {
            dir: dir.clone(),
            tag: Some("v1".into()),
        },
        &built,
    )
    .unwrap();
    let want = [
        row("linux/amd64", "/dyn", "fail", &["dynamic", "unresolved"]),
        row("linux/amd64", "/hello", "ok", &[]),
    ];
    for r in [
        format!("oci-archive:{}", archive.display()),
        format!("oci:{}:v1", dir.display()),
    ] {
        assert_eq!(rows(&inspect_json(&[&r], 3)), want, "{r}");
    }

    // docker-archive as skopeo writes it (Docker's manifest.json format).
    if !have_tool("skopeo", "apt-get install -y skopeo") {
        return;
    }
    let docker = tmp.path().join("docker.tar");
    let out = Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:v1", dir.display()))
        .arg(format!("docker-archive:{}:kiln/test:v1", docker.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = format!("docker-archive:{}", docker.display());
    assert_eq!(rows(&inspect_json(&[&r], 3)), want);
}

#[test]
fn unreadable_images_are_errors_and_other_inputs_still_count() {
    let doc = inspect_json(
        &[
            "oci:/nonexistent/kiln-image",
            "tests/fixtures/elf/amd64-static",
        ],
        1,
    );
    assert_eq!(doc["summary"]["errors"], 1);
    assert_eq!(doc["summary"]["passed"], 1);
    let err = doc["files"][0]["error"].as_str().unwrap();
    assert!(err.contains("not an OCI image layout"), "{err}");
}
