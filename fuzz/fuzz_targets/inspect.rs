//! Fuzz target: any bytes through the ELF inspector and its read planner. It must never
//! panic, never hang and never allocate without bound (libFuzzer's -rss_limit_mb and
//! -malloc_limit_mb catch the last). The report is also printed to a sink, so the printers
//! see fuzzed reports too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The read plan a large file gets from the same headers: never a panic, never a range
    // outside the input.
    let plan = kiln::elf::planned_ranges(data);
    assert!(plan.iter().all(|r| r.start < r.end && r.end <= data.len() as u64));
    if let Ok(report) = kiln::elf::inspect_bytes(data) {
        let problems = kiln::inspect::verify(&report, &kiln::inspect::Policy::default());
        let _ = kiln::inspect::explain("fuzz", &problems);
        let _ = kiln::inspect::printer::write_details(&mut std::io::sink(), "fuzz", &report);
    }
});
