//! `kiln inspect` as users run it: the real binary on committed fixtures (real zig-built
//! ELF files, see tests/fixtures/elf/build.sh), with the JSON document and the table pinned
//! by snapshots, and exit codes 0 / 1 / 2 / 3 checked.

use crate::support;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

const FIXTURES: &str = "tests/fixtures/elf";

/// `support::kiln` (scrubbed environment) as an assert_cmd command.
fn kiln_cmd() -> Command {
    Command::from_std(support::kiln())
}

/// A fixture's path relative to the repository, as the snapshots show it.
fn fixture_arg(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

#[test]
fn json_document_is_stable() {
    let out = kiln_cmd()
        .args(["inspect", "--json", "--require", "any", FIXTURES])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let _: serde_json::Value = serde_json::from_slice(&out).expect("stdout is one JSON document");
    // The raw text, not a re-serialized value: field order is part of what users see.
    insta::assert_snapshot!("fixtures_json", String::from_utf8(out).unwrap());
}

#[test]
fn table_is_stable_and_failures_are_explained() {
    let out = kiln_cmd().args(["inspect", FIXTURES]).assert().code(3);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    insta::assert_snapshot!("fixtures_table", stdout);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains("2 of 10 ELF files failed verification"),
        "{stderr}"
    );
}

#[test]
fn verbose_details_name_every_field() {
    let out = kiln_cmd()
        .args([
            "-v",
            "inspect",
            &fixture_arg("amd64-glibc-pie"),
            "--require",
            "any",
        ])
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    insta::assert_snapshot!("glibc_pie_details", stdout);
}

#[test]
fn static_files_pass_with_exit_0() {
    kiln_cmd()
        .args([
            "inspect",
            &fixture_arg("amd64-static"),
            &fixture_arg("amd64-static-pie"),
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 ELF files: 2 ok, 0 failed"));
}

#[test]
fn static_pie_requirement_rejects_plain_static() {
    kiln_cmd()
        .args([
            "inspect",
            "--require",
            "static-pie",
            &fixture_arg("amd64-static"),
        ])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("not position-independent"));
    kiln_cmd()
        .args([
            "inspect",
            "--require",
            "static-pie",
            &fixture_arg("amd64-static-pie"),
        ])
        .assert()
        .success();
}

#[test]
fn arm_variant_is_checked_against_the_platform() {
    kiln_cmd()
        .args([
            "inspect",
            "--arch",
            "linux/arm/v6",
            &fixture_arg("armv7-static"),
        ])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("linux/arm/v7").and(predicate::str::contains("SIGILL")));
    kiln_cmd()
        .args([
            "inspect",
            "--arch",
            "linux/arm/v7",
            &fixture_arg("armv7-static"),
        ])
        .assert()
        .success();
    kiln_cmd()
        .args(["inspect", "--arch", "armv6", &fixture_arg("armv6-static")])
        .assert()
        .success();
    kiln_cmd()
        .args([
            "inspect",
            "--arch",
            "linux/arm64",
            &fixture_arg("s390x-static"),
        ])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("linux/s390x (64-bit big-endian)"));
}

#[test]
fn unknown_platform_is_a_usage_error() {
    kiln_cmd()
        .args([
            "inspect",
            "--arch",
            "linux/vax",
            &fixture_arg("amd64-static"),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("kiln targets"));
}

#[test]
fn missing_input_is_exit_1_and_others_are_still_reported() {
    kiln_cmd()
        .args([
            "inspect",
            "/nonexistent/kiln-test",
            &fixture_arg("amd64-static"),
        ])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("amd64-static")
                .and(predicate::str::contains("check the path")),
        )
        .stderr(predicate::str::contains("could not be inspected"));
}

/// A tree with everything a walk can meet: nested ELF files, non-ELF files, an empty file,
/// a truncated ELF, a symlink loop, a dangling symlink and a FIFO.
fn messy_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::copy(fixture_arg("amd64-static"), root.join("a/b/c/hello")).unwrap();
    std::fs::copy(fixture_arg("arm64-static"), root.join("a/hello-arm64")).unwrap();
    std::fs::write(root.join("README"), "not elf").unwrap();
    std::fs::write(root.join("a/empty"), "").unwrap();
    let full = std::fs::read(fixture_arg("amd64-static")).unwrap();
    std::fs::write(root.join("a/truncated"), &full[..40]).unwrap();
    std::os::unix::fs::symlink(".", root.join("a/loop")).unwrap();
    std::os::unix::fs::symlink("/nonexistent", root.join("dangling")).unwrap();
    let fifo = root.join("fifo");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo (coreutils) runs");
    assert!(ok.success());
    dir
}

#[test]
fn directory_walk_counts_skips_and_reports_damage() {
    let tree = messy_tree();
    let out = kiln_cmd()
        .args(["inspect", "--json"])
        .arg(tree.path())
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let s = &doc["summary"];
    assert_eq!(s["elf"], 2, "{doc:#}");
    assert_eq!(s["passed"], 2);
    assert_eq!(
        s["errors"], 1,
        "only the truncated ELF is an error: {doc:#}"
    );
    assert_eq!(s["skipped_non_elf"], 2, "README and the empty file");
    assert_eq!(s["skipped_symlinks"], 2, "the loop and the dangling link");
    assert_eq!(s["skipped_special"], 1, "the FIFO");
    let files = doc["files"].as_array().unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    let rel: Vec<String> = paths
        .iter()
        .map(|p| {
            Path::new(p)
                .strip_prefix(tree.path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        rel,
        ["a/b/c/hello", "a/hello-arm64", "a/truncated"],
        "sorted walk order"
    );
    let err = files[2]["error"].as_str().unwrap();
    assert!(
        err.contains("malformed") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn named_symlink_loop_and_fifo_are_per_file_errors() {
    let tree = messy_tree();
    let looped: PathBuf = tree.path().join("self");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    kiln_cmd()
        .args(["inspect"])
        .arg(&looped)
        .arg(tree.path().join("fifo"))
        // Readable by mode even for root, yet every read fails with EIO.
        .arg("/proc/self/mem")
        .arg(fixture_arg("amd64-static"))
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("symlink loop")
                .and(predicate::str::contains("not a regular file"))
                .and(predicate::str::contains("Input/output error"))
                .and(predicate::str::contains("3 unreadable"))
                .and(predicate::str::contains("1 ELF file: 1 ok")),
        );
}

#[test]
fn closed_stdout_is_not_an_error() {
    // `kiln inspect … | head -1`: the pipe closes long before the output ends (1,600 rows
    // is far more than a pipe buffer); kiln must exit 0 without an error message.
    let dirs = vec![FIXTURES; 200].join(" ");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} inspect --require any {dirs} | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}",
            assert_cmd::cargo::cargo_bin("kiln").display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn embedded_dependency_lists_are_reported() {
    let out = kiln_cmd()
        .args([
            "inspect",
            "--json",
            &fixture_arg("amd64-auditable"),
            &fixture_arg("amd64-goinfo"),
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let rust = &doc["files"][0]["report"];
    assert_eq!(rust["language"], "rust");
    assert_eq!(rust["auditable"][1]["name"], "libc");
    assert_eq!(rust["auditable"][0]["root"], true);
    let go = &doc["files"][1]["report"];
    assert_eq!(go["language"], "go");
    assert_eq!(
        go["libc"], "none",
        "Go build info with CGO_ENABLED=0: no C library"
    );
    assert_eq!(go["go"]["path"], "example.com/hello");
    assert_eq!(go["go"]["settings"]["-trimpath"], "true");
    assert!(go["go"]["version"].as_str().unwrap().starts_with("go1."));
}
