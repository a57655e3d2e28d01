//! One pass over a static file's constant data for what only it tells: the paths of Rust's
//! standard library (a stripped Rust program) and the strings only one C library carries
//! (a stripped static file without telling symbols). The data is megabytes per file (the
//! 35 static qemu binaries of a Debian /usr/bin hold 70 MiB of it), so it is searched
//! once, for what is still unknown, and the search stops once nothing more can be learned.

use super::Libc;

/// What was asked of the constant data.
#[derive(Clone, Copy)]
pub(super) struct Wanted {
    /// The language is not known without the data (no Go build info, no `.comment`, no
    /// telling symbols): look for std's paths.
    pub rust: bool,
    /// The libc is not known without the data: look for the marker strings.
    pub libc: bool,
}

/// What the constant data told.
#[derive(Default, Debug, PartialEq)]
pub(super) struct Found {
    pub rust: bool,
    pub libc: Option<Libc>,
}

/// The strings that tell glibc from musl in a binary without symbols, stored reversed:
/// kiln's own static binary carries its inspector, and the strings written out in its
/// constant data would make kiln itself look like a glibc program. glibc reads the
/// GLIBC_TUNABLES environment variable at startup (2.26+) and says "Fatal glibc error"
/// (2.35+); musl's strerror(0) text is "No error information" (glibc says "Success").
const LIBC_NEEDLES_REVERSED: [&[u8]; 3] = [
    b"SELBANUT_CBILG",
    b"rorre cbilg lataF",
    b"noitamrofni rorre oN",
];
/// Index of the one musl needle; the others are glibc's.
const MUSL_NEEDLE: usize = 2;
/// Both std paths start with this (see [`std_path_at`]).
const RUST_NEEDLE: &[u8] = b"/rust";

fn unreversed(n: &[u8]) -> Vec<u8> {
    n.iter().rev().copied().collect()
}

/// Search `data` once for what `wanted` asks. A glibc string wins over musl's; the search
/// ends early only when a std path and (if asked) a glibc string were both seen.
pub(super) fn search(data: &[u8], wanted: Wanted) -> Found {
    let mut found = Found::default();
    if !wanted.rust && !wanted.libc {
        return found;
    }
    if !wanted.libc {
        static RUST: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new(RUST_NEEDLE));
        found.rust = RUST.find_iter(data).any(|at| std_path_at(&data[at..]));
        return found;
    }
    // The libc needles, then (when asked) `/rust`, in one automaton.
    static LIBC: std::sync::LazyLock<aho_corasick::AhoCorasick> =
        std::sync::LazyLock::new(|| automaton(false));
    static BOTH: std::sync::LazyLock<aho_corasick::AhoCorasick> =
        std::sync::LazyLock::new(|| automaton(true));
    let ac = if wanted.rust { &*BOTH } else { &*LIBC };
    let mut musl = false;
    for m in ac.find_iter(data) {
        match m.pattern().as_usize() {
            MUSL_NEEDLE => musl = true,
            i if i < LIBC_NEEDLES_REVERSED.len() => found.libc = Some(Libc::Glibc),
            _ => found.rust |= std_path_at(&data[m.start()..]),
        }
        if found.libc.is_some() && (found.rust || !wanted.rust) {
            break;
        }
    }
    if found.libc.is_none() && musl {
        found.libc = Some(Libc::Musl);
    }
    found
}

fn automaton(with_rust: bool) -> aho_corasick::AhoCorasick {
    let mut patterns = LIBC_NEEDLES_REVERSED.map(unreversed).to_vec();
    if with_rust {
        patterns.push(RUST_NEEDLE.to_vec());
    }
    aho_corasick::AhoCorasick::new(patterns).expect("fixed patterns build")
}

/// Does `rest` start with a path into Rust's standard library as rustc records panic
/// locations: `/rustc/<40 hex commit>/library/` (the toolchain's remapped prebuilt std),
/// or `/rustlib/src/rust/library/` (std rebuilt from rust-src with `-Zbuild-std`)?
fn std_path_at(rest: &[u8]) -> bool {
    if rest.starts_with(b"/rustlib/src/rust/library/") {
        return true;
    }
    let Some(commit) = rest.strip_prefix(b"/rustc/") else {
        return false;
    };
    commit.len() >= 40 + b"/library/".len()
        && commit[..40].iter().all(u8::is_ascii_hexdigit)
        && commit[40..].starts_with(b"/library/")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUST_ONLY: Wanted = Wanted {
        rust: true,
        libc: false,
    };
    const BOTH: Wanted = Wanted {
        rust: true,
        libc: true,
    };

    fn rust(data: &[u8]) -> bool {
        let alone = search(data, RUST_ONLY).rust;
        assert_eq!(
            search(data, BOTH).rust,
            alone,
            "one pass and the memmem agree"
        );
        alone
    }

    #[test]
    fn rust_std_paths_survive_stripping() {
        let commit = "59807616e1fa2540724bfbac14d7976d7e4a3860";
        let prebuilt = format!("xx\0/rustc/{commit}/library/core/src/option.rs\0");
        assert!(rust(prebuilt.as_bytes()));
        assert!(rust(
            b"/root/.rustup/toolchains/nightly/lib/rustlib/src/rust/library/std/src/io.rs"
        ));
        // Not a commit, not the library, or cut short: not Rust.
        assert!(!rust(b"/rustc/not-a-commit/library/core"));
        assert!(!rust(format!("/rustc/{commit}/src/x").as_bytes()));
        assert!(!rust(format!("/rustc/{}", &commit[..20]).as_bytes()));
        assert!(!rust(b""));
    }

    /// One pass finds both answers in either order, a glibc string wins over musl's
    /// wherever it is, and nothing is searched for what was not asked.
    #[test]
    fn one_pass_tells_language_and_libc() {
        let commit = "59807616e1fa2540724bfbac14d7976d7e4a3860";
        let path = format!("/rustc/{commit}/library/std/src/panicking.rs");
        let [tunables, _, musl] = LIBC_NEEDLES_REVERSED.map(unreversed);
        let cat = |parts: &[&[u8]]| parts.join(&b"\0x\0"[..]);
        let glibc_rust = cat(&[&musl, &tunables, path.as_bytes()]);
        let rust_glibc = cat(&[path.as_bytes(), &musl, &tunables]);
        for data in [&glibc_rust, &rust_glibc] {
            let both = search(data, BOTH);
            assert_eq!(
                both,
                Found {
                    rust: true,
                    libc: Some(Libc::Glibc)
                }
            );
            let libc_only = Wanted {
                rust: false,
                libc: true,
            };
            assert_eq!(
                search(data, libc_only),
                Found {
                    rust: false,
                    libc: Some(Libc::Glibc)
                }
            );
            assert_eq!(search(data, RUST_ONLY).libc, None);
        }
        let musl_c = cat(&[b"hello", &musl]);
        assert_eq!(
            search(&musl_c, BOTH),
            Found {
                rust: false,
                libc: Some(Libc::Musl)
            }
        );
    }

    /// The needles never appear written out in kiln's own binary (this test binary carries
    /// the same inspector code): kiln inspecting itself must not find glibc's strings.
    #[test]
    fn own_binary_does_not_carry_the_libc_needles() {
        let forward: Vec<Vec<u8>> = LIBC_NEEDLES_REVERSED.map(unreversed).to_vec();
        // (Written in pieces that cannot sit side by side as the whole string.)
        assert!(forward[0].starts_with(b"GLIBC") && forward[0].ends_with(b"TUNABLES"));
        let exe = std::fs::read("/proc/self/exe").unwrap();
        for n in &forward {
            assert!(
                !exe.windows(n.len()).any(|w| w == &n[..]),
                "{} is in the binary",
                String::from_utf8_lossy(n)
            );
        }
    }
}
