//! The ELF inspector: is this file static, and for which CPU? The build gate and
//! `kiln inspect` both use `inspect_bytes` + `verify`, so they give the same answer and the
//! same explanation. Never panics on any input.

use std::path::Path;

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, FileKind};
use serde::Serialize;

use crate::cli::Require;
use crate::target::Target;

/// How a file is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Linkage {
    /// ET_EXEC, no interpreter, no needed libraries.
    Static,
    /// ET_DYN without interpreter or needed libraries: relocates itself.
    StaticPie,
    /// Needs the dynamic loader or shared libraries.
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

/// What the inspector found in one ELF file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfReport {
    /// 32 or 64.
    pub class: u8,
    /// "little" or "big".
    pub endian: &'static str,
    /// e_machine.
    pub machine: u16,
    /// OCI architecture (`amd64`, `arm64`, `arm`, ...), when known.
    pub arch: Option<&'static str>,
    /// "exec", "dyn", "rel", "core" or "other".
    pub elf_type: &'static str,
    pub linkage: Linkage,
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
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
    Some(match (elf::Machine(machine), class, big_endian) {
        (elf::EM_X86_64, 64, false) => "amd64",
        (elf::EM_AARCH64, 64, false) => "arm64",
        (elf::EM_ARM, 32, false) => "arm",
        (elf::EM_386, 32, false) => "386",
        (elf::EM_RISCV, 64, false) => "riscv64",
        (elf::EM_PPC64, 64, false) => "ppc64le",
        (elf::EM_PPC64, 64, true) => "ppc64",
        (elf::EM_S390, 64, true) => "s390x",
        (elf::EM_LOONGARCH, 64, false) => "loong64",
        (elf::EM_MIPS, 32, true) => "mips",
        (elf::EM_MIPS, 32, false) => "mipsle",
        (elf::EM_MIPS, 64, true) => "mips64",
        (elf::EM_MIPS, 64, false) => "mips64le",
        _ => return None,
    })
}

/// Inspect a file on disk.
pub fn inspect_path(path: &Path) -> Result<ElfReport, ElfError> {
    let data = std::fs::read(path).map_err(|e| ElfError::Io(e.to_string()))?;
    inspect_bytes(&data)
}

/// Inspect ELF bytes.
pub fn inspect_bytes(data: &[u8]) -> Result<ElfReport, ElfError> {
    match FileKind::parse(data) {
        Ok(FileKind::Elf32) => parse::<elf::FileHeader32<Endianness>>(data),
        Ok(FileKind::Elf64) => parse::<elf::FileHeader64<Endianness>>(data),
        _ => Err(ElfError::NotElf),
    }
}

fn malformed(e: object::read::Error) -> ElfError {
    ElfError::Malformed(e.to_string())
}

fn parse<H: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<ElfReport, ElfError> {
    let header = H::parse(data).map_err(malformed)?;
    let endian = header.endian().map_err(malformed)?;
    let class = if header.is_class_64() { 64 } else { 32 };
    let machine = header.e_machine(endian).0;
    let big = endian == Endianness::Big;
    let elf_type = match header.e_type(endian) {
        elf::ET_EXEC => "exec",
        elf::ET_DYN => "dyn",
        elf::ET_REL => "rel",
        elf::ET_CORE => "core",
        _ => "other",
    };

    let mut interpreter = None;
    let mut has_dynamic_segment = false;
    for ph in header.program_headers(endian, data).map_err(malformed)? {
        if let Ok(Some(interp)) = ph.interpreter(endian, data) {
            let s = String::from_utf8_lossy(interp);
            interpreter = Some(s.trim_end_matches('\0').to_string());
        }
        if ph.p_type(endian) == elf::PT_DYNAMIC {
            has_dynamic_segment = true;
        }
    }

    let mut needed = Vec::new();
    if has_dynamic_segment && let Ok(sections) = header.sections(endian, data) {
        {
            for section in sections.iter() {
                if section.sh_type(endian) != elf::SHT_DYNAMIC {
                    continue;
                }
                let Ok(Some((entries, link))) = section.dynamic(endian, data) else {
                    continue;
                };
                let Ok(strings) = sections.strings(endian, data, link) else {
                    continue;
                };
                for d in entries {
                    if d.d_tag(endian) == elf::DT_NEEDED
                        && let Ok(name) = d.string(endian, strings)
                    {
                        needed.push(String::from_utf8_lossy(name).into_owned());
                    }
                }
            }
        }
    }

    let linkage = if interpreter.is_some() || !needed.is_empty() {
        Linkage::Dynamic
    } else if elf_type == "dyn" {
        Linkage::StaticPie
    } else {
        Linkage::Static
    };

    Ok(ElfReport {
        class,
        endian: if big { "big" } else { "little" },
        machine,
        arch: oci_arch(machine, class, big),
        elf_type,
        linkage,
        interpreter,
        needed,
    })
}

/// What a file must be to pass.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub require: Require,
    /// The target the file must be built for.
    pub target: Option<Target>,
}

/// One reason a file fails the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Dynamic {
        interpreter: Option<String>,
        needed: Vec<String>,
    },
    NotStaticPie,
    WrongArch {
        found: String,
        expected: String,
    },
}

/// Check a report against a policy; every problem found is returned.
pub fn verify(report: &ElfReport, policy: &Policy) -> Vec<Problem> {
    let mut problems = Vec::new();
    match (policy.require, report.linkage) {
        (Require::Any, _) => {}
        (_, Linkage::Dynamic) => problems.push(Problem::Dynamic {
            interpreter: report.interpreter.clone(),
            needed: report.needed.clone(),
        }),
        (Require::StaticPie, Linkage::Static) => problems.push(Problem::NotStaticPie),
        _ => {}
    }
    if let Some(t) = &policy.target {
        let want_big = t.endian == crate::target::Endian::Big;
        let is_big = report.endian == "big";
        if report.machine != t.elf_machine || report.class != t.elf_class || is_big != want_big {
            problems.push(Problem::WrongArch {
                found: describe_arch(report),
                expected: t.platform.to_string(),
            });
        }
    }
    problems
}

fn describe_arch(r: &ElfReport) -> String {
    match r.arch {
        Some(a) => format!("linux/{a} ({}-bit {}-endian)", r.class, r.endian),
        None => format!(
            "ELF machine {} ({}-bit {}-endian)",
            r.machine, r.class, r.endian
        ),
    }
}

/// The explanation shown by the build gate and `kiln inspect`: what is wrong, the likely
/// cause, and how to fix it.
pub fn explain(name: &str, problems: &[Problem]) -> String {
    let mut out = Vec::new();
    for p in problems {
        out.push(match p {
            Problem::Dynamic {
                interpreter,
                needed,
            } => {
                let mut what = Vec::new();
                if let Some(i) = interpreter {
                    what.push(format!("the loader {i}"));
                }
                if !needed.is_empty() {
                    what.push(format!("the shared libraries {}", needed.join(", ")));
                }
                let glibc = interpreter.as_deref().is_some_and(|i| i.contains("ld-linux"))
                    || needed.iter().any(|n| n.starts_with("libc.so.6"));
                let cause = if glibc {
                    "It was linked against glibc: the build used the host C compiler or a -gnu target instead of musl."
                } else {
                    "It was linked dynamically."
                };
                format!(
                    "{name} is dynamically linked: it needs {}, which a scratch image does not have. {cause} \
                     Build for a *-linux-musl target with zig as the linker (kiln does this unless CC/linker \
                     overrides in your environment or .cargo/config.toml win), and for Go set CGO_ENABLED=0 \
                     or link with -extldflags -static.",
                    what.join(" and ")
                )
            }
            Problem::NotStaticPie => format!(
                "{name} is static but not position-independent (static-pie was required). \
                 Build with -C relocation-model=pie / -static-pie, or use --require static."
            ),
            Problem::WrongArch { found, expected } => format!(
                "{name} is built for {found}, not for {expected}. The compiler or linker targeted the \
                 wrong CPU: check CC/CARGO_TARGET_*_LINKER/GOARCH overrides in your environment."
            ),
        });
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_elf() {
        assert_eq!(inspect_bytes(b""), Err(ElfError::NotElf));
        assert_eq!(inspect_bytes(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        let mut truncated = b"\x7fELF\x02\x01\x01".to_vec();
        truncated.resize(20, 0);
        assert!(inspect_bytes(&truncated).is_err());
    }

    #[test]
    fn host_ls_is_dynamic_glibc() {
        let Ok(r) = inspect_path(Path::new("/bin/ls")) else {
            panic!("/bin/ls must be readable on the test machine");
        };
        assert_eq!(r.linkage, Linkage::Dynamic);
        assert!(r.needed.iter().any(|n| n == "libc.so.6"), "{r:?}");
        let problems = verify(&r, &Policy::default());
        let text = explain("ls", &problems);
        assert!(
            text.contains("libc.so.6") && text.contains("glibc"),
            "{text}"
        );
    }
}
