//! OCI helpers: static hello binaries (committed, or built with zig), images of them, and
//! checks on layouts, indexes and layer tars.

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::oci::{ImageSpec, LayerEntry, PlatformImage};

use super::{capture, fixture, run_ok};

/// The `os/architecture` of every manifest in an image index (as skopeo --raw prints it),
/// after checking that it is an OCI index.
pub fn index_platforms(raw: &[u8]) -> Vec<String> {
    let index: serde_json::Value = serde_json::from_slice(raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect()
}

/// A static hello built with zig for `zig_triple` (cached under the cargo target dir).
pub fn static_hello(zig_triple: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oci-hello");
    std::fs::create_dir_all(&dir).unwrap();
    // The source's hash names the cached binary, so editing hello.c rebuilds it.
    let src_path = fixture("oci").join("hello.c");
    let src = std::fs::read(&src_path).unwrap();
    let tag = &kiln::digest::sha256_digest(&src)[7..19];
    let out = dir.join(format!("hello-{zig_triple}-{tag}"));
    if !out.exists() {
        let tmp = dir.join(format!("hello-{zig_triple}.tmp{}", std::process::id()));
        run_ok(
            Command::new("python3")
                .args([
                    "-m", "ziglang", "cc", "-target", zig_triple, "-static", "-Os", "-s", "-o",
                ])
                .arg(&tmp)
                .arg(&src_path),
        );
        std::fs::rename(&tmp, &out).unwrap();
    }
    out
}

/// The committed static hello for `arch` (`amd64` or `arm64`).
pub fn fixture_hello(arch: &str) -> PathBuf {
    fixture("oci").join(format!("hello-{arch}"))
}

/// (path, mode, uid, gid, type, content or link target) of every entry of a layer tar.
pub fn tar_entries(tar: &[u8]) -> Vec<(String, u32, u64, u64, char, Vec<u8>)> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            if let Some(l) = e.link_name_bytes() {
                data = l.to_vec();
            }
            (
                path,
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.entry_type().as_byte() as char,
                data,
            )
        })
        .collect()
}

/// An image with `bin` as /usr/local/bin/hello, run as nonroot.
pub fn hello_image(platform: &str, bin: &Path) -> PlatformImage {
    PlatformImage {
        platform: platform.parse().unwrap(),
        entries: vec![LayerEntry::file("/usr/local/bin/hello", bin, 0o755)],
        layers: Vec::new(),
        spec: ImageSpec {
            user: "65532:65532".into(),
            entrypoint: vec!["/usr/local/bin/hello".into()],
            ..Default::default()
        },
    }
}

/// Static hellos for amd64 and arm64, and an image of each.
pub fn hello_images() -> (PathBuf, PathBuf, Vec<PlatformImage>) {
    let amd = static_hello("x86_64-linux-musl");
    let arm = static_hello("aarch64-linux-musl");
    let images = vec![
        hello_image("linux/amd64", &amd),
        hello_image("linux/arm64", &arm),
    ];
    (amd, arm, images)
}

/// Every blob in a layout hashes to its name; every descriptor in index.json points at one.
pub fn check_layout(dir: &Path) {
    use sha2::{Digest, Sha256};
    for e in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        assert!(!name.starts_with('.'), "temporary file left: {name}");
        let got = hex::encode(Sha256::digest(std::fs::read(e.path()).unwrap()));
        assert_eq!(got, name, "blob content does not match its name");
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    for m in index["manifests"].as_array().unwrap() {
        let d = m["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        let len = std::fs::metadata(dir.join("blobs/sha256").join(d))
            .unwrap()
            .len();
        assert_eq!(len, m["size"].as_u64().unwrap());
    }
}

/// `docker pull REFERENCE` (from a test registry), then `docker run --rm REFERENCE`; the
/// image is removed again. Panics with Docker's output when either fails; returns what the
/// container printed.
pub fn docker_pull_and_run(reference: &str) -> String {
    run_ok(Command::new("docker").args(["pull", reference]));
    let ran = capture(Command::new("docker").args(["run", "--rm", reference]));
    docker_rmi(reference);
    assert!(ran.status.success(), "docker run {reference} failed");
    String::from_utf8_lossy(&ran.stdout).into_owned()
}

/// `docker run --rm REFERENCE ARGS…` to success; what it printed.
pub fn docker_run(reference: &str, args: &[&str]) -> String {
    let out = run_ok(
        Command::new("docker")
            .args(["run", "--rm"])
            .arg(reference)
            .args(args),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Remove an image from Docker, whether or not it is there.
pub fn docker_rmi(reference: &str) {
    let _ = Command::new("docker")
        .args(["rmi", "-f", reference])
        .output();
}

/// `docker load` an archive; returns the loaded reference.
pub fn docker_load(archive: &Path) -> String {
    let out = run_ok(Command::new("docker").arg("load").arg("-i").arg(archive));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("Loaded image: "))
        .unwrap_or_else(|| panic!("docker load said: {text}"))
        .trim()
        .to_string()
}
