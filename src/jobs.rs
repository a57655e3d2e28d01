//! One make-style jobserver for every compiler kiln starts: cargo and make join it (through
//! `MAKEFLAGS`/`CARGO_MAKEFLAGS`), Go gets `-p` from the tokens it holds, so the compiler jobs
//! of all targets together stay within the CPU count (or `-j`).
//!
//! Each child kiln starts holds one token for its lifetime (the "implicit" token a make
//! child owns) and takes the rest from the pipe itself. When kiln runs under make with a
//! jobserver, it joins that one instead of making its own.

use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The jobserver of this kiln process.
pub struct Jobs {
    client: jobserver::Client,
    limit: usize,
    /// Taken while one caller gathers several tokens, so two callers that each need more
    /// than one never hold half of what they need while waiting for each other.
    gather: Mutex<()>,
    /// Joined from the environment (`make -jN` running kiln).
    inherited: bool,
}

/// Tokens held for one child process; released when dropped.
pub struct Tokens {
    held: Vec<jobserver::Acquired>,
}

impl Tokens {
    /// How many jobs the holder may run at once.
    pub fn count(&self) -> usize {
        self.held.len()
    }
}

static JOBS: OnceLock<Jobs> = OnceLock::new();

/// The machine's CPU count (what `-j` defaults to).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Set up the jobserver: `limit` jobs when given (`-j`), else the jobserver of a parent
/// make, else one job per CPU. Later calls return the first one's.
pub fn init(limit: Option<usize>) -> &'static Jobs {
    JOBS.get_or_init(|| make(limit))
}

/// The jobserver, set up with the defaults if nothing set it up yet.
pub fn global() -> &'static Jobs {
    init(None)
}

fn make(limit: Option<usize>) -> Jobs {
    if limit.is_none() {
        // SAFETY: the descriptors named in MAKEFLAGS are checked to be pipes or fifos and
        // are used only through this client.
        let from_env = unsafe { jobserver::Client::from_env_ext(true) };
        if let Ok(client) = from_env.client {
            return Jobs {
                client,
                limit: cpu_count(),
                gather: Mutex::new(()),
                inherited: true,
            };
        }
    }
    let limit = limit.unwrap_or_else(cpu_count).max(1);
    match jobserver::Client::new(limit) {
        Ok(client) => Jobs {
            client,
            limit,
            gather: Mutex::new(()),
            inherited: false,
        },
        // Without a pipe (descriptor limit) there is nothing sensible to share; a
        // one-token server still bounds kiln's own children.
        Err(_) => Jobs {
            client: jobserver::Client::new(1).expect("a jobserver pipe"),
            limit: 1,
            gather: Mutex::new(()),
            inherited: false,
        },
    }
}

impl Jobs {
    /// The number of jobs that may run at once (the parent make's is not known: the CPU
    /// count then).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether this is a parent make's jobserver.
    pub fn inherited(&self) -> bool {
        self.inherited
    }

    /// Wait for `n` tokens (at least one, at most the limit).
    pub fn acquire(&self, n: usize) -> std::io::Result<Tokens> {
        let n = n.clamp(1, self.limit);
        let _one_at_a_time = (n > 1).then(|| self.gather.lock().unwrap_or_else(|e| e.into_inner()));
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            held.push(self.client.acquire()?);
        }
        Ok(Tokens { held })
    }

    /// Hand the jobserver to a child: `MAKEFLAGS`, `MFLAGS` and `CARGO_MAKEFLAGS` name its
    /// pipe, whose descriptors the child inherits.
    pub fn configure(&self, cmd: &mut Command) {
        self.client.configure_make(cmd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_request_is_capped_at_the_limit_and_waits_for_returned_tokens() {
        let jobs: &'static Jobs = Box::leak(Box::new(make(Some(2))));
        assert_eq!(jobs.limit(), 2);
        let all = jobs.acquire(5).unwrap();
        assert_eq!(all.count(), 2, "capped at the limit");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let t = jobs.acquire(1).unwrap();
            tx.send(t.count()).unwrap();
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "no token while both are held"
        );
        drop(all);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
    }

    #[test]
    fn a_child_sees_the_jobserver_in_makeflags() {
        let jobs = make(Some(3));
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo $MAKEFLAGS"]);
        jobs.configure(&mut cmd);
        let out = cmd.output().unwrap();
        let flags = String::from_utf8_lossy(&out.stdout);
        assert!(flags.contains("--jobserver-auth="), "{flags}");
    }
}
