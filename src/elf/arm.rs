//! 32-bit ARM build attributes (`.ARM.attributes`, "Build Attributes for the Arm
//! Architecture", aaelf32 / addenda32). Tag_CPU_arch tells linux/arm/v6 from linux/arm/v7:
//! both have the same e_machine and e_flags, and only these attributes (written by the
//! compiler, merged by the linker to the highest of all inputs) say which CPU the code needs.

use serde::Serialize;

/// What the `aeabi` file-scope attributes say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ArmAttributes {
    /// Tag_CPU_arch as readelf names it: `v6`, `v6KZ`, `v7`, `v8`...
    pub cpu_arch: Option<String>,
    /// Tag_CPU_name: `ARM1176JZF-S`, `cortex-a7`, ...
    pub cpu_name: Option<String>,
    /// Tag_CPU_arch_profile: `A`, `R`, `M`, `S`.
    pub profile: Option<String>,
    /// Tag_ABI_VFP_args: `hard` (armhf) or `soft` (base AAPCS).
    pub float_abi: Option<&'static str>,
    /// The OCI variant the architecture maps to: `v5`, `v6`, `v7` or `v8`.
    pub variant: Option<String>,
}

const TAG_FILE: u64 = 1;
const TAG_CPU_RAW_NAME: u64 = 4;
const TAG_CPU_NAME: u64 = 5;
const TAG_CPU_ARCH: u64 = 6;
const TAG_CPU_ARCH_PROFILE: u64 = 7;
const TAG_ABI_VFP_ARGS: u64 = 28;
const TAG_COMPATIBILITY: u64 = 32;
const TAG_ALSO_COMPATIBLE_WITH: u64 = 65;
const TAG_CONFORMANCE: u64 = 67;

/// Tag_CPU_arch values, named as binutils' readelf names them.
const CPU_ARCH_NAMES: [&str; 23] = [
    "Pre-v4",
    "v4",
    "v4T",
    "v5T",
    "v5TE",
    "v5TEJ",
    "v6",
    "v6KZ",
    "v6T2",
    "v6K",
    "v7",
    "v6-M",
    "v6S-M",
    "v7E-M",
    "v8",
    "v8-R",
    "v8-M.baseline",
    "v8-M.mainline",
    "v8.1-A",
    "v8.2-A",
    "v8.3-A",
    "v8.1-M.mainline",
    "v9",
];

/// Tag_CPU_arch → OCI variant. Pre-v5 has no OCI variant (Go's lowest GOARM is 5).
pub fn variant_for_cpu_arch(arch: u64) -> Option<&'static str> {
    Some(match arch {
        3..=5 => "v5",
        6..=9 | 11 | 12 => "v6",
        10 | 13 => "v7",
        14..=22 => "v8",
        _ => return None,
    })
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn uleb(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.data.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    fn ntbs(&mut self) -> Option<&'a [u8]> {
        let rest = self.data.get(self.pos..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        self.pos += len + 1;
        Some(&rest[..len])
    }
    fn u32le(&mut self) -> Option<u32> {
        let b = self.data.get(self.pos..self.pos.checked_add(4)?)?;
        self.pos += 4;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }
}

/// Parse a `.ARM.attributes` section (little-endian, as every Linux ARM target is).
/// `None` when it is not a version-`A` attributes section or has no `aeabi` subsection.
pub fn parse(data: &[u8]) -> Option<ArmAttributes> {
    if data.first() != Some(&b'A') {
        return None;
    }
    let mut out = ArmAttributes::default();
    let mut found = false;
    let mut pos = 1usize;
    while pos < data.len() {
        let mut c = Cursor { data, pos };
        let len = c.u32le()? as usize;
        // A subsection is at least its length and a one-byte vendor name: anything shorter
        // would loop forever.
        if len < 5 {
            return found.then_some(out);
        }
        let end = pos.checked_add(len)?.min(data.len());
        let vendor = c.ntbs()?;
        if vendor == b"aeabi" {
            found = true;
            parse_subsection(
                &mut Cursor {
                    data: data.get(..end)?,
                    pos: c.pos,
                },
                &mut out,
            );
        }
        pos = end;
    }
    found.then_some(out)
}

fn parse_subsection(c: &mut Cursor<'_>, out: &mut ArmAttributes) {
    while c.pos < c.data.len() {
        let start = c.pos;
        let (Some(tag), Some(size)) = (c.uleb(), c.u32le()) else {
            return;
        };
        let Some(end) = start.checked_add(size as usize) else {
            return;
        };
        if size < 5 || end > c.data.len() {
            return;
        }
        if tag == TAG_FILE {
            let mut inner = Cursor {
                data: &c.data[..end],
                pos: c.pos,
            };
            parse_attributes(&mut inner, out);
        }
        c.pos = end;
    }
}

fn parse_attributes(c: &mut Cursor<'_>, out: &mut ArmAttributes) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    while c.pos < c.data.len() {
        let Some(tag) = c.uleb() else { return };
        // The value's type follows from the tag: the ABI fixes a few, and for the rest odd
        // tags from 32 on take strings, everything else ULEB128 integers.
        match tag {
            TAG_CPU_RAW_NAME | TAG_CONFORMANCE | TAG_ALSO_COMPATIBLE_WITH => {
                if c.ntbs().is_none() {
                    return;
                }
            }
            TAG_CPU_NAME => match c.ntbs() {
                Some(s) => out.cpu_name = Some(text(s)),
                None => return,
            },
            TAG_COMPATIBILITY => {
                if c.uleb().is_none() || c.ntbs().is_none() {
                    return;
                }
            }
            t if t >= 32 && t % 2 == 1 => {
                if c.ntbs().is_none() {
                    return;
                }
            }
            _ => {
                let Some(v) = c.uleb() else { return };
                match tag {
                    TAG_CPU_ARCH => {
                        out.cpu_arch = Some(
                            CPU_ARCH_NAMES
                                .get(v as usize)
                                .map(|s| s.to_string())
                                .unwrap_or_else(|| format!("unknown ({v})")),
                        );
                        out.variant = variant_for_cpu_arch(v).map(str::to_owned);
                    }
                    TAG_CPU_ARCH_PROFILE => {
                        out.profile = match v {
                            0 => None,
                            0x41 | 0x52 | 0x4d | 0x53 => Some(char::from(v as u8).to_string()),
                            _ => Some(format!("unknown ({v})")),
                        }
                    }
                    TAG_ABI_VFP_ARGS => {
                        out.float_abi = match v {
                            0 => Some("soft"),
                            1 => Some("hard"),
                            _ => Some("other"),
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build an attributes section the way gas/lld lay it out.
    fn section(attrs: &[u8]) -> Vec<u8> {
        let mut sub = Vec::new();
        sub.push(TAG_FILE as u8);
        sub.extend_from_slice(&((attrs.len() + 5) as u32).to_le_bytes());
        sub.extend_from_slice(attrs);
        let mut out = vec![b'A'];
        out.extend_from_slice(&((4 + 6 + sub.len()) as u32).to_le_bytes());
        out.extend_from_slice(b"aeabi\0");
        out.extend_from_slice(&sub);
        out
    }

    #[test]
    fn v6_and_v7_are_told_apart() {
        // Tag_CPU_name "ARM1176JZF-S", Tag_CPU_arch v6KZ (7), profile A, VFP args hard.
        let mut attrs = vec![5];
        attrs.extend_from_slice(b"ARM1176JZF-S\0");
        attrs.extend_from_slice(&[6, 7, 7, b'A', 28, 1]);
        let a = parse(&section(&attrs)).unwrap();
        assert_eq!(a.cpu_arch.as_deref(), Some("v6KZ"));
        assert_eq!(a.variant.as_deref(), Some("v6"));
        assert_eq!(a.cpu_name.as_deref(), Some("ARM1176JZF-S"));
        assert_eq!(a.profile.as_deref(), Some("A"));
        assert_eq!(a.float_abi, Some("hard"));

        let a = parse(&section(&[6, 10, 7, b'A'])).unwrap();
        assert_eq!(
            (a.cpu_arch.as_deref(), a.variant.as_deref()),
            (Some("v7"), Some("v7"))
        );
    }

    #[test]
    fn string_tags_are_skipped_by_their_type() {
        // Tag 67 (conformance) is a string; tag 66 (an unknown even tag) an integer; the
        // CPU arch after them must still be found.
        let attrs = [67, b'2', b'.', b'0', 0, 0x42, 0x01, 6, 14];
        let a = parse(&section(&attrs)).unwrap();
        assert_eq!(a.variant.as_deref(), Some("v8"));
    }

    #[test]
    fn garbage_does_not_loop_or_panic() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"B"), None);
        assert_eq!(parse(b"A\0\0\0\0"), None);
        assert_eq!(
            parse(b"A\xff\xff\xff\xffaeabi\0"),
            Some(ArmAttributes::default())
        );
        let full = section(&[6, 10]);
        for cut in 0..full.len() {
            let _ = parse(&full[..cut]);
        }
        // A uleb that never ends.
        let _ = parse(&section(&[6, 0x80, 0x80, 0x80]));
    }
}
