//! kiln's docker-archive in a real Docker engine: `docker load`, then `docker run` on
//! linux/amd64 and linux/arm64 (qemu through binfmt_misc), on scratch and on the
//! distroless-like base. Outside CI these skip with the install command when Docker is
//! missing; with CI set they fail instead.

use crate::support;

use std::process::Command;

use support::*;

#[test]
fn docker_loads_and_runs_kiln_images_on_amd64_and_arm64() {
    if !(docker_ready() && arm64_binfmt_ready()) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let id = std::process::id();
    for base in ["scratch", "distroless"] {
        for arch in ["amd64", "arm64"] {
            let file = tmp.path().join(format!("{base}-{arch}.tar"));
            let reference = format!("kiln-test/hello-{base}:{arch}-{id}");
            let mut args = vec![
                "image".to_string(),
                "--binary".into(),
                format!("linux/amd64={}", fixture_hello("amd64").display()),
                "--binary".into(),
                format!("linux/arm64={}", fixture_hello("arm64").display()),
                // No --entrypoint: each platform runs its own binary (hello-amd64, hello-arm64).
                "--base".into(),
                base.into(),
                "--docker-platform".into(),
                format!("linux/{arch}"),
                "-o".into(),
                format!("docker-archive:{}:{reference}", file.display()),
            ];
            if base == "distroless" {
                // The pinned-package source is tested in image_distroless.rs.
                args.extend(["--distroless-from".into(), "host".into()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, _, err) = kiln_run(&args);
            assert_eq!(code, 0, "{err}");
            assert_eq!(
                err.contains("warning: the distroless base comes from this machine's files"),
                base == "distroless",
                "{err}"
            );

            assert_eq!(docker_load(&file), reference);
            let inspect = run_ok(Command::new("docker").args([
                "image",
                "inspect",
                "--format",
                "{{.Os}}/{{.Architecture}} {{.Config.User}}",
                &reference,
            ]));
            assert_eq!(
                String::from_utf8_lossy(&inspect.stdout).trim(),
                format!("linux/{arch} 65532:65532")
            );
            let out = docker_run(&reference, &["from", "docker"]);
            assert_eq!(out, "hello from kiln uid=65532\narg from\narg docker\n");
            if base == "distroless" {
                let passwd = docker_run(&reference, &["cat", "/etc/passwd"]);
                assert!(passwd.contains("nonroot:x:65532:65532"), "{passwd}");
                let bundle = docker_run(&reference, &["cat", "/etc/ssl/certs/ca-certificates.crt"]);
                assert!(bundle.contains("-----BEGIN CERTIFICATE-----"));
            }
            // What docker saves, kiln reads: the same config (docker's image id) and layers.
            let saved = tmp.path().join(format!("saved-{base}-{arch}.tar"));
            run_ok(
                Command::new("docker")
                    .args(["save", "-o"])
                    .arg(&saved)
                    .arg(&reference),
            );
            let ours =
                kiln::oci::read_image(&format!("docker-archive:{}", file.display())).unwrap();
            let theirs =
                kiln::oci::read_image(&format!("docker-archive:{}", saved.display())).unwrap();
            assert_eq!(
                theirs.platforms[0].config_digest,
                ours.platforms[0].config_digest
            );
            assert_eq!(theirs.platform_list(), format!("linux/{arch}"));
            let diff_ids = |i: &kiln::oci::ReadImage| -> Vec<String> {
                i.platforms[0]
                    .layers
                    .iter()
                    .map(|l| l.diff_id.clone())
                    .collect()
            };
            assert_eq!(diff_ids(&theirs), diff_ids(&ours));
            for l in &theirs.platforms[0].layers {
                l.tar().unwrap();
            }

            // docker's own archive as a base: its layers under a new one, run again.
            let on_top = tmp.path().join(format!("on-top-{base}-{arch}.tar"));
            let top_ref = format!("kiln-test/on-top-{base}:{arch}-{id}");
            let note = tmp.path().join("note.txt");
            std::fs::write(&note, "layered\n").unwrap();
            let (code, _, err) = kiln_run(&[
                "image",
                "--binary",
                &format!("linux/{arch}={}", fixture_hello(arch).display()),
                "--base",
                &format!("docker-archive:{}", saved.display()),
                "--file",
                &format!("{}:/etc/note.txt", note.display()),
                "--entrypoint",
                &format!("/usr/local/bin/hello-{arch}"),
                "-o",
                &format!("docker-archive:{}:{top_ref}", on_top.display()),
            ]);
            assert_eq!(code, 0, "{err}");
            assert_eq!(docker_load(&on_top), top_ref);
            assert_eq!(docker_run(&top_ref, &["cat", "/etc/note.txt"]), "layered\n");
            if base == "distroless" {
                let passwd = docker_run(&top_ref, &["cat", "/etc/passwd"]);
                assert!(passwd.contains("nonroot"), "{passwd}");
            }
            docker_rmi(&top_ref);
            docker_rmi(&reference);
        }
    }
}

/// The whole path a Go user takes: `kiln build` of a Go module onto the distroless base
/// built from pinned Debian packages, as a docker-archive, run by Docker on amd64 and arm64;
/// inside the container the program finds the CA bundle and the Europe/Paris zone.
#[test]
fn go_program_on_pinned_distroless_finds_certificates_and_timezone_in_docker() {
    if !(docker_ready() && arm64_binfmt_ready()) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("tlstz");
    std::fs::create_dir_all(&project).unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/go-tlstz");
    for f in ["go.mod", "main.go"] {
        std::fs::copy(fixture.join(f), project.join(f)).unwrap();
    }
    let lock = project.join("kiln-base.lock");
    let (code, _, err) = kiln_run(&["base", "lock", "-o", lock.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let id = std::process::id();
    for arch in ["amd64", "arm64"] {
        let file = tmp.path().join(format!("tlstz-{arch}.tar"));
        let reference = format!("kiln-test/tlstz:{arch}-{id}");
        let (code, _, err) = kiln_run(&[
            "build",
            project.to_str().unwrap(),
            "--platform",
            "linux/amd64,linux/arm64",
            "--base",
            "distroless",
            "--out-dir",
            tmp.path().join("dist").to_str().unwrap(),
            "--docker-platform",
            arch,
            "--output",
            &format!("docker-archive:{}:{reference}", file.display()),
        ]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(docker_load(&file), reference);
        let out = docker_run(&reference, &[]);
        docker_rmi(&reference);
        let certs: usize = out
            .split_whitespace()
            .find_map(|w| w.strip_prefix("certs="))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected output on {arch}: {out}"));
        assert!(certs > 50, "only {certs} certificates on {arch}: {out}");
        assert!(
            out.contains("zone=CEST offset=7200 uid=65532"),
            "{arch}: {out}"
        );
    }
}

/// A binary larger than one gzip member (1 MiB of tar): its layer is several members, which
/// Docker, skopeo and umoci must all read as one stream. The binary is the static hello
/// with 3 MiB appended (the loader ignores bytes past the program headers' reach).
#[test]
fn layers_of_several_gzip_members_load_unpack_and_run() {
    if !(docker_ready()
        && have_tool("skopeo", "apt-get install -y skopeo")
        && have_tool("umoci", "apt-get install -y umoci"))
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big-hello");
    let mut bytes = std::fs::read(fixture_hello("amd64")).unwrap();
    let mut x: u32 = 12345;
    bytes.extend((0..3 << 20).map(|i: u32| {
        x = x.wrapping_mul(1664525).wrapping_add(1013904223);
        if i.is_multiple_of(5) {
            (x >> 24) as u8
        } else {
            (i % 97) as u8
        }
    }));
    std::fs::write(&big, &bytes).unwrap();
    run_ok(Command::new("chmod").arg("755").arg(&big));

    let id = std::process::id();
    let reference = format!("kiln-test/big-hello:{id}");
    let archive = tmp.path().join("big.tar");
    let layout = tmp.path().join("layout");
    let (code, _, err) = kiln_run(&[
        "image",
        "--binary",
        &format!("linux/amd64={}", big.display()),
        "-o",
        &format!("docker-archive:{}:{reference}", archive.display()),
        "-o",
        &format!("oci:{}:big", layout.display()),
    ]);
    assert_eq!(code, 0, "{err}");

    // The layer really is several gzip members: decode them one at a time.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| {
        std::fs::read(layout.join("blobs/sha256").join(&digest["sha256:".len()..])).unwrap()
    };
    let idx: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(idx["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let layer = blob(manifest["layers"][0]["digest"].as_str().unwrap());
    let mut members = 0;
    let mut rest = &layer[..];
    while !rest.is_empty() {
        let mut d = flate2::bufread::GzDecoder::new(rest);
        std::io::copy(&mut d, &mut std::io::sink()).unwrap();
        rest = d.into_inner();
        members += 1;
    }
    assert!(members >= 3, "{members} gzip members");

    // Docker reads it all: the program runs.
    assert_eq!(docker_load(&archive), reference);
    let out = docker_run(&reference, &["from", "docker"]);
    docker_rmi(&reference);
    assert_eq!(out, "hello from kiln uid=65532\narg from\narg docker\n");

    // skopeo copies it (checking every digest) and umoci unpacks it byte for byte.
    let copied = tmp.path().join("copied");
    let copy = run_ok(
        Command::new("skopeo")
            .args(["copy"])
            .arg(format!("oci:{}:big", layout.display()))
            .arg(format!("oci:{}:big", copied.display())),
    );
    assert!(copy.status.success());
    let bundle = tmp.path().join("bundle");
    let unpack = run_ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:big", copied.display()))
            .arg(&bundle),
    );
    assert!(unpack.status.success());
    assert_eq!(
        std::fs::read(bundle.join("rootfs/usr/local/bin/big-hello")).unwrap(),
        bytes
    );
}
