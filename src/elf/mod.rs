//! The ELF parser: bytes in, an [`ElfReport`] out (is this file static, for which CPU,
//! built how?). Only parsing lives here; judging a report against a policy, walking trees
//! and images, and printing are in `crate::inspect`. Never panics and never allocates more
//! than a small multiple of the input's size on any input (fuzzed: see `fuzz/`).

mod arm;
mod auditable;
mod goinfo;
mod lang;
mod libc;
mod load;
mod mapped;
mod markers;
mod parse;
mod plan;
pub(crate) mod read;

use std::path::Path;

use serde::Serialize;

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
    /// Any `.debug_*` / `.zdebug_*` section (DWARF; not rustc's `.debug_gdb_scripts`).
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

/// [`inspect_path`] for a file a directory walk listed as a regular file (one system call
/// less: see [`read::with_walked_file_bytes`]).
pub fn inspect_walked_path(path: &Path) -> Result<ElfReport, ElfError> {
    read::with_walked_file_bytes(path, inspect_bytes)?
}

/// Inspect ELF bytes.
pub fn inspect_bytes(data: &[u8]) -> Result<ElfReport, ElfError> {
    parse::parse(data, Detail::Full)
}

/// How much of a file the parser looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Everything an [`ElfReport`] holds.
    Full,
    /// What the gate's verdict needs (`inspect::verify`: kind, linkage, loader, libraries,
    /// machine, ARM variant). A static file's constant data is not searched: its `language`
    /// is told only by symbols, `.comment`, Go build info or cargo-auditable data, and its
    /// `libc` only by symbols. That search reads all of a static binary's `.rodata`
    /// (megabytes) twice: most of the gate's time when `kiln image` packs large binaries.
    Verdict,
}

/// [`inspect_bytes`] looking at `detail`.
pub fn inspect_bytes_with(data: &[u8], detail: Detail) -> Result<ElfReport, ElfError> {
    parse::parse(data, detail)
}

/// The gate's look at a file that is about to be read whole anyway (packed into an image):
/// [`Detail::Verdict`], through a plain mapping — no read plan asked of the disk ahead, as
/// [`inspect_path`] does for a cold page cache; the packer reads every page next.
pub fn verdict_path(path: &Path) -> Result<ElfReport, ElfError> {
    read::with_mapped_file_bytes(path, |data| parse::parse(data, Detail::Verdict))?
}

/// The byte ranges of `data` that [`inspect_bytes`] reads, as planned from its headers
/// before a cold read (see `plan`): sorted, merged, inside `data`. For tests and the fuzz
/// target.
pub fn planned_ranges(data: &[u8]) -> Vec<std::ops::Range<u64>> {
    plan::ranges(data, data.len() as u64, &mut |_| {})
}

pub use read::cold_read_ranges;

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
