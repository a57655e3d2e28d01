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

/// The options of the zstd golden digest: zstd, an epoch, a title and a version.
fn zstd_opts() -> BuildOptions {
    BuildOptions {
        source_date_epoch: Some(1700000000),
        compression: Compression::Zstd,
        metadata: Metadata {
            title: Some("hello".into()),
            version: Some("1.0.0".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn golden_index_digests() {
    let gzip = build_index(&images(), &BuildOptions::default()).unwrap();
    assert_eq!(gzip.digest, GOLDEN_GZIP);

    let opts = zstd_opts();
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

/// Layers kept between builds (`BuildOptions::reuse`, what `kiln build` uses) give the same
/// bytes as compressing: cold and warm, gzip and zstd, the golden digests.
#[test]
fn kept_layers_give_the_golden_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let store = kiln::oci::reuse::LayerStore::new(&tmp.path().join("layers"), "this kiln");
    let kept = |opts: BuildOptions| BuildOptions {
        reuse: Some(store.clone()),
        ..opts
    };
    let zstd = zstd_opts();
    for round in ["cold", "warm"] {
        let gzip = build_index(&images(), &kept(BuildOptions::default())).unwrap();
        assert_eq!(gzip.digest, GOLDEN_GZIP, "{round}");
        let z = build_index(&images(), &kept(zstd.clone())).unwrap();
        assert_eq!(z.digest, GOLDEN_ZSTD_EPOCH, "{round}");
    }
    // Two platforms, two compressions: four layers kept, and the warm round used them.
    let kept_files = std::fs::read_dir(tmp.path().join("layers"))
        .unwrap()
        .count();
    assert_eq!(kept_files, 4);
}

/// A kept layer is used only for the same tar compressed the same way by the same kiln:
/// a changed file, `SOURCE_DATE_EPOCH` or compressor gives what compressing gives.
#[test]
fn kept_layers_follow_their_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("hello");
    std::fs::copy(fixture_hello("amd64"), &bin).unwrap();
    let image = || vec![hello_image("linux/amd64", &bin)];
    let store = kiln::oci::reuse::LayerStore::new(&tmp.path().join("layers"), "this kiln");
    let with = |epoch: Option<u64>| BuildOptions {
        source_date_epoch: epoch,
        reuse: Some(store.clone()),
        ..Default::default()
    };
    let without = |epoch: Option<u64>| BuildOptions {
        source_date_epoch: epoch,
        ..Default::default()
    };
    let first = build_index(&image(), &with(None)).unwrap();
    assert_eq!(
        first.digest,
        build_index(&image(), &without(None)).unwrap().digest
    );

    // The kept blob is what a hit hands out: replaced by another valid gzip of the same
    // tar, the next build carries it (so the store is really read)...
    let layer = &first.images[0].layers[0];
    let entry = std::fs::read_dir(tmp.path().join("layers"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let tar = kiln::oci::layer::decompress(&first.blobs[&layer.digest], &layer.media_type).unwrap();
    let mut other = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut other, &tar).unwrap();
    let other = other.finish().unwrap();
    let other_digest = kiln::oci::layer::sha256_digest(&other);
    let mut record = format!("{other_digest}\n").into_bytes();
    record.extend_from_slice(&other);
    std::fs::write(&entry, &record).unwrap();
    let planted = build_index(&image(), &with(None)).unwrap();
    assert_eq!(planted.images[0].layers[0].digest, other_digest);
    assert_eq!(planted.images[0].layers[0].diff_id, layer.diff_id);
    // ...while a damaged one is not used.
    record.push(0);
    std::fs::write(&entry, &record).unwrap();
    assert_eq!(
        build_index(&image(), &with(None)).unwrap().digest,
        first.digest
    );

    // Another SOURCE_DATE_EPOCH: another tar, compressed again.
    let epoch = build_index(&image(), &with(Some(1700000000))).unwrap();
    assert_ne!(epoch.digest, first.digest);
    assert_eq!(
        epoch.digest,
        build_index(&image(), &without(Some(1700000000)))
            .unwrap()
            .digest
    );

    // One byte of the binary changed (same size): compressed again.
    let mut bytes = std::fs::read(&bin).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&bin, &bytes).unwrap();
    let changed = build_index(&image(), &with(None)).unwrap();
    assert_ne!(changed.digest, first.digest);
    assert_eq!(
        changed.digest,
        build_index(&image(), &without(None)).unwrap().digest
    );

    // Another compressor (kiln executable): its own blobs.
    let planted_again = {
        std::fs::write(&bin, std::fs::read(fixture_hello("amd64")).unwrap()).unwrap();
        std::fs::write(&entry, {
            let mut r = format!("{other_digest}\n").into_bytes();
            r.extend_from_slice(&other);
            r
        })
        .unwrap();
        build_index(&image(), &with(None)).unwrap()
    };
    assert_eq!(planted_again.images[0].layers[0].digest, other_digest);
    let other_kiln = BuildOptions {
        reuse: Some(kiln::oci::reuse::LayerStore::new(
            &tmp.path().join("layers"),
            "another kiln",
        )),
        ..Default::default()
    };
    assert_eq!(
        build_index(&image(), &other_kiln).unwrap().digest,
        first.digest
    );
}
