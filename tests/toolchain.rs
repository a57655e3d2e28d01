//! `kiln toolchain install zig` really installs the ziglang wheel into kiln's cache, and
//! kiln then uses that zig.

use crate::support;

use support::*;

#[test]
fn install_zig_into_a_fresh_cache_and_use_it() {
    let cache = tempfile::tempdir().unwrap();
    let out = capture(
        kiln()
            .args(["toolchain", "install", "zig"])
            .env("KILN_CACHE_DIR", cache.path()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let zig = cache.path().join("zig/ziglang/zig");
    assert!(zig.is_file(), "{} missing", zig.display());
    let text = stdout(&out);
    assert!(
        text.starts_with("zig 0.") && text.contains(&zig.display().to_string()),
        "{text}"
    );

    // With no zig on PATH, kiln picks the cached one.
    if which::which("zig").is_err() {
        let which = capture(
            kiln()
                .args(["toolchain", "which", "zig"])
                .env("KILN_CACHE_DIR", cache.path()),
        );
        assert!(which.status.success());
        assert!(
            stdout(&which).contains("(kiln cache)"),
            "{}",
            stdout(&which)
        );
    }
}

#[test]
fn unknown_toolchain_is_a_usage_error() {
    let out = capture(kiln().args(["toolchain", "install", "fortran"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("possible values: zig, go"),
        "{}",
        stderr(&out)
    );
}
