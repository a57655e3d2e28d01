//! Fuzz target: any bytes as an image archive (`oci-archive:` and `docker-archive:`) through
//! kiln's readers — the tar store, index walk, layer decoders and the layer-tree the
//! inspector builds — with the gate's checks on every ELF file found. It must never panic,
//! hang or allocate without bound (libFuzzer's -rss_limit_mb and -malloc_limit_mb catch the
//! last); an error is a fine answer. Seeds are archives kiln wrote (`cargo xtask fuzz`
//! makes them).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // One file per fuzzing process, rewritten per input: the readers take a path.
    thread_local! {
        static FILE: std::path::PathBuf = std::env::temp_dir()
            .join(format!("kiln-fuzz-image-{}.tar", std::process::id()));
    }
    FILE.with(|path| {
        if std::fs::write(path, data).is_err() {
            return;
        }
        let policy = kiln::inspect::Policy::default();
        for transport in ["oci-archive", "docker-archive"] {
            let reference = format!("{transport}:{}", path.display());
            if let Ok(found) = kiln::inspect::image::inspect_image(&reference, &policy) {
                let _ = kiln::inspect::printer::write_json(
                    &mut std::io::sink(),
                    &found,
                    &kiln::inspect::printer::PolicyOut::new(kiln::inspect::Require::Static, None),
                );
            }
        }
    });
});
