//! `kiln dockerfile`: golden Dockerfiles for the three examples, the output passes `kiln lint`
//! with no findings, user files are never overwritten without --force, and a real Docker
//! engine builds the generated file from `kiln build`'s dist/ (`--build-arg ARTIFACTS=local`)
//! for linux/amd64 and linux/arm64 and runs it.

use crate::support;

use std::path::PathBuf;
use std::process::Command;

use support::*;

#[test]
fn golden_dockerfiles_for_the_examples() {
    for ex in ["hello-rust", "hello-go", "hello-c"] {
        let dir = example(ex);
        let (code, out, err) = kiln_run(&["dockerfile", dir.to_str().unwrap(), "-o", "-"]);
        assert_eq!(code, 0, "{ex}: {err}");
        insta::assert_snapshot!(format!("dockerfile_{ex}"), out);
    }
}

#[test]
fn generated_files_lint_clean_and_user_files_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    for ex in ["hello-rust", "hello-go", "hello-c"] {
        let dir = tmp.path().join(ex);
        copy_dir(&example(ex), &dir);
        let d = dir.to_str().unwrap();
        let (code, _, err) = kiln_run(&[
            "dockerfile",
            d,
            "--bake",
            "--platform",
            "linux/amd64,linux/arm64,linux/arm/v7",
        ]);
        assert_eq!(code, 0, "{ex}: {err}");
        for f in ["Dockerfile", ".dockerignore", "docker-bake.hcl"] {
            assert!(dir.join(f).is_file(), "{ex}: {f} missing");
        }
        let bake = std::fs::read_to_string(dir.join("docker-bake.hcl")).unwrap();
        assert!(bake.contains("target \"linux-arm-v7\""), "{bake}");
        let df = dir.join("Dockerfile");
        let (code, out, err) = kiln_run(&["lint", "--fail-level", "info", df.to_str().unwrap()]);
        assert_eq!(code, 0, "{ex}: {out}{err}");
        assert!(out.contains("no findings"), "{out}");
        // Regenerating over kiln's own files is fine.
        assert_eq!(kiln_run(&["dockerfile", d]).0, 0);
    }
    // A .dockerignore the user wrote is not overwritten without --force, and nothing is written.
    let dir = tmp.path().join("user");
    copy_dir(&example("hello-go"), &dir);
    std::fs::write(dir.join(".dockerignore"), "mine\n").unwrap();
    let (code, _, err) = kiln_run(&["dockerfile", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(".dockerignore exists and was not written by kiln"),
        "{err}"
    );
    assert!(!dir.join("Dockerfile").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join(".dockerignore")).unwrap(),
        "mine\n"
    );
    let (code, _, err) = kiln_run(&["dockerfile", dir.to_str().unwrap(), "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        std::fs::read_to_string(dir.join(".dockerignore"))
            .unwrap()
            .contains("kiln dockerfile")
    );
    // No project: usage error.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_eq!(kiln_run(&["dockerfile", empty.to_str().unwrap()]).0, 2);
}

/// The Docker client for `docker build`: `$KILN_DOCKER`, else Debian's docker.io client (its
/// built-in BuildKit needs no buildx plugin; a newer client on PATH without buildx refuses
/// DOCKER_BUILDKIT=1), else `docker`.
fn docker_cli() -> Command {
    let path = std::env::var_os("KILN_DOCKER")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/bin/docker")).filter(|p| p.exists()))
        .unwrap_or_else(|| PathBuf::from("docker"));
    Command::new(path)
}

/// `kiln build` the example, generate its Dockerfile without the `# syntax=` line, and let
/// Docker build the image from dist/ (ARTIFACTS=local: the builder stage, whose image cannot
/// be pulled offline, is never reached) for amd64 and arm64, then run it.
fn docker_builds_from_dist(ex: &str, greeting: &str) {
    if !(docker_ready() && arm64_binfmt_ready()) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(ex);
    copy_dir(&example(ex), &dir);
    let d = dir.to_str().unwrap();
    let out = run_ok(
        kiln()
            .args([
                "build",
                d,
                "--release",
                "--platform",
                "linux/amd64,linux/arm64",
                "--out-dir",
            ])
            .arg(dir.join("dist"))
            .arg("--target-dir")
            .arg(root().join("target").join("kiln-tests")),
    );
    assert!(out.status.success(), "kiln build {ex} failed");
    let (code, _, err) = kiln_run(&["dockerfile", d, "--no-syntax"]);
    assert_eq!(code, 0, "{err}");
    let id = std::process::id();
    for arch in ["amd64", "arm64"] {
        let tag = format!("kiln-test/dockerfile-{ex}:{arch}-{id}");
        let out = run_ok(
            docker_cli()
                .env("DOCKER_BUILDKIT", "1")
                .args(["build", "--build-arg", "ARTIFACTS=local", "--platform"])
                .arg(format!("linux/{arch}"))
                .args(["-t", &tag])
                .arg(&dir),
        );
        assert!(
            out.status.success(),
            "docker build {ex} {arch}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run_ok(
            docker_cli()
                .args(["run", "--rm", "--platform"])
                .arg(format!("linux/{arch}"))
                .arg(&tag),
        );
        let _ = docker_cli().args(["rmi", "-f", &tag]).output();
        let printed = String::from_utf8_lossy(&out.stdout);
        eprintln!("docker run {ex} linux/{arch}: {}", printed.trim());
        assert!(out.status.success(), "docker run {ex} {arch}");
        assert!(printed.contains(greeting), "{ex} {arch}: {printed}");
        let want_arch = match (ex, arch) {
            ("hello-go", a) => format!("GOARCH={a}"),
            (_, "amd64") => "arch=x86_64".to_string(),
            _ => "arch=aarch64".to_string(),
        };
        assert!(printed.contains(&want_arch), "{ex} {arch}: {printed}");
    }
}

#[test]
fn docker_builds_the_go_example_from_dist_on_amd64_and_arm64() {
    docker_builds_from_dist("hello-go", "Hello from kiln!");
}

#[test]
#[ignore = "e2e: builds the Rust and C examples too (cargo xtask e2e)"]
fn docker_builds_the_rust_and_c_examples_from_dist() {
    docker_builds_from_dist("hello-rust", "Hello from kiln!");
    docker_builds_from_dist("hello-c", "Hello from kiln!");
}
