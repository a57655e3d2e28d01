//! Which bytes of a large ELF file the parser will read, worked out from its headers alone,
//! so that a cold read can ask the disk for all of them at once instead of one page fault
//! at a time (`kiln inspect /usr/lib` with an empty page cache is bound by the disk's
//! latency, not its bandwidth). Mirrors what `parse` touches: the headers, PT_INTERP,
//! PT_DYNAMIC and PT_NOTE, the dynamic strings and version needs, the symbol tables with
//! their strings, `.comment`, notes, Go build info (or, without sections, the start of the
//! first writable segment, where the search looks), `.dep-v0`, `.ARM.attributes`, the entry point's first
//! bytes, and `.rodata` of files that are not dynamically linked.
//!
//! The plan is only a hint: the parser still reads the file itself, so a range the plan
//! misses costs a page fault, never a wrong answer. It reads the headers through `data`
//! with the same checks as the parser, and never panics on any input (fuzzed with the
//! parser: see `fuzz/`).

use std::ops::Range;

use object::Endianness;
use object::elf;
use object::read::ReadRef;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader};

/// Ranges closer than this are read as one: one request for a few KiB more is cheaper than
/// two requests on a disk whose cost is its latency. Small enough that a 100 KiB library's
/// plan skips its code (measured on /usr/bin + /usr/lib: ranges 64 KiB apart merged, the
/// ELF files of 64-256 KiB are 10.2 MiB by plan; 16 KiB, 5.0 MiB in 131 more ranges).
const MERGE_GAP: u64 = 16 * 1024;
/// The Go build-info search window at the start of the first writable segment (the same
/// bound as `goinfo::search_segments`).
const GO_SEARCH: u64 = 1 << 20;
/// How much of a version-needs table to fetch when no section says its size.
const VERNEED_GUESS: u64 = 4096;
/// Largest table (section headers, section names, dynamic section) the planner reads: a
/// full table of 65535 64-bit section headers, and far more than real files' names or
/// dynamic sections. Bounds what a hostile file can make it allocate.
const MAX_READ: u64 = 4 << 20;
/// How many bytes at the entry point `load::check` looks at.
const ENTRY_BYTES: u64 = 16;

/// The byte ranges of a file of `len` bytes that the parser reads, sorted and merged. The
/// headers are read through `data` (a lazy reader in production: only header bytes are
/// fetched). `hint` is told, as early as each is known, of ranges about to be read through
/// `data`, so a caller can start fetching them together. Empty when `data` is no ELF file
/// the parser would read past its header.
pub fn ranges<'a, R: ReadRef<'a>>(
    data: R,
    len: u64,
    hint: &mut dyn FnMut(Range<u64>),
) -> Vec<Range<u64>> {
    ranges_merged(data, len, hint, MERGE_GAP)
}

/// [`ranges`], merging ranges less than `gap` bytes apart.
fn ranges_merged<'a, R: ReadRef<'a>>(
    data: R,
    len: u64,
    hint: &mut dyn FnMut(Range<u64>),
    gap: u64,
) -> Vec<Range<u64>> {
    let mut want = Want {
        len,
        ranges: Vec::new(),
    };
    let Ok(ident) = data.read_bytes_at(0, 5) else {
        return Vec::new();
    };
    if !super::is_elf(ident) {
        return Vec::new();
    }
    match ident[4] {
        1 => plan_as::<elf::FileHeader32<Endianness>, R>(data, &mut want, hint),
        2 => plan_as::<elf::FileHeader64<Endianness>, R>(data, &mut want, hint),
        _ => None,
    };
    want.merged(gap)
}

/// The ranges collected so far, clipped to the file.
struct Want {
    len: u64,
    ranges: Vec<Range<u64>>,
}

impl Want {
    fn add(&mut self, off: u64, size: u64) {
        let end = off.saturating_add(size).min(self.len);
        if off < end {
            self.ranges.push(off..end);
        }
    }

    fn merged(self, gap: u64) -> Vec<Range<u64>> {
        merge(self.ranges, gap)
    }
}

/// `ranges` sorted, the empty ones dropped, and those less than `gap` bytes apart (or
/// overlapping) joined.
pub(super) fn merge(mut ranges: Vec<Range<u64>>, gap: u64) -> Vec<Range<u64>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(gap) => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

fn plan_as<'a, H: FileHeader<Endian = Endianness>, R: ReadRef<'a>>(
    data: R,
    want: &mut Want,
    hint: &mut dyn FnMut(Range<u64>),
) -> Option<()> {
    let header = H::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let header_size = std::mem::size_of::<H>() as u64;
    want.add(0, header_size);

    // The section-header table (and, just before it, usually the section names): asked for
    // now, read below, while the program headers are looked at.
    let shoff: u64 = header.e_shoff(endian).into();
    let shtable = u64::from(header.e_shnum(endian)) * u64::from(header.e_shentsize(endian));
    if shoff != 0 && shtable <= MAX_READ {
        let start = shoff.saturating_sub(4096);
        hint(start..shoff.saturating_add(shtable.max(header_size)).min(want.len));
    }

    // Program headers, as `segment_pass` reads them (same refusal of tables it skips).
    let table = u64::from(header.e_phnum(endian)) * u64::from(header.e_phentsize(endian));
    let phdrs: &[H::ProgramHeader] = if header.e_phnum(endian) == 0xffff || table > 65536 {
        &[]
    } else {
        header.program_headers(endian, data).unwrap_or(&[])
    };
    want.add(header.e_phoff(endian).into(), table);
    let mut dynamic = None;
    for ph in phdrs {
        let off: u64 = ph.p_offset(endian).into();
        let size: u64 = ph.p_filesz(endian).into();
        match ph.p_type(endian) {
            elf::PT_INTERP | elf::PT_NOTE => want.add(off, size),
            elf::PT_DYNAMIC if dynamic.is_none() => {
                want.add(off, size);
                if size <= MAX_READ {
                    hint(off..off.saturating_add(size).min(want.len));
                }
                dynamic = Some(ph);
            }
            _ => {}
        }
    }
    let img = Loads::<H> {
        endian,
        phdrs,
        len: want.len,
    };
    let mut entry: u64 = header.e_entry(endian).into();
    if header.e_machine(endian) == elf::EM_ARM {
        entry &= !1;
    }
    if let Some(off) = img.exec_offset(entry) {
        want.add(off, ENTRY_BYTES);
    }

    // Tables read here are bounded, so a hostile count or size cannot make the planner
    // allocate or read without limit (the parser reads such a file through its mapping).
    let shnum = header.shnum(endian, data).unwrap_or(0);
    let sections = if u64::from(shnum) * u64::from(header.e_shentsize(endian)) <= MAX_READ {
        header.section_headers(endian, data).unwrap_or(&[])
    } else {
        &[]
    };
    want.add(shoff, shtable);
    if let Some(s0) = sections.first() {
        // Section 0 can hold the real count and string-table index.
        want.add(s0.sh_offset(endian).into(), 0);
    }
    let names = header
        .shstrndx(endian, data)
        .ok()
        .and_then(|i| sections.get(i as usize))
        .and_then(|s| section_range(s, endian))
        .and_then(|(off, size)| {
            want.add(off, size);
            (size <= MAX_READ)
                .then(|| data.read_bytes_at(off, size).ok())
                .flatten()
        })
        .unwrap_or(&[]);

    let dynamic_entries = dynamic
        .filter(|ph| ph.p_filesz(endian).into() <= MAX_READ)
        .and_then(|ph| ph.dynamic(endian, data).ok().flatten())
        .or_else(|| {
            // `section_table` falls back to a SHT_DYNAMIC section without PT_DYNAMIC.
            let s = sections
                .iter()
                .find(|s| s.sh_type(endian) == elf::SHT_DYNAMIC)?;
            let (off, size) = section_range(s, endian)?;
            want.add(off, size);
            if size > MAX_READ {
                return None;
            }
            s.dynamic(endian, data).ok().flatten().map(|(d, _)| d)
        })
        .unwrap_or(&[]);
    let dynamic = DynFacts::read(endian, dynamic_entries);
    if let Some(off) = dynamic.strtab.and_then(|a| img.offset(a)) {
        want.add(off, dynamic.strsz.unwrap_or(0));
    }
    let mut verneed_size = VERNEED_GUESS;

    let mut rodata = None;
    for s in sections {
        let Some((off, size)) = section_range(s, endian) else {
            continue;
        };
        let name = cstr(names, s.sh_name(endian));
        let sh_type = s.sh_type(endian);
        let read = match sh_type {
            elf::SHT_DYNSYM | elf::SHT_SYMTAB | elf::SHT_SYMTAB_SHNDX | elf::SHT_NOTE => true,
            elf::SHT_ARM_ATTRIBUTES => header.e_machine(endian) == elf::EM_ARM,
            elf::SHT_GNU_VERNEED => {
                verneed_size = size;
                false
            }
            _ => matches!(
                name,
                b".dynstr" | b".go.buildinfo" | b".dep-v0" | b".comment"
            ),
        };
        if name == b".rodata" {
            rodata = Some((off, size));
        }
        if read {
            want.add(off, size);
        }
        if matches!(sh_type, elf::SHT_DYNSYM | elf::SHT_SYMTAB) {
            // The symbol names.
            if let Some((off, size)) = sections
                .get(s.sh_link(endian) as usize)
                .and_then(|l| section_range(l, endian))
            {
                want.add(off, size);
            }
        }
    }
    if let Some(off) = dynamic.verneed.and_then(|a| img.offset(a)) {
        want.add(off, verneed_size);
    }
    if sections.is_empty() {
        // `goinfo::search_segments` looks at the start of the first writable segment.
        if let Some(ph) = phdrs
            .iter()
            .find(|ph| ph.p_type(endian) == elf::PT_LOAD && ph.p_flags(endian).0 & elf::PF_W.0 != 0)
        {
            want.add(
                ph.p_offset(endian).into(),
                GO_SEARCH.min(ph.p_filesz(endian).into()),
            );
        }
    }
    // Constant data is searched for marker strings only in files that are not dynamically
    // linked (`classify`): no interpreter, no needed library, and not a plain library.
    let interp = phdrs.iter().any(|ph| ph.p_type(endian) == elf::PT_INTERP);
    let e_type = header.e_type(endian);
    let not_dynamic = !interp
        && !dynamic.needed
        && (e_type != elf::ET_DYN || dynamic.pie || (!dynamic.soname && entry != 0));
    if not_dynamic {
        match rodata {
            Some((off, size)) => want.add(off, size),
            None if sections.is_empty() => {
                // Without sections, everything PT_LOAD maps is searched.
                for ph in phdrs {
                    if ph.p_type(endian) == elf::PT_LOAD {
                        want.add(ph.p_offset(endian).into(), ph.p_filesz(endian).into());
                    }
                }
            }
            None => {}
        }
    }
    Some(())
}

/// A section's file bytes, when it has any.
fn section_range<S: SectionHeader<Endian = Endianness>>(
    s: &S,
    endian: Endianness,
) -> Option<(u64, u64)> {
    if s.sh_type(endian) == elf::SHT_NOBITS {
        return None;
    }
    Some((s.sh_offset(endian).into(), s.sh_size(endian).into()))
}

/// The NUL-terminated name at `off` in `table` (empty when outside it).
fn cstr(table: &[u8], off: u32) -> &[u8] {
    let rest = table.get(off as usize..).unwrap_or(&[]);
    let end = memchr::memchr(0, rest).unwrap_or(rest.len());
    &rest[..end]
}

/// What the dynamic section says that decides which ranges are read.
#[derive(Default)]
struct DynFacts {
    strtab: Option<u64>,
    strsz: Option<u64>,
    verneed: Option<u64>,
    needed: bool,
    soname: bool,
    pie: bool,
}

impl DynFacts {
    fn read<D: Dyn<Endian = Endianness>>(endian: Endianness, entries: &[D]) -> DynFacts {
        let mut f = DynFacts::default();
        for d in entries {
            let v = d.val(endian);
            match d.tag(endian) {
                elf::DT_NULL => break,
                elf::DT_STRTAB => f.strtab = Some(v),
                elf::DT_STRSZ => f.strsz = Some(v),
                elf::DT_VERNEED => f.verneed = Some(v),
                elf::DT_NEEDED => f.needed = true,
                elf::DT_SONAME => f.soname = true,
                elf::DT_FLAGS_1 => f.pie |= v & elf::DF_1_PIE.0 != 0,
                _ => {}
            }
        }
        f
    }
}

/// Virtual addresses to file offsets through PT_LOAD, as `mapped::Image` does.
struct Loads<'a, H: FileHeader<Endian = Endianness>> {
    endian: Endianness,
    phdrs: &'a [H::ProgramHeader],
    len: u64,
}

impl<H: FileHeader<Endian = Endianness>> Loads<'_, H> {
    fn find(&self, vaddr: u64, exec: bool) -> Option<u64> {
        self.phdrs.iter().find_map(|ph| {
            if ph.p_type(self.endian) != elf::PT_LOAD
                || (exec && ph.p_flags(self.endian).0 & elf::PF_X.0 == 0)
            {
                return None;
            }
            let rel = vaddr.checked_sub(ph.p_vaddr(self.endian).into())?;
            let filesz: u64 = ph.p_filesz(self.endian).into();
            let off: u64 = ph.p_offset(self.endian).into();
            (rel < filesz)
                .then(|| off.checked_add(rel))
                .flatten()
                .filter(|&o| o < self.len)
        })
    }

    fn offset(&self, vaddr: u64) -> Option<u64> {
        self.find(vaddr, false)
    }

    fn exec_offset(&self, vaddr: u64) -> Option<u64> {
        self.find(vaddr, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::inspect_bytes;

    /// Real files of every kind the parser handles: the committed fixtures (static,
    /// static-pie, dynamic musl and glibc, Go build info, cargo-auditable, ARM attributes,
    /// big-endian s390x) and this test program (symbol tables, debug info, 30+ MB).
    fn inputs() -> Vec<(String, Vec<u8>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/elf");
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        paths.sort();
        paths.push("/proc/self/exe".into());
        paths
            .into_iter()
            .filter_map(|p| {
                let data = std::fs::read(&p).unwrap();
                super::super::is_elf(&data).then(|| (p.display().to_string(), data))
            })
            .collect()
    }

    /// `data` with every byte outside `ranges` replaced by a pattern no field survives.
    fn masked(data: &[u8], ranges: &[Range<u64>]) -> Vec<u8> {
        let mut out: Vec<u8> = (0..data.len()).map(|i| (i as u8) ^ 0xa5).collect();
        for r in ranges {
            let (a, b) = (r.start as usize, r.end as usize);
            out[a..b].copy_from_slice(&data[a..b]);
        }
        out
    }

    /// The plan holds every byte the parser reads: the report of a file whose other bytes
    /// are garbage is the report of the file. (Unmerged ranges, so the gaps between them
    /// really are garbage.)
    #[test]
    fn the_parser_reads_nothing_outside_the_plan() {
        let inputs = inputs();
        assert!(inputs.len() >= 10, "fixtures missing");
        for (name, data) in inputs {
            let plan = ranges_merged(&data[..], data.len() as u64, &mut |_| {}, 0);
            let planned: u64 = plan.iter().map(|r| r.end - r.start).sum();
            let whole = inspect_bytes(&data);
            assert!(whole.is_ok(), "{name}: {whole:?}");
            assert_eq!(inspect_bytes(&masked(&data, &plan)), whole, "{name}");
            // The check can fail: with only the headers kept, the report changes.
            let headers = &plan[..1];
            assert_ne!(inspect_bytes(&masked(&data, headers)), whole, "{name}");
            // And the plan is the small part of a large file.
            if data.len() > 1 << 20 {
                assert!(
                    planned < data.len() as u64 / 2,
                    "{name}: {planned} bytes planned"
                );
            }
        }
    }

    /// The reads the plan makes itself are announced first, so they can be in flight
    /// together; merging joins what is close and keeps what is far apart.
    #[test]
    fn hints_come_before_reads_and_ranges_merge() {
        let data = std::fs::read("/proc/self/exe").unwrap();
        let mut hints = Vec::new();
        let merged = ranges(&data[..], data.len() as u64, &mut |r| hints.push(r));
        assert!(!hints.is_empty());
        let shoff = u64::from_le_bytes(data[40..48].try_into().unwrap());
        assert!(hints.iter().any(|h| h.contains(&shoff)), "{hints:?}");
        assert!(merged.windows(2).all(|w| w[1].start > w[0].end + MERGE_GAP));
        assert!(
            merged
                .iter()
                .all(|r| r.start < r.end && r.end <= data.len() as u64)
        );
    }
}
