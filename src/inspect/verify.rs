//! The gate: an [`ElfReport`] judged against a [`Policy`] (static? for this target?) and
//! every problem explained: what is wrong, the likely cause, the fix. The build, `kiln
//! image` and `kiln inspect` all use [`verify`] + [`explain`], so they give the same answer
//! and the same explanation.

use serde::Serialize;

use crate::elf::{ElfReport, Kind, Libc, Linkage};
use crate::target::{Platform, Target};

/// What linkage passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Require {
    /// Static or static-pie.
    #[default]
    Static,
    /// Static-pie only.
    StaticPie,
    /// Anything (report only).
    Any,
}

impl Require {
    /// The name the command line and the JSON output use.
    pub fn as_str(self) -> &'static str {
        match self {
            Require::Static => "static",
            Require::StaticPie => "static-pie",
            Require::Any => "any",
        }
    }
}

/// What a file must be to pass.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub require: Require,
    /// The target the file must be built for.
    pub target: Option<Target>,
}

/// One reason a file fails the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Problem {
    /// Needs a loader or shared libraries.
    Dynamic {
        interpreter: Option<String>,
        needed: Vec<String>,
        /// The glibc/musl the file was linked against, when known: shapes the advice.
        libc: Option<Libc>,
        /// Go's `-buildmode` when the file is Go: `pie` explains a Go binary that needs a
        /// loader although CGO_ENABLED=0.
        go_buildmode: Option<String>,
        cgo: Option<bool>,
    },
    /// A shared library (ET_DYN with a soname) where a program was expected.
    SharedLibrary {
        soname: Option<String>,
    },
    NotStaticPie,
    WrongArch {
        found: String,
        expected: String,
    },
    /// Right architecture, wrong ARM variant (`.ARM.attributes` / GOARM).
    WrongVariant {
        found: String,
        expected: String,
    },
    /// The kernel would not run it: damaged or truncated, or not a program at all (an object
    /// file, a core dump). Checked whenever a linkage is required.
    NotRunnable {
        reason: String,
    },
    /// In an image: the interpreter or a needed library is not in the image.
    Unresolved {
        missing: Vec<String>,
        /// The directories searched, in order.
        searched: Vec<String>,
    },
}

/// Check a report against a policy; every problem found is returned.
pub fn verify(report: &ElfReport, policy: &Policy) -> Vec<Problem> {
    let mut problems = verify_linkage(report, policy.require);
    if let Some(t) = &policy.target {
        let want_big = t.endian == crate::target::Endian::Big;
        let is_big = report.endian == "big";
        if report.machine != t.elf_machine || report.class != t.elf_class || is_big != want_big {
            problems.push(Problem::WrongArch {
                found: describe_arch(report),
                expected: t.platform.to_string(),
            });
        } else if let Some(p) = check_variant(report, &t.platform) {
            problems.push(p);
        }
    }
    problems
}

/// The linkage half of [`verify`].
pub fn verify_linkage(report: &ElfReport, require: Require) -> Vec<Problem> {
    let mut problems = Vec::new();
    if require != Require::Any {
        let not_program = match report.kind {
            Kind::Executable | Kind::SharedLibrary => None,
            Kind::Relocatable => Some("it is an object file (ET_REL), not a linked program"),
            Kind::Core => Some("it is a core dump (ET_CORE), not a program"),
            Kind::Other => Some("its ELF type is not one the kernel executes"),
        };
        if let Some(reason) = not_program.map(str::to_owned).or(report.load_error.clone()) {
            problems.push(Problem::NotRunnable { reason });
        }
    }
    match (require, report.linkage) {
        (Require::Any, _) => {}
        (_, Linkage::Dynamic) => {
            if report.interpreter.is_none()
                && report.needed.is_empty()
                && report.kind == Kind::SharedLibrary
            {
                problems.push(Problem::SharedLibrary {
                    soname: report.soname.clone(),
                });
            } else {
                let go = report.go.as_ref();
                problems.push(Problem::Dynamic {
                    interpreter: report.interpreter.clone(),
                    needed: report.needed.clone(),
                    libc: report.libc,
                    go_buildmode: go.and_then(|g| g.setting("-buildmode")).map(str::to_owned),
                    cgo: go.and_then(|g| g.setting("CGO_ENABLED")).map(|v| v == "1"),
                })
            }
        }
        (Require::StaticPie, Linkage::Static) => problems.push(Problem::NotStaticPie),
        _ => {}
    }
    problems
}

/// Architecture check against an OCI platform (used for images, whose platforms need not be
/// in kiln's target table).
pub fn verify_platform(report: &ElfReport, platform: &Platform) -> Option<Problem> {
    if report.arch != Some(platform.architecture.as_str()) {
        return Some(Problem::WrongArch {
            found: describe_arch(report),
            expected: platform.to_string(),
        });
    }
    check_variant(report, platform)
}

/// Only 32-bit ARM variants are told apart: arm64's `v8` is the only arm64 variant in use.
fn check_variant(report: &ElfReport, platform: &Platform) -> Option<Problem> {
    if report.arch != Some("arm") {
        return None;
    }
    let (Some(want), Some(found)) = (&platform.variant, &report.variant) else {
        return None;
    };
    (want != found).then(|| Problem::WrongVariant {
        found: format!("linux/arm/{found}"),
        expected: platform.to_string(),
    })
}

fn describe_arch(r: &ElfReport) -> String {
    match r.arch {
        Some(_) => format!(
            "{} ({}-bit {}-endian)",
            r.platform_string(),
            r.class,
            r.endian
        ),
        None => format!(
            "ELF machine {}{} ({}-bit {}-endian)",
            r.machine,
            r.machine_name.map(|n| format!(" {n}")).unwrap_or_default(),
            r.class,
            r.endian
        ),
    }
}

/// The explanation shown by the build gate and `kiln inspect`: what is wrong, the likely
/// cause, and how to fix it. One paragraph per problem.
pub fn explain(name: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| explain_one(name, p))
        .collect::<Vec<_>>()
        .join("\n")
}

fn explain_one(name: &str, p: &Problem) -> String {
    match p {
        Problem::Dynamic {
            interpreter,
            needed,
            libc,
            go_buildmode,
            cgo,
        } => {
            let mut what = Vec::new();
            if let Some(i) = interpreter {
                what.push(format!("the loader {i}"));
            }
            if !needed.is_empty() {
                what.push(format!("the shared libraries {}", needed.join(", ")));
            }
            let glibc = *libc == Some(Libc::Glibc)
                || interpreter
                    .as_deref()
                    .is_some_and(|i| i.contains("ld-linux"))
                || needed.iter().any(|n| n.starts_with("libc.so.6"));
            let (cause, fix) = if go_buildmode.as_deref() == Some("pie") && *cgo != Some(true) {
                (
                    "It is a Go binary built with -buildmode=pie: Go's own linker makes such binaries \
                     depend on the dynamic loader even with CGO_ENABLED=0.",
                    "build with -buildmode=exe (the default), or for a static PIE use \
                     -ldflags '-linkmode=external -extldflags=-static-pie' with a musl C compiler.",
                )
            } else if *cgo == Some(true) {
                (
                    "It is a Go binary built with CGO_ENABLED=1 and linked against the C library \
                     dynamically.",
                    "set CGO_ENABLED=0, or keep cgo and link statically against musl: \
                     CC='zig cc -target <arch>-linux-musl' with -ldflags '-linkmode=external -extldflags=-static'.",
                )
            } else if glibc {
                (
                    "It was linked against glibc: the build used the host C compiler or a -gnu target \
                     instead of musl.",
                    "build for a *-linux-musl target with zig as the linker (kiln does this unless CC / \
                     linker overrides in your environment or .cargo/config.toml win).",
                )
            } else if *libc == Some(Libc::Musl) {
                (
                    "It was linked against musl, but dynamically (musl toolchains default to dynamic \
                     linking for some targets).",
                    "link with -static (C, zig cc) or -C target-feature=+crt-static (Rust).",
                )
            } else {
                (
                    "It was linked dynamically.",
                    "build for a *-linux-musl target and link with -static; for Go set CGO_ENABLED=0.",
                )
            };
            format!(
                "{name} is dynamically linked: it needs {}, which a scratch image does not have. \
                 {cause} Fix: {fix}",
                if what.is_empty() {
                    "a dynamic loader".to_string()
                } else {
                    what.join(" and ")
                }
            )
        }
        Problem::SharedLibrary { soname } => format!(
            "{name} is a shared library{}, not a program: nothing runs it without a dynamic \
             loader. If it should be a program, the build used -shared or a cdylib crate type; \
             build a bin target instead, or inspect with --require any to only report.",
            soname
                .as_ref()
                .map(|s| format!(" (soname {s})"))
                .unwrap_or_default()
        ),
        Problem::NotStaticPie => format!(
            "{name} is static but not position-independent (static-pie was required), so it \
             always loads at the same address. Fix: link with -static-pie (C, zig cc) or \
             -C relocation-model=pie with crt-static (Rust), or accept plain static with \
             --require static."
        ),
        Problem::WrongArch { found, expected } => format!(
            "{name} is built for {found}, not for {expected}. The compiler or linker targeted \
             the wrong CPU: check CC / CARGO_TARGET_*_LINKER / GOARCH overrides in your \
             environment, and that the file was copied from the right per-target directory."
        ),
        Problem::WrongVariant { found, expected } => {
            let hint = if found > expected {
                "It uses instructions the older CPU lacks and dies with SIGILL there (a v7 \
                 binary on a Raspberry Pi Zero/1, for example)."
            } else {
                "It runs, but the compiler was not told the CPU: the build ignored -mcpu / GOARM \
                 for this target."
            };
            format!(
                "{name} is built for {found} (from its ARM build attributes or GOARM), not for \
                 {expected}. {hint} Fix: build with the target's CPU (zig cc -mcpu=..., \
                 GOARM=..., the matching Rust armv6/armv7 triple), or publish it under the \
                 platform it was built for."
            )
        }
        Problem::NotRunnable { reason } => format!(
            "{name} cannot run: {reason}. Fix: rebuild it, or copy it again and compare its \
             size and checksum with the original."
        ),
        Problem::Unresolved { missing, searched } => format!(
            "{name} will not start in this image: {} not found (searched {}). Fix: build it \
             static (see --require static), or add the missing files to the image, e.g. a base \
             that carries that C library.",
            missing.join(", "),
            if searched.is_empty() {
                "nothing".to_string()
            } else {
                searched.join(", ")
            }
        ),
    }
}

/// A stable short name for a problem, used in the table's STATUS column.
pub fn problem_label(p: &Problem) -> &'static str {
    match p {
        Problem::Dynamic { .. } => "dynamic",
        Problem::SharedLibrary { .. } => "shared-library",
        Problem::NotStaticPie => "not-static-pie",
        Problem::WrongArch { .. } => "wrong-arch",
        Problem::WrongVariant { .. } => "wrong-variant",
        Problem::NotRunnable { .. } => "not-runnable",
        Problem::Unresolved { .. } => "unresolved",
    }
}
