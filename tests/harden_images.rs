//! Issue #9, "reading images and archives: bounded, streaming, and complete". Every image is
//! crafted inside the test's temp dir: members that claim terabytes, a gzip bomb (peak RSS
//! of `kiln inspect` measured with getrusage), indexes that fan out and nest, layer entries
//! a runtime sees differently from a naive reader (GNU sparse files, hard links through
//! symlinks, links before a whiteout, names that normalise to the root, PAX sparse files),
//! a base whose config diff_id lies, and an image with nothing runnable. Where umoci is
//! installed, `umoci unpack` of the same image is the reference for what a runtime sees.

use crate::support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{capture_text, elf_fixture, kiln_in};

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Put a blob into `layout`'s blobs/sha256; its digest.
fn blob(layout: &Path, bytes: &[u8]) -> String {
    let d = sha(bytes);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&d[7..]), bytes).unwrap();
    d
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// A tar entry header (GNU) for `path` of `kind` and `size`, with `link` for links.
fn header(path: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o755);
    h.set_size(size);
    // Raw bytes: the tar crate refuses to write names like `a/..`, which is the point here.
    let name = &mut h.as_old_mut().name;
    name.fill(0);
    name[..path.len()].copy_from_slice(path.as_bytes());
    if let Some(l) = link {
        h.set_link_name(l).unwrap();
    }
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// A layer tar from (path, kind, contents or link target).
fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, kind, data) in entries {
        if kind.is_symlink() || kind.is_hard_link() {
            out.extend(header(
                path,
                *kind,
                0,
                Some(std::str::from_utf8(data).unwrap()),
            ));
        } else {
            out.extend(header(path, *kind, data.len() as u64, None));
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
    }
    out.extend([0u8; 1024]);
    out
}

/// A manifest for `layers` (uncompressed tars, gzipped here; `diff_ids` override when
/// given); its descriptor.
fn manifest(layout: &Path, layers: &[Vec<u8>], diff_ids: Option<Vec<String>>) -> Value {
    let diff_ids = diff_ids.unwrap_or_else(|| layers.iter().map(|l| sha(l)).collect());
    let descs: Vec<Value> = layers
        .iter()
        .map(|l| {
            let gz = gzip(l);
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "digest": blob(layout, &gz), "size": gz.len()})
        })
        .collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": blob(layout, &config), "size": config.len()},
        "layers": descs
    }))
    .unwrap();
    json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": blob(layout, &m), "size": m.len(),
           "platform": {"os": "linux", "architecture": "amd64"}})
}

fn index_doc(children: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children
    }))
    .unwrap()
}

/// Write `oci-layout` and an `index.json` naming `top` as tag `t`.
fn finish(layout: &Path, top: Value) {
    let mut top = top;
    top["annotations"] = json!({"org.opencontainers.image.ref.name": "t"});
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(layout.join("index.json"), index_doc(&[top])).unwrap();
}

fn layout_with(t: &Path, name: &str, layers: &[Vec<u8>]) -> PathBuf {
    let l = t.join(name);
    let m = manifest(&l, layers, None);
    finish(&l, m);
    l
}

fn inspect(t: &Path, image: &str) -> (i32, String) {
    let (code, so, se) = capture_text(kiln_in(t).arg("inspect").arg(image));
    (code, format!("{so}{se}"))
}

/// `kiln image --base IMAGE` of the static fixture into oci:out.
fn with_base(t: &Path, base: &str) -> (i32, String) {
    let bin = t.join("hello");
    std::fs::copy(elf_fixture("amd64-static"), &bin).unwrap();
    let (code, so, se) = capture_text(kiln_in(t).args([
        "image".to_string(),
        format!("--binary=linux/amd64={}", bin.display()),
        format!("--base={base}"),
        "--output=oci:out".into(),
    ]));
    (code, format!("{so}{se}"))
}

#[test]
fn members_that_claim_terabytes_are_errors_not_aborts() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // An oci-archive whose index.json member claims 1 TiB and a blob member 2 TiB.
    for (name, size) in [("index.json", 1u64 << 40), ("blobs/sha256/00", 2u64 << 40)] {
        let mut a = Vec::new();
        a.extend(header("oci-layout", tar::EntryType::Regular, 30, None));
        a.extend(br#"{"imageLayoutVersion":"1.0.0"}"#);
        a.resize(1024, 0);
        a.extend(header(name, tar::EntryType::Regular, size, None));
        a.extend(vec![b'{'; 512]);
        a.extend([0u8; 1024]);
        let f = t.join(format!("claims-{size}.tar"));
        std::fs::write(&f, &a).unwrap();
        for transport in ["oci-archive", "docker-archive"] {
            let image = format!("{transport}:{}", f.display());
            let (code, out) = inspect(t, &image);
            assert_eq!(code, 1, "{out}");
            assert!(out.contains("claims") && out.contains("truncated"), "{out}");
            let (code, out) = with_base(t, &image);
            assert_eq!(code, 1, "{out}");
            assert!(out.contains("claims"), "{out}");
        }
    }
}

/// Peak RSS (KiB) and exit code of `kiln ARGS` run in `dir`, from getrusage of the child.
fn peak_rss(dir: &Path, args: &[&str]) -> (u64, i32) {
    let script = "import resource,subprocess,sys\n\
                  r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL)\n\
                  print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)";
    let out = Command::new("python3")
        .args(["-c", script, env!("CARGO_BIN_EXE_kiln")])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let rss = it.next().and_then(|v| v.parse().ok()).expect("rss");
    let code = it.next().and_then(|v| v.parse().ok()).expect("code");
    (rss, code)
}

#[test]
fn a_gzip_bomb_is_inspected_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // 768 MiB of zeros in one file, gzipped to under 1 MiB; next to a static ELF.
    const BIG: u64 = 768 << 20;
    let elf = std::fs::read(elf_fixture("amd64-static")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut h = Sha256::new();
    let mut put = |b: &[u8]| {
        enc.write_all(b).unwrap();
        h.update(b);
    };
    let small = tar_of(&[("usr/local/bin/app", tar::EntryType::Regular, &elf)]);
    put(&small[..small.len() - 1024]);
    put(&header("zeros", tar::EntryType::Regular, BIG, None));
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(BIG >> 20) {
        put(&zeros);
    }
    put(&[0u8; 1024]);
    let gz = enc.finish().unwrap();
    let diff_id = format!("sha256:{}", hex::encode(h.finalize()));
    assert!(gz.len() < 2 << 20, "bomb is {} bytes", gz.len());
    let l = t.join("bomb");
    let gz_digest = blob(&l, &gz);
    let config = serde_json::to_vec(&json!({"architecture":"amd64","os":"linux","config":{},
        "rootfs":{"type":"layers","diff_ids":[diff_id]}}))
    .unwrap();
    let m = serde_json::to_vec(&json!({"schemaVersion":2,
        "mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":blob(&l,&config),"size":config.len()},
        "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":gz_digest,"size":gz.len()}]}))
    .unwrap();
    finish(
        &l,
        json!({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":blob(&l,&m),"size":m.len()}),
    );
    let (rss_kib, code) = peak_rss(t, &["inspect", "oci:bomb:t"]);
    eprintln!(
        "peak RSS of kiln inspect on a {} KiB -> {} MiB gzip bomb: {} MiB",
        gz.len() >> 10,
        BIG >> 20,
        rss_kib >> 10
    );
    assert_eq!(code, 0);
    assert!(
        rss_kib < 96 * 1024,
        "peak RSS {} MiB grows with the layer",
        rss_kib >> 10
    );
}

#[test]
fn index_fan_out_is_deduplicated_and_capped() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let elf = std::fs::read(elf_fixture("amd64-static")).unwrap();
    let layer = tar_of(&[("app", tar::EntryType::Regular, &elf)]);

    // The same manifest 5000 times, in nested indexes three deep.
    let l = t.join("fan");
    let m = manifest(&l, std::slice::from_ref(&layer), None);
    let inner = index_doc(&vec![m.clone(); 5000]);
    let inner_d = json!({"mediaType":"application/vnd.oci.image.index.v1+json","digest":blob(&l,&inner),"size":inner.len()});
    let mid = index_doc(&vec![inner_d; 50]);
    finish(
        &l,
        json!({"mediaType":"application/vnd.oci.image.index.v1+json","digest":blob(&l,&mid),"size":mid.len()}),
    );
    let started = std::time::Instant::now();
    let (code, out) = inspect(t, "oci:fan:t");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 ELF file"), "one row, not thousands: {out}");
    assert!(started.elapsed().as_secs() < 30);

    // Nested deeper than the cap.
    let l = t.join("deep");
    let mut d = manifest(&l, std::slice::from_ref(&layer), None);
    for _ in 0..8 {
        let doc = index_doc(&[d]);
        d = json!({"mediaType":"application/vnd.oci.image.index.v1+json","digest":blob(&l,&doc),"size":doc.len()});
    }
    finish(&l, d);
    let (code, out) = inspect(t, "oci:deep:t");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("nested more than 4"), "{out}");

    // More distinct manifests than the cap.
    let l = t.join("wide");
    let many: Vec<Value> = (0..300)
        .map(|i| {
            let layer = tar_of(&[(&format!("f{i}") as &str, tar::EntryType::Regular, b"x")]);
            manifest(&l, &[layer], None)
        })
        .collect();
    let doc = index_doc(&many);
    finish(
        &l,
        json!({"mediaType":"application/vnd.oci.image.index.v1+json","digest":blob(&l,&doc),"size":doc.len()}),
    );
    let (code, out) = inspect(t, "oci:wide:t");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("more than 256"), "{out}");
}

/// A GNU sparse member: `data` at offset 0, then a hole up to `size`.
fn gnu_sparse(path: &str, data: &[u8], size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_mode(0o755);
    h.set_path(path).unwrap();
    let stored = data.len().div_ceil(512) * 512;
    h.set_size(stored as u64);
    {
        let g = h.as_gnu_mut().unwrap();
        g.sparse[0].offset = octal12(0);
        g.sparse[0].numbytes = octal12(stored as u64);
        // GNU tar ends the map with an empty chunk at the real size (the hole's end).
        g.sparse[1].offset = octal12(size);
        g.sparse[1].numbytes = octal12(0);
        g.realsize = octal12(size);
        g.isextended[0] = 0;
    }
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len() + (stored - data.len()), 0);
    out
}

fn octal12(v: u64) -> [u8; 12] {
    let s = format!("{v:011o}\0");
    s.as_bytes().try_into().unwrap()
}

fn with_end(mut b: Vec<u8>) -> Vec<u8> {
    b.extend([0u8; 1024]);
    b
}

/// `umoci unpack` of `layout:t` into `bundle`: the files a runtime would see, when umoci
/// is installed.
fn umoci_sees(t: &Path, layout: &Path, path: &str) -> Option<bool> {
    let ok = Command::new("umoci")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let msg = "umoci not installed (`apt-get install -y umoci`, or `cargo xtask setup`)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIP umoci comparison: {msg}");
        return None;
    }
    let bundle = t.join(format!(
        "bundle-{}",
        layout.file_name().unwrap().to_string_lossy()
    ));
    if bundle.exists() {
        let p = bundle.join("rootfs").join(path.trim_start_matches('/'));
        return Some(std::fs::symlink_metadata(p).is_ok());
    }
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:t", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "umoci unpack failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return Some(false);
    }
    let p = bundle.join("rootfs").join(path.trim_start_matches('/'));
    Some(std::fs::symlink_metadata(p).is_ok())
}

#[test]
fn layer_entries_are_seen_as_a_runtime_sees_them() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // A dynamic binary fails the static gate: if kiln did not see it, inspect would pass.
    let dynamic = std::fs::read(elf_fixture("amd64-musl-dynamic")).unwrap();

    // GNU sparse member (the binary, then a hole).
    let sparse = with_end(gnu_sparse("bin/sparse-app", &dynamic, 1 << 20));
    let l = layout_with(t, "sparse", &[sparse]);
    let (code, out) = inspect(t, "oci:sparse:t");
    assert_eq!(code, 3, "the sparse binary must be seen: {out}");
    assert!(out.contains("/bin/sparse-app"), "{out}");
    // umoci (0.4, like containerd) refuses GNU sparse members ("unknown typeflag 'S'"), so
    // such an image never runs there; kiln still reads the member, so nothing hides in it.
    assert_ne!(
        umoci_sees(t, &l, "/bin/sparse-app"),
        Some(true),
        "umoci changed: compare what it unpacks with kiln's view"
    );

    // A hard link whose target goes through a symlink (lib -> usr/lib).
    let layer = tar_of(&[
        ("usr/lib/", Directory, b""),
        ("usr/lib/app", Regular, &dynamic),
        ("lib", Symlink, b"usr/lib"),
        ("bin/", Directory, b""),
        ("bin/x", Link, b"lib/app"),
    ]);
    let l = layout_with(t, "hardlink", &[layer]);
    let (code, out) = inspect(t, "oci:hardlink:t");
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("/bin/x"),
        "the link is a file in the image: {out}"
    );
    assert!(
        umoci_sees(t, &l, "/bin/x").unwrap_or(true),
        "umoci unpack sees it too"
    );

    // A link made before its target is whited out keeps the file.
    let lower = tar_of(&[("opt/app", Regular, &dynamic)]);
    let upper = tar_of(&[
        ("bin/keep", Link, b"opt/app"),
        ("opt/.wh.app", Regular, b""),
    ]);
    let l = layout_with(t, "whiteout", &[lower, upper]);
    let (code, out) = inspect(t, "oci:whiteout:t");
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("/bin/keep") && !out.contains("/opt/app"),
        "{out}"
    );
    assert!(
        umoci_sees(t, &l, "/bin/keep").unwrap_or(true),
        "umoci unpack sees it too"
    );
    assert!(
        !umoci_sees(t, &l, "/opt/app").unwrap_or(false),
        "umoci: whited out"
    );

    // A file whose name normalises to the root is an error, not a wiped tree.
    for name in ["./", ".", "a/.."] {
        let layer = tar_of(&[("bin/app", Regular, &dynamic), (name, Regular, b"x")]);
        let dir = format!("root{}", name.len());
        layout_with(t, &dir, &[layer]);
        let (code, out) = inspect(t, &format!("oci:{dir}:t"));
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains("root directory"), "{out}");
    }

    // A PAX sparse file (GNU.sparse.* records) cannot be read by kiln yet: an error.
    let mut pax = Vec::new();
    let rec = "22 GNU.sparse.major=1\n22 GNU.sparse.minor=0\n";
    pax.extend(header(
        "PaxHeaders/app",
        tar::EntryType::XHeader,
        rec.len() as u64,
        None,
    ));
    pax.extend(rec.as_bytes());
    pax.resize(pax.len().div_ceil(512) * 512, 0);
    pax.extend(header("GNUSparseFile.0/app", Regular, 512, None));
    pax.extend([0u8; 512]);
    layout_with(t, "paxsparse", &[with_end(pax)]);
    let (code, out) = inspect(t, "oci:paxsparse:t");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("PAX-format sparse"), "{out}");
}

#[test]
fn a_base_whose_diff_id_lies_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let layer = tar_of(&[("etc/motd", tar::EntryType::Regular, b"hello")]);
    let l = t.join("liar");
    let m = manifest(&l, &[layer], Some(vec![sha(b"something else")]));
    finish(&l, m);
    let (code, out) = with_base(t, "oci:liar:t");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("corrupt") || out.contains("diff_id"), "{out}");
    assert!(!t.join("out").exists(), "nothing written");
    let (code, out) = inspect(t, "oci:liar:t");
    assert_eq!(code, 1, "{out}");
}

#[test]
fn an_image_with_nothing_runnable_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let l = t.join("empty");
    std::fs::create_dir_all(&l).unwrap();
    // Only an attestation manifest (as buildx writes them), or an empty index.
    let att = manifest(&l, &[tar_of(&[])], None);
    let mut att = att;
    att["platform"] = json!({"os": "unknown", "architecture": "unknown"});
    for (name, children) in [("att", vec![att]), ("none", vec![])] {
        let l = t.join(name);
        std::fs::create_dir_all(&l).unwrap();
        let doc = index_doc(&children);
        // Blobs of the attestation live in `empty`; copy them over.
        let _ = Command::new("cp")
            .arg("-r")
            .arg(t.join("empty/blobs"))
            .arg(&l)
            .status();
        finish(
            &l,
            json!({"mediaType":"application/vnd.oci.image.index.v1+json","digest":blob(&l,&doc),"size":doc.len()}),
        );
        let (code, out) = inspect(t, &format!("oci:{name}:t"));
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("no image manifest"), "{out}");
        let (code, out) = with_base(t, &format!("oci:{name}:t"));
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("no image manifest"), "{out}");
    }
}
