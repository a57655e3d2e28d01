//! Would the kernel start this file? The checks `execve` (fs/binfmt_elf.c) makes before and
//! while it maps a program, plus the one that decides whether the first instruction exists:
//! a program-header table of 1..=64 KiB with the native entry size, at least one PT_LOAD,
//! every PT_LOAD's file part inside the file (pages past the end fault with SIGBUS),
//! `p_filesz <= p_memsz`, and an entry point inside the file part of an executable PT_LOAD
//! whose first bytes are not all zero (no architecture starts a program that way).
//! A truncated download, a header-only sparse file or a damaged header fails here with the
//! reason, instead of passing the static gate and dying with SIGSEGV or ENOEXEC later.

use object::Endianness;
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};

/// Largest program-header table the kernel reads (`load_elf_phdrs`: 64 KiB).
const MAX_PHDR_TABLE: u64 = 65536;

/// Why the kernel could not run `data` as a program, or `None` when it could.
pub(super) fn check<H: FileHeader<Endian = Endianness>>(
    header: &H,
    endian: Endianness,
    data: &[u8],
    phdrs: &[H::ProgramHeader],
) -> Option<String> {
    // The raw count: 0xffff (PN_XNUM, "see section 0") is for core files only; the kernel
    // multiplies the raw number and refuses a table over 64 KiB.
    let phnum = u64::from(header.e_phnum(endian));
    let entsize = u64::from(header.e_phentsize(endian));
    let table = phnum * entsize;
    if phnum == 0 || table > MAX_PHDR_TABLE {
        return Some(format!(
            "its program-header table has {phnum} entries ({table} bytes); the kernel accepts \
             1 to {MAX_PHDR_TABLE} bytes, so exec fails with \"Exec format error\""
        ));
    }
    let len = data.len() as u64;
    let mut loads = 0usize;
    let mut entry_ok = false;
    let mut entry: u64 = header.e_entry(endian).into();
    if header.e_machine(endian) == elf::EM_ARM {
        // The low bit selects Thumb state; the instruction is at the even address.
        entry &= !1;
    }
    for (i, ph) in phdrs.iter().enumerate() {
        if ph.p_type(endian) != elf::PT_LOAD {
            continue;
        }
        loads += 1;
        let off: u64 = ph.p_offset(endian).into();
        let filesz: u64 = ph.p_filesz(endian).into();
        let memsz: u64 = ph.p_memsz(endian).into();
        let vaddr: u64 = ph.p_vaddr(endian).into();
        match off.checked_add(filesz) {
            Some(end) if end <= len => {}
            _ => {
                return Some(format!(
                    "program header {i} (PT_LOAD) maps file bytes {off}..{} but the file is only \
                     {len} bytes long: it is truncated (an interrupted copy or download)",
                    off.saturating_add(filesz)
                ));
            }
        }
        if filesz > memsz {
            return Some(format!(
                "program header {i} (PT_LOAD) has p_filesz {filesz} > p_memsz {memsz}, which the \
                 kernel refuses"
            ));
        }
        if ph.p_flags(endian).0 & elf::PF_X.0 != 0 && entry >= vaddr && entry - vaddr < filesz {
            // In range (checked above), so the slice exists.
            let at = (off + (entry - vaddr)) as usize;
            let code = &data[at..data.len().min(at + 16).min((off + filesz) as usize)];
            if code.iter().all(|&b| b == 0) {
                return Some(format!(
                    "the code at its entry point {entry:#x} is all zero bytes: the file has its \
                     headers but not its contents (a sparse or zero-filled copy)"
                ));
            }
            entry_ok = true;
        }
    }
    if loads == 0 {
        return Some(
            "it has no PT_LOAD program header: the kernel would map nothing to run".to_string(),
        );
    }
    if !entry_ok {
        return Some(format!(
            "its entry point {entry:#x} is not inside the file contents of an executable PT_LOAD \
             segment, so its first instruction does not exist"
        ));
    }
    None
}
