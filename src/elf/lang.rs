//! Which language a program was written in, from what its compiler leaves behind.

use super::goinfo;
use super::libc::SymbolFacts;

/// "go" or "rust" when the file says so without its constant data. A stripped Rust binary
/// (no symbols, no `.comment`) is told only by the paths of the standard library's panic
/// locations in its constant data (`markers::search`), asked when this says `None`.
pub(super) fn language(
    go: Option<&goinfo::GoInfo>,
    go_marker: bool,
    auditable: bool,
    comment: &[String],
    syms: &SymbolFacts,
) -> Option<&'static str> {
    if go.is_some() || go_marker {
        Some("go")
    } else if auditable || comment.iter().any(|c| c.starts_with("rustc version")) || syms.rust {
        Some("rust")
    } else {
        None
    }
}
