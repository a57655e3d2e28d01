//! The archive sinks and the reader: what kiln writes, skopeo reads, and `read_image`
//! reads back the same manifests, configs and files, from all three formats.

use crate::support;

use std::process::Command;

use kiln::oci::{BuildOptions, Compression, OutputSpec, build_index, read_image, write_output};
use support::*;

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

        // skopeo decompresses every layer (to recompress it as gzip), and umoci unpacks that.
        if compression != Compression::Gzip && have_tool("umoci", "apt-get install -y umoci") {
            let regz = format!("oci:{}/regz:v1", dir.display());
            run_ok(
                Command::new("skopeo")
                    .args(["copy", "-q", "--all", "--dest-compress-format", "gzip"])
                    .arg(&layout)
                    .arg(&regz),
            );
            let regz_dir = dir.join("regz");
            let bundle = dir.join("bundle");
            // umoci cannot pick a platform from an index: unpack the arm64 manifest's copy.
            let one = read_image(&regz).unwrap();
            let arm_manifest = &one
                .for_platform(&"linux/arm64".parse().unwrap())
                .unwrap()
                .manifest_digest;
            let index_path = regz_dir.join("index.json");
            let mut index: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
            index["manifests"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": arm_manifest,
                    "size": one.platforms[1].manifest_json.len(),
                    "annotations": {"org.opencontainers.image.ref.name": "arm64"}
                }));
            std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
            run_ok(
                Command::new("umoci")
                    .args(["unpack", "--image"])
                    .arg(format!("{}:arm64", regz_dir.display()))
                    .arg(&bundle),
            );
            assert_eq!(
                std::fs::read(bundle.join("rootfs/usr/local/bin/hello")).unwrap(),
                std::fs::read(&arm).unwrap()
            );
        }

        // skopeo reads all three.
        let raw = run_ok(Command::new("skopeo").args(["inspect", "--raw", &oci_archive]));
        assert_eq!(raw.stdout, built.index_json);
        let d = run_ok(Command::new("skopeo").args(["inspect", &docker_archive]));
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
        layers: Vec::new(),
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
fn a_directory_that_is_not_a_layout_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), b"mine").unwrap();
    let built = build_index(
        &[bytes_image("linux/amd64", "/a", b"x")],
        &BuildOptions::default(),
    )
    .unwrap();
    let err = write_output(
        &OutputSpec::OciDir {
            dir: tmp.path().to_path_buf(),
            tag: None,
        },
        &built,
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("not an OCI image layout"),
        "{err:#}"
    );
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
    // An empty directory is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    write_output(
        &OutputSpec::OciDir {
            dir: empty.clone(),
            tag: None,
        },
        &built,
    )
    .unwrap();
    check_layout(&empty);
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

#[test]
fn concurrent_writers_keep_every_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shared");
    let writers = 4;
    let rounds = 8;
    std::thread::scope(|s| {
        for w in 0..writers {
            let dir = dir.clone();
            s.spawn(move || {
                for r in 0..rounds {
                    let data = format!("writer {w} round {r}");
                    let built = build_index(
                        &[bytes_image("linux/amd64", "/a", data.as_bytes())],
                        &BuildOptions::default(),
                    )
                    .unwrap();
                    let spec = OutputSpec::OciDir {
                        dir: dir.clone(),
                        tag: Some(format!("w{w}-r{r}")),
                    };
                    write_output(&spec, &built).unwrap();
                }
            });
        }
    });
    check_layout(&dir);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"].as_array().unwrap().len(),
        writers * rounds,
        "a tag was lost"
    );
}

#[test]
fn layers_stream_and_corruption_is_caught_at_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let dir = tmp.path().join(format!("{compression:?}"));
        let opts = BuildOptions {
            compression,
            ..Default::default()
        };
        let built = build_index(&[bytes_image("linux/amd64", "/big", &big)], &opts).unwrap();
        let reference = format!("oci:{}:t", dir.display());
        write_output(&kiln::oci::parse_output(&reference).unwrap(), &built).unwrap();
        let img = read_image(&reference).unwrap();
        let layer = &img.platforms[0].layers[0];

        let mut archive = tar::Archive::new(layer.open().unwrap());
        let mut found = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some("big") {
                std::io::Read::read_to_end(&mut e, &mut found).unwrap();
            }
        }
        assert_eq!(found, big);
        std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).unwrap();

        // Flip one byte of the stored blob: streaming it to the end reports the damage.
        let path = dir.join("blobs/sha256").join(&layer.digest[7..]);
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        std::fs::write(&path, bytes).unwrap();
        let mut stream = layer.open().unwrap();
        let err = std::io::copy(&mut stream, &mut std::io::sink()).unwrap_err();
        assert!(
            err.kind() == std::io::ErrorKind::InvalidData || compression != Compression::None,
            "{compression:?}: {err}"
        );
        assert!(layer.tar().is_err(), "{compression:?}");
    }
}
