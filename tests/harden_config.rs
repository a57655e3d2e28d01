//! Issue #9, "configuration and image settings": every bad setting is a usage error (exit 2)
//! before any build starts; `[image] files` cannot pull host files into an image without
//! `--allow-outside-project`; FIFOs and devices are refused rather than hanging; directories
//! are copied with their contents; SOURCE_DATE_EPOCH must fit an RFC 3339 date; the index
//! digest does not depend on the order of `--binary`. The projects are made in temp dirs and
//! contain only a kiln.toml (the checks run before kiln looks for sources).

use crate::support;

use std::path::Path;
use std::process::Command;

use support::{assert_unchanged, capture_text, elf_fixture, kiln_in, snapshot};

/// `kiln build` of a project holding only `kiln.toml` (`image` is its `[image]` table):
/// (exit code, stderr).
fn build_with(t: &Path, image: &str, extra: &[&str]) -> (i32, String) {
    let p = t.join("proj");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("kiln.toml"),
        format!("platforms = [\"linux/amd64\"]\noutput = [\"oci:out\"]\n[image]\n{image}\n"),
    )
    .unwrap();
    let (code, _, se) = capture_text(kiln_in(t).arg("build").arg(&p).args(extra));
    (code, se)
}

#[test]
fn bad_image_settings_are_usage_errors_before_any_build() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cases = [
        ("user = \"00\"", "leading zero"),
        ("user = \"65532:\"", "empty part"),
        ("user = \"a b\"", "letters, digits"),
        ("user = \"4294967296\"", "below 4294967295"),
        ("user = \"nonroot\"", "no /etc/passwd"),
        ("workdir = \"app\"", "not absolute"),
        ("stop-signal = \"SIGFOO\"", "not a signal"),
        ("stop-signal = \"99\"", "not a signal"),
        ("entrypoint = []", "empty list"),
        ("entrypoint = [\"\"]", "is empty"),
        ("ports = [\"0\"]", "1 to 65535"),
        ("ports = [\"70000/tcp\"]", "1 to 65535"),
        ("env = { \"\" = \"x\" }", "non-empty KEY"),
        ("env = { \"A=B\" = \"x\" }", "without `=`"),
        ("labels = { \"\" = \"x\" }", "empty key"),
        (
            "files = [{ src = \"kiln.toml\", dst = \"/etc/a\", mode = 644 }]",
            "write mode = 0o644",
        ),
        (
            "files = [{ src = \"kiln.toml\", dst = \"/etc/a\", mode = 0o17777 }]",
            "above 0o7777",
        ),
        (
            "files = [{ src = \"kiln.toml\", dst = \"etc/a\" }]",
            "absolute",
        ),
    ];
    for (setting, says) in cases {
        let before = snapshot(t);
        let (code, se) = build_with(t, setting, &[]);
        assert_eq!(code, 2, "{setting}: {se}");
        assert!(se.contains(says), "{setting} must say {says:?}: {se}");
        // Nothing built, nothing written.
        let after = snapshot(t);
        assert_unchanged(
            &before,
            &after,
            &[
                &t.join("home"),
                &t.join("tmp"),
                &t.join("cache"),
                &t.join("proj"),
            ],
        );
        assert!(!t.join("proj/dist").exists() && !t.join("dist").exists());
    }
}

/// A user name on an image base must be one the base defines: its /etc/passwd (and
/// /etc/group for `name:group`) is read through the layers, whiteouts applied.
#[test]
fn user_names_are_looked_up_in_the_base_image() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let bin = t.join("hello");
    std::fs::copy(elf_fixture("amd64-static"), &bin).unwrap();
    std::fs::write(
        t.join("passwd"),
        "root:x:0:0::/root:/sbin/nologin\napp:x:1000:1000::/:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(t.join("group"), "root:x:0:\napp:x:1000:\n").unwrap();
    let image = |out: &str, base: &str, user: &str, files: &[&str]| {
        let mut cmd = kiln_in(t);
        cmd.arg("image")
            .arg(format!("--binary=linux/amd64={}", bin.display()))
            .arg(format!("--output={out}"))
            .arg(format!("--base={base}"))
            .arg(format!("--user={user}"))
            .arg("-q");
        for f in files {
            cmd.arg(format!("--file={f}"));
        }
        capture_text(&mut cmd)
    };
    // Two bases: one with account files, one (plain scratch) without.
    let (code, _, se) = image(
        "oci:base:accounts",
        "scratch",
        "0:0",
        &["passwd:/etc/passwd", "group:/etc/group"],
    );
    assert_eq!(code, 0, "{se}");
    let (code, _, se) = image("oci:base:bare", "scratch", "65532", &[]);
    assert_eq!(code, 0, "{se}");

    for user in ["app", "app:app", "1000:app", "app:1000", "65532:65532"] {
        let (code, _, se) = image("oci:out:ok", "oci:base:accounts", user, &[]);
        assert_eq!(code, 0, "{user}: {se}");
    }
    let refused = [
        (
            "oci:base:accounts",
            "ghost",
            "has no user `ghost` in /etc/passwd",
        ),
        (
            "oci:base:accounts",
            "app:wheel",
            "has no group `wheel` in /etc/group",
        ),
        ("oci:base:bare", "app", "has no /etc/passwd"),
    ];
    for (base, user, says) in refused {
        let before = snapshot(t);
        let (code, _, se) = image("oci:out:refused", base, user, &[]);
        assert_eq!(code, 2, "{base} {user}: {se}");
        assert!(se.contains(says), "{base} {user} must say {says:?}: {se}");
        assert_unchanged(
            &before,
            &snapshot(t),
            &[&t.join("home"), &t.join("tmp"), &t.join("cache")],
        );
    }
    let index = std::fs::read_to_string(t.join("out/index.json")).unwrap();
    assert!(
        !index.contains("\"refused\""),
        "a refused image was tagged: {index}"
    );
    // kiln's own layer may bring the account files: then the base is not asked.
    let (code, _, se) = image(
        "oci:out:own",
        "oci:base:bare",
        "app",
        &["passwd:/etc/passwd"],
    );
    assert_eq!(code, 0, "{se}");
}

#[test]
fn source_date_epoch_must_fit_an_rfc3339_date() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let bin = t.join("hello");
    std::fs::copy(elf_fixture("amd64-static"), &bin).unwrap();
    for (value, code_wanted) in [
        ("99999999999999", 2),
        ("253402300800", 2),
        ("253402300799", 0),
    ] {
        let (code, _, se) = capture_text(
            kiln_in(t)
                .env("SOURCE_DATE_EPOCH", value)
                .arg("image")
                .arg(format!("--binary=linux/amd64={}", bin.display()))
                .arg("--output=oci:out")
                .arg("-q"),
        );
        assert_eq!(code, code_wanted, "{value}: {se}");
        if code == 2 {
            assert!(se.contains("9999-12-31"), "{se}");
        }
    }
}

#[test]
fn image_files_stay_inside_the_project_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("secret"), "host secret").unwrap();
    std::fs::create_dir_all(t.join("proj")).unwrap();
    std::os::unix::fs::symlink(t.join("secret"), t.join("proj/innocent")).unwrap();
    for src in [
        t.join("secret").display().to_string(),
        "../secret".into(),
        "innocent".into(),
    ] {
        let setting = format!("files = [{{ src = \"{src}\", dst = \"/etc/x\" }}]");
        let (code, se) = build_with(t, &setting, &[]);
        assert_eq!(code, 2, "{src}: {se}");
        assert!(se.contains("outside the project"), "{se}");
        assert!(se.contains("--allow-outside-project"), "{se}");
        // With the opt-in the check passes (the build then stops later, at planning: this
        // project has no sources).
        let (code, se) = build_with(t, &setting, &["--allow-outside-project"]);
        assert!(!se.contains("outside the project"), "{se}");
        assert_ne!(code, 0);
    }
}

#[test]
fn fifos_and_devices_are_refused_not_waited_on() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let p = t.join("proj");
    std::fs::create_dir_all(&p).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(p.join("fifo"))
            .status()
            .unwrap()
            .success()
    );
    let started = std::time::Instant::now();
    let (code, se) = build_with(t, "files = [{ src = \"fifo\", dst = \"/etc/x\" }]", &[]);
    assert_eq!(code, 2, "{se}");
    assert!(se.contains("FIFO"), "{se}");
    // `kiln image` with a FIFO as binary or file.
    let bin = t.join("hello");
    std::fs::copy(elf_fixture("amd64-static"), &bin).unwrap();
    let (code, _, se) = capture_text(
        kiln_in(t)
            .arg("image")
            .arg(format!("--binary=linux/amd64={}", p.join("fifo").display()))
            .arg("--output=oci:out"),
    );
    assert_eq!(code, 2, "{se}");
    let (code, _, se) = capture_text(
        kiln_in(t)
            .arg("image")
            .arg(format!("--binary=linux/amd64={}", bin.display()))
            .arg(format!("--file={}:/etc/x", p.join("fifo").display()))
            .arg("--output=oci:out"),
    );
    assert_eq!(code, 2, "{se}");
    assert!(se.contains("not a regular file"), "{se}");
    assert!(
        started.elapsed().as_secs() < 60,
        "nothing waited on the FIFO"
    );
}

#[test]
fn index_digest_does_not_depend_on_binary_order() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for a in ["amd64", "arm64", "s390x"] {
        std::fs::create_dir_all(t.join(a)).unwrap();
        std::fs::copy(elf_fixture(&format!("{a}-static")), t.join(a).join("hello")).unwrap();
    }
    let digest = |order: &[&str], out: &str| {
        let mut c = kiln_in(t);
        c.args(["--message-format", "json", "image"]);
        for a in order {
            c.arg(format!(
                "--binary=linux/{a}={}",
                t.join(a).join("hello").display()
            ));
        }
        c.arg(format!("--output=oci:{out}"));
        let (code, so, se) = capture_text(&mut c);
        assert_eq!(code, 0, "{se}");
        let v: serde_json::Value = serde_json::from_str(so.lines().last().unwrap()).unwrap();
        v["digest"].as_str().unwrap().to_string()
    };
    let one = digest(&["amd64", "arm64", "s390x"], "a");
    let two = digest(&["s390x", "amd64", "arm64"], "b");
    let three = digest(&["arm64", "s390x", "amd64"], "c");
    assert_eq!(one, two);
    assert_eq!(one, three);
}
