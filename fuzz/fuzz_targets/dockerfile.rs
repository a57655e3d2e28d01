//! Fuzz target: any text through the Dockerfile parser, the stage builder and every lint
//! rule, and every printer. None of them may panic or hang on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let df = kiln::dockerfile::parse(&text);
    let _ = df.stages();
    for strict in [false, true] {
        let opts = kiln::dockerfile::LintOptions {
            strict,
            dockerignore: Some(strict),
            ..Default::default()
        };
        let findings = kiln::dockerfile::lint(&df, &opts);
        let files = [kiln::dockerfile::FileFindings {
            path: "fuzz/Dockerfile".into(),
            findings,
        }];
        let _ = kiln::dockerfile::report::write_human(&mut std::io::sink(), &files);
        let _ = kiln::dockerfile::report::write_sarif(&mut std::io::sink(), &files);
    }
    let vars = df.global_args();
    let _ = kiln::dockerfile::parse::expand(&text, &vars, df.escape);
});
