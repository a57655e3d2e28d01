//! Helpers shared by the OCI integration tests: real tools, or a clear skip (a failure in CI).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln::oci::{ImageSpec, LayerEntry, PlatformImage};

/// Skip (return false) when `tool` is missing, with the install command; in CI, panic.
pub fn have_tool(tool: &str, install: &str) -> bool {
    if which::which(tool).is_ok() {
        return true;
    }
    unavailable(&format!("{tool} not found: install it with `{install}`"))
}

/// Whether zig is available as `python3 -m ziglang`.
pub fn have_zig() -> bool {
    let ok = Command::new("python3")
        .args(["-m", "ziglang", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok || unavailable("zig not found: install it with `pip install ziglang`")
}

/// The `os/architecture` of every manifest in an image index (as skopeo --raw prints it),
/// after checking that it is an OCI index.
pub fn index_platforms(raw: &[u8]) -> Vec<String> {
    let index: serde_json::Value = serde_json::from_slice(raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect()
}

/// Run, panic with the output on failure.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oci")
}

/// A static hello built with zig for `zig_triple` (cached under the cargo target dir).
pub fn static_hello(zig_triple: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oci-hello");
    std::fs::create_dir_all(&dir).unwrap();
    // The source's hash names the cached binary, so editing hello.c rebuilds it.
    let src = std::fs::read(fixtures().join("hello.c")).unwrap();
    let tag = &kiln::digest::sha256_digest(&src)[7..19];
    let out = dir.join(format!("hello-{zig_triple}-{tag}"));
    if !out.exists() {
        let tmp = dir.join(format!("hello-{zig_triple}.tmp{}", std::process::id()));
        run(Command::new("python3")
            .args([
                "-m", "ziglang", "cc", "-target", zig_triple, "-static", "-Os", "-s", "-o",
            ])
            .arg(&tmp)
            .arg(fixtures().join("hello.c")));
        std::fs::rename(&tmp, &out).unwrap();
    }
    out
}

/// The committed static hello for `arch` (`amd64` or `arm64`).
pub fn fixture_hello(arch: &str) -> PathBuf {
    fixtures().join(format!("hello-{arch}"))
}

/// The kiln binary under test.
pub fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

/// Run kiln with `args`; returns (exit code, stdout, stderr).
pub fn kiln_run(args: &[&str]) -> (i32, String, String) {
    kiln_run_env(args, &[])
}

/// `kiln_run` with extra environment variables (SOURCE_DATE_EPOCH is always removed).
pub fn kiln_run_env(args: &[&str], env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut cmd = kiln();
    cmd.args(args).env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (path, mode, uid, gid, type, content or link target) of every entry of a layer tar.
pub fn tar_entries(tar: &[u8]) -> Vec<(String, u32, u64, u64, char, Vec<u8>)> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            if let Some(l) = e.link_name_bytes() {
                data = l.to_vec();
            }
            (
                path,
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.entry_type().as_byte() as char,
                data,
            )
        })
        .collect()
}

/// An image with `bin` as /usr/local/bin/hello, run as nonroot.
pub fn hello_image(platform: &str, bin: &Path) -> PlatformImage {
    PlatformImage {
        platform: platform.parse().unwrap(),
        entries: vec![LayerEntry::file("/usr/local/bin/hello", bin, 0o755)],
        layers: Vec::new(),
        spec: ImageSpec {
            user: "65532:65532".into(),
            entrypoint: vec!["/usr/local/bin/hello".into()],
            ..Default::default()
        },
    }
}

/// Static hellos for amd64 and arm64, and an image of each.
pub fn hello_images() -> (PathBuf, PathBuf, Vec<PlatformImage>) {
    let amd = static_hello("x86_64-linux-musl");
    let arm = static_hello("aarch64-linux-musl");
    let images = vec![
        hello_image("linux/amd64", &amd),
        hello_image("linux/arm64", &arm),
    ];
    (amd, arm, images)
}

/// Every blob in a layout hashes to its name; every descriptor in index.json points at one.
pub fn check_layout(dir: &Path) {
    use sha2::{Digest, Sha256};
    for e in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        assert!(!name.starts_with('.'), "temporary file left: {name}");
        let got = hex::encode(Sha256::digest(std::fs::read(e.path()).unwrap()));
        assert_eq!(got, name, "blob content does not match its name");
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    for m in index["manifests"].as_array().unwrap() {
        let d = m["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        let len = std::fs::metadata(dir.join("blobs/sha256").join(d))
            .unwrap()
            .len();
        assert_eq!(len, m["size"].as_u64().unwrap());
    }
}

/// Fail in CI, skip elsewhere: returns false after saying why.
pub fn unavailable(msg: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIP: {msg}");
    false
}

/// A running Docker engine: started here (`dockerd`) when none answers. The tests of one
/// binary share a single start (a second `dockerd` would fight the first for its pid file).
pub fn docker_ready() -> bool {
    static READY: std::sync::Mutex<Option<bool>> = std::sync::Mutex::new(None);
    let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = *ready {
        return r;
    }
    let r = start_docker();
    *ready = Some(r);
    r
}

fn docker_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The command name of a live process, if `pid` is one.
fn process_name(pid: &str) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", pid.trim())).ok()?;
    Some(comm.trim().to_string())
}

/// Pid files left by a daemon that is gone. A pid that now belongs to another process makes
/// `dockerd` believe its containerd still runs and wait on a dead socket for minutes (seen on a
/// fresh machine restored from a snapshot), so a pid file whose process is not `name` goes.
fn remove_stale_pid_file(path: &Path, name: &str) {
    let Ok(pid) = std::fs::read_to_string(path) else {
        return;
    };
    if process_name(&pid).as_deref() != Some(name) {
        eprintln!("removing stale {} (pid {})", path.display(), pid.trim());
        let _ = std::fs::remove_file(path);
    }
}

fn start_docker() -> bool {
    if !have_tool("docker", "apt-get install -y docker.io")
        || !have_tool("dockerd", "apt-get install -y docker.io")
    {
        return false;
    }
    if docker_answers() {
        return true;
    }
    remove_stale_pid_file(Path::new("/var/run/docker.pid"), "dockerd");
    remove_stale_pid_file(
        Path::new("/var/run/docker/containerd/containerd.pid"),
        "containerd",
    );
    let log = std::env::temp_dir().join("kiln-test-dockerd.log");
    let log_file = std::fs::File::create(&log).unwrap();
    // Left running for the other tests; CI ends it with the run.
    let child = Command::new("dockerd")
        .args(["--host", "unix:///var/run/docker.sock"])
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return unavailable(&format!("cannot start dockerd: {e}")),
    };
    let started = std::time::Instant::now();
    let mut exited = None;
    while started.elapsed() < std::time::Duration::from_secs(180) {
        if docker_answers() {
            eprintln!("dockerd answered after {:.1?}", started.elapsed());
            return true;
        }
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let tail = std::fs::read_to_string(&log).unwrap_or_default();
    let how = match exited {
        Some(status) => format!("dockerd exited ({status})"),
        None => format!("dockerd did not answer in {:.0?}", started.elapsed()),
    };
    unavailable(&format!(
        "{how} (install with `apt-get install -y docker.io`); its log:\n{}",
        kiln::exec::tail(&tail, 20)
    ))
}

/// Foreign arm64 binaries run directly (qemu-user through binfmt_misc), as in containers.
pub fn arm64_binfmt_ready() -> bool {
    let dir = Path::new("/proc/sys/fs/binfmt_misc");
    if dir.join("qemu-aarch64").exists() {
        return true;
    }
    let conf = Path::new("/usr/lib/binfmt.d/qemu-aarch64.conf");
    if !conf.exists() {
        return unavailable(
            "qemu binfmt config missing: install it with `apt-get install -y qemu-user-static`",
        );
    }
    if !dir.join("register").exists() {
        let _ = Command::new("mount")
            .args(["-t", "binfmt_misc", "binfmt_misc"])
            .arg(dir)
            .status();
    }
    let line = std::fs::read_to_string(conf).unwrap();
    let line = line
        .lines()
        .find(|l| l.starts_with(':'))
        .unwrap_or_default();
    if let Err(e) = std::fs::write(dir.join("register"), line) {
        return unavailable(&format!(
            "cannot register qemu-aarch64 with binfmt_misc: {e} (run as root)"
        ));
    }
    dir.join("qemu-aarch64").exists()
}

/// `docker load` an archive; returns the loaded reference.
pub fn docker_load(archive: &Path) -> String {
    let out = run(Command::new("docker").arg("load").arg("-i").arg(archive));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("Loaded image: "))
        .unwrap_or_else(|| panic!("docker load said: {text}"))
        .trim()
        .to_string()
}
