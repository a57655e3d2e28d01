//! The one place kiln spawns processes. Every command carries a one-line human summary,
//! is logged at `-v`, captures its stderr, and on failure reports the command line and the
//! tail of what it printed.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::SystemTime;

static VERBOSITY: AtomicU8 = AtomicU8::new(0);

/// Set the global verbosity (0 quiet-ish, 1 `-v` logs commands, 2 `-vv` also streams output).
pub fn set_verbosity(v: u8) {
    VERBOSITY.store(v, Ordering::Relaxed);
}

pub fn verbosity() -> u8 {
    VERBOSITY.load(Ordering::Relaxed)
}

/// `KILN_TRACE=FILE`: append one line per command and build stage to FILE, to see where a
/// build waits: `START READY END TOKENS WHAT`, times in seconds since the Unix epoch, READY
/// when it got its jobserver tokens (TOKENS of them) and started its work.
pub fn trace(what: &str, start: SystemTime, ready: SystemTime, tokens: usize) {
    static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    let Some(path) = FILE.get_or_init(|| std::env::var_os("KILN_TRACE").map(PathBuf::from)) else {
        return;
    };
    let secs = |t: SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let line = format!(
        "{:.3} {:.3} {:.3} {tokens} {what}\n",
        secs(start),
        secs(ready),
        secs(SystemTime::now())
    );
    // One write of a short line to an O_APPEND file: lines from threads and child kilns
    // do not interleave. A trace that cannot be written is not the build's failure.
    use std::io::Write;
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
}

/// Start a process, again while the kernel refuses its program as open for writing
/// (ETXTBSY). A binary kiln has just written can still be open in a child that another
/// thread is starting (a child holds a copy of every descriptor until its exec): for
/// microseconds usually, longer on a loaded machine. Anything else, or still busy after 2 s,
/// is returned as it came.
fn retry_busy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match start() {
            Err(e)
                if e.raw_os_error() == Some(libc::ETXTBSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            started => return started,
        }
    }
}

/// How many stderr lines a failure report keeps.
const TAIL_LINES: usize = 40;

/// A command that failed to start or exited non-zero.
#[derive(Debug, thiserror::Error)]
pub struct ExecError {
    pub summary: String,
    pub command_line: String,
    /// `None` when the process could not be started.
    pub status: Option<i32>,
    pub stderr_tail: String,
    pub spawn_error: Option<String>,
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.spawn_error, self.status) {
            (Some(e), _) => write!(
                f,
                "{} failed: could not run `{}`: {e}",
                self.summary, self.command_line
            )?,
            (None, Some(code)) => write!(
                f,
                "{} failed: `{}` exited with status {code}",
                self.summary, self.command_line
            )?,
            (None, None) => write!(
                f,
                "{} failed: `{}` was killed by a signal",
                self.summary, self.command_line
            )?,
        }
        if !self.stderr_tail.trim().is_empty() {
            write!(
                f,
                "\n--- last lines it printed ---\n{}",
                self.stderr_tail.trim_end()
            )?;
        }
        Ok(())
    }
}

/// A process to run.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    summary: String,
    /// Runs compilers: holds a token of kiln's jobserver while it runs and joins it.
    jobserver: bool,
}

impl Cmd {
    /// `summary` is the human line: "build hello for linux/arm64".
    pub fn new(program: impl AsRef<Path>, summary: impl Into<String>) -> Self {
        Cmd {
            program: program.as_ref().to_path_buf(),
            args: Vec::new(),
            envs: Vec::new(),
            dir: None,
            stdin: None,
            summary: summary.into(),
            jobserver: false,
        }
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Insert an argument at `index` (`go build -p=N` after `build`).
    pub fn insert_arg(mut self, index: usize, a: impl AsRef<OsStr>) -> Self {
        let index = index.min(self.args.len());
        self.args.insert(index, a.as_ref().to_os_string());
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((k.as_ref().to_os_string(), Some(v.as_ref().to_os_string())));
        self
    }

    /// Feed these bytes to the process's stdin (credential helpers read the server there).
    pub fn stdin_bytes(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    pub fn env_remove(mut self, k: impl AsRef<OsStr>) -> Self {
        self.envs.push((k.as_ref().to_os_string(), None));
        self
    }

    pub fn dir(mut self, d: impl AsRef<Path>) -> Self {
        self.dir = Some(d.as_ref().to_path_buf());
        self
    }

    /// This command runs compilers (cargo, make): it waits for a token of kiln's jobserver
    /// ([`crate::jobs`]), holds it while it runs, and gets the jobserver in `MAKEFLAGS` /
    /// `CARGO_MAKEFLAGS` for the jobs beyond its first.
    pub fn jobserver(mut self) -> Self {
        self.jobserver = true;
        self
    }

    /// The token a [`Cmd::jobserver`] command holds while it runs.
    fn token(&self) -> Result<Option<crate::jobs::Tokens>, ExecError> {
        if !self.jobserver {
            return Ok(None);
        }
        crate::jobs::global()
            .acquire(1)
            .map(Some)
            .map_err(|e| self.error(None, Some(e)))
    }

    pub fn summary(&self) -> &str {
        &self.summary
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The directory it runs in, when not kiln's own.
    pub fn get_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    /// The environment changes this command makes (value `None` = removed).
    pub fn get_envs(&self) -> &[(OsString, Option<OsString>)] {
        &self.envs
    }

    /// The command line as a user could paste it (environment changes first).
    pub fn command_line(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.envs {
            if let Some(v) = v {
                s.push_str(&format!(
                    "{}={} ",
                    k.to_string_lossy(),
                    shell_quote(&v.to_string_lossy())
                ));
            }
        }
        s.push_str(&shell_quote(&self.program.to_string_lossy()));
        for a in &self.args {
            s.push(' ');
            s.push_str(&shell_quote(&a.to_string_lossy()));
        }
        s
    }

    fn expression(&self) -> duct::Expression {
        // An OsStr, not a Path: duct would make a bare Path name relative (`./sh`).
        let mut e = duct::cmd(self.program.as_os_str(), &self.args);
        for (k, v) in &self.envs {
            e = match v {
                Some(v) => e.env(k, v),
                None => e.env_remove(k),
            };
        }
        if let Some(d) = &self.dir {
            e = e.dir(d);
        }
        if self.jobserver {
            e = e.before_spawn(|cmd| {
                crate::jobs::global().configure(cmd);
                Ok(())
            });
        }
        if let Some(b) = &self.stdin {
            e = e.stdin_bytes(b.clone());
        }
        e
    }

    fn log(&self) {
        if verbosity() >= 1 {
            eprintln!("  [kiln] {}: {}", self.summary, self.command_line());
        }
    }

    fn error(&self, out: Option<&Output>, spawn: Option<std::io::Error>) -> ExecError {
        let stderr_tail = out
            .map(|o| {
                let mut text = String::from_utf8_lossy(&o.stderr).into_owned();
                if text.trim().is_empty() {
                    text = String::from_utf8_lossy(&o.stdout).into_owned();
                }
                tail(&text, TAIL_LINES)
            })
            .unwrap_or_default();
        ExecError {
            summary: self.summary.clone(),
            command_line: self.command_line(),
            status: out.and_then(|o| o.status.code()),
            stderr_tail,
            spawn_error: spawn.map(|e| e.to_string()),
        }
    }

    /// Run to completion, capturing stdout and stderr; non-zero exit is an error.
    pub fn run(&self) -> Result<Output, ExecError> {
        let out = self.output()?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.error(Some(&out), None))
        }
    }

    /// Run to completion, capturing stdout and stderr; the exit status is the caller's to judge.
    pub fn output(&self) -> Result<Output, ExecError> {
        let start = SystemTime::now();
        let token = self.token()?;
        let ready = SystemTime::now();
        self.log();
        let out = retry_busy(|| {
            self.expression()
                .stdout_capture()
                .stderr_capture()
                .unchecked()
                .run()
        })
        .map_err(|e| self.error(None, Some(e)))?;
        trace(
            &self.summary,
            start,
            ready,
            token.as_ref().map_or(0, |t| t.count()),
        );
        if verbosity() >= 2 {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(out)
    }

    /// Like [`Cmd::run`], but a process still running after `limit` is killed and reported.
    pub fn run_with_timeout(&self, limit: std::time::Duration) -> Result<Output, ExecError> {
        let _token = self.token()?;
        self.log();
        let handle = retry_busy(|| {
            self.expression()
                .stdout_capture()
                .stderr_capture()
                .unchecked()
                .start()
        })
        .map_err(|e| self.error(None, Some(e)))?;
        let deadline = std::time::Instant::now() + limit;
        loop {
            match handle.try_wait() {
                Ok(Some(out)) => {
                    return if out.status.success() {
                        Ok(out.clone())
                    } else {
                        Err(self.error(Some(out), None))
                    };
                }
                Ok(None) if std::time::Instant::now() >= deadline => {
                    let _ = handle.kill();
                    let mut err = self.error(None, None);
                    err.spawn_error =
                        Some(format!("still running after {} s, killed", limit.as_secs()));
                    return Err(err);
                }
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
                Err(e) => return Err(self.error(None, Some(e))),
            }
        }
    }

    /// Run and return stdout as a trimmed string.
    pub fn read(&self) -> Result<String, ExecError> {
        let out = self.run()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Run with stdin/stdout/stderr inherited (for interactive installers); non-zero is an error.
    pub fn run_inherit(&self) -> Result<(), ExecError> {
        self.log();
        let out = retry_busy(|| self.expression().unchecked().run())
            .map_err(|e| self.error(None, Some(e)))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.error(Some(&out), None))
        }
    }
}

/// Replace this process with `program args` (the zig-cc wrapper hands over to zig, so
/// build tools see zig's own exit status and output). Returns only on failure.
pub fn replace_process(program: &Path, args: &[String]) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(program).args(args).exec();
    Err(anyhow::anyhow!(
        "could not run {}: {err}. Run `kiln doctor` to check the zig installation.",
        program.display()
    ))
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// Quote a word for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_still_open_for_writing_elsewhere_runs_once_it_is_closed() {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let d = tempfile::tempdir().unwrap();
        let prog = d.path().join("just-written");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(&prog)
            .unwrap();
        f.write_all(b"#!/bin/sh\necho ran\n").unwrap();
        // Still open for writing, as in a child another thread has not yet exec'd: the
        // kernel refuses to run it (ETXTBSY) until the descriptor is closed.
        let closer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(150));
            drop(f);
        });
        let out = Cmd::new(&prog, "run a program just written").read();
        closer.join().unwrap();
        assert_eq!(out.unwrap(), "ran");
        // A program busy for longer than the retries is reported as it came.
        let mut f = std::fs::OpenOptions::new().write(true).open(&prog).unwrap();
        f.write_all(b"#").unwrap();
        let err = Cmd::new(&prog, "run a program held open")
            .run()
            .unwrap_err();
        assert!(err.to_string().contains("could not run"), "{err}");
    }

    #[test]
    fn failure_names_command_and_tail() {
        let err = Cmd::new("sh", "say hello")
            .args(["-c", "echo one >&2; echo two >&2; exit 7"])
            .run()
            .unwrap_err();
        assert_eq!(err.status, Some(7));
        let msg = err.to_string();
        assert!(msg.starts_with("say hello failed: `sh -c"), "{msg}");
        assert!(
            msg.contains("status 7") && msg.contains("one\ntwo"),
            "{msg}"
        );
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = Cmd::new("/nonexistent/kiln-test-tool", "run a tool")
            .run()
            .unwrap_err();
        assert!(err.spawn_error.is_some());
        assert!(err.to_string().contains("could not run"));
    }

    #[test]
    fn env_and_dir_apply() {
        let out = Cmd::new("sh", "print env")
            .args(["-c", "echo $KILN_T; pwd"])
            .env("KILN_T", "x y")
            .dir("/")
            .read()
            .unwrap();
        assert_eq!(out, "x y\n/");
    }

    #[test]
    fn timeout_kills_and_reports() {
        let err = Cmd::new("sleep", "sleep forever")
            .arg("30")
            .run_with_timeout(std::time::Duration::from_millis(200))
            .unwrap_err();
        assert!(err.to_string().contains("still running after 0 s"), "{err}");
        let out = Cmd::new("echo", "say hi")
            .arg("hi")
            .run_with_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        assert_eq!(out.stdout, b"hi\n");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc-1.2"), "abc-1.2");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
    }
}
