//! Robustness without a fuzzer: every truncation and a deterministic set of mutations of
//! real binaries go through `inspect_bytes`, which must return (Ok or Err) without
//! panicking and without a report out of proportion to its input. Cheap enough for every
//! `cargo test`; `cargo xtask fuzz` explores further with libFuzzer (fuzz/).
//!
//! Inputs libFuzzer found crashing are kept in tests/fixtures/elf-fuzz-regressions/ and
//! replayed here, so a fixed crash stays fixed.

use std::path::{Path, PathBuf};

use kiln::elf::{self, ElfReport};

/// The real binaries mutated: the committed fixtures (eight targets, static, static-pie,
/// dynamic musl and glibc), the fuzz seeds, plus two small host programs.
fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for dir in ["tests/fixtures/elf", "fuzz/corpus/seed"] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            paths.push(e.path());
        }
    }
    paths.push("/usr/bin/true".into());
    paths.push("/usr/bin/env".into());
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let data = std::fs::read(&p).ok()?;
            elf::is_elf(&data).then(|| (p.display().to_string(), data))
        })
        .collect()
}

/// Inspect and check the output is bounded by the input (no runaway allocation through
/// counts or offsets taken from the file).
fn check(name: &str, data: &[u8]) -> Option<ElfReport> {
    // The read plan of a large file comes from the same headers: inside the file, sorted.
    let plan = elf::planned_ranges(data);
    assert!(
        plan.iter()
            .all(|r| r.start < r.end && r.end <= data.len() as u64)
            && plan.windows(2).all(|w| w[0].end < w[1].start),
        "{name}: read plan {plan:?} for {} bytes",
        data.len()
    );
    let report = elf::inspect_bytes(data).ok()?;
    let size = serde_json::to_string(&report).unwrap().len();
    assert!(
        size <= 64 * data.len() + 64 * 1024,
        "{name}: a {size}-byte report from {} bytes of input",
        data.len()
    );
    let problems = kiln::inspect::verify(&report, &kiln::inspect::Policy::default());
    let _ = kiln::inspect::explain(name, &problems);
    Some(report)
}

/// xorshift64*: deterministic, so a failure reproduces exactly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn every_truncation_of_real_binaries() {
    let inputs = inputs();
    assert!(inputs.len() >= 10, "fixtures missing: {}", inputs.len());
    for (name, data) in &inputs {
        // Every cut in the headers and tables at the start, then every 61st byte (a prime
        // stride, so cuts land at varied offsets within structures).
        let cuts = (0..data.len().min(4096)).chain((4096..data.len()).step_by(61));
        for cut in cuts {
            check(&format!("{name}[..{cut}]"), &data[..cut]);
        }
        assert!(check(name, data).is_some(), "{name} itself must parse");
    }
}

#[test]
fn mutated_real_binaries_never_panic() {
    const INTERESTING: [u64; 8] = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0xffff_ffff, u64::MAX];
    let mut rng = Rng(0x6b69_6c6e);
    for (name, data) in inputs() {
        for i in 0..1500 {
            let mut m = data.clone();
            // Half the mutations hit the first 4 KiB (headers, program headers, dynamic
            // section of small files), where a wrong number does the most damage.
            let span = if i % 2 == 0 {
                m.len().min(4096)
            } else {
                m.len()
            };
            for _ in 0..=rng.below(4) {
                let at = rng.below(span);
                match rng.below(3) {
                    0 => m[at] = rng.next() as u8,
                    1 => m[at] ^= 1 << rng.below(8),
                    _ => {
                        let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                        let width = [2, 4, 8][rng.below(3)];
                        let end = (at + width).min(m.len());
                        m[at..end].copy_from_slice(&v[..end - at]);
                    }
                }
            }
            check(&format!("{name} mutant {i}"), &m);
        }
    }
}

/// A large file is read through its read plan and a mapping, not as bytes in memory: it
/// must give exactly what its bytes give, whole, broken or cut short (the same report, or
/// the same clean error).
#[test]
fn large_files_from_disk_agree_with_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large");
    // Larger than this is planned and mapped; smaller is read whole.
    let large = kiln::fsutil::MMAP_THRESHOLD as usize + 4096;
    let same = |name: &str, data: &[u8]| {
        std::fs::write(&path, data).unwrap();
        assert_eq!(
            elf::inspect_path(&path),
            elf::inspect_bytes(data),
            "{name} ({} bytes)",
            data.len()
        );
    };
    let mut rng = Rng(0x706c_616e);
    for (name, data) in inputs() {
        let mut padded = data.clone();
        padded.resize(data.len().max(large), 0);
        same(&name, &padded);
        for i in 0..12 {
            let mut m = padded.clone();
            // Headers, program headers and (at the end of the real bytes) section headers.
            let (lo, hi) = if i % 2 == 0 {
                (0, 4096.min(data.len()))
            } else {
                (data.len().saturating_sub(4096), data.len())
            };
            for _ in 0..=rng.below(3) {
                let at = lo + rng.below(hi - lo);
                m[at] = rng.next() as u8;
            }
            same(&format!("{name} mutant {i}"), &m);
        }
    }
    // A real program cut short at the places the plan reads: inside the section-header
    // table, just before it, in the middle, one byte short.
    let exe = std::fs::read(env!("CARGO_BIN_EXE_kiln")).unwrap();
    assert!(exe.len() > 4 * large);
    let shoff = u64::from_le_bytes(exe[40..48].try_into().unwrap()) as usize;
    for cut in [
        exe.len() - 1,
        shoff + 100,
        shoff + 1,
        shoff - 1,
        exe.len() / 2,
        large,
    ] {
        same(&format!("kiln[..{cut}]"), &exe[..cut]);
    }
}

/// Every header field set to the values that break naive parsers.
#[test]
fn extreme_header_fields() {
    // (offset, width) of e_phoff, e_shoff, e_phentsize, e_phnum, e_shentsize, e_shnum,
    // e_shstrndx in a 64-bit header.
    const FIELDS64: [(usize, usize); 7] = [
        (32, 8),
        (40, 8),
        (54, 2),
        (56, 2),
        (58, 2),
        (60, 2),
        (62, 2),
    ];
    const FIELDS32: [(usize, usize); 7] = [
        (28, 4),
        (32, 4),
        (42, 2),
        (44, 2),
        (46, 2),
        (48, 2),
        (50, 2),
    ];
    for (name, data) in inputs() {
        let fields = if data[4] == 2 { FIELDS64 } else { FIELDS32 };
        let big = data[5] == 2;
        for (off, width) in fields {
            for v in [
                0u64,
                1,
                0x7fff,
                0xffff,
                0xffff_ffff,
                u64::MAX,
                data.len() as u64 - 1,
            ] {
                let mut m = data.clone();
                let bytes = if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                let src = if big {
                    &bytes[8 - width..]
                } else {
                    &bytes[..width]
                };
                m[off..off + width].copy_from_slice(src);
                check(&format!("{name} field@{off}={v:#x}"), &m);
            }
        }
    }
}

#[test]
fn fuzz_regressions_replay() {
    let dir = Path::new("tests/fixtures/elf-fuzz-regressions");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "md") {
            continue;
        }
        let data = std::fs::read(e.path()).unwrap();
        check(&e.path().display().to_string(), &data);
        n += 1;
    }
    assert!(n > 0, "{} holds the crash inputs to replay", dir.display());
}
