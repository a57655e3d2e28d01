//! Which C library a file was built against, and what its symbol tables say: the loader's
//! version requirements (DT_VERNEED) and telling symbols; for stripped static files,
//! `markers` searches the strings only one libc carries.

use object::Endianness;
use object::elf;
use object::read::elf::{FileHeader, SectionHeader, SectionTable, Sym};

use super::mapped::Image;
use super::mapped::cstr;
use super::{Libc, Linkage, goinfo};

/// The highest `GLIBC_x.y` in the version-needed table (DT_VERNEED): the oldest glibc the
/// file runs on. The table is a chain of Verneed records each followed by `vn_cnt` Vernaux
/// records; `vn_next`/`vna_next` are relative offsets, and both chains are bounded by
/// `count` and the table's own size so a looping chain terminates.
pub(super) fn highest_glibc<H: FileHeader<Endian = Endianness>>(
    img: &Image<'_, H>,
    addr: u64,
    count: u64,
    dynstr: &[u8],
) -> Option<String> {
    let table = img.at_vaddr(addr, u64::MAX)?;
    let mut best: Option<(Vec<u32>, String)> = None;
    let mut off = 0usize;
    // Each record is at least 16 bytes, so this bounds a looping chain by the table size.
    let max_records = table.len() / 16 + 1;
    for _ in 0..count.min(max_records as u64) {
        let vn_cnt = img.u16_at(table, off + 2)?;
        let vn_aux = img.u32_at(table, off + 8)? as usize;
        let vn_next = img.u32_at(table, off + 12)? as usize;
        let mut aux = off.checked_add(vn_aux)?;
        for _ in 0..usize::from(vn_cnt).min(max_records) {
            let name_off = img.u32_at(table, aux + 8)?;
            let vna_next = img.u32_at(table, aux + 12)? as usize;
            if let Some(name) = cstr(dynstr, name_off.into())
                && let Some(v) = name.strip_prefix("GLIBC_")
            {
                let parts: Option<Vec<u32>> = v.split('.').map(|p| p.parse().ok()).collect();
                if let Some(parts) = parts
                    && best.as_ref().is_none_or(|(b, _)| parts > *b)
                {
                    best = Some((parts, v.to_string()));
                }
            }
            if vna_next == 0 {
                break;
            }
            aux = aux.checked_add(vna_next)?;
        }
        if vn_next == 0 {
            break;
        }
        off = off.checked_add(vn_next)?;
    }
    best.map(|(_, v)| v)
}

/// What the symbol tables say, from one pass over `.dynsym` and `.symtab`.
#[derive(Default)]
pub(super) struct SymbolFacts {
    pub any_table: bool,
    pub canary: bool,
    pub fortify: Vec<String>,
    musl: bool,
    glibc: bool,
    pub rust: bool,
}

pub(super) fn scan_symbols<H: FileHeader<Endian = Endianness>>(
    endian: Endianness,
    data: &[u8],
    sections: &SectionTable<'_, H>,
) -> SymbolFacts {
    let mut facts = SymbolFacts::default();
    for kind in [elf::SHT_DYNSYM, elf::SHT_SYMTAB] {
        let Ok(table) = sections.symbols(endian, data, kind) else {
            continue;
        };
        if table.is_empty() {
            continue;
        }
        facts.any_table = true;
        let strings = table.strings();
        // The names' bytes, to pass over a name by its first bytes without finding its end:
        // every name looked for starts with `__` or is `rust_begin_unwind`, and most names
        // in a large library's table are neither.
        let raw = sections
            .section(table.string_section())
            .ok()
            .and_then(|s| s.data(endian, data).ok());
        for sym in table.iter() {
            if let Some(rest) = raw.and_then(|r| r.get(sym.st_name(endian) as usize..))
                && !rest.starts_with(b"__")
                && !rest.starts_with(b"rust_begin_unwind")
            {
                continue;
            }
            let Ok(name) = sym.name(endian, strings) else {
                continue;
            };
            // Most names are not interesting; test the cheap prefix first.
            if name.starts_with(b"__") {
                match name {
                    b"__stack_chk_fail" | b"__stack_chk_guard" | b"__stack_chk_fail_local" => {
                        facts.canary = true
                    }
                    b"__init_libc" | b"__libc_start_init" | b"__dls2" => facts.musl = true,
                    b"__libc_setup_tls"
                    | b"__libc_start_call_main"
                    | b"_dl_relocate_static_pie" => facts.glibc = true,
                    b"__rust_alloc" | b"__rust_probestack" | b"__rust_start_panic" => {
                        facts.rust = true
                    }
                    n if n.ends_with(b"_chk") && n.len() > 6 => {
                        let s = String::from_utf8_lossy(n).into_owned();
                        facts.fortify.push(s);
                    }
                    _ => {}
                }
            } else if name == b"rust_begin_unwind" {
                facts.rust = true;
            }
        }
    }
    facts.fortify.sort();
    facts.fortify.dedup();
    facts
}

/// The C library as far as the headers and symbols tell it.
pub(super) enum LibcAnswer {
    Known(Option<Libc>),
    /// A static file without telling symbols: only its constant data can say
    /// (`markers::search`), or glibc's own sections (see `parse`).
    Search,
}

pub(super) fn detect_libc(
    interpreter: &Option<String>,
    needed: &[String],
    has_glibc_versions: bool,
    syms: &SymbolFacts,
    go: Option<&goinfo::GoInfo>,
    linkage: Linkage,
) -> LibcAnswer {
    use LibcAnswer::Known;
    let interp = interpreter.as_deref().unwrap_or("");
    if interp.contains("ld-musl") || needed.iter().any(|n| n.starts_with("libc.musl")) {
        return Known(Some(Libc::Musl));
    }
    // glibc's loader is ld-linux*.so on most architectures, ld64.so.N on ppc64/s390x.
    if interp.contains("ld-linux")
        || interp.contains("/ld64.so")
        || interp.contains("/ld.so")
        || needed.iter().any(|n| n == "libc.so.6")
        || has_glibc_versions
    {
        return Known(Some(Libc::Glibc));
    }
    if linkage == Linkage::Dynamic {
        return Known(None);
    }
    if go.is_some() && go.and_then(|g| g.setting("CGO_ENABLED")) != Some("1") {
        return Known(Some(Libc::None));
    }
    if syms.musl {
        return Known(Some(Libc::Musl));
    }
    if syms.glibc {
        return Known(Some(Libc::Glibc));
    }
    LibcAnswer::Search
}
