//! `kiln debug`: an arm64 image's root filesystem unpacked and its binary run in a chroot
//! under qemu-user (binfmt_misc, or qemu-aarch64-static copied in), no Docker; an image
//! without a shell asks for a command; without root, a message says what is needed.

use std::os::unix::fs::MetadataExt;

use crate::support::{fixture_hello, kiln_run};

#[test]
fn kiln_debug_runs_a_command_in_an_arm64_rootfs() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:v1", tmp.path().join("oci").display());
    let (code, _, err) = kiln_run(&[
        "image",
        "--binary",
        &format!("linux/amd64={}", fixture_hello("amd64").display()),
        "--binary",
        &format!("linux/arm64={}", fixture_hello("arm64").display()),
        "-o",
        &layout,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = kiln_run(&[
        "debug",
        &layout,
        "--platform",
        "linux/arm64",
        "--",
        "/usr/local/bin/hello-arm64",
        "inside",
    ]);
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("chroot needs root: run it again with sudo"),
            "{err}"
        );
        return;
    }
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hello from kiln uid=0\narg inside\n");
    assert!(
        err.contains("running /usr/local/bin/hello-arm64 inside in")
            && err.contains("(linux/arm64)"),
        "{err}"
    );

    let (code, _, err) = kiln_run(&["debug", &layout, "--platform", "arm64"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("has no shell (/busybox/sh or /bin/sh)"),
        "{err}"
    );
    let (code, _, err) = kiln_run(&["debug", &layout, "--platform", "riscv64"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("has no image for linux/riscv64: it has linux/amd64, linux/arm64"),
        "{err}"
    );
}
