//! Issue #9, "the static gate must not pass broken binaries": binaries the kernel would not
//! start (truncated, a program-header table it refuses, entry point outside executable code,
//! headers without contents) fail `kiln inspect` and `kiln image` with exit 3 and the reason;
//! a non-ELF file named on the command line is an error that says what it is, while a
//! directory walk still skips and counts such files. Inputs are crafted from the committed
//! fixtures inside each test's temp dir, and the test dir is all that changes.

use crate::support;

use std::path::{Path, PathBuf};

use support::{assert_unchanged, capture_text, elf_fixture, kiln_in, snapshot};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `kiln inspect FILE` in `dir`: (exit code, stdout + stderr).
fn inspect(dir: &Path, file: &Path, extra: &[&str]) -> (i32, String) {
    let (code, so, se) = capture_text(kiln_in(dir).arg("inspect").args(extra).arg(file));
    (code, format!("{so}{se}"))
}

fn patched(src: &str, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = std::fs::read(elf_fixture(src)).unwrap();
    f(&mut b);
    b
}

#[test]
fn truncated_binaries_cannot_run_and_fail_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    for src in [
        "amd64-static",
        "amd64-static-pie",
        "arm64-static",
        "s390x-static",
    ] {
        let full = std::fs::read(elf_fixture(src)).unwrap();
        for len in [4096, full.len() / 2] {
            let f = write(tmp.path(), &format!("{src}-{len}"), &full[..len]);
            let (code, out) = inspect(tmp.path(), &f, &[]);
            assert_eq!(code, 3, "{src} cut to {len} bytes must fail: {out}");
            assert!(out.contains("cannot run"), "{out}");
            assert!(out.contains("truncated"), "{out}");
            assert!(out.contains("not-runnable"), "{out}");
        }
        // The whole file still passes.
        let (code, out) = inspect(tmp.path(), &elf_fixture(src), &[]);
        assert_eq!(code, 0, "{out}");
    }
}

#[test]
fn program_header_tables_the_kernel_refuses_fail() {
    let tmp = tempfile::tempdir().unwrap();
    // e_phnum is the u16 at offset 56 of a 64-bit little-endian header.
    for (name, phnum) in [
        ("phnum-ffff", 0xffffu16),
        ("phnum-0", 0),
        ("phnum-2000", 2000),
    ] {
        let b = patched("amd64-static", |b| {
            b[56..58].copy_from_slice(&phnum.to_le_bytes())
        });
        let f = write(tmp.path(), name, &b);
        let (code, out) = inspect(tmp.path(), &f, &[]);
        assert_eq!(code, 3, "{name}: {out}");
        assert!(out.contains("program-header table"), "{name}: {out}");
    }
}

#[test]
fn entry_point_outside_executable_code_fails() {
    let tmp = tempfile::tempdir().unwrap();
    // e_entry is the u64 at offset 24: 0 is in no segment; 0x200000 and a large value in none
    // that is executable for this small file.
    for entry in [0u64, 0x10, u64::MAX - 7] {
        let b = patched("amd64-static", |b| {
            b[24..32].copy_from_slice(&entry.to_le_bytes())
        });
        let f = write(tmp.path(), &format!("entry-{entry:x}"), &b);
        let (code, out) = inspect(tmp.path(), &f, &[]);
        assert_eq!(code, 3, "entry {entry:#x}: {out}");
        assert!(out.contains("entry point"), "{out}");
    }
}

#[test]
fn sparse_header_only_files_fail_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let full = std::fs::read(elf_fixture("amd64-static")).unwrap();
    // 64 bytes of ELF header, or the first page (headers, no code), then 4 GiB of holes.
    for keep in [64usize, 4096] {
        let p = tmp.path().join(format!("sparse-{keep}"));
        std::fs::write(&p, &full[..keep]).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(4 << 30)
            .unwrap();
        let started = std::time::Instant::now();
        let (code, out) = inspect(tmp.path(), &p, &[]);
        assert_eq!(code, 3, "{out}");
        assert!(out.contains("cannot run"), "{out}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "inspecting a sparse file read its holes: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn kiln_image_refuses_a_truncated_binary_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let full = std::fs::read(elf_fixture("amd64-static")).unwrap();
    let f = write(tmp.path(), "app", &full[..full.len() / 2]);
    let before = snapshot(tmp.path());
    let (code, so, se) = capture_text(
        kiln_in(tmp.path())
            .arg("image")
            .arg(format!("--binary=linux/amd64={}", f.display()))
            .arg("--output=oci:out"),
    );
    assert_eq!(code, 3, "{so}{se}");
    assert!(
        se.contains("cannot run") && se.contains("truncated"),
        "{se}"
    );
    assert!(!tmp.path().join("out").exists(), "no image may be written");
    let after = snapshot(tmp.path());
    assert_unchanged(
        &before,
        &after,
        &[
            &tmp.path().join("home"),
            &tmp.path().join("tmp"),
            &tmp.path().join("cache"),
        ],
    );
}

#[test]
fn named_non_elf_files_are_errors_that_say_what_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dist");
    std::fs::create_dir(&dir).unwrap();
    let cases = [
        ("empty", &b""[..], "an empty file"),
        ("script", b"#!/bin/sh -e\necho hi\n", "#!/bin/sh -e"),
        ("data", b"PK\x03\x04 not a program", "50 4b 03 04"),
    ];
    for (name, bytes, says) in cases {
        let f = write(&dir, name, bytes);
        let (code, out) = inspect(tmp.path(), &f, &[]);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains("not an ELF file"), "{out}");
        assert!(out.contains(says), "{name} must say {says:?}: {out}");
        // --require any only relaxes the linkage policy, not what a named input must be.
        let (code, _) = inspect(tmp.path(), &f, &["--require", "any"]);
        assert_eq!(code, 1);
    }
    // Inside a directory walk the same files are skipped and counted.
    std::fs::copy(elf_fixture("amd64-static"), dir.join("app")).unwrap();
    let (code, out) = inspect(tmp.path(), &dir, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("skipped 3 non-ELF"), "{out}");
}
