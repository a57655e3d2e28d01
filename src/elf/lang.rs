//! Which language a program was written in, from what its compiler leaves behind.

use super::goinfo;
use super::libc::SymbolFacts;

/// "go" or "rust" when the file says so. A stripped Rust binary (no symbols, no
/// `.comment`) still carries the paths of the standard library's panic locations in its
/// constant data (`marker_data`).
pub(super) fn language(
    go: Option<&goinfo::GoInfo>,
    go_marker: bool,
    auditable: bool,
    comment: &[String],
    syms: &SymbolFacts,
    marker_data: Option<&[u8]>,
) -> Option<&'static str> {
    if go.is_some() || go_marker {
        Some("go")
    } else if auditable
        || comment.iter().any(|c| c.starts_with("rustc version"))
        || syms.rust
        || marker_data.is_some_and(rust_std_paths)
    {
        Some("rust")
    } else {
        None
    }
}

/// Does `data` hold a path into Rust's standard library as rustc records panic locations:
/// `/rustc/<40 hex commit>/library/` (the toolchain's remapped prebuilt std), or
/// `/rustlib/src/rust/library/` (std rebuilt from rust-src with `-Zbuild-std`)?
fn rust_std_paths(data: &[u8]) -> bool {
    // Both start with `/rust`: one pass over the data (megabytes in a static binary).
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"/rust"));
    FINDER.find_iter(data).any(|at| {
        let rest = &data[at..];
        if rest.starts_with(b"/rustlib/src/rust/library/") {
            return true;
        }
        let Some(commit) = rest.strip_prefix(b"/rustc/") else {
            return false;
        };
        commit.len() >= 40 + b"/library/".len()
            && commit[..40].iter().all(u8::is_ascii_hexdigit)
            && commit[40..].starts_with(b"/library/")
    })
}

#[cfg(test)]
mod tests {
    use super::rust_std_paths;

    #[test]
    fn rust_std_paths_survive_stripping() {
        let commit = "59807616e1fa2540724bfbac14d7976d7e4a3860";
        let prebuilt = format!("xx\0/rustc/{commit}/library/core/src/option.rs\0");
        assert!(rust_std_paths(prebuilt.as_bytes()));
        assert!(rust_std_paths(
            b"/root/.rustup/toolchains/nightly/lib/rustlib/src/rust/library/std/src/io.rs"
        ));
        // Not a commit, not the library, or cut short: not Rust.
        assert!(!rust_std_paths(b"/rustc/not-a-commit/library/core"));
        assert!(!rust_std_paths(format!("/rustc/{commit}/src/x").as_bytes()));
        assert!(!rust_std_paths(
            format!("/rustc/{}", &commit[..20]).as_bytes()
        ));
        assert!(!rust_std_paths(b""));
    }
}
