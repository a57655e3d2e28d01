//! The archive sinks and the reader: what kiln writes, skopeo reads, and `read_image`
//! reads back the same manifests, configs and files, from all three formats.

mod oci_support;

use std::process::Command;

use kiln::oci::{BuildOptions, Compression, OutputSpec, build_index, read_image, write_output};
use oci_support::*;

#[test]
fn archives_are_read_by_skopeo_and_by_kiln() {
    if !(have_zig() && have_tool("skopeo", "apt-get install -y skopeo")) {
        return;
    }
    let (_amd, arm, images) = hello_images();
    let tmp = tempfile::tempdir().unwrap();
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let opts = BuildOptions {
            compression,
            ..Default::default()
        };
        let built = build_index(&images, &opts).unwrap();
        let dir = tmp.path().join(format!("{compression:?}"));
        std::fs::create_dir_all(&dir).unwrap();
        let layout = format!("oci:{}/layout:v1", dir.display());
        let oci_archive = format!("oci-archive:{}/image.tar:v1", dir.display());
        let docker_archive = format!(
            "docker-archive:{}/docker.tar:kiln-test/hello:v1",
            dir.display()
        );
        for out in [&layout, &oci_archive] {
            write_output(&kiln::oci::parse_output(out).unwrap(), &built).unwrap();
        }
        let OutputSpec::DockerArchive {
            file, reference, ..
        } = kiln::oci::parse_output(&docker_archive).unwrap()
        else {
            unreachable!()
        };
        write_output(
            &OutputSpec::DockerArchive {
                file,
                reference,
                platform: Some("linux/arm64".parse().unwrap()),
            },
            &built,
        )
        .unwrap();

        // skopeo reads all three.
        let raw = run(Command::new("skopeo").args(["inspect", "--raw", &oci_archive]));
        assert_eq!(raw.stdout, built.index_json);
        let d = run(Command::new("skopeo").args(["inspect", &docker_archive]));
        let d: serde_json::Value = serde_json::from_slice(&d.stdout).unwrap();
        assert_eq!(d["Architecture"], "arm64");

        // kiln reads all three back.
        for reference in [&layout, &oci_archive] {
            let img = read_image(reference).unwrap();
            assert_eq!(img.digest.as_deref(), Some(built.digest.as_str()));
            assert_eq!(img.platform_list(), "linux/amd64, linux/arm64");
            for (p, b) in img.platforms.iter().zip(&built.images) {
                assert_eq!(p.manifest_digest, b.manifest);
                assert_eq!(p.config_digest, b.config);
                assert_eq!(p.layers.len(), 1);
                assert_eq!(
                    p.layers[0].media_type,
                    kiln::oci::layer::media_type(compression)
                );
            }
            let arm_img = img
                .for_platform(&"linux/arm64/v8".parse().unwrap())
                .unwrap();
            let files = tar_entries(&arm_img.layers[0].tar().unwrap());
            let hello = files.iter().find(|f| f.0 == "usr/local/bin/hello").unwrap();
            assert_eq!((hello.1, &hello.5), (0o755, &std::fs::read(&arm).unwrap()));
            let err = img
                .for_platform(&"linux/riscv64".parse().unwrap())
                .unwrap_err();
            assert!(
                err.to_string()
                    .contains("has no linux/riscv64 image; it has linux/amd64, linux/arm64"),
                "{err}"
            );
        }
        let docker = read_image(&docker_archive).unwrap();
        assert_eq!(docker.platform_list(), "linux/arm64");
        let p = &docker.platforms[0];
        let entry: serde_json::Value = serde_json::from_slice(&p.manifest_json).unwrap();
        assert_eq!(entry["RepoTags"][0], "kiln-test/hello:v1");
        assert_eq!(p.config_digest, built.images[1].config);
        assert_eq!(p.layers[0].diff_id, built.images[1].layers[0].diff_id);
        p.layers[0].tar().unwrap();
    }
    // A missing tag names the tags there are.
    let err = read_image(&format!("oci:{}/Gzip/layout:nope", tmp.path().display())).unwrap_err();
    assert!(format!("{err:#}").contains("tags: v1"), "{err:#}");
}

fn bytes_image(platform: &str, path: &str, data: &[u8]) -> kiln::oci::PlatformImage {
    kiln::oci::PlatformImage {
        platform: platform.parse().unwrap(),
        entries: vec![kiln::oci::LayerEntry {
            path: path.into(),
            source: kiln::oci::EntrySource::Bytes(data.to_vec()),
            mode: 0o644,
            uid: 0,
            gid: 0,
        }],
        spec: kiln::oci::ImageSpec {
            env: vec!["FROM_BASE=1".into()],
            workdir: Some("/srv".into()),
            ..Default::default()
        },
    }
}

#[test]
fn a_base_image_supplies_layers_and_config_per_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let base_images = vec![
        bytes_image("linux/amd64", "/etc/base.txt", b"amd64 base"),
        bytes_image("linux/arm64", "/etc/base.txt", b"arm64 base"),
    ];
    let base = build_index(&base_images, &BuildOptions::default()).unwrap();
    for out in [
        format!("oci:{}/base:1", tmp.path().display()),
        format!("oci-archive:{}/base.tar", tmp.path().display()),
    ] {
        write_output(&kiln::oci::parse_output(&out).unwrap(), &base).unwrap();
        let mut app = bytes_image("linux/arm64", "/app", b"app");
        app.spec = kiln::oci::ImageSpec {
            env: vec!["APP=2".into()],
            ..Default::default()
        };
        let opts = BuildOptions {
            base: out.parse().unwrap(),
            ..Default::default()
        };
        let built = build_index(&[app.clone()], &opts).unwrap();
        let img = &built.images[0];
        assert_eq!(img.layers.len(), 2);
        assert_eq!(
            img.layers[0], base.images[1].layers[0],
            "the arm64 base layer is reused as is"
        );
        let cfg: serde_json::Value = serde_json::from_slice(&built.blobs[&img.config]).unwrap();
        let env: Vec<&str> = cfg["config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            env.contains(&"FROM_BASE=1") && env.contains(&"APP=2"),
            "{env:?}"
        );
        assert_eq!(cfg["config"]["WorkingDir"], "/srv");
        assert_eq!(cfg["history"].as_array().unwrap().len(), 2);
        let manifest: serde_json::Value =
            serde_json::from_slice(&built.blobs[&img.manifest]).unwrap();
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.base.digest"],
            base.images[1].manifest.as_str()
        );

        app.platform = "linux/riscv64".parse().unwrap();
        let err = build_index(&[app], &opts).unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("has no linux/riscv64 image; it has linux/amd64, linux/arm64"),
            "{err:#}"
        );
    }
}

#[test]
fn a_failed_write_leaves_the_layout_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let spec = |tag: &str| OutputSpec::OciDir {
        dir: dir.clone(),
        tag: Some(tag.into()),
    };
    let first = build_index(
        &[bytes_image("linux/amd64", "/a", b"first")],
        &BuildOptions::default(),
    )
    .unwrap();
    write_output(&spec("one"), &first).unwrap();
    let index_before = std::fs::read(dir.join("index.json")).unwrap();

    // Make one of the new image's blobs impossible to write: its path is a directory.
    let second = build_index(
        &[bytes_image("linux/amd64", "/a", b"second")],
        &BuildOptions::default(),
    )
    .unwrap();
    let layer = &second.images[0].layers[0].digest;
    let blocker = dir.join("blobs/sha256").join(&layer[7..]);
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("x"), b"").unwrap();
    let err = write_output(&spec("two"), &second).unwrap_err();
    assert!(format!("{err:#}").contains(&layer[7..]), "{err:#}");
    assert_eq!(
        std::fs::read(dir.join("index.json")).unwrap(),
        index_before,
        "index.json must not name an image whose blobs are not all there"
    );
    std::fs::remove_dir_all(&blocker).unwrap();
    check_layout(&dir);
    assert_eq!(
        read_image(&format!("oci:{}:one", dir.display()))
            .unwrap()
            .digest
            .as_deref(),
        Some(first.digest.as_str())
    );

    // Once the way is clear the same write succeeds and keeps the first tag.
    write_output(&spec("two"), &second).unwrap();
    check_layout(&dir);
    for (tag, built) in [("one", &first), ("two", &second)] {
        let img = read_image(&format!("oci:{}:{tag}", dir.display())).unwrap();
        assert_eq!(img.digest.as_deref(), Some(built.digest.as_str()));
    }
}
