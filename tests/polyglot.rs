//! Polyglot builds (`[[component]]` in a root kiln.toml) with the real example,
//! examples/polyglot: a static-site step, a Go server, a Rust worker and a C helper built for
//! linux/amd64 and linux/arm64 into one image per platform, one layer per component; the Go
//! server serving the site's files in Docker on both platforms; a change to the C helper
//! changing only its layer; the configuration mistakes refused (exit 2) before anything
//! builds.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};

use crate::support::{
    self, arm64_binfmt_ready, copy_dir, docker_load, docker_ready, free_port, json_lines, run_ok,
    stderr,
};

fn kiln_build(project: &Path, out_dir: &Path, extra: &[&str]) -> Output {
    support::kiln()
        .arg("build")
        .arg(project)
        .args(["--platform", "linux/amd64,linux/arm64", "--out-dir"])
        .arg(out_dir)
        .args(extra)
        .output()
        .unwrap()
}

/// The layers (diff_ids) of each platform's image, amd64 first.
fn layers(reference: &str) -> Vec<Vec<String>> {
    let img = kiln::oci::read_image(reference).unwrap();
    let mut out: Vec<(String, Vec<String>)> = img
        .platforms
        .iter()
        .map(|p| {
            (
                p.platform.to_string(),
                p.layers.iter().map(|l| l.diff_id.clone()).collect(),
            )
        })
        .collect();
    out.sort();
    assert_eq!(
        out.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"]
    );
    out.into_iter().map(|(_, l)| l).collect()
}

fn smoke_lines(out: &Output) -> Vec<String> {
    let mut lines: Vec<String> = json_lines(out)
        .iter()
        .filter(|m| m["reason"] == "artifact")
        .map(|m| {
            format!(
                "{} {}",
                m["platform"].as_str().unwrap(),
                m["smoke"].as_str().unwrap()
            )
        })
        .collect();
    lines.sort();
    lines
}

/// `GET path` from a server on 127.0.0.1:port, retried while it starts.
fn http_get(port: u16, path: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).unwrap();
            return body;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "nothing listened on 127.0.0.1:{port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Load `archive` into Docker and check the server, worker and helper in it.
fn check_in_docker(archive: &Path, arch: &str, uname_arch: &str, checksum_line: &str) {
    let reference = docker_load(archive);
    let port = free_port();
    let name = format!("kiln-test-polyglot-{arch}-{}", std::process::id());
    // Host networking on a loopback port: no bridge or port proxy needed.
    run_ok(
        Command::new("docker")
            .args(["run", "-d", "--rm", "--network", "host", "--name", &name])
            .arg(&reference)
            .args(["-root", "/srv/www", "-addr", &format!("127.0.0.1:{port}")]),
    );
    let page = http_get(port, "/about.html");
    let css = http_get(port, "/assets/site.css");
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    assert!(
        page.contains("Built by kiln's web component, served by the Go server."),
        "{page}"
    );
    assert!(css.contains("font-family"), "{css}");
    let tool = |bin: &str| {
        let out = run_ok(
            Command::new("docker")
                .args(["run", "--rm", "--entrypoint", bin])
                .arg(&reference)
                .arg("--check"),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        tool("/usr/local/bin/worker"),
        format!("worker ok arch={uname_arch}")
    );
    assert_eq!(tool("/usr/local/bin/checksum"), checksum_line);
    let _ = Command::new("docker")
        .args(["rmi", "-f", &reference])
        .output();
}

/// The release files of a polyglot build are those of a single project: per platform an
/// SBOM listing every component's packages, provenance and an archive of every binary; one
/// SHA256SUMS over them that `sha256sum -c` accepts; each announced as a JSON message.
fn check_release_files(dist: &Path, out: &Output) {
    let announced: Vec<String> = json_lines(out)
        .iter()
        .filter(|m| m["reason"] == "output")
        .map(|m| {
            Path::new(m["path"].as_str().unwrap())
                .strip_prefix(dist)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    for (platform, dir) in [
        ("linux/amd64", "linux-amd64"),
        ("linux/arm64", "linux-arm64"),
    ] {
        for f in [
            format!("polyglot-{dir}.spdx.json"),
            format!("polyglot-{dir}.intoto.json"),
            format!("polyglot-{dir}.tar.gz"),
        ] {
            assert!(announced.contains(&f), "{f} not in {announced:?}");
        }
        let spdx: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dist.join(format!("polyglot-{dir}.spdx.json"))).unwrap(),
        )
        .unwrap();
        let purls: Vec<&str> = spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["externalRefs"].as_array().into_iter().flatten())
            .filter_map(|r| r["referenceLocator"].as_str())
            .collect();
        // The Rust worker's crate, the Go server's module and Go's stdlib, the musl zig
        // linked into the worker and the C helper.
        for want in [
            "pkg:cargo/worker@0.1.0",
            "pkg:golang/example.com/server",
            "pkg:golang/stdlib@",
            "pkg:generic/musl@1.",
        ] {
            assert!(
                purls.iter().any(|p| p.starts_with(want)),
                "{platform}: no {want} in {purls:?}"
            );
        }
        let names: Vec<&str> = spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for bin in ["server", "worker", "checksum"] {
            assert!(names.contains(&bin), "{platform}: no {bin} in {names:?}");
        }
        let listing = run_ok(
            Command::new("tar")
                .arg("tzf")
                .arg(dist.join(format!("polyglot-{dir}.tar.gz"))),
        );
        let mut listed: Vec<String> = String::from_utf8_lossy(&listing.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            [
                format!("polyglot-{dir}/"),
                format!("polyglot-{dir}/checksum"),
                format!("polyglot-{dir}/server"),
                format!("polyglot-{dir}/worker"),
            ]
        );
    }
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    assert!(sums.contains("  polyglot-linux-arm64.tar.gz\n"), "{sums}");
    assert!(sums.contains("  linux-amd64/checksum\n"), "{sums}");
    run_ok(
        Command::new("sha256sum")
            .arg("-c")
            .arg("SHA256SUMS")
            .current_dir(dist),
    );
}

#[test]
fn polyglot_example_one_image_per_platform_one_layer_per_component() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("polyglot");
    copy_dir(&support::example("polyglot"), &project);
    let id = std::process::id();
    let oci1 = format!("oci:{}:v1", tmp.path().join("oci1").display());
    let amd64_tar = tmp.path().join("amd64.tar");
    let out = kiln_build(
        &project,
        &tmp.path().join("dist1"),
        &[
            "--smoke",
            "--message-format",
            "json",
            "-o",
            &oci1,
            "-o",
            &format!(
                "docker-archive:{}:kiln-test/polyglot:amd64-{id}",
                amd64_tar.display()
            ),
            "--docker-platform",
            "linux/amd64",
            "--archive",
            "tar.gz",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    check_release_files(&tmp.path().join("dist1"), &out);
    // The site's files are in the image, so in its SBOM: each a FILE package with the
    // sha256 of the file the step wrote; the document still passes the SPDX tools.
    let spdx_path = tmp.path().join("dist1/polyglot-linux-amd64.spdx.json");
    let spdx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&spdx_path).unwrap()).unwrap();
    let css = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "/srv/www/assets/site.css")
        .unwrap_or_else(|| panic!("the site's files are not in the SBOM: {spdx}"));
    assert_eq!(css["primaryPackagePurpose"], "FILE", "{css}");
    let written = std::fs::read(project.join("site/dist/assets/site.css")).unwrap();
    assert_eq!(
        css["checksums"][0],
        serde_json::json!({"algorithm": "SHA256", "checksumValue": kiln::digest::sha256_hex(&written)}),
        "{css}"
    );
    if crate::support::have_tool("pyspdxtools", "python3 -m pip install spdx-tools") {
        run_ok(Command::new("pyspdxtools").arg("-i").arg(&spdx_path));
    }
    assert_eq!(
        smoke_lines(&out),
        [
            "linux/amd64 checksum ok",
            "linux/amd64 server ok GOARCH=amd64",
            "linux/amd64 worker ok arch=x86_64",
            "linux/arm64 checksum ok",
            "linux/arm64 server ok GOARCH=arm64",
            "linux/arm64 worker ok arch=aarch64",
        ]
    );

    // One layer per component, in the order of kiln.toml: web (built once: the same layer
    // on both platforms), server, worker, checksum.
    let first = layers(&oci1);
    for l in &first {
        assert_eq!(l.len(), 4, "{first:?}");
    }
    assert_eq!(first[0][0], first[1][0], "the site is shared");
    for (a, b) in first[0][1..].iter().zip(&first[1][1..]) {
        assert_ne!(a, b, "binaries differ per platform");
    }
    let img = kiln::oci::read_image(&oci1).unwrap();
    let p = &img.platforms[0];
    let site = support::tar_entries(&p.layers[0].tar().unwrap());
    let paths: Vec<&str> = site.iter().map(|e| e.0.as_str()).collect();
    assert!(paths.contains(&"srv/www/about.html"), "{paths:?}");
    assert!(paths.contains(&"srv/www/assets/site.css"), "{paths:?}");
    let cfg = p.config.config().as_ref().unwrap();
    assert_eq!(
        cfg.entrypoint().as_deref().unwrap(),
        ["/usr/local/bin/server"]
    );
    let history: Vec<String> = p
        .config
        .history()
        .iter()
        .flatten()
        .filter_map(|h| h.created_by().clone())
        .collect();
    assert!(
        history[0].starts_with("kiln: web: add /srv/www/"),
        "{history:?}"
    );
    assert_eq!(history[3], "kiln: checksum: add /usr/local/bin/checksum");

    // Only the C helper changes: only its layer does.
    let source = project.join("checksum/checksum.c");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(
        &source,
        text.replace("checksum ok\\n", "checksum ok, changed\\n"),
    )
    .unwrap();
    let oci2 = format!("oci:{}:v2", tmp.path().join("oci2").display());
    let arm64_tar = tmp.path().join("arm64.tar");
    let out = kiln_build(
        &project,
        &tmp.path().join("dist2"),
        &[
            "-o",
            &oci2,
            "-o",
            &format!(
                "docker-archive:{}:kiln-test/polyglot:arm64-{id}",
                arm64_tar.display()
            ),
            "--docker-platform",
            "linux/arm64",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let second = layers(&oci2);
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a[..3], b[..3], "web, server and worker layers unchanged");
        assert_ne!(a[3], b[3], "the checksum layer changed");
    }

    if docker_ready() && arm64_binfmt_ready() {
        check_in_docker(&amd64_tar, "amd64", "x86_64", "checksum ok");
        check_in_docker(&arm64_tar, "arm64", "aarch64", "checksum ok, changed");
    }
}

/// A root kiln.toml whose components are `tables`, beside copies of the example's
/// projects; the `marker` component's command would leave `built` behind if it ran.
fn root_with(tmp: &Path, image: &str, tables: &str) -> std::path::PathBuf {
    let root = tmp.join("root");
    let _ = std::fs::remove_dir_all(&root);
    copy_dir(&support::example("polyglot"), &root);
    std::fs::write(
        root.join("kiln.toml"),
        format!(
            "{image}\n[[component]]\nname = \"marker\"\nbuild = \"touch built && mkdir -p m\"\n\
             output = \"m\"\ndst = \"/m\"\nplatform-independent = true\n\n{tables}"
        ),
    )
    .unwrap();
    root
}

#[test]
fn component_mistakes_exit_2_before_anything_builds_and_subsets_build_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[component]]\nname = \"a\"\nbuild = \"true\"\noutput = \"x\"\ndst = \"/x\"\n\
             platform-independent = true\nneeds = [\"b\"]\n\n[[component]]\nname = \"b\"\n\
             build = \"true\"\noutput = \"x\"\ndst = \"/y\"\nplatform-independent = true\n\
             needs = [\"a\"]\n",
            "the components' `needs` form a cycle: a -> b -> a",
        ),
        (
            "[[component]]\nname = \"site\"\nbuild = \"true\"\noutput = \"x\"\ndst = \"/m/x\"\n\
             platform-independent = true\n",
            "components `marker` and `site` both write /m/x",
        ),
        (
            "[[component]]\nname = \"web\"\nbuild = \"true\"\ndst = \"/srv\"\n\
             platform-independent = true\n",
            "component `web` has no `output`",
        ),
        (
            // The same C project twice: both write /usr/local/bin/checksum (found while
            // planning, still before any build).
            "[[component]]\npath = \"checksum\"\n\n[[component]]\nname = \"again\"\n\
             path = \"checksum\"\n",
            "components `checksum` and `again` both write /usr/local/bin/checksum",
        ),
    ];
    for (tables, want) in cases {
        let root = root_with(tmp.path(), "", tables);
        let out = kiln_build(&root, &tmp.path().join("dist"), &[]);
        assert_eq!(out.status.code(), Some(2), "{tables}\n{}", stderr(&out));
        assert!(stderr(&out).contains(want), "{}", stderr(&out));
        assert!(!root.join("built").exists(), "a command ran: {tables}");
    }

    // Several binaries and no entrypoint: asked for, before anything builds.
    let root = root_with(
        tmp.path(),
        "",
        "[[component]]\npath = \"checksum\"\n\n[[component]]\npath = \"server\"\n",
    );
    let oci = format!("oci:{}", tmp.path().join("oci").display());
    let out = kiln_build(&root, &tmp.path().join("dist"), &["-o", &oci]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the image holds 2 binaries (checksum, server)")
            && stderr(&out).contains("entrypoint = [\"/usr/local/bin/checksum\"]"),
        "{}",
        stderr(&out)
    );
    assert!(!root.join("built").exists());

    // `--component checksum`: that one alone, its only binary the entrypoint.
    let out = kiln_build(
        &root,
        &tmp.path().join("dist"),
        &["--component", "checksum", "-o", &oci],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!root.join("built").exists(), "marker was not asked for");
    for l in layers(&oci) {
        assert_eq!(l.len(), 1);
    }
    let out = kiln_build(&root, &tmp.path().join("dist"), &["--component", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("--component nope: no such component (components: marker, checksum, server)"),
        "{}",
        stderr(&out)
    );

    // A component's directory still builds on its own.
    let out = kiln_build(&root.join("checksum"), &tmp.path().join("dist-alone"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(tmp.path().join("dist-alone/linux-arm64/checksum").is_file());
}

/// `--debug-image` on the example (amd64: this machine's apt has busybox-static for it):
/// the production image is the same as without the flag, the twin adds one layer with
/// busybox, and in Docker its shell lists the binaries.
#[test]
fn debug_image_twin_has_busybox_and_leaves_the_production_image_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("polyglot");
    copy_dir(&support::example("polyglot"), &project);
    let build = |name: &str, extra: &[&str]| {
        let layout = format!("oci:{}:1.0", tmp.path().join(name).display());
        let out = support::kiln()
            .arg("build")
            .arg(&project)
            .args(["--platform", "linux/amd64", "--out-dir"])
            .arg(tmp.path().join("dist"))
            .args(["-o", &layout])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let image = kiln::oci::read_image(&layout).unwrap();
        (layout, image)
    };
    let (_, plain) = build("plain", &[]);
    let archive = tmp.path().join("app.tar");
    let reference = format!("kiln-test/polyglot:{}", std::process::id());
    let (layout, with_twin) = build(
        "twin",
        &[
            "--debug-image",
            "-o",
            &format!("docker-archive:{}:{reference}", archive.display()),
        ],
    );
    assert_eq!(plain.digest, with_twin.digest, "production image unchanged");
    let lock = std::fs::read_to_string(project.join("kiln-base.lock")).unwrap();
    assert!(
        lock.contains("name = \"busybox-static\"") && lock.contains("sha256 = "),
        "{lock}"
    );

    let twin = kiln::oci::read_image(&format!("{layout}-debug")).unwrap();
    let (prod, dbg) = (&with_twin.platforms[0], &twin.platforms[0]);
    assert_eq!(dbg.layers.len(), prod.layers.len() + 1);
    for (a, b) in prod.layers.iter().zip(&dbg.layers) {
        assert_eq!(a.diff_id, b.diff_id, "the same layers first");
    }
    let cfg = dbg.config.config().as_ref().unwrap();
    assert_eq!(cfg.entrypoint().as_deref().unwrap(), ["/busybox/sh"]);
    let busybox = support::tar_entries(&dbg.layers.last().unwrap().tar().unwrap());
    let paths: Vec<&str> = busybox.iter().map(|e| e.0.as_str()).collect();
    assert!(
        paths.contains(&"busybox/busybox") && paths.contains(&"busybox/ls"),
        "{paths:?}"
    );
    let twin_archive = tmp.path().join("app-debug.tar");
    assert!(twin_archive.is_file());

    if docker_ready() {
        let loaded = docker_load(&twin_archive);
        assert_eq!(loaded, format!("{reference}-debug"));
        let out = run_ok(Command::new("docker").args([
            "run",
            "--rm",
            &loaded,
            "-c",
            "ls /usr/local/bin",
        ]));
        let _ = Command::new("docker").args(["rmi", "-f", &loaded]).output();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "checksum\nserver\nworker\n"
        );
    }
}

/// A `build` component whose output leads outside the project (a symlink to /etc) is
/// refused (exit 2), the message naming the `[[component]]` table, not `[image] files`.
#[test]
fn a_component_output_outside_the_project_names_its_component() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(
        root.join("kiln.toml"),
        "[[component]]\nname = \"leak\"\nbuild = \"ln -sfn /etc out\"\noutput = \"out\"\n\
         dst = \"/srv/leak\"\nplatform-independent = true\n",
    )
    .unwrap();
    let out = kiln_build(&root, &tmp.path().join("dist"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("[[component]] `leak` output `out` -> `/srv/leak`: ")
            && err.contains("outside the project directory"),
        "{err}"
    );
    assert!(!err.contains("[image] files"), "{err}");
}

/// A component starts as soon as what it `needs` is built, not when every component of the
/// wave before it is: `after` (needs `fast`) ends while `slow` still runs. A component
/// whose need failed does not run, and the failure is reported once.
#[test]
fn a_component_waits_only_for_what_it_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let log = tmp.path().join("log");
    let table = |name: &str, build: &str, needs: &str| {
        format!(
            "[[component]]\nname = \"{name}\"\nbuild = \"{build} && echo {name} >> {log} && \
             mkdir -p out-{name}\"\noutput = \"out-{name}\"\ndst = \"/{name}\"\n\
             platform-independent = true\nneeds = [{needs}]\n\n",
            log = log.display()
        )
    };
    let toml = [
        table("slow", "sleep 3", ""),
        table("fast", "true", ""),
        table("after", "true", "\"fast\""),
    ]
    .concat();
    std::fs::write(root.join("kiln.toml"), toml).unwrap();
    let out = kiln_build(&root, &tmp.path().join("dist"), &["-j", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let order = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        order, "fast\nafter\nslow\n",
        "the order the commands ended in"
    );

    std::fs::remove_file(&log).unwrap();
    let toml = [
        table("broken", "echo no-such-thing >&2; exit 3", ""),
        table("after", "true", "\"broken\""),
        table("fast", "true", ""),
    ]
    .concat();
    std::fs::write(root.join("kiln.toml"), toml).unwrap();
    let out = kiln_build(&root, &tmp.path().join("dist"), &["-j", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        err.matches("build component broken failed").count(),
        1,
        "{err}"
    );
    assert!(err.contains("no-such-thing"), "{err}");
    let ran = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        ran, "fast\n",
        "only the component that needs nothing that failed ran"
    );
}
