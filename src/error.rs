//! Errors a caller matches on, and the exit codes of DESIGN.md.

use std::process::ExitCode;

/// Exit codes: 0 success · 1 error · 2 usage · 3 verification failed · 4 toolchain missing.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const VERIFY: u8 = 3;
    pub const TOOLCHAIN: u8 = 4;
}

/// A tool kiln needs is not installed. The message names the command that installs it.
#[derive(Debug, thiserror::Error)]
#[error("{what} not found: {install}")]
pub struct ToolchainMissing {
    /// What is missing: "zig", "qemu-aarch64-static".
    pub what: String,
    /// What to run: "run `kiln toolchain install zig`".
    pub install: String,
}

/// An artifact or file failed verification (not static, wrong architecture).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VerificationFailed(pub String);

/// The user asked for something that cannot be (bad flag combination, unknown platform).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Several targets failed; each keeps its own error (and exit code kind).
#[derive(Debug)]
pub struct TargetsFailed {
    /// (platform, error), in target order.
    pub failures: Vec<(String, anyhow::Error)>,
    pub total: usize,
}

impl std::fmt::Display for TargetsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} targets failed",
            self.failures.len(),
            self.total
        )?;
        for (platform, e) in &self.failures {
            write!(f, "\n\n[{platform}] {e:#}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TargetsFailed {}

/// Map an error chain to the exit code of DESIGN.md.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    if let Some(TargetsFailed { failures, .. }) = err.downcast_ref::<TargetsFailed>()
        && let Some((_, first)) = failures.first()
    {
        return exit_code(first);
    }
    for cause in err.chain() {
        if cause.is::<VerificationFailed>() {
            return ExitCode::from(exit::VERIFY);
        }
        if cause.is::<ToolchainMissing>() {
            return ExitCode::from(exit::TOOLCHAIN);
        }
        if cause.is::<UsageError>() || cause.is::<crate::target::UnknownPlatform>() {
            return ExitCode::from(exit::USAGE);
        }
    }
    ExitCode::from(exit::ERROR)
}
