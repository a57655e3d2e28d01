//! The distroless-like base from real Debian packages: `kiln base lock` pins them (apt-get
//! download with this machine's apt sources), `--base distroless` assembles the same layer
//! every time, with the files a static program expects, in under 2 MiB.

use crate::support;

use std::path::Path;

use support::*;

fn kiln_with_cache(cache: &Path, args: &[&str]) -> (i32, String, String) {
    kiln_run_env(args, &[("XDG_CACHE_HOME", cache)])
}

#[test]
fn distroless_from_pinned_debian_packages() {
    if !have_tool("apt-get", "run on Debian or Ubuntu") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let lock = tmp.path().join("kiln-base.lock");
    let lock_s = lock.to_str().unwrap();
    let (code, _, err) = kiln_with_cache(&cache, &["base", "lock", "-o", lock_s]);
    if code != 0 {
        unavailable(&format!(
            "apt-get download failed (run `apt-get update`): {err}"
        ));
        return;
    }
    let lock_text = std::fs::read_to_string(&lock).unwrap();
    for p in [
        "base-files",
        "ca-certificates",
        "media-types",
        "netbase",
        "tzdata",
    ] {
        assert!(
            lock_text.contains(&format!("name = \"{p}\"")),
            "{lock_text}"
        );
    }

    // The same packages from a directory pin the same hashes.
    let debs = cache.join("kiln/debs");
    let lock2 = tmp.path().join("again.lock");
    let (code, _, err) = kiln_with_cache(
        &cache,
        &[
            "base",
            "lock",
            "--debs",
            debs.to_str().unwrap(),
            "-o",
            lock2.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&lock2).unwrap(), lock_text);

    let amd = format!("linux/amd64={}", fixture_hello("amd64").display());
    let arm = format!("linux/arm64={}", fixture_hello("arm64").display());
    let build_in = |cache: &Path, out: &str| {
        kiln_with_cache(
            cache,
            &[
                "image",
                "--binary",
                &amd,
                "--binary",
                &arm,
                "--base",
                "distroless",
                "--base-lock",
                lock_s,
                "-o",
                out,
                "-q",
            ],
        )
    };
    let build = |out: &str| build_in(&cache, out);
    let out1 = format!("oci:{}/one", tmp.path().display());
    let out2 = format!("oci:{}/two", tmp.path().display());
    let (code, d1, err) = build(&out1);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    let (_, d2, _) = build(&out2);
    assert_eq!(d1, d2, "two builds from the lock differ");
    // From an empty cache the pinned versions are downloaded again: the same image.
    let fresh = tmp.path().join("fresh-cache");
    let (code, d3, err) = build_in(&fresh, &format!("oci:{}/three", tmp.path().display()));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        d3, d1,
        "a fresh download of the pinned packages gives another image"
    );

    let img = kiln::oci::read_image(&out1).unwrap();
    let amd_img = &img.platforms[0];
    let arm_img = &img.platforms[1];
    assert_eq!(amd_img.layers.len(), 2);
    assert_eq!(
        amd_img.layers[0].digest, arm_img.layers[0].digest,
        "one base layer for all platforms"
    );
    let base = &amd_img.layers[0];
    let tar_len = base.tar().unwrap().len();
    eprintln!(
        "distroless base layer: {} bytes compressed, {tar_len} bytes of tar ({})",
        base.size, base.digest
    );
    assert!(
        base.size <= 2 * 1024 * 1024,
        "base layer is {} bytes",
        base.size
    );

    let files = tar_entries(&base.tar().unwrap());
    let get = |p: &str| {
        files
            .iter()
            .find(|f| f.0 == p)
            .unwrap_or_else(|| panic!("{p} missing from the base"))
    };
    let bundle = String::from_utf8_lossy(&get("etc/ssl/certs/ca-certificates.crt").5).into_owned();
    let certs = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(certs > 100, "{certs} certificates");
    assert!(
        get("usr/share/zoneinfo/Europe/Berlin")
            .5
            .starts_with(b"TZif")
    );
    assert!(
        get("usr/share/zoneinfo/UTC").5.starts_with(b"TZif")
            || get("usr/share/zoneinfo/UTC").4 == '2'
    );
    let passwd = String::from_utf8_lossy(&get("etc/passwd").5).into_owned();
    assert!(
        passwd.contains("root:x:0:0:")
            && passwd.contains("nobody:x:65534:")
            && passwd.contains("nonroot:x:65532:65532:nonroot:/home/nonroot:")
    );
    assert!(String::from_utf8_lossy(&get("etc/group").5).contains("nonroot:x:65532:"));
    assert!(String::from_utf8_lossy(&get("etc/nsswitch.conf").5).contains("hosts:"));
    let os_release = get("etc/os-release");
    assert_eq!(
        (os_release.4, os_release.5.as_slice()),
        ('2', &b"../usr/lib/os-release"[..])
    );
    assert!(String::from_utf8_lossy(&get("usr/lib/os-release").5).contains("ID=debian"));
    assert!(String::from_utf8_lossy(&get("etc/services").5).contains("https"));
    assert!(String::from_utf8_lossy(&get("etc/protocols").5).contains("tcp"));
    assert!(String::from_utf8_lossy(&get("etc/mime.types").5).contains("text/html"));
    get("usr/share/doc/ca-certificates/copyright");
    let tmp_dir = get("tmp/");
    assert_eq!((tmp_dir.1, tmp_dir.4), (0o1777, '5'));
    let home = get("home/nonroot/");
    assert_eq!((home.1, home.2, home.3), (0o700, 65532, 65532));
    // As in Google's distroless: one dpkg control paragraph per package in status.d, which
    // dpkg itself parses (as a status file, once each gets a Status line).
    let status_d: Vec<_> = files
        .iter()
        .filter(|f| f.0.starts_with("var/lib/dpkg/status.d/") && f.4 == '0')
        .collect();
    assert_eq!(
        status_d.len(),
        5,
        "{:?}",
        status_d.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    if have_tool("dpkg-query", "apt-get install dpkg") {
        let admin = tmp.path().join("dpkg-admin");
        std::fs::create_dir_all(admin.join("info")).unwrap();
        let mut status = String::new();
        for f in &status_d {
            let text = String::from_utf8(f.5.clone()).unwrap();
            status.push_str(&text.replacen('\n', "\nStatus: install ok installed\n", 1));
            status.push('\n');
        }
        std::fs::write(admin.join("status"), status).unwrap();
        let out = std::process::Command::new("dpkg-query")
            .arg(format!("--admindir={}", admin.display()))
            .args(["-W", "-f", "${Package} ${Version}\n"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for p in [
            "base-files",
            "ca-certificates",
            "media-types",
            "netbase",
            "tzdata",
        ] {
            assert!(lock_text.contains(&format!("name = \"{p}\"")));
            assert!(
                listed.lines().any(|l| l.starts_with(&format!("{p} "))),
                "{listed}"
            );
        }
    }
    let cfg: serde_json::Value = serde_json::from_slice(&amd_img.config_json).unwrap();
    assert!(
        cfg["config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt".into())
    );

    // A package that does not match the lock is refused.
    let ca = std::fs::read_dir(&debs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("netbase_")
        })
        .unwrap();
    let mut bytes = std::fs::read(&ca).unwrap();
    bytes.push(0);
    std::fs::write(&ca, bytes).unwrap();
    let (code, _, err) = build(&format!("oci:{}/four", tmp.path().display()));
    assert_eq!(code, 1);
    assert!(err.contains("the lock pins"), "{err}");

    // No lock: the error says how to make one.
    let (code, _, err) = kiln_with_cache(
        &cache,
        &[
            "image",
            "--binary",
            &amd,
            "--base",
            "distroless",
            "--base-lock",
            "/nonexistent/kiln-base.lock",
            "-o",
            &out1,
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("kiln base lock"), "{err}");
}
