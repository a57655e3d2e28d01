//! Go build information: the `.go.buildinfo` blob the Go linker embeds in every binary
//! since Go 1.13 (the format `go version -m` and `debug/buildinfo` read). It holds the Go
//! version, the main module, every dependency with its checksum, and the build settings
//! (`CGO_ENABLED`, `GOARCH`, `GOARM`, `-trimpath`, `vcs.revision`, ...).

use std::collections::BTreeMap;

use object::Endianness;
use object::read::elf::FileHeader;
use serde::Serialize;

use super::mapped::Image;

const MAGIC: &[u8] = b"\xff Go buildinf:";
/// Header size; the inline strings (Go 1.18+) start right after it.
const HEADER: usize = 32;
/// How far into the first writable segment to look when there is no section table
/// (the same bound `debug/buildinfo` uses is 64 KiB; be a little more generous).
const SEARCH_LIMIT: u64 = 1 << 20;
/// The pointer-based format (Go < 1.18) points at strings elsewhere; cap what we follow.
const MAX_STRING: u64 = 16 << 20;

/// One Go module (`mod` or `dep` line of the build info).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoModule {
    pub path: String,
    pub version: String,
    /// `h1:` checksum from go.sum.
    pub sum: Option<String>,
    /// A `replace` directive's target.
    pub replace: Option<Box<GoModule>>,
}

/// What a Go binary says about how it was built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoInfo {
    /// `go1.27.3`.
    pub version: String,
    /// The main package's import path.
    pub path: Option<String>,
    /// The main module (`(devel)` version when built from a checkout without a tag).
    pub main: Option<GoModule>,
    pub deps: Vec<GoModule>,
    /// `build` lines: `CGO_ENABLED`, `GOARCH`, `GOARM`, `-trimpath`, `-buildmode`,
    /// `vcs.revision`, ...
    pub settings: BTreeMap<String, String>,
}

impl GoInfo {
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str)
    }

    /// `v7` for `GOARM=7` (also `7,softfloat`), for GOARCH=arm builds.
    pub fn arm_variant(&self) -> Option<String> {
        if self.setting("GOARCH") != Some("arm") {
            return None;
        }
        let goarm = self.setting("GOARM")?;
        let digits: String = goarm.chars().take_while(char::is_ascii_digit).collect();
        (!digits.is_empty()).then(|| format!("v{digits}"))
    }
}

/// Parse the contents of `.go.buildinfo`.
pub fn parse<H: FileHeader<Endian = Endianness>>(
    blob: &[u8],
    img: &Image<'_, H>,
) -> Option<GoInfo> {
    if !blob.starts_with(MAGIC) || blob.len() < HEADER {
        return None;
    }
    let ptr_size = usize::from(blob[14]);
    let flags = blob[15];
    let (version, modinfo) = if flags & 2 != 0 {
        // Go 1.18+: two varint-length-prefixed strings inline after the header.
        let mut pos = HEADER;
        let version = varint_string(blob, &mut pos)?;
        let modinfo = varint_string(blob, &mut pos).unwrap_or(&[]);
        (version, modinfo)
    } else {
        // Older: two pointers to Go string headers {data, len}, in the binary's byte order.
        if ptr_size != 4 && ptr_size != 8 {
            return None;
        }
        let big = flags & 1 != 0;
        let v = read_ptr(blob, 16, ptr_size, big)?;
        let m = read_ptr(blob, 16 + ptr_size, ptr_size, big)?;
        (
            go_string(img, v, ptr_size, big)?,
            go_string(img, m, ptr_size, big).unwrap_or(&[]),
        )
    };
    if version.is_empty() {
        return None;
    }
    let mut info = GoInfo {
        version: String::from_utf8_lossy(version).into_owned(),
        path: None,
        main: None,
        deps: Vec::new(),
        settings: BTreeMap::new(),
    };
    parse_modinfo(strip_sentinels(modinfo), &mut info);
    Some(info)
}

/// Without a section table, look for the magic at 16-byte alignment at the start of the
/// first writable PT_LOAD, as `debug/buildinfo` does.
pub fn search_segments<H: FileHeader<Endian = Endianness>>(img: &Image<'_, H>) -> Option<GoInfo> {
    use object::elf;
    use object::read::elf::ProgramHeader;
    let ph = img.phdrs.iter().find(|ph| {
        ph.p_type(img.endian) == elf::PT_LOAD && ph.p_flags(img.endian).0 & elf::PF_W.0 != 0
    })?;
    let seg = img.at_vaddr(ph.p_vaddr(img.endian).into(), SEARCH_LIMIT)?;
    let mut pos = 0;
    while pos + HEADER <= seg.len() {
        let found = memchr::memmem::find(&seg[pos..], MAGIC)?;
        let at = pos + found;
        if at % 16 == 0 {
            return parse(&seg[at..], img);
        }
        pos = at + 1;
    }
    None
}

fn read_ptr(b: &[u8], off: usize, size: usize, big: bool) -> Option<u64> {
    let bytes = b.get(off..off.checked_add(size)?)?;
    let mut v = 0u64;
    for i in 0..size {
        let byte = if big { bytes[i] } else { bytes[size - 1 - i] };
        v = (v << 8) | u64::from(byte);
    }
    Some(v)
}

fn go_string<'a, H: FileHeader<Endian = Endianness>>(
    img: &Image<'a, H>,
    addr: u64,
    ptr_size: usize,
    big: bool,
) -> Option<&'a [u8]> {
    let hdr = img.at_vaddr(addr, 2 * ptr_size as u64)?;
    let data = read_ptr(hdr, 0, ptr_size, big)?;
    let len = read_ptr(hdr, ptr_size, ptr_size, big)?;
    if len > MAX_STRING {
        return None;
    }
    let s = img.at_vaddr(data, len)?;
    (s.len() as u64 == len).then_some(s)
}

fn varint_string<'a>(b: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let mut len = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        len |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            let start = *pos;
            let end = start.checked_add(usize::try_from(len).ok()?)?;
            let s = b.get(start..end)?;
            *pos = end;
            return Some(s);
        }
    }
    None
}

/// modinfo is wrapped in two 16-byte sentinels so the linker can find it.
fn strip_sentinels(m: &[u8]) -> &[u8] {
    if m.len() >= 33 && m[m.len() - 17] == b'\n' {
        &m[16..m.len() - 16]
    } else {
        m
    }
}

fn parse_modinfo(m: &[u8], info: &mut GoInfo) {
    let text = String::from_utf8_lossy(m);
    for line in text.lines() {
        let mut f = line.split('\t');
        let (Some(kind), rest) = (f.next(), f.collect::<Vec<_>>()) else {
            continue;
        };
        let module = |r: &[&str]| -> Option<GoModule> {
            Some(GoModule {
                path: r.first()?.to_string(),
                version: r.get(1).map(|s| s.to_string()).unwrap_or_default(),
                sum: r.get(2).filter(|s| !s.is_empty()).map(|s| s.to_string()),
                replace: None,
            })
        };
        match kind {
            "path" => info.path = rest.first().map(|s| s.to_string()),
            "mod" => info.main = module(&rest),
            "dep" => info.deps.extend(module(&rest)),
            "=>" => {
                let target = if info.deps.is_empty() {
                    info.main.as_mut()
                } else {
                    info.deps.last_mut()
                };
                if let (Some(t), Some(r)) = (target, module(&rest)) {
                    t.replace = Some(Box::new(r));
                }
            }
            "build" => {
                // `build\tKEY=VALUE`; a quoted key or value is Go-quoted (rare: -ldflags).
                if let Some((k, v)) = rest.join("\t").split_once('=') {
                    info.settings.insert(k.to_string(), v.to_string());
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_lines_become_modules_and_settings() {
        let mut info = GoInfo {
            version: "go1.27.3".into(),
            path: None,
            main: None,
            deps: vec![],
            settings: BTreeMap::new(),
        };
        let m = "path\texample.com/hello\n\
                 mod\texample.com/hello\t(devel)\t\n\
                 dep\tgolang.org/x/sys\tv0.1.0\th1:abc=\n\
                 =>\t../sys\t(devel)\t\n\
                 build\t-trimpath=true\n\
                 build\tCGO_ENABLED=0\n\
                 build\tGOARCH=arm\n\
                 build\tGOARM=7,softfloat\n\
                 build\t-ldflags=\"-s -w\"\n";
        parse_modinfo(m.as_bytes(), &mut info);
        assert_eq!(info.path.as_deref(), Some("example.com/hello"));
        assert_eq!(info.main.as_ref().unwrap().version, "(devel)");
        assert_eq!(info.deps.len(), 1);
        assert_eq!(info.deps[0].sum.as_deref(), Some("h1:abc="));
        assert_eq!(info.deps[0].replace.as_ref().unwrap().path, "../sys");
        assert_eq!(info.setting("CGO_ENABLED"), Some("0"));
        assert_eq!(info.setting("-trimpath"), Some("true"));
        assert_eq!(info.setting("-ldflags"), Some("\"-s -w\""));
        assert_eq!(info.arm_variant().as_deref(), Some("v7"));
    }

    /// Go before 1.18 stored two pointers to string headers instead of inline strings.
    #[test]
    fn pointer_format_before_go_1_18() {
        use object::U32;
        use object::U64;
        use object::elf::ProgramHeader64;
        const BASE: u64 = 0x1000;
        let e = Endianness::Little;
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&[8, 0]); // pointer size 8, little-endian pointer format
        data.resize(HEADER, 0);
        let (version, modinfo) = (
            b"go1.16.15".as_slice(),
            b"path\texample.com/old\n".as_slice(),
        );
        // Two string headers {data, len} at offsets 32 and 48, strings after them.
        let v_at = 64u64;
        let m_at = v_at + version.len() as u64;
        for (at, len) in [(v_at, version.len()), (m_at, modinfo.len())] {
            data.extend_from_slice(&(BASE + at).to_le_bytes());
            data.extend_from_slice(&(len as u64).to_le_bytes());
        }
        data.extend_from_slice(version);
        data.extend_from_slice(modinfo);
        data[16..24].copy_from_slice(&(BASE + 32).to_le_bytes());
        data[24..32].copy_from_slice(&(BASE + 48).to_le_bytes());
        let len = data.len() as u64;
        let phdr = ProgramHeader64 {
            p_type: U32::new(e, object::elf::PT_LOAD),
            p_flags: U32::new(e, object::elf::ProgramFlags(6)),
            p_offset: U64::new(e, 0),
            p_vaddr: U64::new(e, BASE),
            p_paddr: U64::new(e, BASE),
            p_filesz: U64::new(e, len),
            p_memsz: U64::new(e, len),
            p_align: U64::new(e, 8),
        };
        let phdrs = [phdr];
        let img = Image::<object::elf::FileHeader64<Endianness>> {
            data: &data,
            endian: e,
            phdrs: &phdrs,
        };
        let info = parse(&data, &img).expect("pointer-format build info parses");
        assert_eq!(info.version, "go1.16.15");
        assert_eq!(info.path.as_deref(), Some("example.com/old"));
        // A pointer outside every segment is not followed.
        data[16..24].copy_from_slice(&0xdead_0000u64.to_le_bytes());
        let img = Image::<object::elf::FileHeader64<Endianness>> {
            data: &data,
            endian: e,
            phdrs: &phdrs,
        };
        assert_eq!(parse(&data, &img), None);
    }

    #[test]
    fn varints_past_the_end_are_rejected() {
        let mut pos = 0;
        assert_eq!(varint_string(&[5, b'a'], &mut pos), None);
        let mut pos = 0;
        assert_eq!(varint_string(&[0xff; 12], &mut pos), None);
        let mut pos = 0;
        assert_eq!(varint_string(&[2, b'h', b'i'], &mut pos), Some(&b"hi"[..]));
    }

    #[test]
    fn sentinels_are_stripped_only_when_present() {
        let inner = b"path\tx\n";
        let mut wrapped = vec![0xAA; 16];
        wrapped.extend_from_slice(inner);
        wrapped.extend_from_slice(&[0xBB; 16]);
        // len >= 33 and a newline 17 from the end.
        wrapped.resize(wrapped.len().max(33), 0);
        assert_eq!(strip_sentinels(&wrapped), inner);
        assert_eq!(strip_sentinels(b"short"), b"short");
    }
}
