//! `kiln build --output oci:…` end to end: the image index skopeo sees, each platform's
//! image unpacked by umoci and its binary run (arm64 under qemu), and reproducible digests.

use crate::support;

use std::path::Path;
use std::process::Command;

use support::*;

fn build_image(out_dir: &Path, dest: &str, envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = example_build(out_dir);
    cmd.args(["--output", dest, "--message-format", "json"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    capture(&mut cmd)
}

fn index_digest(out: &std::process::Output) -> String {
    json_lines(out)
        .into_iter()
        .find(|v| v["reason"] == "index")
        .and_then(|v| v["digest"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no index line in {}", stdout(out)))
}

#[test]
fn skopeo_sees_two_platforms_and_umoci_unpacks_runnable_binaries() {
    if !have_tool("skopeo", "apt-get install -y skopeo")
        || !have_tool("umoci", "apt-get install -y umoci")
        || !have_tool("qemu-aarch64-static", "apt-get install -y qemu-user-static")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("image");
    let out = build_image(
        &tmp.path().join("dist"),
        &format!("oci:{}:latest", layout.display()),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let digest = index_digest(&out);

    let raw = capture(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:latest", layout.display())),
    );
    assert!(raw.status.success());
    assert_eq!(index_platforms(&raw.stdout), ["linux/amd64", "linux/arm64"]);
    assert_eq!(kiln::digest::sha256_digest(&raw.stdout), digest);

    for (arch, greeting) in [("amd64", "arch=x86_64"), ("arm64", "arch=aarch64")] {
        // The config skopeo reads for this platform: nonroot user, entrypoint.
        let cfg = capture(
            Command::new("skopeo")
                .args(["inspect", "--config", "--override-arch", arch])
                .arg(format!("oci:{}:latest", layout.display())),
        );
        assert!(cfg.status.success());
        let cfg: serde_json::Value = serde_json::from_slice(&cfg.stdout).unwrap();
        assert_eq!(cfg["architecture"], arch);
        assert_eq!(cfg["config"]["User"], "65532:65532");
        assert_eq!(cfg["config"]["Entrypoint"][0], "/usr/local/bin/hello");

        // umoci unpacks one platform (it cannot pick from an index: skopeo selects it).
        let single = tmp.path().join(format!("single-{arch}"));
        let copy = capture(
            Command::new("skopeo")
                .args(["copy", "--override-arch", arch])
                .arg(format!("oci:{}:latest", layout.display()))
                .arg(format!("oci:{}:{arch}", single.display())),
        );
        assert!(copy.status.success());
        let bundle = tmp.path().join(format!("bundle-{arch}"));
        let unpack = capture(
            Command::new("umoci")
                .args(["unpack", "--rootless", "--image"])
                .arg(format!("{}:{arch}", single.display()))
                .arg(&bundle),
        );
        assert!(unpack.status.success());
        let bin = bundle.join("rootfs/usr/local/bin/hello");
        let mut cmd = if arch == "arm64" {
            let mut c = Command::new("qemu-aarch64-static");
            c.arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let ran = capture(cmd.arg("--check"));
        assert!(ran.status.success());
        assert!(stdout(&ran).contains(greeting), "{}", stdout(&ran));
    }
}

#[test]
fn same_inputs_give_the_same_index_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let a = build_image(
        &tmp.path().join("dist-a"),
        &format!("oci:{}", tmp.path().join("a").display()),
        &[],
    );
    let b = build_image(
        &tmp.path().join("dist-b"),
        &format!("oci:{}", tmp.path().join("b").display()),
        &[],
    );
    assert!(a.status.success() && b.status.success());
    let (da, db) = (index_digest(&a), index_digest(&b));
    assert_eq!(da, db);
    // The digest is in the human output too.
    let human = capture(
        example_build(&tmp.path().join("dist-c"))
            .arg("--output")
            .arg(format!("oci:{}", tmp.path().join("c").display())),
    );
    assert!(
        stdout(&human).contains(&format!("index {da}")),
        "{}",
        stdout(&human)
    );

    // SOURCE_DATE_EPOCH changes mtimes and `created`, and is itself reproducible.
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let c = build_image(
        &tmp.path().join("dist-d"),
        &format!("oci:{}", tmp.path().join("d").display()),
        &epoch,
    );
    let d = build_image(
        &tmp.path().join("dist-e"),
        &format!("oci:{}", tmp.path().join("e").display()),
        &epoch,
    );
    assert_eq!(index_digest(&c), index_digest(&d));
    assert_ne!(index_digest(&c), da);
}

#[test]
fn bad_output_fails_before_building() {
    let tmp = tempfile::tempdir().unwrap();
    let out = capture(
        kiln()
            .arg("build")
            .arg(example("hello-rust"))
            .args(["--platform", "arm64", "--output", "s3://bucket/image"])
            .arg("--out-dir")
            .arg(tmp.path()),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("oci:DIR[:TAG]"), "{}", stderr(&out));
    assert!(!tmp.path().join("linux-arm64").exists());
}

#[test]
fn image_config_from_kiln_toml_reaches_the_image() {
    if !have_tool("skopeo", "apt-get install -y skopeo")
        || !have_tool("umoci", "apt-get install -y umoci")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("image");
    let out = capture(
        kiln()
            .arg("build")
            .arg(fixture("rust-configured"))
            .arg("--target-dir")
            .arg(shared_target_dir())
            .arg("--out-dir")
            .arg(tmp.path().join("dist"))
            .arg("--output")
            .arg(format!("oci:{}:v1", layout.display())),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = capture(
        Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci:{}:v1", layout.display())),
    );
    let cfg: serde_json::Value = serde_json::from_slice(&cfg.stdout).unwrap();
    let c = &cfg["config"];
    assert_eq!(c["User"], "65532:65532");
    // Two binaries: the one named like the package is the entrypoint.
    assert_eq!(c["Entrypoint"][0], "/usr/local/bin/configured");
    assert_eq!(c["Cmd"][0], "--serve");
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "APP_MODE=prod"),
        "{c}"
    );
    assert_eq!(c["WorkingDir"], "/data");
    assert_eq!(c["StopSignal"], "SIGINT");
    assert!(c["ExposedPorts"].get("8080/tcp").is_some(), "{c}");
    assert!(c["ExposedPorts"].get("9090/tcp").is_some(), "{c}");
    assert_eq!(c["Labels"]["org.example.team"], "infra");
    // Nothing of the build environment leaks into the config.
    let text = cfg.to_string();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cwd = std::env::current_dir().unwrap().display().to_string();
    for leak in ["CARGO", "RUSTFLAGS", "KILN_", home.as_str(), cwd.as_str()] {
        assert!(
            !text.contains(leak),
            "{leak} leaked into the config: {text}"
        );
    }

    // Annotations come from Cargo.toml.
    let raw = capture(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:v1", layout.display())),
    );
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let a = &index["annotations"];
    assert_eq!(a["org.opencontainers.image.title"], "configured-image");
    assert_eq!(a["org.opencontainers.image.version"], "1.2.3");
    assert_eq!(a["org.opencontainers.image.licenses"], "Apache-2.0");
    assert_eq!(
        a["org.opencontainers.image.source"],
        "https://example.invalid/configured"
    );

    // The extra file and both binaries are in the layer, with their modes.
    let single = tmp.path().join("single");
    assert!(
        capture(
            Command::new("skopeo")
                .args(["copy"])
                .arg(format!("oci:{}:v1", layout.display()))
                .arg(format!("oci:{}:v1", single.display()))
        )
        .status
        .success()
    );
    let bundle = tmp.path().join("bundle");
    assert!(
        capture(
            Command::new("umoci")
                .args(["unpack", "--rootless", "--image"])
                .arg(format!("{}:v1", single.display()))
                .arg(&bundle)
        )
        .status
        .success()
    );
    use std::os::unix::fs::PermissionsExt;
    let f = bundle.join("rootfs/etc/app.toml");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "greeting = \"hi\"\n");
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert!(bundle.join("rootfs/usr/local/bin/server").is_file());
    assert!(bundle.join("rootfs/usr/local/bin/configured").is_file());
}
