//! The rewrite rules of the zig wrapper, one row per flag zig rejects or must see
//! differently, each with the reason it exists.

/// What to do with an argument that matches a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Drop the argument.
    Drop,
    /// Drop the argument and the one after it (`-target X`).
    DropWithValue,
    /// Replace the argument with another.
    Replace(&'static str),
}

/// How a rule matches an argument.
#[derive(Debug, Clone, Copy)]
pub(super) enum Match {
    Exact(&'static str),
    Prefix(&'static str),
    /// A path that contains this and ends with `.o`.
    ObjectPathContains(&'static str),
    /// This, then one or more digits (`-flto=` + `8`).
    PrefixThenNumber(&'static str),
}

/// One rewrite rule, with why it exists.
pub(super) struct Rule {
    pub(super) matches: Match,
    pub(super) action: Action,
    /// Only for zig targets starting with this (e.g. "riscv64"); `None` = every target.
    pub(super) only_for: Option<&'static str>,
    /// Not for zig targets starting with this (a flag only that CPU family takes).
    pub(super) except_for: Option<&'static str>,
    #[allow(dead_code)] // documentation, read in the table below
    why: &'static str,
}

pub(super) const RULES: &[Rule] = &[
    Rule {
        matches: Match::Prefix("--target="),
        action: Action::Drop,
        only_for: None,
        except_for: None,
        why: "cc-rs passes the Rust triple (`--target=aarch64-unknown-linux-musl`); zig cannot parse it and kiln passes zig's own -target",
    },
    Rule {
        matches: Match::Exact("--target"),
        action: Action::DropWithValue,
        only_for: None,
        except_for: None,
        why: "same as above, in two-argument form",
    },
    Rule {
        matches: Match::Exact("-target"),
        action: Action::DropWithValue,
        only_for: None,
        except_for: None,
        why: "a build script's own -target would fight kiln's",
    },
    Rule {
        matches: Match::ObjectPathContains("/self-contained/"),
        action: Action::Drop,
        only_for: None,
        except_for: None,
        why: "rustc's self-contained musl crt objects duplicate zig's (`duplicate symbol _start`)",
    },
    Rule {
        matches: Match::Exact("-lgcc_s"),
        action: Action::Replace("-lunwind"),
        only_for: None,
        except_for: None,
        why: "zig ships LLVM libunwind, not libgcc_s",
    },
    Rule {
        matches: Match::Prefix("-fuse-ld="),
        action: Action::Drop,
        only_for: None,
        except_for: None,
        why: "zig always links with its own lld",
    },
    Rule {
        matches: Match::Prefix("-march="),
        action: Action::Drop,
        only_for: Some("riscv"),
        except_for: None,
        why: "cc-rs passes -march=rv64gc; zig takes the CPU from -mcpu, which kiln sets",
    },
    Rule {
        matches: Match::Prefix("-mabi="),
        action: Action::Drop,
        only_for: Some("riscv"),
        except_for: None,
        why: "implied by the zig target (lp64d for riscv64-linux-musl)",
    },
    Rule {
        matches: Match::Prefix("-march="),
        action: Action::Drop,
        only_for: Some("arm-"),
        except_for: None,
        why: "cc-rs passes -march=armv7-a/armv6; zig derives it from -mcpu, which kiln sets per target",
    },
    Rule {
        matches: Match::Prefix("-mfpu="),
        action: Action::Drop,
        only_for: Some("arm-"),
        except_for: None,
        why: "the FPU comes with kiln's -mcpu (vfpv3-d16 for v7, vfp2 for arm1176jzf-s)",
    },
    Rule {
        matches: Match::Prefix("-march="),
        action: Action::Drop,
        only_for: Some("s390x"),
        except_for: None,
        why: "cc-rs passes -march=z10; zig takes the CPU from -mcpu",
    },
    Rule {
        matches: Match::Exact("-Wl,-melf_i386"),
        action: Action::Drop,
        only_for: None,
        except_for: None,
        why: "rustc passes the emulation for i686; zig's linker rejects it and takes the target from -target",
    },
    Rule {
        matches: Match::Exact("-Wl,--no-rosegment"),
        action: Action::Drop,
        only_for: None,
        except_for: None,
        why: "rustc passes it for loongarch64; zig's linker rejects it (\"unsupported linker arg\")",
    },
    Rule {
        matches: Match::Exact("-Wl,--no-undefined-version"),
        action: Action::Drop,
        only_for: None,
        except_for: None,
        why: "not every zig lld build accepts it; it only tightens version-script checks",
    },
    // Distribution default flags. A build that takes CFLAGS/LDFLAGS from the host (Debian's
    // dpkg-buildflags, a CI image) hands the host CPU's hardening flags to every target.
    Rule {
        matches: Match::Prefix("-fcf-protection"),
        action: Action::Drop,
        only_for: None,
        except_for: Some("x86"),
        why: "Intel CET is x86 only (Debian/Ubuntu amd64 default CFLAGS); zig refuses it for other CPUs",
    },
    Rule {
        matches: Match::Prefix("-mtls-dialect="),
        action: Action::Drop,
        only_for: None,
        except_for: Some("x86"),
        why: "the gnu2 TLS dialect flag (amd64 default CFLAGS of newer distributions) is x86-only in clang",
    },
    Rule {
        matches: Match::Prefix("-mbranch-protection="),
        action: Action::Drop,
        only_for: None,
        except_for: Some("aarch64"),
        why: "arm64 hosts' default CFLAGS (PAC/BTI); zig refuses it for x86 and warns for 32-bit ARM",
    },
    Rule {
        matches: Match::Exact("-flto=auto"),
        action: Action::Replace("-flto"),
        only_for: None,
        except_for: None,
        why: "GCC's LTO job-count form (Debian/Ubuntu default CFLAGS and LDFLAGS); zig takes plain -flto",
    },
    Rule {
        matches: Match::Exact("-flto=jobserver"),
        action: Action::Replace("-flto"),
        only_for: None,
        except_for: None,
        why: "GCC's make-jobserver LTO form; zig misparses it",
    },
    Rule {
        matches: Match::PrefixThenNumber("-flto="),
        action: Action::Replace("-flto"),
        only_for: None,
        except_for: None,
        why: "GCC's `-flto=8` (LTO with 8 jobs); zig only takes thin or full",
    },
    Rule {
        matches: Match::Exact("-Wl,-Bsymbolic-functions"),
        action: Action::Drop,
        only_for: None,
        except_for: None,
        why: "Ubuntu's default LDFLAGS; it only matters for shared libraries, and zig's linker rejects it",
    },
    Rule {
        matches: Match::Exact("-Wl,-z,pack-relative-relocs"),
        action: Action::Drop,
        only_for: None,
        except_for: None,
        why: "DT_RELR needs glibc's loader, which a static musl binary has not; zig's linker rejects it",
    },
];

impl Match {
    pub(super) fn hits(&self, arg: &str) -> bool {
        match *self {
            Match::Exact(s) => arg == s,
            Match::Prefix(p) => arg.starts_with(p),
            Match::ObjectPathContains(s) => arg.contains(s) && arg.ends_with(".o"),
            Match::PrefixThenNumber(p) => arg
                .strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        }
    }
}
