//! Unit tests for classification (`crate::elf`), policy and explanations (the gate), on
//! small ELF files built here byte by byte (so each case is exactly the shape it names).
//! Real binaries from real toolchains are tested in `tests/inspect_real.rs`.

use std::path::Path;

use super::verify::*;
use crate::elf::*;

const BASE: u64 = 0x40_0000;

/// A minimal ELF64 little-endian file: header, program headers, then a payload holding an
/// interpreter string, a dynamic string table and a dynamic table. One PT_LOAD maps the
/// whole file at `BASE`, so addresses are `BASE + offset`.
#[derive(Default)]
struct Builder {
    e_type: u16,
    machine: u16,
    entry: u64,
    interp: Option<&'static str>,
    /// (tag, string) pairs put in the dynamic table with their string offsets.
    dyn_strings: Vec<(i64, &'static str)>,
    dyn_values: Vec<(i64, u64)>,
    relro: bool,
    /// Some(executable?)
    stack: Option<bool>,
}

impl Builder {
    fn new(e_type: u16) -> Self {
        Builder {
            e_type,
            machine: 62,
            // Inside the one R+X PT_LOAD (the program headers: not all zero).
            entry: BASE + 64,
            stack: Some(false),
            ..Default::default()
        }
    }

    fn build(&self) -> Vec<u8> {
        let has_dyn = !self.dyn_strings.is_empty() || !self.dyn_values.is_empty();
        let nph = 1
            + usize::from(self.interp.is_some())
            + usize::from(has_dyn)
            + usize::from(self.relro)
            + usize::from(self.stack.is_some());
        let payload = 64 + 56 * nph;
        let mut body = Vec::new();
        let interp_off = payload;
        if let Some(i) = self.interp {
            body.extend_from_slice(i.as_bytes());
            body.push(0);
        }
        let strtab_off = payload + body.len();
        let mut strtab = vec![0u8];
        let mut dyns = Vec::new();
        for (tag, s) in &self.dyn_strings {
            dyns.push((*tag, strtab.len() as u64));
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
        }
        body.extend_from_slice(&strtab);
        while body.len() % 8 != 0 {
            body.push(0);
        }
        let dyn_off = payload + body.len();
        if has_dyn {
            dyns.push((5, BASE + strtab_off as u64)); // DT_STRTAB
            dyns.push((10, strtab.len() as u64)); // DT_STRSZ
            dyns.extend(self.dyn_values.iter().copied());
            dyns.push((0, 0));
            for (t, v) in &dyns {
                body.extend_from_slice(&t.to_le_bytes());
                body.extend_from_slice(&v.to_le_bytes());
            }
        }
        let total = (payload + body.len()) as u64;

        let mut f = Vec::new();
        f.extend_from_slice(b"\x7fELF\x02\x01\x01\0");
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&self.e_type.to_le_bytes());
        f.extend_from_slice(&self.machine.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&self.entry.to_le_bytes());
        f.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
        f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        f.extend_from_slice(&64u16.to_le_bytes());
        f.extend_from_slice(&56u16.to_le_bytes());
        f.extend_from_slice(&(nph as u16).to_le_bytes());
        f.extend_from_slice(&64u16.to_le_bytes());
        f.extend_from_slice(&0u16.to_le_bytes());
        f.extend_from_slice(&0u16.to_le_bytes());
        let mut ph = |ty: u32, flags: u32, off: u64, size: u64| {
            f.extend_from_slice(&ty.to_le_bytes());
            f.extend_from_slice(&flags.to_le_bytes());
            f.extend_from_slice(&off.to_le_bytes());
            f.extend_from_slice(&(BASE + off).to_le_bytes());
            f.extend_from_slice(&(BASE + off).to_le_bytes());
            f.extend_from_slice(&size.to_le_bytes());
            f.extend_from_slice(&size.to_le_bytes());
            f.extend_from_slice(&8u64.to_le_bytes());
        };
        ph(1, 5, 0, total); // PT_LOAD R+X
        if let Some(i) = self.interp {
            ph(3, 4, interp_off as u64, i.len() as u64 + 1);
        }
        if has_dyn {
            ph(2, 6, dyn_off as u64, total - dyn_off as u64);
        }
        if self.relro {
            ph(0x6474_e552, 4, 0, 0);
        }
        if let Some(exec) = self.stack {
            ph(0x6474_e551, if exec { 7 } else { 6 }, 0, 0);
        }
        f.extend_from_slice(&body);
        f
    }
}

const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const DT_NEEDED: i64 = 1;
const DT_SONAME: i64 = 14;
const DT_RUNPATH: i64 = 29;
const DT_FLAGS: i64 = 30;
const DT_FLAGS_1: i64 = 0x6fff_fffb;
const DF_1_PIE: u64 = 0x0800_0000;

fn report(b: &Builder) -> ElfReport {
    inspect_bytes(&b.build()).expect("builder output parses")
}

#[test]
fn static_exec_is_static() {
    let r = report(&Builder::new(ET_EXEC));
    assert_eq!(r.linkage, Linkage::Static);
    assert_eq!(r.kind, Kind::Executable);
    assert_eq!(r.arch, Some("amd64"));
    assert!(!r.hardening.pie);
    assert!(r.hardening.nx);
    assert_eq!(
        r.hardening.canary, None,
        "no symbol table: unknown, not false"
    );
    assert!(r.stripped);
    assert!(verify(&r, &Policy::default()).is_empty());
    assert_eq!(
        verify_linkage(&r, Require::StaticPie),
        vec![Problem::NotStaticPie]
    );
}

#[test]
fn static_pie_by_flag_and_by_entry_point() {
    let mut b = Builder::new(ET_DYN);
    b.dyn_values.push((DT_FLAGS_1, DF_1_PIE));
    b.relro = true;
    let r = report(&b);
    assert_eq!(r.linkage, Linkage::StaticPie);
    assert!(r.hardening.pie);
    // A dynamic section but no lazy binding flag: partial, as checksec says.
    assert_eq!(r.hardening.relro, Relro::Partial);
    assert!(verify_linkage(&r, Require::StaticPie).is_empty());

    // Older linkers set no DF_1_PIE: an entry point and no soname still make a program.
    let r = report(&Builder::new(ET_DYN));
    assert_eq!((r.kind, r.linkage), (Kind::Executable, Linkage::StaticPie));
}

#[test]
fn shared_library_without_deps_is_not_static_pie() {
    let mut b = Builder::new(ET_DYN);
    b.dyn_strings.push((DT_SONAME, "libfoo.so.1"));
    let r = report(&b);
    assert_eq!(r.kind, Kind::SharedLibrary);
    assert_eq!(r.linkage, Linkage::Dynamic);
    assert_eq!(r.soname.as_deref(), Some("libfoo.so.1"));
    let p = verify(&r, &Policy::default());
    assert_eq!(
        p,
        vec![Problem::SharedLibrary {
            soname: Some("libfoo.so.1".into())
        }]
    );
    let text = explain("libfoo.so.1", &p);
    assert!(
        text.contains("shared library") && text.contains("--require any"),
        "{text}"
    );

    let mut b = Builder::new(ET_DYN);
    b.entry = 0;
    assert_eq!(report(&b).kind, Kind::SharedLibrary);
}

#[test]
fn glibc_pie_is_dynamic_with_interpreter_needed_and_runpath() {
    let mut b = Builder::new(ET_DYN);
    b.interp = Some("/lib64/ld-linux-x86-64.so.2");
    b.dyn_strings = vec![
        (DT_NEEDED, "libz.so.1"),
        (DT_NEEDED, "libc.so.6"),
        (DT_RUNPATH, "$ORIGIN/../lib:/opt/x"),
    ];
    b.dyn_values.push((DT_FLAGS_1, DF_1_PIE | 1));
    b.dyn_values.push((DT_FLAGS, 8));
    b.relro = true;
    let r = report(&b);
    assert_eq!(r.linkage, Linkage::Dynamic);
    assert_eq!(
        r.interpreter.as_deref(),
        Some("/lib64/ld-linux-x86-64.so.2")
    );
    assert_eq!(r.needed, ["libz.so.1", "libc.so.6"]);
    assert_eq!(r.runpath, ["$ORIGIN/../lib", "/opt/x"]);
    assert_eq!(r.libc, Some(Libc::Glibc));
    assert_eq!(r.hardening.relro, Relro::Full);
    assert!(r.hardening.pie);

    let p = verify(&r, &Policy::default());
    assert_eq!(p.len(), 1);
    let text = explain("app", &p);
    for want in [
        "app is dynamically linked",
        "libz.so.1",
        "glibc",
        "musl",
        "Fix:",
    ] {
        assert!(text.contains(want), "missing {want:?} in {text}");
    }
    assert!(
        verify(
            &r,
            &Policy {
                require: Require::Any,
                target: None
            }
        )
        .is_empty()
    );
}

#[test]
fn musl_loader_is_musl() {
    let mut b = Builder::new(ET_DYN);
    b.interp = Some("/lib/ld-musl-x86_64.so.1");
    b.dyn_strings = vec![(DT_NEEDED, "libc.musl-x86_64.so.1")];
    let r = report(&b);
    assert_eq!(r.libc, Some(Libc::Musl));
    let text = explain("a", &verify(&r, &Policy::default()));
    assert!(text.contains("musl, but dynamically"), "{text}");
}

#[test]
fn executable_stack_and_missing_gnu_stack_are_not_nx() {
    let mut b = Builder::new(ET_EXEC);
    b.stack = Some(true);
    assert!(!report(&b).hardening.nx);
    b.stack = None;
    assert!(!report(&b).hardening.nx);
}

#[test]
fn wrong_arch_and_variant_are_explained() {
    let targets = crate::target::Targets::builtin();
    let arm64 = targets.find("arm64").unwrap().clone();
    let r = report(&Builder::new(ET_EXEC));
    let p = verify(
        &r,
        &Policy {
            require: Require::Static,
            target: Some(arm64),
        },
    );
    assert_eq!(p.len(), 1);
    let text = explain("hello", &p);
    assert!(
        text.contains("linux/amd64") && text.contains("linux/arm64") && text.contains("GOARCH"),
        "{text}"
    );

    // A v7 ARM binary against linux/arm/v6 and linux/arm/v7.
    let mut b = Builder::new(ET_EXEC);
    b.machine = 40;
    let mut r = report(&b);
    assert_eq!(
        r.arch, None,
        "EM_ARM in a 64-bit file is no OCI architecture"
    );
    r.class = 32;
    r.arch = Some("arm");
    r.variant = Some("v7".into());
    let v6 = targets.find("linux/arm/v6").unwrap().clone();
    let v7 = targets.find("linux/arm/v7").unwrap().clone();
    let p = verify(
        &r,
        &Policy {
            require: Require::Static,
            target: Some(v6),
        },
    );
    assert!(matches!(&p[..], [Problem::WrongVariant { .. }]), "{p:?}");
    assert!(explain("x", &p).contains("SIGILL"));
    assert!(
        verify(
            &r,
            &Policy {
                require: Require::Static,
                target: Some(v7.clone())
            }
        )
        .is_empty()
    );
    // Unknown variant: nothing to compare, so no problem claimed.
    r.variant = None;
    assert!(
        verify(
            &r,
            &Policy {
                require: Require::Static,
                target: Some(v7)
            }
        )
        .is_empty()
    );
}

#[test]
fn platform_check_for_images() {
    let r = report(&Builder::new(ET_EXEC));
    assert_eq!(verify_platform(&r, &"linux/amd64".parse().unwrap()), None);
    assert!(matches!(
        verify_platform(&r, &"linux/arm64".parse().unwrap()),
        Some(Problem::WrongArch { .. })
    ));
}

#[test]
fn garbage_is_not_elf_and_damage_is_an_error() {
    assert_eq!(inspect_bytes(b""), Err(ElfError::NotElf));
    assert_eq!(inspect_bytes(b"#!/bin/sh\n"), Err(ElfError::NotElf));
    assert!(matches!(
        inspect_bytes(b"\x7fELF"),
        Err(ElfError::Malformed(_))
    ));
    let mut truncated = b"\x7fELF\x02\x01\x01".to_vec();
    truncated.resize(20, 0);
    assert!(matches!(
        inspect_bytes(&truncated),
        Err(ElfError::Malformed(_))
    ));
    let mut bad_class = Builder::new(ET_EXEC).build();
    bad_class[4] = 9;
    let e = inspect_bytes(&bad_class).unwrap_err().to_string();
    assert!(e.contains("class 9"), "{e}");
}

#[test]
fn program_headers_past_eof_are_malformed_not_a_panic() {
    let mut f = Builder::new(ET_EXEC).build();
    // e_phoff far past the end of the file.
    f[32..40].copy_from_slice(&0xffff_0000u64.to_le_bytes());
    let e = inspect_bytes(&f).unwrap_err().to_string();
    assert!(
        e.contains("program header table") && e.contains("truncated"),
        "{e}"
    );
}

#[test]
fn what_the_kernel_refuses_cannot_run() {
    let not_runnable = |f: &[u8]| -> String {
        let r = inspect_bytes(f).expect("parses");
        match verify(&r, &Policy::default()).as_slice() {
            [Problem::NotRunnable { reason }] => reason.clone(),
            p => panic!("expected not-runnable, got {p:?}"),
        }
    };
    assert!(verify(&report(&Builder::new(ET_EXEC)), &Policy::default()).is_empty());
    // e_phnum = 0xffff (PN_XNUM) and 0: tables the kernel refuses.
    for n in [0xffffu16, 0, 1200] {
        let mut f = Builder::new(ET_EXEC).build();
        f[56..58].copy_from_slice(&n.to_le_bytes());
        assert!(not_runnable(&f).contains("program-header table"), "{n}");
    }
    // Cut inside the PT_LOAD.
    let f = Builder::new(ET_EXEC).build();
    assert!(not_runnable(&f[..f.len() - 1]).contains("truncated"));
    // Entry points: outside every segment, and on zero bytes.
    let mut b = Builder::new(ET_EXEC);
    b.entry = BASE + 0x10_0000;
    assert!(not_runnable(&b.build()).contains("entry point"));
    let mut f = Builder::new(ET_EXEC).build();
    f.extend_from_slice(&[0; 64]);
    let off = f.len() as u64 - 32;
    // Grow the PT_LOAD over the zeros and point the entry at them.
    let len = (f.len() as u64).to_le_bytes();
    f[64 + 32..64 + 40].copy_from_slice(&len);
    f[64 + 40..64 + 48].copy_from_slice(&len);
    f[24..32].copy_from_slice(&(BASE + off).to_le_bytes());
    assert!(not_runnable(&f).contains("all zero"));
    // Not a program at all; `--require any` only reports.
    let mut f = Builder::new(ET_EXEC).build();
    f[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    assert!(not_runnable(&f).contains("object file"));
    let r = inspect_bytes(&f).unwrap();
    assert!(verify_linkage(&r, Require::Any).is_empty());
}

#[test]
fn dynamic_strings_outside_the_table_are_warnings() {
    let mut b = Builder::new(ET_DYN);
    b.interp = Some("/lib/ld.so");
    b.dyn_values.push((DT_NEEDED, 0xffff_ffff));
    let r = report(&b);
    assert_eq!(r.needed, ["?"]);
    assert!(
        r.warnings.iter().any(|w| w.contains("DT_NEEDED")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn every_truncation_of_a_built_file_is_handled() {
    let mut b = Builder::new(ET_DYN);
    b.interp = Some("/lib/ld-musl-x86_64.so.1");
    b.dyn_strings = vec![(DT_NEEDED, "libc.musl-x86_64.so.1"), (DT_RUNPATH, "/x")];
    let full = b.build();
    for cut in 0..full.len() {
        let _ = inspect_bytes(&full[..cut]);
    }
}

#[test]
fn host_ls_is_dynamic_glibc() {
    let Ok(r) = inspect_path(Path::new("/bin/ls")) else {
        panic!("/bin/ls must be readable on the test machine");
    };
    assert_eq!(r.linkage, Linkage::Dynamic);
    assert!(r.needed.iter().any(|n| n == "libc.so.6"), "{r:?}");
    assert_eq!(r.libc, Some(Libc::Glibc));
    assert!(r.glibc_version.is_some(), "{r:?}");
    let problems = verify(&r, &Policy::default());
    let text = explain("ls", &problems);
    assert!(
        text.contains("libc.so.6") && text.contains("glibc"),
        "{text}"
    );
}

/// The gate's look at a file it packs next (`Detail::Verdict`) gives every target's
/// policy the same problems as the full report, on every real ELF fixture, and never reads
/// a static file's constant data: with `.rodata` zeroed the verdict's report is the same,
/// while the full report (which searches it for libc and Rust markers) changes.
#[test]
fn a_verdict_agrees_with_the_full_report_without_reading_constant_data() {
    use object::{Object, ObjectSection};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/elf");
    let targets = crate::target::Targets::builtin();
    let mut zeroing_changed_the_full_report = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if !is_elf(&data) {
            continue;
        }
        files += 1;
        let name = path.display().to_string();
        let full = inspect_bytes(&data).unwrap();
        let verdict = inspect_bytes_with(&data, Detail::Verdict).unwrap();
        for t in &targets.all {
            for require in [Require::Static, Require::StaticPie, Require::Any] {
                let policy = Policy {
                    require,
                    target: Some(t.clone()),
                };
                assert_eq!(
                    verify(&full, &policy),
                    verify(&verdict, &policy),
                    "{name} for {}",
                    t.platform
                );
            }
        }
        let Some((at, len)) = object::File::parse(&*data)
            .unwrap()
            .section_by_name(".rodata")
            .and_then(|s| s.file_range())
        else {
            continue;
        };
        let mut zeroed = data.clone();
        zeroed[at as usize..(at + len) as usize].fill(0);
        let json = |r: &ElfReport| serde_json::to_string(r).unwrap();
        assert_eq!(
            json(&inspect_bytes_with(&zeroed, Detail::Verdict).unwrap()),
            json(&verdict),
            "{name}: the verdict read .rodata"
        );
        if json(&inspect_bytes(&zeroed).unwrap()) != json(&full) {
            zeroing_changed_the_full_report += 1;
        }
    }
    assert!(
        files >= 8,
        "the ELF fixtures are missing from {}",
        dir.display()
    );
    // Else this test could not tell a verdict that reads .rodata from one that does not.
    assert!(
        zeroing_changed_the_full_report >= 3,
        "{zeroing_changed_the_full_report}"
    );
}
