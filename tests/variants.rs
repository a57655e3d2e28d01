//! `[variant.NAME]` tables (tests/fixtures/go-variants: production and staging set the Go
//! tag `prod`, dev does not): `--variant all` writes one tag per variant, the variant's
//! values reach the binary (its smoke line) and the image config, variants with the same
//! compiler inputs build once, and `--print-config` says where each value came from.

use std::process::Output;

use crate::support::{self, copy_dir, json_lines, stderr, stdout};

#[test]
fn variant_all_one_tag_each_values_in_binary_and_config_shared_builds() {
    if !support::have_go() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("variants");
    copy_dir(&support::fixture("go-variants"), &project);
    let (wrapper, log) = support::logging_go(tmp.path());
    let kiln = |args: &[&str]| -> Output {
        support::kiln()
            .arg("build")
            .arg(&project)
            .args(["--platform", "linux/amd64", "--out-dir"])
            .arg(tmp.path().join("dist"))
            .args(["--target-dir"])
            .arg(tmp.path().join("target"))
            .env("KILN_GO", &wrapper)
            .args(args)
            .output()
            .unwrap()
    };
    let layout = tmp.path().join("oci");
    let out = kiln(&[
        "--variant",
        "all",
        "--smoke",
        "--message-format",
        "json",
        "-o",
        &format!("oci:{}:1.0", layout.display()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut smoke: Vec<String> = json_lines(&out)
        .iter()
        .filter(|m| m["reason"] == "artifact")
        .map(|m| {
            let path = m["path"].as_str().unwrap();
            let variant = path.split('/').rev().nth(2).unwrap();
            format!("{variant}: {}", m["smoke"].as_str().unwrap())
        })
        .collect();
    smoke.sort();
    assert_eq!(
        smoke,
        [
            "dev: edition=development GOARCH=amd64",
            "production: edition=production GOARCH=amd64",
            "staging: edition=production GOARCH=amd64",
        ]
    );
    let builds = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| *l == "build")
        .count();
    assert_eq!(builds, 2, "staging reuses production's build");

    for (variant, env, tier) in [
        ("production", "production", Some("prod")),
        ("staging", "staging", None),
        ("dev", "development", None),
    ] {
        let img =
            kiln::oci::read_image(&format!("oci:{}:1.0-{variant}", layout.display())).unwrap();
        let cfg = img.platforms[0].config.config().as_ref().unwrap();
        let envs = cfg.env().as_ref().unwrap();
        assert!(envs.contains(&format!("APP_ENV={env}")), "{envs:?}");
        let labels = cfg.labels().as_ref().unwrap();
        assert_eq!(labels.get("team").map(String::as_str), Some("kiln"));
        assert_eq!(labels.get("tier").map(String::as_str), tier);
    }

    let out = kiln(&["--print-config", "--variant", "production"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "go.tags            \"prod\"  (variant production)",
        "image.env.APP_ENV  \"production\"  (variant production)",
        "image.labels.team  \"kiln\"  (file)",
        "platforms          \"linux/amd64\"  (command line)",
        "image.base         \"scratch\"  (default)",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }

    let out = kiln(&["--variant", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "no [variant.nope] in kiln.toml (variants: dev, production, staging, or all)"
        ),
        "{}",
        stderr(&out)
    );
}
