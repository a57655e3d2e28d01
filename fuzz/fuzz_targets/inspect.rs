//! Fuzz target: any bytes through the ELF inspector. It must never panic, never hang and
//! never allocate without bound (libFuzzer's -rss_limit_mb and -malloc_limit_mb catch the
//! last). The report is also printed to a sink, so the printers see fuzzed reports too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = kiln::elf::inspect_bytes(data) {
        let problems = kiln::inspect::verify(&report, &kiln::inspect::Policy::default());
        let _ = kiln::inspect::explain("fuzz", &problems);
        let _ = kiln::inspect::printer::write_details(&mut std::io::sink(), "fuzz", &report);
    }
});
