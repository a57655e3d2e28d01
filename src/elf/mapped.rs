//! The file as the loader sees it: PT_LOAD segments map virtual addresses to file offsets.
//! Shared by the parser and the Go build-info reader, which both follow pointers.

use object::Endianness;
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};

/// The file as the loader sees it: PT_LOAD segments map virtual addresses to file offsets.
pub(super) struct Image<'a, H: FileHeader<Endian = Endianness>> {
    pub data: &'a [u8],
    pub endian: Endianness,
    pub phdrs: &'a [H::ProgramHeader],
}

impl<'a, H: FileHeader<Endian = Endianness>> Image<'a, H> {
    /// File bytes at a virtual address, up to `len` bytes (fewer if the segment's file part
    /// ends first). `None` when no PT_LOAD maps the address to file contents.
    pub fn at_vaddr(&self, vaddr: u64, len: u64) -> Option<&'a [u8]> {
        for ph in self.phdrs {
            if ph.p_type(self.endian) != elf::PT_LOAD {
                continue;
            }
            let start: u64 = ph.p_vaddr(self.endian).into();
            let filesz: u64 = ph.p_filesz(self.endian).into();
            let Some(rel) = vaddr.checked_sub(start) else {
                continue;
            };
            if rel >= filesz {
                continue;
            }
            let off: u64 = ph.p_offset(self.endian).into();
            let off = off.checked_add(rel)?;
            let avail = filesz - rel;
            let end = off.checked_add(len.min(avail))?;
            return self
                .data
                .get(usize::try_from(off).ok()?..usize::try_from(end).ok()?);
        }
        None
    }

    pub fn u32_at(&self, bytes: &[u8], off: usize) -> Option<u32> {
        let b: [u8; 4] = bytes.get(off..off.checked_add(4)?)?.try_into().ok()?;
        Some(match self.endian {
            Endianness::Little => u32::from_le_bytes(b),
            Endianness::Big => u32::from_be_bytes(b),
        })
    }

    pub fn u16_at(&self, bytes: &[u8], off: usize) -> Option<u16> {
        let b: [u8; 2] = bytes.get(off..off.checked_add(2)?)?.try_into().ok()?;
        Some(match self.endian {
            Endianness::Little => u16::from_le_bytes(b),
            Endianness::Big => u16::from_be_bytes(b),
        })
    }
}

/// A NUL-terminated string at `off` in `table`, lossily decoded.
pub(super) fn cstr(table: &[u8], off: u64) -> Option<String> {
    let rest = table.get(usize::try_from(off).ok()?..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&rest[..len]).into_owned())
}
