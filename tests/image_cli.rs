//! `kiln image` end to end: the ELF gate and its exit codes, the full image config, extra
//! files, several binaries, annotations, compression and SOURCE_DATE_EPOCH.

use crate::support;

use support::*;

#[test]
fn the_elf_gate_refuses_dynamic_foreign_and_non_elf_files_with_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    let out = format!("oci:{}/img", tmp.path().display());
    let amd = fixture_hello("amd64");
    let arm = fixture_hello("arm64");

    // A dynamically linked host program.
    let true_bin = which::which("true").unwrap();
    let (code, _, err) = kiln_run(&[
        "image",
        "--binary",
        &format!("linux/amd64={}", true_bin.display()),
        "-o",
        &out,
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("dynamically linked"), "{err}");

    // An arm64 binary offered as amd64.
    let (code, _, err) = kiln_run(&[
        "image",
        "--binary",
        &format!("linux/amd64={}", arm.display()),
        "--binary",
        &format!("linux/arm64={}", amd.display()),
        "-o",
        &out,
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("linux/arm64") && err.contains("linux/amd64"),
        "{err}"
    );

    // Not an ELF at all.
    let src = fixture("oci").join("hello.c");
    let (code, _, err) = kiln_run(&[
        "image",
        "--binary",
        &format!("amd64={}", src.display()),
        "-o",
        &out,
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not an ELF"), "{err}");
    assert!(
        !tmp.path().join("img").exists(),
        "nothing is written when the gate fails"
    );

    // Usage errors: exit 2.
    for args in [
        vec![
            "image".to_string(),
            "--binary".into(),
            format!("linux/sparc={}", amd.display()),
            "-o".into(),
            out.clone(),
        ],
        vec![
            "image".to_string(),
            "--binary".into(),
            format!("amd64={}", amd.display()),
            "-o".into(),
            "tarball:x".into(),
        ],
        vec![
            "image".to_string(),
            "--binary".into(),
            format!("amd64={}", amd.display()),
            "-o".into(),
            out.clone(),
            "--compression".into(),
            "lz4".into(),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = kiln_run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
}

#[test]
fn the_full_image_config_and_extra_files() {
    let tmp = tempfile::tempdir().unwrap();
    let amd = fixture_hello("amd64");
    let arm = fixture_hello("arm64");
    let conf = tmp.path().join("app.toml");
    std::fs::write(&conf, "port = 8080\n").unwrap();
    // A second binary for both platforms (a copy under another name).
    let tool_amd = tmp.path().join("amd/tool");
    let tool_arm = tmp.path().join("arm/tool");
    for (src, dst) in [(&amd, &tool_amd), (&arm, &tool_arm)] {
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(src, dst).unwrap();
    }
    let layout = tmp.path().join("img");
    let out = format!("oci:{}:2.0", layout.display());
    let (code, stdout, err) = kiln_run(&[
        "image",
        "--binary",
        &format!("linux/amd64={}", amd.display()),
        "--binary",
        &format!("linux/amd64={}", tool_amd.display()),
        "--binary",
        &format!("linux/arm64={}", arm.display()),
        "--binary",
        &format!("linux/arm64={}", tool_arm.display()),
        "--entrypoint",
        r#"["/usr/local/bin/hello-amd64","serve"]"#,
        "--cmd",
        "--verbose",
        "--env",
        "RUST_LOG=info",
        "--workdir",
        "/srv",
        "--port",
        "8080",
        "--port",
        "53/udp",
        "--stop-signal",
        "SIGINT",
        "--label",
        "team=core",
        "--annotation",
        "com.example.note=hi",
        "--file",
        &format!("{}:/etc/app/app.toml:0640", conf.display()),
        "--compression",
        "zstd",
        "--title",
        "hello",
        "--app-version",
        "2.0.0",
        "--revision",
        "abc123",
        "--source",
        "https://example.com/hello",
        "--licenses",
        "MIT",
        "--description",
        "says hello",
        "-o",
        &out,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("linux/amd64") && stdout.contains("linux/arm64"),
        "{stdout}"
    );
    assert!(!err.contains("warning"), "{err}");

    let img = kiln::oci::read_image(&out).unwrap();
    assert_eq!(img.platform_list(), "linux/amd64, linux/arm64");
    for p in &img.platforms {
        let cfg: serde_json::Value = serde_json::from_slice(&p.config_json).unwrap();
        let c = &cfg["config"];
        assert_eq!(c["User"], "65532:65532");
        assert_eq!(
            c["Entrypoint"],
            serde_json::json!(["/usr/local/bin/hello-amd64", "serve"])
        );
        assert_eq!(c["Cmd"], serde_json::json!(["--verbose"]));
        assert!(
            c["Env"]
                .as_array()
                .unwrap()
                .contains(&"RUST_LOG=info".into())
        );
        assert_eq!(c["WorkingDir"], "/srv");
        assert_eq!(
            c["ExposedPorts"],
            serde_json::json!({"53/udp": {}, "8080/tcp": {}})
        );
        assert_eq!(c["StopSignal"], "SIGINT");
        assert_eq!(c["Labels"]["team"], "core");
        assert_eq!(c["Labels"]["org.opencontainers.image.version"], "2.0.0");
        assert!(
            cfg.get("created").is_none(),
            "no created without SOURCE_DATE_EPOCH"
        );
        assert_eq!(p.annotations["com.example.note"], "hi");
        assert_eq!(p.annotations["org.opencontainers.image.title"], "hello");
        assert_eq!(p.annotations["org.opencontainers.image.revision"], "abc123");
        assert_eq!(
            p.annotations["org.opencontainers.image.source"],
            "https://example.com/hello"
        );
        assert_eq!(p.annotations["org.opencontainers.image.licenses"], "MIT");
        assert_eq!(
            p.annotations["org.opencontainers.image.description"],
            "says hello"
        );
        assert!(
            !p.annotations
                .contains_key("org.opencontainers.image.created")
        );
        assert_eq!(p.layers.len(), 1);
        assert_eq!(
            p.layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        let files = tar_entries(&p.layers[0].tar().unwrap());
        let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
        let arch = &p.platform.architecture;
        assert_eq!(
            names,
            [
                "etc/",
                "etc/app/",
                "etc/app/app.toml",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                &format!("usr/local/bin/hello-{arch}"),
                "usr/local/bin/tool",
            ]
        );
        let conf_entry = &files[2];
        assert_eq!(
            (conf_entry.1, conf_entry.5.as_slice()),
            (0o640, &b"port = 8080\n"[..])
        );
        assert!(files.iter().all(|f| f.2 == 0 && f.3 == 0));
    }
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(&img.digest.as_ref().unwrap()[7..]),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(index["annotations"]["com.example.note"], "hi");
    assert_eq!(
        index["annotations"]["org.opencontainers.image.version"],
        "2.0.0"
    );
}

#[test]
fn root_warns_and_source_date_epoch_sets_created() {
    let tmp = tempfile::tempdir().unwrap();
    let amd = fixture_hello("amd64");
    let out = format!("oci:{}/img", tmp.path().display());
    let image_with = |epoch: Option<&str>, user: Option<&str>| {
        let mut cmd = kiln();
        cmd.args([
            "image",
            "--binary",
            &format!("amd64={}", amd.display()),
            "-o",
            &out,
        ]);
        if let Some(u) = user {
            cmd.args(["--user", u]);
        }
        match epoch {
            Some(e) => cmd.env("SOURCE_DATE_EPOCH", e),
            None => cmd.env_remove("SOURCE_DATE_EPOCH"),
        };
        let o = cmd.output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // Numeric: a scratch image has no /etc/passwd to look the name `root` up in (a usage
    // error since #9; runtimes fail with "unable to find user root").
    let (code, err) = image_with(Some("1700000000"), Some("0:0"));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("warning: the image runs as root"), "{err}");
    let img = kiln::oci::read_image(&out).unwrap();
    let p = &img.platforms[0];
    let cfg: serde_json::Value = serde_json::from_slice(&p.config_json).unwrap();
    assert_eq!(cfg["config"]["User"], "0:0");
    assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        p.annotations["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
    let mtimes: Vec<u64> = {
        let tar = p.layers[0].tar().unwrap();
        let mut a = tar::Archive::new(tar.as_slice());
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().header().mtime().unwrap())
            .collect()
    };
    assert!(mtimes.iter().all(|&m| m == 1700000000), "{mtimes:?}");

    // A usage error (exit 2) in `kiln image` and in `kiln build`, which stops before building.
    let (code, err) = image_with(Some("yesterday"), None);
    assert_eq!(code, Some(2));
    assert!(err.contains("SOURCE_DATE_EPOCH"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let build = kiln()
        .arg("build")
        .arg(example("hello-c"))
        .args(["--platform", "linux/amd64", "--out-dir"])
        .arg(tmp.path())
        .arg("--target-dir")
        .arg(tmp.path().join("target"))
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&build.stderr);
    assert_eq!(build.status.code(), Some(2), "{err}");
    assert!(err.contains("SOURCE_DATE_EPOCH=yesterday"), "{err}");
    assert!(!tmp.path().join("target").exists(), "nothing was built");
}

#[test]
fn a_docker_archive_of_several_platforms_says_which_it_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("d.tar");
    let (code, _, err) = kiln_run(&[
        "image",
        "--binary",
        &format!("linux/amd64={}", fixture_hello("amd64").display()),
        "--binary",
        &format!("linux/arm64={}", fixture_hello("arm64").display()),
        "-o",
        &format!("docker-archive:{}:hello:1", file.display()),
    ]);
    let host = kiln::target::Targets::builtin()
        .all
        .into_iter()
        .find(|t| t.is_host())
        .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("holds one platform, {}", host.platform)),
        "{err}"
    );
    let img = kiln::oci::read_image(&format!("docker-archive:{}", file.display())).unwrap();
    assert_eq!(img.platform_list(), host.platform.to_string());
}
