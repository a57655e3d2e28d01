//! Golden digests: the committed static hellos packed for linux/amd64 and linux/arm64
//! always give these index digests. A change here changes every image kiln writes: do it
//! on purpose (new tar or gzip settings, a new config field) and say so in the CHANGELOG.

use crate::support;

use kiln::oci::{BuildOptions, Compression, Metadata, build_index};
use support::*;

const GOLDEN_GZIP: &str = "sha256:efc77dbc3a12dd2eae72392e6f40669377508531e73e7906a4834802f238e3a9";
const GOLDEN_ZSTD_EPOCH: &str =
    "sha256:fe58e0c59cf8286c8af3009ad979c5f6c30f8363bf5bd3096b67515a9b9261f0";

fn images() -> Vec<kiln::oci::PlatformImage> {
    vec![
        hello_image("linux/amd64", &fixture_hello("amd64")),
        hello_image("linux/arm64", &fixture_hello("arm64")),
    ]
}

#[test]
fn golden_index_digests() {
    let gzip = build_index(&images(), &BuildOptions::default()).unwrap();
    assert_eq!(gzip.digest, GOLDEN_GZIP);

    let opts = BuildOptions {
        source_date_epoch: Some(1700000000),
        compression: Compression::Zstd,
        metadata: Metadata {
            title: Some("hello".into()),
            version: Some("1.0.0".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let zstd = build_index(&images(), &opts).unwrap();
    assert_eq!(zstd.digest, GOLDEN_ZSTD_EPOCH);
}

#[test]
fn the_cli_gives_the_golden_digest_too() {
    let tmp = tempfile::tempdir().unwrap();
    let out = format!("oci:{}/img:golden", tmp.path().display());
    // The CLI names the binary after its file: copy the fixtures to `hello`.
    let mut args = vec!["image".to_string()];
    for arch in ["amd64", "arm64"] {
        let dir = tmp.path().join(arch);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(fixture_hello(arch), dir.join("hello")).unwrap();
        args.push("--binary".into());
        args.push(format!("linux/{arch}={}", dir.join("hello").display()));
    }
    // The library test passes no metadata; the CLI's default title is the binary's name.
    args.extend([
        "--title".into(),
        "".into(),
        "-o".into(),
        out.clone(),
        "-q".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, err) = kiln_run(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout.trim(), GOLDEN_GZIP);
    assert_eq!(
        kiln::oci::read_image(&out).unwrap().digest.as_deref(),
        Some(GOLDEN_GZIP)
    );
}
