//! Dockerfiles: a parser that follows BuildKit's syntax and never panics (`parse`), lint rules
//! with stable ids (`rules`), their printers (`report`), and the generator of the multi-stage
//! Dockerfile equivalent to `kiln build` (`generate`).

pub mod generate;
pub mod parse;
pub mod report;
pub mod rules;
pub mod words;

use std::path::Path;

pub use parse::{Dockerfile, parse};
pub use report::FileFindings;
pub use rules::{Finding, LintOptions, RULES, Severity, lint};

/// Whether BuildKit would find an ignore file for this Dockerfile: `<Dockerfile>.dockerignore`
/// beside it, or `.dockerignore` in its directory (the usual context).
pub fn has_dockerignore(dockerfile: &Path) -> bool {
    let dir = dockerfile.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let own = dockerfile
        .file_name()
        .map(|n| {
            let mut n = n.to_os_string();
            n.push(".dockerignore");
            dir.join(n)
        })
        .is_some_and(|p| p.is_file());
    own || dir.join(".dockerignore").is_file()
}

/// Lint the Dockerfile text; `path` (if any) decides the .dockerignore check.
pub fn lint_text(text: &str, path: Option<&Path>, opts: &LintOptions) -> Vec<Finding> {
    let mut opts = opts.clone();
    opts.dockerignore = path.map(has_dockerignore);
    lint(&parse(text), &opts)
}
