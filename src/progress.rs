//! Progress: indicatif spinners on a terminal, plain status lines on stderr elsewhere, and
//! nothing with `--quiet`. Nothing animated in CI logs.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// `1536` → `1.5 KiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Where status goes.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Progress {
            multi: (tty && !quiet).then(MultiProgress::new),
            quiet,
        }
    }

    /// Are bars drawn (a terminal, not quiet)? Elsewhere only finished lines are worth
    /// printing.
    pub fn live(&self) -> bool {
        self.multi.is_some()
    }

    /// A one-off status line.
    pub fn say(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(format!("  {msg}"));
            }
            None => eprintln!("  {msg}"),
        }
    }

    /// A long-running task with its own line (a spinner on a terminal).
    pub fn task(&self, label: &str) -> Task {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("  {spinner} {prefix:<14} {wide_msg} {elapsed:>4}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(label.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Task {
            bar,
            label: label.to_string(),
            progress: self.clone(),
        }
    }
}

/// One task's line.
pub struct Task {
    bar: Option<ProgressBar>,
    label: String,
    progress: Progress,
}

impl Task {
    pub fn set(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None => self.progress.say(&format!("{:<14} {msg}", self.label)),
        }
    }

    pub fn finish(&self, msg: &str) {
        match &self.bar {
            Some(b) => {
                b.finish_and_clear();
                self.progress.say(&format!("{:<14} {msg}", self.label));
            }
            None => self.progress.say(&format!("{:<14} {msg}", self.label)),
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
