//! `[variant.NAME]` tables (tests/fixtures/go-variants: production and staging set the Go
//! tag `prod`, dev does not): `--variant all` writes one tag per variant, the variant's
//! values reach the binary (its smoke line) and the image config, variants with the same
//! compiler inputs build once, and `--print-config` says where each value came from.

use std::process::Output;

use std::path::Path;

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

/// `kiln build --print-config` rows as `key value (source)`, the value as printed.
fn print_config(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Vec<(String, String, String)> {
    let mut cmd = support::kiln();
    cmd.arg("build").arg(dir).arg("--print-config").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in ["KILN_PLATFORMS", "KILN_OUT_DIR"] {
        if !env.iter().any(|(e, _)| e == &k) {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| {
            let (key, rest) = l.split_once(' ').unwrap();
            let (value, source) = rest.trim().rsplit_once("  (").unwrap();
            (
                key.to_string(),
                value.to_string(),
                source.trim_end_matches(')').to_string(),
            )
        })
        .collect()
}

/// `--print-config` names every key (build, cargo, go, c, image, release, components,
/// variants) and where each value came from: command line, variant, environment, file,
/// default; with no toolchain run.
#[test]
fn print_config_names_every_key_and_its_source() {
    let rows = print_config(
        &support::fixture("go-variants"),
        &[
            "--variant",
            "production",
            "-o",
            "oci:out:1",
            "--features",
            "extra",
            "--archive",
            "zip",
        ],
        &[
            ("KILN_PLATFORMS", "linux/arm64"),
            ("KILN_OUT_DIR", "/tmp/kiln-out"),
        ],
    );
    let row = |k: &str, v: &str| {
        rows.iter()
            .find(|r| r.0 == k && r.1 == v)
            .map(|r| r.2.as_str())
            .unwrap_or_else(|| panic!("no {k} {v} in {rows:#?}"))
    };
    assert_eq!(row("output", "\"oci:out:1\""), "command line");
    assert_eq!(row("cargo.features", "\"extra\""), "command line");
    assert_eq!(row("release.archives", "\"zip\""), "command line");
    assert_eq!(row("variant", "\"production\""), "command line");
    assert_eq!(row("go.tags", "\"prod\""), "variant production");
    assert_eq!(
        row("image.env.APP_ENV", "\"production\""),
        "variant production"
    );
    assert_eq!(row("image.labels.tier", "\"prod\""), "variant production");
    assert_eq!(row("platforms", "\"linux/arm64\""), "environment");
    assert_eq!(row("out-dir", "\"/tmp/kiln-out\""), "environment");
    assert_eq!(row("image.labels.team", "\"kiln\""), "file");
    assert_eq!(row("variants", "\"dev,production,staging\""), "file");
    assert_eq!(row("image.base", "\"scratch\""), "default");
    assert_eq!(row("image.user", "\"65532:65532\""), "default");
    assert_eq!(row("jobs", "-"), "default");
    assert_eq!(row("release.sbom", "\"spdx\""), "command line");
    // Every section is there, set or not.
    for key in [
        "smoke",
        "smoke-args",
        "debug-image",
        "cargo.release",
        "go.ldflags",
        "c.defines",
        "c.opt",
        "image.entrypoint",
        "image.files",
        "image.compression",
        "release.provenance",
        "release.attestations",
        "release.split-debuginfo",
        "component",
    ] {
        assert!(rows.iter().any(|r| r.0 == key), "no {key} in {rows:#?}");
    }
    // The command line beats the environment.
    let rows = print_config(
        &support::fixture("go-variants"),
        &["--platform", "linux/amd64"],
        &[("KILN_PLATFORMS", "linux/arm64")],
    );
    assert!(
        rows.contains(&(
            "platforms".into(),
            "\"linux/amd64\"".into(),
            "command line".into()
        )),
        "{rows:#?}"
    );

    // A polyglot root: each component's settings, from the file.
    let rows = print_config(&support::example("polyglot"), &[], &[]);
    for (k, v) in [
        ("component.web.build", "\"sh build.sh\""),
        ("component.web.dst", "\"/srv/www\""),
        ("component.web.platform-independent", "\"true\""),
        ("component.server.needs", "\"web\""),
        ("component.worker.path", "\"worker\""),
        ("image.entrypoint", "\"/usr/local/bin/server\""),
        ("platforms", "\"linux/amd64,linux/arm64\""),
    ] {
        assert!(
            rows.contains(&(k.into(), v.into(), "file".into())),
            "no {k} {v} (file) in {rows:#?}"
        );
    }
}
