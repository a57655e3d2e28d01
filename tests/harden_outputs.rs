//! Issue #9, "outputs must never replace what is not kiln's": an archive destination that
//! exists and is not a regular file (device, FIFO, socket, directory, symlink to one or into
//! /proc) is refused with exit 2 and left as it was; `-` streams the archive to stdout
//! (byte-identical to the file); temporary files never stay in blobs/sha256 (a run killed
//! with SIGKILL leaves a layout the next run cleans and `umoci gc` accepts); a blob of the
//! right size but wrong bytes is rewritten, not reused. Device nodes and FIFOs are made in
//! each test's own temp dir.

use crate::support;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{assert_unchanged, capture_text, elf_fixture, kiln_in, run_ok, snapshot, tool};

/// `kiln image` args packing the static amd64 fixture.
fn image_args(tmp: &Path, output: &str) -> Vec<String> {
    let bin = tmp.join("bin/hello");
    if !bin.exists() {
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::copy(elf_fixture("amd64-static"), &bin).unwrap();
    }
    vec![
        "image".into(),
        format!("--binary=linux/amd64={}", bin.display()),
        format!("--output={output}"),
        "-q".into(),
    ]
}

/// Things that are not regular files, made inside `dir`: (name, path).
fn specials(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut out = Vec::new();
    let null = dir.join("null");
    // Root can make device nodes; elsewhere the test still covers the other kinds.
    if Command::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success())
    {
        out.push(("char device", null.clone()));
        let link = dir.join("link-to-dev");
        std::os::unix::fs::symlink(&null, &link).unwrap();
        out.push(("symlink to a device", link));
    }
    let fifo = dir.join("fifo");
    run_ok(Command::new("mkfifo").arg(&fifo));
    out.push(("FIFO", fifo));
    let sock = dir.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::mem::forget(_listener);
    out.push(("socket", sock));
    let d = dir.join("a-dir");
    std::fs::create_dir(&d).unwrap();
    out.push(("directory", d));
    let proc_link = dir.join("link-to-proc");
    std::os::unix::fs::symlink("/proc/self/status", &proc_link).unwrap();
    out.push(("symlink into /proc", proc_link));
    let dangling = dir.join("dangling");
    std::os::unix::fs::symlink(dir.join("nowhere/x"), &dangling).unwrap();
    out.push(("dangling symlink", dangling));
    out
}

#[test]
fn archive_destinations_that_are_not_regular_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let nodes = t.join("nodes");
    std::fs::create_dir(&nodes).unwrap();
    let cases = specials(&nodes);
    image_args(t, "oci:unused");
    let before = snapshot(t);
    for (what, path) in &cases {
        for transport in ["oci-archive", "docker-archive"] {
            let out = format!("{transport}:{}", path.display());
            let (code, _, se) = capture_text(kiln_in(t).args(image_args(t, &out)));
            assert_eq!(code, 2, "{what} as {transport}: {se}");
            assert!(se.contains("not a regular file"), "{what}: {se}");
            assert!(
                se.contains("docker-archive:-"),
                "the error names the way out: {se}"
            );
        }
    }
    // Every node is still what it was (type, inode, size, times); nothing else appeared.
    let after = snapshot(t);
    assert_unchanged(
        &before,
        &after,
        &[&t.join("home"), &t.join("tmp"), &t.join("cache")],
    );
    if let Some((_, null)) = cases.iter().find(|(w, _)| *w == "char device") {
        assert!(
            std::fs::symlink_metadata(null)
                .unwrap()
                .file_type()
                .is_char_device()
        );
    }
}

#[test]
fn a_symlink_to_a_regular_file_is_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("real.tar"), b"old").unwrap();
    std::os::unix::fs::symlink("real.tar", t.join("link.tar")).unwrap();
    let (code, _, se) = capture_text(kiln_in(t).args(image_args(t, "oci-archive:link.tar")));
    assert_eq!(code, 0, "{se}");
    assert!(
        std::fs::symlink_metadata(t.join("link.tar"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::metadata(t.join("real.tar")).unwrap().len() > 1024);
}

#[test]
fn archives_stream_to_stdout_byte_identical_to_files() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for transport in ["oci-archive", "docker-archive"] {
        let file = t.join(format!("{transport}.tar"));
        let (code, _, se) = capture_text(
            kiln_in(t).args(image_args(t, &format!("{transport}:{}", file.display()))),
        );
        assert_eq!(code, 0, "{se}");
        let out = kiln_in(t)
            .args(image_args(t, &format!("{transport}:-")))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let written = std::fs::read(&file).unwrap();
        assert!(
            out.stdout == written,
            "{transport}:- must write exactly the archive"
        );
        // Read back as an image from what came through the pipe.
        let piped = t.join(format!("{transport}-piped.tar"));
        std::fs::write(&piped, &out.stdout).unwrap();
        let (code, so, se) = capture_text(
            kiln_in(t)
                .arg("inspect")
                .arg(format!("{transport}:{}", piped.display())),
        );
        assert_eq!(code, 0, "{so}{se}");
    }
    // A terminal is no place for an archive, and two outputs cannot share stdout.
    let (code, _, se) = capture_text(
        kiln_in(t)
            .args(image_args(t, "oci-archive:-"))
            .arg("--output=docker-archive:-")
            .stdout(Stdio::null()),
    );
    assert_eq!(code, 2, "{se}");
}

#[test]
fn docker_loads_an_archive_streamed_through_a_pipe() {
    if Command::new("docker")
        .arg("info")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        let msg = "no Docker engine answers (`apt-get install -y docker.io`, start dockerd)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIP: {msg}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let tag = format!("kiln-harden-pipe:{}", std::process::id());
    let mut kiln = kiln_in(t)
        .args(image_args(t, &format!("docker-archive:-:{tag}")))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let load = Command::new("docker")
        .arg("load")
        .stdin(kiln.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(kiln.wait().unwrap().success());
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let run = Command::new("docker")
        .args(["run", "--rm", &tag])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rmi", &tag]).output();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

fn blob_names(layout: &Path) -> Vec<String> {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_killed_run_leaves_no_temporary_blobs_and_umoci_gc_works() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // A big static binary (the fixture with 96 MiB of random bytes after it: still runnable)
    // so the kill lands while blobs are written.
    let big = t.join("bin/hello");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    let mut bytes = std::fs::read(elf_fixture("amd64-static")).unwrap();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    bytes.extend((0..96 << 20).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    std::fs::write(&big, &bytes).unwrap();
    let layout = t.join("out");
    // An older kiln's leftover, where readers expect only digests.
    let (code, _, se) = capture_text(kiln_in(t).args(image_args(t, "oci:out:first")));
    assert_eq!(code, 0, "{se}");
    std::fs::write(layout.join("blobs/sha256/.kiln-tmp-OLD"), b"partial").unwrap();
    std::fs::write(layout.join(".kiln-tmp-OLD2"), b"partial").unwrap();

    // Killed the moment a blob's temporary file exists (so mid-write), else after 60 s.
    let bytes_len = bytes.len();
    bytes[bytes_len - 1] ^= 1; // a new layer, so there is something to write
    std::fs::write(&big, &bytes).unwrap();
    let mut child = kiln_in(t)
        .args(image_args(t, "oci:out:killed"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let temp_now = || {
        std::fs::read_dir(&layout)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .chain(blob_names(&layout))
            .any(|n| n.starts_with(".kiln-tmp-") && !n.ends_with("OLD") && !n.ends_with("OLD2"))
    };
    while !temp_now() && started.elapsed() < std::time::Duration::from_secs(60) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    for name in blob_names(&layout) {
        assert!(
            !name.starts_with(".kiln-tmp-") || name == ".kiln-tmp-OLD",
            "a killed run left blobs/sha256/{name}"
        );
    }
    // The next run cleans every leftover.
    let (code, _, se) = capture_text(kiln_in(t).args(image_args(t, "oci:out:last")));
    assert_eq!(code, 0, "{se}");
    let leftovers: Vec<String> = std::fs::read_dir(&layout)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .chain(blob_names(&layout))
        .filter(|n| n.starts_with(".kiln-tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    if let Some(umoci) = tool("umoci", "apt-get install -y umoci") {
        let out = Command::new(umoci)
            .args(["gc", "--layout"])
            .arg(&layout)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "umoci gc: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_present_blob_with_the_right_size_but_wrong_bytes_is_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (code, _, se) = capture_text(kiln_in(t).args(image_args(t, "oci:out:one")));
    assert_eq!(code, 0, "{se}");
    // Damage every blob, keeping its size.
    let dir = t.join("out/blobs/sha256");
    let mut damaged = Vec::new();
    for name in blob_names(&t.join("out")) {
        let p = dir.join(&name);
        let mut b = std::fs::read(&p).unwrap();
        b[0] ^= 0xff;
        std::fs::write(&p, &b).unwrap();
        damaged.push(p);
    }
    let (code, _, se) = capture_text(kiln_in(t).args(image_args(t, "oci:out:two")));
    assert_eq!(code, 0, "{se}");
    for p in damaged {
        let b = std::fs::read(&p).unwrap();
        let got = hex::encode(sha2::Sha256::digest(&b));
        assert_eq!(
            Some(got.as_str()),
            p.file_name().and_then(|n| n.to_str()),
            "{}",
            p.display()
        );
    }
    let (code, so, se) = capture_text(kiln_in(t).arg("inspect").arg("oci:out:two"));
    assert_eq!(code, 0, "{so}{se}");
}

use sha2::Digest as _;
