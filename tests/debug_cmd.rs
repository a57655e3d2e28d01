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

/// Whether apt here knows arm64 (`cargo xtask setup` adds it), so Debian's arm64
/// busybox-static can be pinned; else [`crate::support::unavailable`].
fn apt_knows_arm64() -> bool {
    let out = std::process::Command::new("dpkg")
        .arg("--print-foreign-architectures")
        .output();
    out.is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l == "arm64")
    }) || crate::support::unavailable(
        "apt does not know arm64: `dpkg --add-architecture arm64 && apt-get update` (or run \
             `cargo xtask setup`)",
    )
}

/// `--debug-image` for linux/arm64: busybox-static:arm64 is pinned in the project's
/// kiln-base.lock, `kiln debug` runs the twin's `/busybox/sh -c 'ls /usr/local/bin'` under
/// qemu (and Docker through binfmt); `kiln base lock` then pins the distroless packages
/// and keeps the busybox pin (pinned again from apt, or kept as it was when a `--debs`
/// directory has no busybox).
#[test]
fn arm64_debug_twin_runs_busybox_under_qemu_and_base_lock_keeps_its_pin() {
    use crate::support::{self, arm64_binfmt_ready, docker_load, docker_ready, run_ok, stderr};
    if !support::have_zig() || !apt_knows_arm64() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("c-sources");
    support::copy_dir(&support::fixture("c-sources"), &project);
    let layout = format!("oci:{}:1", tmp.path().join("oci").display());
    let archive = tmp.path().join("app.tar");
    let reference = format!("kiln-test/arm64-twin:{}", std::process::id());
    let out = support::build_into(
        &project,
        "linux/arm64",
        &tmp.path().join("dist"),
        &[
            "--debug-image",
            "-o",
            &layout,
            "-o",
            &format!("docker-archive:{}:{reference}", archive.display()),
            "--docker-platform",
            "linux/arm64",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lock_path = project.join("kiln-base.lock");
    let pinned = kiln::oci::distroless::LockFile::read(&lock_path).unwrap();
    let busybox: Vec<&str> = pinned
        .package
        .iter()
        .filter(|p| p.name == "busybox-static")
        .map(|p| p.architecture.as_str())
        .collect();
    assert_eq!(busybox, ["arm64"]);

    let twin = format!("{layout}-debug");
    let (code, text, err) = kiln_run(&[
        "debug",
        &twin,
        "--platform",
        "linux/arm64",
        "--",
        "/busybox/sh",
        "-c",
        "ls /usr/local/bin; uname -m",
    ]);
    if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
        assert_eq!(code, 0, "{err}");
        assert_eq!(text, "sources-hello\naarch64\n");
    } else {
        assert_eq!(code, 2, "{err}");
    }
    if docker_ready() && arm64_binfmt_ready() {
        let loaded = docker_load(&tmp.path().join("app-debug.tar"));
        let out = run_ok(std::process::Command::new("docker").args([
            "run",
            "--rm",
            "--platform",
            "linux/arm64",
            &loaded,
            "-c",
            "ls /usr/local/bin",
        ]));
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", &loaded])
            .output();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "sources-hello\n");
    }

    // `kiln base lock` over that lock: the distroless packages plus the busybox pin.
    let cache = tmp.path().join("cache");
    let lock_s = lock_path.to_str().unwrap();
    let (code, _, err) = support::kiln_run_env(
        &["base", "lock", "-o", lock_s],
        &[("KILN_CACHE_DIR", &cache)],
    );
    assert_eq!(code, 0, "{err}");
    let relocked = kiln::oci::distroless::LockFile::read(&lock_path).unwrap();
    let names: Vec<(&str, &str)> = relocked
        .package
        .iter()
        .map(|p| (p.name.as_str(), p.architecture.as_str()))
        .collect();
    assert!(names.contains(&("busybox-static", "arm64")), "{names:?}");
    assert!(names.contains(&("ca-certificates", "all")), "{names:?}");
    let bb = |l: &kiln::oci::distroless::LockFile| {
        l.package
            .iter()
            .find(|p| p.name == "busybox-static")
            .cloned()
            .unwrap()
    };
    assert_eq!(bb(&relocked), bb(&pinned), "the same current busybox");

    // From a directory of .deb files without busybox: the pin is kept, with a warning.
    let debs = tmp.path().join("debs");
    std::fs::create_dir(&debs).unwrap();
    for e in std::fs::read_dir(cache.join("debs")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("busybox-static_") {
            std::fs::copy(&p, debs.join(&name)).unwrap();
        }
    }
    let (code, _, err) = support::kiln_run_env(
        &[
            "base",
            "lock",
            "--debs",
            debs.to_str().unwrap(),
            "-o",
            lock_s,
        ],
        &[("KILN_CACHE_DIR", &cache)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: no busybox-static .deb for arm64 in"),
        "{err}"
    );
    assert_eq!(
        bb(&kiln::oci::distroless::LockFile::read(&lock_path).unwrap()),
        bb(&pinned)
    );
}
