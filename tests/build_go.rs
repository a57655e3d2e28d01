//! `kiln build` on real Go modules with real go, zig and qemu-user: the bundled example
//! (GOARCH, /etc/hosts, HTTP), a cgo package linked statically with zig, the error paths,
//! and (ignored, `cargo xtask e2e`) every platform.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use support::*;

/// [`build_into`] when Go is there; None when it is missing (see `support::unavailable`).
fn build(project: &Path, platforms: &str, out: &Path, extra: &[&str]) -> Option<Output> {
    have_go().then(|| build_into(project, platforms, out, extra))
}

/// GET / from a server that may still be starting (under qemu that takes a moment).
fn http_get(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).unwrap();
            return body;
        }
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn example_builds_runs_and_serves_on_amd64_arm64_armv7() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(out) = build(
        &example("hello-go"),
        "linux/amd64,linux/arm64,linux/arm/v7",
        tmp.path(),
        &["--smoke"],
    ) else {
        return;
    };
    assert!(out.status.success(), "build failed: {}", stderr(&out));
    for (dir, arch) in [
        ("linux-amd64", "amd64"),
        ("linux-arm64", "arm64"),
        ("linux-arm-v7", "arm"),
    ] {
        let bin = tmp.path().join(dir).join("hello-go");
        assert_static_for(&bin, arch);
        assert_eq!(
            go_build_setting(&bin, "CGO_ENABLED").as_deref(),
            Some("0"),
            "{dir}"
        );
        assert_eq!(go_build_setting(&bin, "-trimpath").as_deref(), Some("true"));
    }
    let v7 = tmp.path().join("linux-arm-v7/hello-go");
    assert_eq!(go_build_setting(&v7, "GOARM").as_deref(), Some("7"));
    assert_eq!(report(&v7).variant.as_deref(), Some("v7"));

    // The smoke runs really ran each binary (arm ones under qemu-user).
    let err = stderr(&out);
    for want in [
        "Hello from kiln! GOARCH=amd64",
        "Hello from kiln! GOARCH=arm64",
        "Hello from kiln! GOARCH=arm GOOS=linux GOARM=7",
    ] {
        assert!(err.contains(want), "{want} missing from\n{err}");
    }
    let table = stdout(&out);
    assert!(
        table.contains("linux/arm/v7") && table.contains("hello-go"),
        "{table}"
    );

    // The arm64 binary resolves from /etc/hosts and serves HTTP on the port it is given.
    let port = free_port();
    let bin = tmp.path().join("linux-arm64/hello-go");
    let target = kiln::target::Targets::builtin()
        .find("arm64")
        .unwrap()
        .clone();
    let mut cmd = match kiln::toolchain::runner(&target).unwrap_or_else(|e| panic!("{e}")) {
        kiln::toolchain::Runner::Direct => std::process::Command::new(&bin),
        kiln::toolchain::Runner::Qemu(q) => {
            let mut c = std::process::Command::new(q);
            c.arg(&bin);
            c
        }
    };
    let mut child = cmd
        .args(["-port", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let body = http_get(port);
    child.kill().unwrap();
    let mut printed = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut printed)
        .unwrap();
    let _ = child.wait();
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body}");
    assert!(body.contains("Hello from kiln! GOARCH=arm64"), "{body}");
    assert!(
        printed.contains("localhost resolves to") && printed.contains("127.0.0.1"),
        "{printed}"
    );
}

#[test]
fn cgo_package_is_detected_and_linked_statically_for_arm64() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(out) = build(&fixture("go-cgo"), "linux/arm64", tmp.path(), &["--smoke"]) else {
        return;
    };
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cgo on"), "{err}");
    assert!(err.contains("cgo ok on arm64: 42"), "{err}");
    let bin = tmp.path().join("linux-arm64/go-cgo");
    assert_static_for(&bin, "arm64");
    assert_eq!(go_build_setting(&bin, "CGO_ENABLED").as_deref(), Some("1"));
    // Stripped like a pure Go build, although the C toolchain did the final link.
    let r = report(&bin);
    assert!(r.stripped && !r.debug_info, "{r:?}");
}

#[test]
fn directory_without_go_mod_is_not_a_go_module() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("main.go"),
        "package main\n\nfunc main() {}\n",
    )
    .unwrap();
    let out = capture(kiln().arg("build").arg(tmp.path()));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("no go.mod") && err.contains("go mod init"),
        "{err}"
    );
}

#[test]
fn main_package_that_does_not_compile_names_target_command_and_error() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(out) = build(&fixture("go-broken"), "linux/arm64", tmp.path(), &[]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("linux/arm64 failed"), "{err}");
    // `-p=N` is go's share of kiln's jobserver tokens; the rest of the command follows.
    assert!(err.contains("go build -p="), "{err}");
    assert!(err.contains(" -trimpath "), "{err}");
    assert!(err.contains("GOARCH=arm64"), "{err}");
    assert!(
        err.contains(r#"cannot use "not a number""#),
        "compiler error missing: {err}"
    );
    assert!(!tmp.path().join("linux-arm64/go-broken").exists());
}

#[test]
fn cgo_header_kiln_cannot_find_is_named_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(out) = build(
        &fixture("go-cgo-missing-header"),
        "linux/arm64",
        tmp.path(),
        &[],
    ) else {
        return;
    };
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("linux/arm64 failed"), "{err}");
    assert!(
        err.contains("CGO_ENABLED=1") && err.contains("go build"),
        "{err}"
    );
    assert!(
        err.contains("'zlib.h' file not found"),
        "the header is not named: {err}"
    );
    assert!(err.contains("headers of host libraries"), "{err}");
}

#[test]
fn doctor_and_toolchain_which_report_go() {
    if !have_go() {
        return;
    }
    let doc = capture(kiln().arg("doctor"));
    let text = stdout(&doc);
    let line = text
        .lines()
        .find(|l| l.contains(" go "))
        .unwrap_or_else(|| panic!("no go line in\n{text}"));
    assert!(line.starts_with("ok") && line.contains("go1."), "{line}");
    let which = capture(kiln().args(["toolchain", "which", "go"]));
    assert!(which.status.success(), "{}", stderr(&which));
    assert!(stdout(&which).contains("go"), "{}", stdout(&which));
    // A KILN_GO that points nowhere is a missing toolchain (exit 4) with the fix.
    let missing = capture(
        kiln()
            .arg("build")
            .arg(example("hello-go"))
            .env("KILN_GO", "/nonexistent/go"),
    );
    assert_eq!(missing.status.code(), Some(4));
    assert!(
        stderr(&missing).contains("kiln toolchain install go"),
        "{}",
        stderr(&missing)
    );
}

/// The full matrix: the example and the cgo fixture on every platform (see
/// `matrix_platforms`), each one verified and run; 32-bit ARM carries its GOARM, and cgo
/// builds the ARM build attributes of the C code zig compiled.
#[test]
#[ignore = "long: every platform; run by `cargo xtask e2e [--all]`"]
fn every_platform_builds_and_runs_go_and_cgo() {
    if !have_go() {
        return;
    }
    for (project, cgo) in [(example("hello-go"), false), (fixture("go-cgo"), true)] {
        let name = project.file_name().unwrap().to_str().unwrap().to_string();
        // In cgo builds the C code zig compiled carries ARM build attributes.
        build_every_platform(&project, &name, &[], cgo, |target, bin, lines| {
            let p = &target.platform;
            let want = if cgo {
                format!("cgo ok on {}: 42", target.goarch)
            } else {
                format!("GOARCH={} GOOS=linux", target.goarch)
            };
            assert!(lines.contains(&want), "{p}: {want} missing from\n{lines}");
            // 32-bit ARM: v6 and v7 binaries say so in the build info too.
            if let Some(goarm) = &target.goarm {
                assert_eq!(go_build_setting(bin, "GOARM").as_ref(), Some(goarm), "{p}");
            }
        });
    }
}

/// A second `kiln build` with nothing changed runs neither `go list` nor `go build` (kiln's
/// fingerprint of the module, toolchain, environment and command matches), and any change
/// to a source, GOFLAGS or the output brings the build back.
#[test]
fn an_unchanged_module_is_not_rebuilt_and_a_changed_one_is() {
    if !have_go() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("hello-go");
    std::fs::create_dir(&project).unwrap();
    for f in ["go.mod", "main.go"] {
        std::fs::copy(example("hello-go").join(f), project.join(f)).unwrap();
    }
    let (wrapper, log) = crate::support::logging_go(tmp.path());
    let target_dir = tmp.path().join("target");
    let out = tmp.path().join("dist");
    let build = |extra_env: &[(&str, &str)]| {
        let mut cmd = kiln();
        cmd.arg("build")
            .arg(&project)
            .args(["--platform", "linux/amd64,linux/arm64", "--smoke"])
            .arg("--target-dir")
            .arg(&target_dir)
            .arg("--out-dir")
            .arg(&out)
            .env("KILN_GO", &wrapper);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let o = capture(&mut cmd);
        assert!(o.status.success(), "{}", stderr(&o));
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        (
            calls.lines().filter(|l| *l == "build").count(),
            calls.lines().filter(|l| *l == "list").count(),
            stderr(&o),
        )
    };
    let greeting = |arch: &str| {
        let bin = out.join(format!("linux-{arch}/hello-go"));
        assert_static_for(&bin, arch);
        bin
    };

    assert_eq!(build(&[]).0, 2, "first build: one go build per platform");
    let (builds, lists, err) = build(&[]);
    assert_eq!((builds, lists), (0, 0), "nothing changed: {err}");
    // The binaries are still verified, copied and smoke-run.
    assert!(err.contains("Hello from kiln! GOARCH=arm64"), "{err}");
    greeting("amd64");

    // An edited source: listed and built again, and the new text is in the binaries.
    let main = project.join("main.go");
    let src = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        src.replace("Hello from kiln!", "Hello again from kiln!"),
    )
    .unwrap();
    let (builds, lists, err) = build(&[]);
    assert_eq!((builds, lists), (2, 1));
    assert!(err.contains("Hello again from kiln! GOARCH=arm64"), "{err}");
    assert_eq!(build(&[]).0, 0);

    // GOFLAGS is an input.
    assert_eq!(build(&[("GOFLAGS", "-tags=kilntest")]).0, 2);
    assert_eq!(build(&[("GOFLAGS", "-tags=kilntest")]).0, 0);

    // A work-dir output that changed behind kiln's back is rebuilt (only that platform).
    let work = walkdir_find(&target_dir, "hello-go", "arm64");
    std::fs::write(&work, b"not a binary").unwrap();
    assert_eq!(build(&[("GOFLAGS", "-tags=kilntest")]).0, 1);
    greeting("arm64");
}

/// The file `name` under `dir` whose parent directory is named `parent`.
fn walkdir_find(dir: &Path, name: &str, parent: &str) -> std::path::PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == name)
                && p.parent()
                    .and_then(|q| q.file_name())
                    .is_some_and(|n| n == parent)
            {
                return p;
            }
        }
    }
    panic!("no {parent}/{name} under {}", dir.display());
}
