//! The OCI layout writer against real tools: skopeo reads the index and picks platforms,
//! umoci unpacks the image, and the unpacked static binary runs (arm64 under qemu).

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use kiln::oci::{BuildOptions, OutputSpec, build_index, write_output};
use support::*;

fn tools() -> bool {
    have_zig()
        && have_tool("skopeo", "apt-get install -y skopeo")
        && have_tool("umoci", "apt-get install -y umoci")
        && have_tool("qemu-aarch64-static", "apt-get install -y qemu-user-static")
}

#[test]
fn two_platform_layout_is_read_by_skopeo_and_umoci() {
    if !tools() {
        return;
    }
    let (amd, arm, images) = hello_images();
    let opts = BuildOptions::default();
    let built = build_index(&images, &opts).unwrap();
    assert_eq!(
        build_index(&images, &opts).unwrap().digest,
        built.digest,
        "two builds of the same inputs differ"
    );

    let tmp = tempfile::tempdir().unwrap();
    // An untagged layout: skopeo takes its only entry.
    let plain = tmp.path().join("plain");
    write_output(
        &OutputSpec::OciDir {
            dir: plain.clone(),
            tag: None,
        },
        &built,
    )
    .unwrap();
    check_layout(&plain);

    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}", plain.display())),
    );
    assert_eq!(
        raw.stdout, built.index_json,
        "skopeo returns the index kiln wrote"
    );
    assert_eq!(index_platforms(&raw.stdout), ["linux/amd64", "linux/arm64"]);

    for (arch, image) in [("amd64", &built.images[0]), ("arm64", &built.images[1])] {
        let out = run_ok(
            Command::new("skopeo")
                .args(["--override-os", "linux", "--override-arch", arch, "inspect"])
                .arg(format!("oci:{}", plain.display())),
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Architecture"], arch);
        assert_eq!(v["Os"], "linux");
        // skopeo's Digest is the index's; the layer tells the platforms apart.
        assert_eq!(v["Digest"], built.digest.as_str());
        assert_eq!(v["Layers"][0], image.layers[0].digest.as_str());
        let cfg = run_ok(
            Command::new("skopeo")
                .args(["--override-arch", arch, "inspect", "--config"])
                .arg(format!("oci:{}", plain.display())),
        );
        let cfg: serde_json::Value = serde_json::from_slice(&cfg.stdout).unwrap();
        assert_eq!(cfg["config"]["User"], "65532:65532");
        assert_eq!(cfg["config"]["Entrypoint"][0], "/usr/local/bin/hello");
    }

    // A tagged layout that also holds one-platform tags, for umoci (which cannot choose a
    // platform from an index: opencontainers/umoci#10).
    let tagged = tmp.path().join("tagged");
    let spec = |tag: &str| OutputSpec::OciDir {
        dir: tagged.clone(),
        tag: Some(tag.into()),
    };
    write_output(&spec("multi"), &built).unwrap();
    for img in &images {
        let one = build_index(std::slice::from_ref(img), &opts).unwrap();
        write_output(&spec(&img.platform.architecture), &one).unwrap();
    }
    // Rewriting a tag replaces it; the other tags stay.
    write_output(&spec("multi"), &built).unwrap();
    check_layout(&tagged);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tagged.join("index.json")).unwrap()).unwrap();
    let mut tags: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    tags.sort();
    assert_eq!(tags, ["amd64", "arm64", "multi"]);
    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:multi", tagged.display())),
    );
    assert_eq!(raw.stdout, built.index_json);

    // skopeo copies the whole index into another layout unchanged, and kiln reads it.
    let copied = tmp.path().join("copied");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--all"])
            .arg(format!("oci:{}:multi", tagged.display()))
            .arg(format!("oci:{}:copy", copied.display())),
    );
    let read = kiln::oci::read_image(&format!("oci:{}:copy", copied.display())).unwrap();
    assert_eq!(read.digest.as_deref(), Some(built.digest.as_str()));
    assert_eq!(read.platform_list(), "linux/amd64, linux/arm64");

    for (arch, bin) in [("amd64", &amd), ("arm64", &arm)] {
        let bundle = tmp.path().join(format!("bundle-{arch}"));
        run_ok(
            Command::new("umoci")
                .args(["unpack", "--image"])
                .arg(format!("{}:{arch}", tagged.display()))
                .arg(&bundle),
        );
        let unpacked = bundle.join("rootfs/usr/local/bin/hello");
        let meta = std::fs::metadata(&unpacked).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        assert_eq!(
            std::fs::read(&unpacked).unwrap(),
            std::fs::read(bin).unwrap()
        );
        let out = if arch == "amd64" {
            run_ok(Command::new(&unpacked).arg("x"))
        } else {
            run_ok(Command::new("qemu-aarch64-static").arg(&unpacked).arg("x"))
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with("hello from kiln") && text.contains("arg x"),
            "{text}"
        );
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["process"]["user"]["uid"], 65532);
        assert_eq!(config["process"]["args"][0], "/usr/local/bin/hello");
    }
}
