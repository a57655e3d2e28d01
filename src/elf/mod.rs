//! The ELF inspector: is this file static, for which CPU, built how? The build gate and
//! `kiln inspect` both use [`inspect_bytes`] + [`verify`] + [`explain`], so they give the
//! same answer and the same explanation. Never panics and never allocates more than a
//! small multiple of the input's size on any input (fuzzed: see `fuzz/`).

mod arm;
mod auditable;
mod goinfo;
pub mod image;
mod load;
mod parse;
pub mod printer;
pub(crate) mod read;
pub mod walk;

use std::path::Path;

use serde::Serialize;

use crate::cli::Require;
use crate::target::{Platform, Target};

pub use arm::ArmAttributes;
pub use auditable::AuditablePackage;
pub use goinfo::{GoInfo, GoModule};

/// How a file is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Linkage {
    /// ET_EXEC, no interpreter, no needed libraries: the kernel maps it and jumps in.
    Static,
    /// ET_DYN position-independent executable without interpreter or needed libraries: it
    /// relocates itself (`-static-pie`). `file` long called these "dynamically linked".
    StaticPie,
    /// Needs the dynamic loader or shared libraries (or is itself a shared library).
    Dynamic,
}

impl std::fmt::Display for Linkage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Linkage::Static => "static",
            Linkage::StaticPie => "static-pie",
            Linkage::Dynamic => "dynamic",
        })
    }
}

/// What kind of object the file is, independent of how it is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A program: ET_EXEC, or ET_DYN marked as a PIE (DF_1_PIE, an interpreter, or an entry
    /// point without a soname).
    Executable,
    /// ET_DYN meant to be loaded by others (has a soname, or nothing marks it a program).
    SharedLibrary,
    /// ET_REL: an object file or kernel module.
    Relocatable,
    /// ET_CORE.
    Core,
    /// Anything else.
    Other,
}

/// The C library a file was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Libc {
    Musl,
    Glibc,
    /// No C library at all: Go with CGO_ENABLED=0 talks to the kernel itself.
    None,
}

impl std::fmt::Display for Libc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Libc::Musl => "musl",
            Libc::Glibc => "glibc",
            Libc::None => "none",
        })
    }
}

/// RELRO level, as checksec reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relro {
    /// No PT_GNU_RELRO.
    None,
    /// PT_GNU_RELRO, but the GOT is bound lazily and stays writable.
    Partial,
    /// PT_GNU_RELRO and BIND_NOW (or no dynamic section, so nothing is bound lazily).
    Full,
}

/// Hardening flags, as checksec reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hardening {
    /// Position-independent executable (ASLR for the program itself).
    pub pie: bool,
    pub relro: Relro,
    /// PT_GNU_STACK present and not executable.
    pub nx: bool,
    /// `__stack_chk_fail`/`__stack_chk_guard` referenced. `None` when the file has no
    /// symbol table to tell from (a stripped static binary).
    pub canary: Option<bool>,
    /// `__*_chk` functions from `_FORTIFY_SOURCE` that the file calls, sorted. `None` when
    /// there is no symbol table to tell from.
    pub fortify: Option<Vec<String>>,
}

/// What the inspector found in one ELF file. Serialized as-is in `kiln inspect --json`
/// (schema documented in docs/inspector.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfReport {
    /// 32 or 64.
    pub class: u8,
    /// "little" or "big".
    pub endian: &'static str,
    /// e_machine.
    pub machine: u16,
    /// e_machine's usual name (`EM_X86_64`), when known.
    pub machine_name: Option<&'static str>,
    /// OCI architecture (`amd64`, `arm64`, `arm`, ...), when known.
    pub arch: Option<&'static str>,
    /// OCI variant: for 32-bit ARM `v5`..`v8` from `.ARM.attributes` Tag_CPU_arch, else
    /// from Go's GOARM build setting.
    pub variant: Option<String>,
    /// "exec", "dyn", "rel", "core" or "other".
    pub elf_type: &'static str,
    pub kind: Kind,
    pub linkage: Linkage,
    /// PT_INTERP: the dynamic loader the kernel starts first.
    pub interpreter: Option<String>,
    /// Every DT_NEEDED, in order.
    pub needed: Vec<String>,
    pub soname: Option<String>,
    /// DT_RPATH entries (searched before LD_LIBRARY_PATH; deprecated).
    pub rpath: Vec<String>,
    /// DT_RUNPATH entries.
    pub runpath: Vec<String>,
    pub libc: Option<Libc>,
    /// Highest `GLIBC_x.y` symbol version required (the oldest glibc it runs on).
    pub glibc_version: Option<String>,
    /// "go" or "rust" when the file says so (Go build info, rustc's `.comment`).
    pub language: Option<&'static str>,
    /// `.comment`: which compilers and linkers produced it.
    pub comment: Vec<String>,
    /// No `.symtab`.
    pub stripped: bool,
    /// Any `.debug_*` / `.zdebug_*` section.
    pub debug_info: bool,
    /// NT_GNU_BUILD_ID, hex.
    pub build_id: Option<String>,
    pub hardening: Hardening,
    /// For 32-bit ARM: the build attributes the variant was read from.
    pub arm: Option<ArmAttributes>,
    /// Go build info (`.go.buildinfo`).
    pub go: Option<GoInfo>,
    /// Rust dependency list from cargo-auditable's `.dep-v0` section.
    pub auditable: Option<Vec<AuditablePackage>>,
    /// Why the kernel would not start this program (truncated segment, program-header table
    /// it refuses, entry point outside executable code); absent when it would. Only set for
    /// programs (`kind` executable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_error: Option<String>,
    /// Things that looked wrong while parsing but did not stop it (section table unreadable,
    /// dynamic string outside the file, ...).
    pub warnings: Vec<String>,
}

impl ElfReport {
    /// `linux/arm/v7`, `linux/amd64`, or `ELF machine 1234` when the machine is unknown.
    pub fn platform_string(&self) -> String {
        match (self.arch, &self.variant) {
            (Some(a), Some(v)) => format!("linux/{a}/{v}"),
            (Some(a), None) => format!("linux/{a}"),
            (None, _) => format!("ELF machine {}", self.machine),
        }
    }
}

/// The file is not an ELF kiln can read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("malformed ELF: {0}")]
    Malformed(String),
    #[error("cannot read: {0}")]
    Io(String),
}

/// OCI architecture for an ELF machine, class and endianness.
pub fn oci_arch(machine: u16, class: u8, big_endian: bool) -> Option<&'static str> {
    use object::elf;
    Some(match (elf::Machine(machine), class, big_endian) {
        (elf::EM_X86_64, 64, false) => "amd64",
        (elf::EM_AARCH64, 64, false) => "arm64",
        (elf::EM_AARCH64, 64, true) => "arm64be",
        (elf::EM_ARM, 32, false) => "arm",
        (elf::EM_ARM, 32, true) => "armbe",
        (elf::EM_386, 32, false) => "386",
        (elf::EM_RISCV, 64, false) => "riscv64",
        (elf::EM_RISCV, 32, false) => "riscv32",
        (elf::EM_PPC64, 64, false) => "ppc64le",
        (elf::EM_PPC64, 64, true) => "ppc64",
        (elf::EM_PPC, 32, true) => "ppc",
        (elf::EM_S390, 64, true) => "s390x",
        (elf::EM_LOONGARCH, 64, false) => "loong64",
        (elf::EM_MIPS, 32, true) => "mips",
        (elf::EM_MIPS, 32, false) => "mipsle",
        (elf::EM_MIPS, 64, true) => "mips64",
        (elf::EM_MIPS, 64, false) => "mips64le",
        (elf::EM_SPARCV9, 64, true) => "sparc64",
        _ => return None,
    })
}

/// Inspect a file on disk. Large files are memory-mapped so only the pages the parser
/// touches are read (headers, dynamic section, symbol tables), which keeps memory bounded.
pub fn inspect_path(path: &Path) -> Result<ElfReport, ElfError> {
    read::with_file_bytes(path, inspect_bytes)?
}

/// Inspect ELF bytes.
pub fn inspect_bytes(data: &[u8]) -> Result<ElfReport, ElfError> {
    parse::parse(data)
}

/// Whether `data` starts like an ELF file (cheap check before a full parse).
pub fn is_elf(data: &[u8]) -> bool {
    data.starts_with(b"\x7fELF")
}

/// Does the file at `path` start with the ELF magic? (False when it cannot be read.)
pub fn file_is_elf(path: &std::path::Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && is_elf(&magic)
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

#[cfg(test)]
mod tests;
