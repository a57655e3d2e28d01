//! `--message-format json`: `kiln build` and `kiln image` print the same schema (one object
//! per line, keyed by `reason`). Snapshots of both; values that depend on the toolchain or
//! the temporary directory are replaced by their kind, so the snapshots show the schema
//! and every deterministic value.

use crate::support;

use std::path::Path;

use serde_json::Value;

/// Replace machine-dependent values; keep every key.
fn redact(mut v: Value, tmp: &Path) -> Value {
    let tmp = tmp.display().to_string();
    if let Some(obj) = v.as_object_mut() {
        for (k, val) in obj.iter_mut() {
            match k.as_str() {
                "report" => *val = Value::String("[ElfReport]".into()),
                "sha256" | "size" | "digest" | "manifest" | "config" => {
                    *val = Value::String(format!("[{k}]"))
                }
                "layers" => *val = Value::String("[layer digests]".into()),
                "path" => {
                    *val = Value::String(val.as_str().unwrap_or_default().replace(&tmp, "TMP"))
                }
                "outputs" => {
                    for o in val.as_array_mut().into_iter().flatten() {
                        *o = Value::String(o.as_str().unwrap_or_default().replace(&tmp, "TMP"));
                    }
                }
                _ => {}
            }
        }
    }
    v
}

fn lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// `kiln image` of the two fixture binaries, as JSON lines.
fn image_messages(tmp: &Path) -> Vec<Value> {
    let mut args = vec!["image".to_string()];
    for arch in ["amd64", "arm64"] {
        args.push("--binary".into());
        args.push(format!(
            "linux/{arch}={}",
            support::fixture_hello(arch).display()
        ));
    }
    let out = format!("oci:{}/img:1", tmp.display());
    args.extend(["-o".into(), out, "--message-format".into(), "json".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, err) = support::kiln_run(&args);
    assert_eq!(code, 0, "{err}");
    lines(&stdout)
}

#[test]
fn kiln_image_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let mut msgs = image_messages(tmp.path());
    // The index digest is the golden one (tests/image_golden.rs) but for the title
    // annotation; it is deterministic, so it stays in the snapshot.
    for m in &mut msgs {
        if let Some(o) = m.get_mut("outputs").and_then(Value::as_array_mut) {
            for o in o {
                *o = Value::String(
                    o.as_str()
                        .unwrap()
                        .replace(&tmp.path().display().to_string(), "TMP"),
                );
            }
        }
    }
    insta::assert_json_snapshot!("kiln_image", msgs);
}

#[test]
fn kiln_build_messages_share_the_image_schema() {
    if !support::have_zig() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = support::build_into(
        &support::fixture("c-sources"),
        "linux/amd64,linux/arm64",
        &tmp.path().join("dist"),
        &[
            "--output",
            &format!("oci:{}/img:1", tmp.path().display()),
            "--message-format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let msgs = lines(&support::stdout(&out));
    // Binaries name their digest as release files do: `digest` is `sha256:` + `sha256`.
    for m in msgs.iter().filter(|m| m["reason"] == "artifact") {
        assert_eq!(
            m["digest"].as_str().unwrap(),
            format!("sha256:{}", m["sha256"].as_str().unwrap()),
            "{m}"
        );
    }
    let redacted: Vec<Value> = msgs.iter().map(|m| redact(m.clone(), tmp.path())).collect();
    insta::assert_json_snapshot!("kiln_build", redacted);

    // Image and index messages carry the same keys from both commands.
    let image = image_messages(tmp.path());
    for reason in ["image", "index"] {
        let from_build = msgs.iter().find(|m| m["reason"] == reason).unwrap();
        let from_image = image.iter().find(|m| m["reason"] == reason).unwrap();
        assert_eq!(keys(from_build), keys(from_image), "{reason}");
    }
}

/// `--variant all --debug-image`: each variant's artifact, image and index messages carry
/// its name, the debug twins' carry `debug: true` and name the `-debug` outputs; the same
/// schema.
#[test]
fn variant_and_debug_twin_index_messages() {
    if !support::have_zig() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("c-sources");
    support::copy_dir(&support::fixture("c-sources"), &project);
    let toml = std::fs::read_to_string(project.join("kiln.toml")).unwrap();
    std::fs::write(
        project.join("kiln.toml"),
        format!(
            "{toml}\n[variant.lean]\nc-defines = [\"LEAN\"]\n\n[variant.full]\nc-defines = \
             [\"FULL\"]\nlabels = {{ edition = \"full\" }}\n"
        ),
    )
    .unwrap();
    let out = support::build_into(
        &project,
        "linux/amd64",
        &tmp.path().join("dist"),
        &[
            "--variant",
            "all",
            "--debug-image",
            "--sbom",
            "none",
            "--output",
            &format!("oci:{}/img:1", tmp.path().display()),
            "--message-format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    // Each variant's artifacts come before its index and carry its name.
    let all = lines(&support::stdout(&out));
    let mut artifacts = Vec::new();
    let mut pending = Vec::new();
    for m in &all {
        if m["reason"] == "artifact" {
            pending.push(m["variant"].clone());
        } else if m["reason"] == "index" && m.get("debug").is_none() {
            for v in pending.drain(..) {
                assert_eq!(v, m["variant"], "an artifact message's variant");
                artifacts.push(v);
            }
        }
    }
    assert_eq!(
        artifacts,
        ["full", "lean"],
        "one artifact per variant, each named"
    );
    let msgs: Vec<Value> = all
        .into_iter()
        .filter(|m| m["reason"] == "image" || m["reason"] == "index")
        .map(|m| redact(m, tmp.path()))
        .collect();
    insta::assert_json_snapshot!("variant_and_debug_index", msgs);
}
