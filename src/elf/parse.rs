//! From ELF bytes to an [`ElfReport`]. Reads what the kernel and the dynamic loader read —
//! the file header, program headers and the PT_DYNAMIC segment — and only then the section
//! table, for what lives only there (symbols, `.ARM.attributes`, build info, debug info).
//! A damaged section table is a warning, not an error: the loader never looks at it.
//!
//! Every offset, size and count comes from the file and is checked before use; tables are
//! borrowed slices of the input, so allocation is bounded by the input's size.

use object::Endianness;
use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader, SectionTable};

use super::lang::language;
use super::libc::{LibcAnswer, detect_libc, highest_glibc, scan_symbols};
use super::mapped::{Image, cstr};
use super::{
    Detail, ElfError, ElfReport, Hardening, Kind, Libc, Linkage, Relro, arm, auditable, goinfo,
    markers, oci_arch,
};

/// How many `.comment` strings are kept: enough for compiler + linker + a few tools.
const MAX_COMMENTS: usize = 16;
/// Longest `.comment` string kept.
const MAX_COMMENT_LEN: usize = 200;

pub fn parse(data: &[u8], detail: Detail) -> Result<ElfReport, ElfError> {
    if !super::is_elf(data) {
        return Err(ElfError::NotElf);
    }
    // e_ident[EI_CLASS] is byte 4.
    match data.get(4) {
        Some(1) => parse_as::<elf::FileHeader32<Endianness>>(data, detail),
        Some(2) => parse_as::<elf::FileHeader64<Endianness>>(data, detail),
        Some(c) => Err(ElfError::Malformed(format!(
            "unknown ELF class {c} (byte 4 must be 1 for 32-bit or 2 for 64-bit); the file is damaged"
        ))),
        None => Err(ElfError::Malformed(
            "file ends inside the ELF identification bytes (truncated copy or download?)".into(),
        )),
    }
}

fn malformed(what: &str) -> impl Fn(object::read::Error) -> ElfError + '_ {
    move |e| {
        ElfError::Malformed(format!(
            "{what}: {e} (the file is truncated or damaged; rebuild or re-download it)"
        ))
    }
}

/// What the dynamic section says, before strings are looked up.
#[derive(Default)]
struct DynInfo {
    present: bool,
    strtab: Option<u64>,
    strsz: Option<u64>,
    needed: Vec<u64>,
    soname: Option<u64>,
    rpath: Vec<u64>,
    runpath: Vec<u64>,
    flags: u64,
    flags_1: u64,
    bind_now: bool,
    verneed: Option<u64>,
    verneednum: u64,
}

fn read_dynamic<D: Dyn<Endian = Endianness>>(endian: Endianness, entries: &[D]) -> DynInfo {
    let mut info = DynInfo {
        present: true,
        ..Default::default()
    };
    for d in entries {
        let v = d.val(endian);
        match d.tag(endian) {
            elf::DT_NULL => break,
            elf::DT_STRTAB => info.strtab = Some(v),
            elf::DT_STRSZ => info.strsz = Some(v),
            elf::DT_NEEDED => info.needed.push(v),
            elf::DT_SONAME => info.soname = Some(v),
            elf::DT_RPATH => info.rpath.push(v),
            elf::DT_RUNPATH => info.runpath.push(v),
            elf::DT_FLAGS => info.flags |= v,
            elf::DT_FLAGS_1 => info.flags_1 |= v,
            elf::DT_BIND_NOW => info.bind_now = true,
            elf::DT_VERNEED => info.verneed = Some(v),
            elf::DT_VERNEEDNUM => info.verneednum = v,
            _ => {}
        }
    }
    info
}

fn parse_as<H: FileHeader<Endian = Endianness>>(
    data: &[u8],
    detail: Detail,
) -> Result<ElfReport, ElfError> {
    let header = H::parse(data).map_err(malformed("ELF header"))?;
    let endian = header.endian().map_err(malformed("ELF header"))?;
    let class = if header.is_class_64() { 64 } else { 32 };
    let machine = header.e_machine(endian).0;
    let big = endian == Endianness::Big;
    let e_type = header.e_type(endian);
    let mut seg = segment_pass(header, endian, data)?;
    let img = Image::<H> {
        data,
        endian,
        phdrs: seg.phdrs,
    };

    let sections = section_table(header, endian, data, e_type, &mut seg);
    let dyns = dynamic_strings(&img, &sections, &seg.dynamic, &mut seg.warnings);

    let entry: u64 = header.e_entry(endian).into();
    let (kind, linkage) = classify(e_type, &seg, &dyns, entry);
    // Only programs are started by the kernel; a library's entry point means nothing.
    let load_error = match (kind, seg.table_error.take()) {
        (Kind::Executable, Some(e)) => Some(e),
        (Kind::Executable, None) => super::load::check(header, endian, data, seg.phdrs),
        _ => None,
    };

    let (sec, build_id) = section_pass(endian, data, &sections, machine, seg.build_id);
    let syms = scan_symbols(endian, data, &sections);

    // Go's own reader (`debug/buildinfo`) looks only at the section; without a section
    // table kiln searches where the linker puts the blob. A file with sections but no
    // `.go.buildinfo` is not searched: that read would be up to 1 MiB of every library.
    let go = match sec.go_buildinfo {
        Some(b) => goinfo::parse(b, &img),
        None if sections.is_empty() => goinfo::search_segments(&img),
        None => None,
    };
    let arm = sec.arm_attributes.and_then(arm::parse);
    let auditable = sec.dep_v0.and_then(|d| match auditable::parse(d) {
        Ok(p) => Some(p),
        Err(e) => {
            seg.warnings
                .push(format!("cargo-auditable data (.dep-v0) unreadable: {e}"));
            None
        }
    });
    let comment = comments(sec.comment);

    // Only constant data can hold the marker strings; searching just `.rodata` keeps this
    // cheap for 10 MB static binaries. Without a section table, search what PT_LOAD maps
    // (never the whole file: a sparse file can claim gigabytes of nothing). A verdict needs
    // neither the language nor a static file's libc: nothing is searched.
    let marker_data = if load_error.is_some() || detail == Detail::Verdict {
        None
    } else if sections.is_empty() {
        loaded_bytes(&img)
    } else {
        sec.rodata
    };
    let told = language(
        go.as_ref(),
        sec.go_marker,
        auditable.is_some(),
        &comment,
        &syms,
    );
    let libc_told = detect_libc(
        &seg.interpreter,
        &dyns.needed,
        dyns.glibc_version.is_some(),
        &syms,
        go.as_ref(),
        linkage,
    );
    // glibc's static files carry its own link sets as sections (`__libc_IO_vtables`,
    // `__libc_atexit`): they name the libc as surely as its marker strings, where those
    // would be searched, without the search.
    let glibc_sections = marker_data.is_some() && sec.glibc_sections;
    let wanted = markers::Wanted {
        // A stripped Rust program is told by std's panic paths in its constant data. Only
        // searched in static files (kiln's products): scanning every shared library's
        // .rodata doubled `kiln inspect /usr/lib`'s resident memory and cost 20% of its time.
        rust: told.is_none() && linkage != Linkage::Dynamic,
        libc: matches!(libc_told, LibcAnswer::Search) && !glibc_sections,
    };
    let found = marker_data
        .map(|d| markers::search(d, wanted))
        .unwrap_or_default();
    let language = told.or(found.rust.then_some("rust"));
    let libc = match libc_told {
        LibcAnswer::Known(l) => l,
        LibcAnswer::Search if glibc_sections => Some(Libc::Glibc),
        LibcAnswer::Search => found.libc,
    };

    let variant = if machine == elf::EM_ARM.0 {
        arm.as_ref()
            .and_then(|a| a.variant.clone())
            .or_else(|| go.as_ref().and_then(goinfo::GoInfo::arm_variant))
    } else {
        None
    };

    Ok(ElfReport {
        class,
        endian: if big { "big" } else { "little" },
        machine,
        machine_name: machine_name(machine),
        arch: oci_arch(machine, class, big),
        variant,
        elf_type: elf_type_name(e_type),
        kind,
        linkage,
        interpreter: seg.interpreter,
        needed: dyns.needed,
        soname: dyns.soname,
        rpath: dyns.rpath,
        runpath: dyns.runpath,
        libc,
        glibc_version: dyns.glibc_version,
        language,
        comment,
        stripped: !sec.symtab,
        debug_info: sec.debug,
        build_id,
        hardening: Hardening {
            pie: e_type == elf::ET_DYN && kind == Kind::Executable,
            relro: relro(seg.gnu_relro, &seg.dynamic),
            // Without PT_GNU_STACK the kernel gives most architectures an executable stack.
            nx: seg.gnu_stack.unwrap_or(false),
            canary: syms.any_table.then_some(syms.canary),
            fortify: syms.any_table.then(|| syms.fortify.clone()),
        },
        arm,
        go,
        auditable,
        load_error,
        warnings: seg.warnings,
    })
}

/// `e_type` as `kiln inspect` prints it.
fn elf_type_name(e_type: elf::FileType) -> &'static str {
    match e_type {
        elf::ET_EXEC => "exec",
        elf::ET_DYN => "dyn",
        elf::ET_REL => "rel",
        elf::ET_CORE => "core",
        _ => "other",
    }
}

/// The section table (optional for running, needed for symbols and attributes); and the
/// dynamic section through it, for files without PT_DYNAMIC that still carry one.
fn section_table<'a, H: FileHeader<Endian = Endianness>>(
    header: &'a H,
    endian: Endianness,
    data: &'a [u8],
    e_type: elf::FileType,
    seg: &mut SegmentFacts<'a, H>,
) -> SectionTable<'a, H> {
    let sections = match header.sections(endian, data) {
        Ok(s) => s,
        Err(e) => {
            seg.warnings.push(format!(
                "section table unreadable ({e}); symbol-based checks skipped"
            ));
            SectionTable::default()
        }
    };
    if !seg.dynamic.present
        && let Some((entries, _)) = sections
            .iter()
            .find(|s| s.sh_type(endian) == elf::SHT_DYNAMIC)
            .and_then(|s| s.dynamic(endian, data).ok().flatten())
        && e_type != elf::ET_REL
    {
        seg.dynamic = read_dynamic(endian, entries);
    }
    sections
}

/// What kind of object the file is and how it is linked.
fn classify<H: FileHeader<Endian = Endianness>>(
    e_type: elf::FileType,
    seg: &SegmentFacts<'_, H>,
    dyns: &DynStrings,
    entry: u64,
) -> (Kind, Linkage) {
    let is_pie_flag = seg.dynamic.flags_1 & elf::DF_1_PIE.0 != 0;
    let kind = match e_type {
        elf::ET_EXEC => Kind::Executable,
        // Without DF_1_PIE (added by binutils 2.26 / lld), an interpreter or an entry point
        // without a soname marks a program; a soname marks a library.
        elf::ET_DYN if is_pie_flag => Kind::Executable,
        elf::ET_DYN if dyns.soname.is_some() => Kind::SharedLibrary,
        elf::ET_DYN if seg.interpreter.is_some() || entry != 0 => Kind::Executable,
        elf::ET_DYN => Kind::SharedLibrary,
        elf::ET_REL => Kind::Relocatable,
        elf::ET_CORE => Kind::Core,
        _ => Kind::Other,
    };
    let linkage = if seg.interpreter.is_some() || !dyns.needed.is_empty() {
        Linkage::Dynamic
    } else if e_type == elf::ET_DYN {
        if kind == Kind::Executable {
            Linkage::StaticPie
        } else {
            Linkage::Dynamic
        }
    } else {
        Linkage::Static
    };
    (kind, linkage)
}

/// What the program headers say: the loader's view of the file.
struct SegmentFacts<'a, H: FileHeader<Endian = Endianness>> {
    phdrs: &'a [H::ProgramHeader],
    /// Set when the kernel would refuse the program-header table itself.
    table_error: Option<String>,
    interpreter: Option<String>,
    dynamic: DynInfo,
    gnu_relro: bool,
    gnu_stack: Option<bool>,
    build_id: Option<String>,
    warnings: Vec<String>,
}

fn segment_pass<'a, H: FileHeader<Endian = Endianness>>(
    header: &'a H,
    endian: Endianness,
    data: &'a [u8],
) -> Result<SegmentFacts<'a, H>, ElfError> {
    let mut seg = SegmentFacts::<H> {
        phdrs: &[],
        table_error: None,
        interpreter: None,
        dynamic: DynInfo::default(),
        gnu_relro: false,
        gnu_stack: None,
        build_id: None,
        warnings: Vec::new(),
    };
    // A raw e_phnum the kernel refuses (0 for none, 0xffff "count in section 0", a table
    // over 64 KiB) is not read through: what it points at is not what the kernel would use.
    let table = u64::from(header.e_phnum(endian)) * u64::from(header.e_phentsize(endian));
    if header.e_phnum(endian) == 0xffff || table > 65536 {
        seg.table_error = super::load::check(header, endian, data, &[]);
        return Ok(seg);
    }
    // The loader cannot start a file whose program headers are not in it, so this is fatal.
    seg.phdrs = header
        .program_headers(endian, data)
        .map_err(malformed("program header table"))?;
    for ph in seg.phdrs {
        match ph.p_type(endian) {
            elf::PT_INTERP => match ph.interpreter(endian, data) {
                Ok(Some(i)) => seg.interpreter = Some(String::from_utf8_lossy(i).into_owned()),
                // A PT_INTERP that cannot be read still makes the kernel look for a loader.
                _ => {
                    seg.warnings
                        .push("PT_INTERP is outside the file or not NUL-terminated".into());
                    seg.interpreter = Some(String::from("?"));
                }
            },
            elf::PT_DYNAMIC if !seg.dynamic.present => match ph.dynamic(endian, data) {
                Ok(Some(entries)) => seg.dynamic = read_dynamic(endian, entries),
                _ => seg.warnings.push("PT_DYNAMIC is outside the file".into()),
            },
            elf::PT_GNU_RELRO => seg.gnu_relro = true,
            elf::PT_GNU_STACK => seg.gnu_stack = Some(ph.p_flags(endian).0 & elf::PF_X.0 == 0),
            elf::PT_NOTE if seg.build_id.is_none() => {
                if let Ok(Some(notes)) = ph.notes(endian, data) {
                    seg.build_id = find_build_id(endian, notes);
                }
            }
            _ => {}
        }
    }
    Ok(seg)
}

/// The dynamic section's strings, looked up as the loader does.
struct DynStrings {
    needed: Vec<String>,
    soname: Option<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
    glibc_version: Option<String>,
}

fn dynamic_strings<H: FileHeader<Endian = Endianness>>(
    img: &Image<'_, H>,
    sections: &SectionTable<'_, H>,
    dynamic: &DynInfo,
    warnings: &mut Vec<String>,
) -> DynStrings {
    let endian = img.endian;
    // Through DT_STRTAB as the loader does, else the `.dynstr` section.
    let dynstr: &[u8] = dynamic
        .strtab
        .and_then(|a| img.at_vaddr(a, dynamic.strsz.unwrap_or(u64::MAX)))
        .or_else(|| {
            sections
                .section_by_name(endian, b".dynstr")
                .and_then(|(_, s)| s.data(endian, img.data).ok())
        })
        .unwrap_or(&[]);
    let mut dstr = |off: u64, what: &str| -> Option<String> {
        let s = cstr(dynstr, off);
        if s.is_none() {
            warnings.push(format!(
                "{what} string at offset {off} is outside the string table"
            ));
        }
        s
    };
    let needed: Vec<String> = dynamic
        .needed
        .iter()
        .map(|&o| dstr(o, "DT_NEEDED").unwrap_or_else(|| "?".into()))
        .collect();
    let soname = dynamic.soname.and_then(|o| dstr(o, "DT_SONAME"));
    let split_paths = |offs: &[u64], dstr: &mut dyn FnMut(u64, &str) -> Option<String>| {
        offs.iter()
            .filter_map(|&o| dstr(o, "DT_RPATH/DT_RUNPATH"))
            .flat_map(|s| {
                s.split(':')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let rpath = split_paths(&dynamic.rpath, &mut dstr);
    let runpath = split_paths(&dynamic.runpath, &mut dstr);
    let glibc_version = dynamic
        .verneed
        .and_then(|a| highest_glibc(img, a, dynamic.verneednum, dynstr));
    DynStrings {
        needed,
        soname,
        rpath,
        runpath,
        glibc_version,
    }
}

/// Everything the section table holds, in one pass over it; also the build id when the
/// program headers had none.
fn section_pass<'a, H: FileHeader<Endian = Endianness>>(
    endian: Endianness,
    data: &'a [u8],
    sections: &SectionTable<'a, H>,
    machine: u16,
    mut build_id: Option<String>,
) -> (SectionFacts<'a>, Option<String>) {
    let mut sec = SectionFacts::default();
    for section in sections.iter() {
        let Ok(name) = sections.section_name(endian, section) else {
            continue;
        };
        let sh_type = section.sh_type(endian);
        match name {
            b".symtab" => sec.symtab = true,
            b".go.buildinfo" => sec.go_buildinfo = section.data(endian, data).ok(),
            b".dep-v0" => sec.dep_v0 = section.data(endian, data).ok(),
            b".comment" => sec.comment = section.data(endian, data).ok(),
            b".rodata" => sec.rodata = section.data(endian, data).ok(),
            b".gopclntab" | b".note.go.buildid" => sec.go_marker = true,
            b"__libc_IO_vtables" | b"__libc_atexit" => sec.glibc_sections = true,
            // rustc's `.debug_gdb_scripts` (names of gdb pretty-printers) is loaded memory,
            // not DWARF: stripping keeps it.
            b".debug_gdb_scripts" => {}
            n if n.starts_with(b".debug_") || n.starts_with(b".zdebug_") => sec.debug = true,
            _ => {}
        }
        if sh_type == elf::SHT_ARM_ATTRIBUTES && machine == elf::EM_ARM.0 {
            sec.arm_attributes = section.data(endian, data).ok();
        }
        if build_id.is_none()
            && sh_type == elf::SHT_NOTE
            && let Ok(Some(notes)) = section.notes(endian, data)
        {
            build_id = find_build_id(endian, notes);
        }
    }
    (sec, build_id)
}

/// The file bytes from the first PT_LOAD's start to the last one's end (constant data in a
/// file without sections lives in one of them): bounded by what the file holds, never by
/// what its headers claim.
fn loaded_bytes<'a, H: FileHeader<Endian = Endianness>>(img: &Image<'a, H>) -> Option<&'a [u8]> {
    let len = img.data.len() as u64;
    let mut span: Option<(u64, u64)> = None;
    for ph in img.phdrs {
        if ph.p_type(img.endian) != elf::PT_LOAD {
            continue;
        }
        let off: u64 = ph.p_offset(img.endian).into();
        let filesz: u64 = ph.p_filesz(img.endian).into();
        let end = off.saturating_add(filesz).min(len);
        if off >= end {
            continue;
        }
        span = Some(span.map_or((off, end), |(a, b)| (a.min(off), b.max(end))));
    }
    let (start, end) = span?;
    img.data
        .get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
}

fn relro(gnu_relro: bool, dynamic: &DynInfo) -> Relro {
    match (gnu_relro, dynamic.present) {
        (false, _) => Relro::None,
        // Nothing is bound lazily without a dynamic section, so the whole RELRO region is
        // read-only once the startup code (or kernel) has applied relocations.
        (true, false) => Relro::Full,
        (true, true) => {
            let now = dynamic.bind_now
                || dynamic.flags & elf::DF_BIND_NOW.0 != 0
                || dynamic.flags_1 & elf::DF_1_NOW.0 != 0;
            if now { Relro::Full } else { Relro::Partial }
        }
    }
}

#[derive(Default)]
struct SectionFacts<'a> {
    symtab: bool,
    debug: bool,
    go_marker: bool,
    /// A section only glibc's static files have (see `parse_as`).
    glibc_sections: bool,
    go_buildinfo: Option<&'a [u8]>,
    dep_v0: Option<&'a [u8]>,
    comment: Option<&'a [u8]>,
    arm_attributes: Option<&'a [u8]>,
    rodata: Option<&'a [u8]>,
}

fn find_build_id<H: FileHeader<Endian = Endianness>>(
    endian: Endianness,
    mut notes: object::read::elf::NoteIterator<'_, H>,
) -> Option<String> {
    while let Ok(Some(note)) = notes.next() {
        if note.name() == elf::ELF_NOTE_GNU && note.n_type(endian) == elf::NT_GNU_BUILD_ID {
            return Some(hex::encode(note.desc()));
        }
    }
    None
}

fn comments(section: Option<&[u8]>) -> Vec<String> {
    let Some(bytes) = section else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for s in bytes.split(|&b| b == 0) {
        if s.is_empty() {
            continue;
        }
        let mut text = String::from_utf8_lossy(&s[..s.len().min(MAX_COMMENT_LEN)]).into_owned();
        text = text.trim().to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push(text);
        }
        if out.len() == MAX_COMMENTS {
            break;
        }
    }
    out
}

fn machine_name(m: u16) -> Option<&'static str> {
    Some(match elf::Machine(m) {
        elf::EM_386 => "EM_386",
        elf::EM_68K => "EM_68K",
        elf::EM_MIPS => "EM_MIPS",
        elf::EM_PPC => "EM_PPC",
        elf::EM_PPC64 => "EM_PPC64",
        elf::EM_S390 => "EM_S390",
        elf::EM_ARM => "EM_ARM",
        elf::EM_SPARCV9 => "EM_SPARCV9",
        elf::EM_X86_64 => "EM_X86_64",
        elf::EM_AARCH64 => "EM_AARCH64",
        elf::EM_RISCV => "EM_RISCV",
        elf::EM_LOONGARCH => "EM_LOONGARCH",
        elf::EM_BPF => "EM_BPF",
        _ => return None,
    })
}
