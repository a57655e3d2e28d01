//! Pushing to and pulling from a real registry (Debian's docker-registry, distribution 2.8,
//! on 127.0.0.1 with its own config and storage), read back with skopeo and Docker; and the
//! client's behaviour against a test server that misbehaves on purpose.

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::{capture, fixture_hello, free_port, have_tool, kiln, run_ok, stderr};

/// A registry on a random loopback port; it stops when this test process ends.
pub(crate) struct Registry {
    pub(crate) addr: String,
    dir: PathBuf,
    /// The shell command line that serves it (in the foreground).
    serve: String,
    _tmp: tempfile::TempDir,
}

#[derive(Default)]
struct RegistryConfig {
    tls: Option<(PathBuf, PathBuf)>,
    htpasswd: Option<PathBuf>,
    /// Token auth: the realm (token server URL) and the certificate whose key signs tokens.
    token: Option<(String, PathBuf)>,
}

impl Registry {
    fn start(cfg: RegistryConfig) -> Option<Registry> {
        if !have_tool("docker-registry", "apt-get install -y docker-registry") {
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut yml = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: kiln-test\n",
            dir.join("data").display()
        );
        if let Some((cert, key)) = &cfg.tls {
            yml += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
        }
        if let Some(h) = &cfg.htpasswd {
            yml += &format!(
                "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                h.display()
            );
        }
        if let Some((realm, cert)) = &cfg.token {
            yml += &format!(
                "auth:\n  token:\n    realm: {realm}\n    service: kiln-registry\n    issuer: kiln-test-issuer\n    rootcertbundle: {}\n",
                cert.display()
            );
        }
        std::fs::write(dir.join("config.yml"), yml).unwrap();
        let r = Registry {
            addr,
            serve: format!("docker-registry serve {}", dir.join("config.yml").display()),
            dir,
            _tmp: tmp,
        };
        r.spawn();
        Some(r)
    }

    /// ferro-oci-server, a registry that answers the OCI 1.1 referrers API (Debian's
    /// docker-registry does not), storing blobs under its temp dir.
    fn start_with_referrers_api() -> Option<Registry> {
        if !have_tool(
            "ferro-oci-server",
            "cargo install --locked ferro-oci-server",
        ) {
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let addr = format!("127.0.0.1:{}", free_port());
        let r = Registry {
            serve: format!(
                "FERRO_OCI_LISTEN={addr} FERRO_OCI_STORAGE_DIR={} ferro-oci-server",
                dir.join("data").display()
            ),
            addr,
            dir,
            _tmp: tmp,
        };
        r.spawn();
        Some(r)
    }

    /// Start the process (again), watched so that it ends with this test process.
    fn spawn(&self) {
        let script = format!(
            "{serve} >>{log} 2>&1 & r=$!; echo $r >{pid}; \
             while kill -0 {me} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.5; done; kill $r 2>/dev/null",
            serve = self.serve,
            log = self.dir.join("registry.log").display(),
            pid = self.dir.join("pid").display(),
            me = std::process::id(),
        );
        let mut watcher = Command::new("sh").args(["-c", &script]).spawn().unwrap();
        std::thread::spawn(move || watcher.wait());
        let started = Instant::now();
        while TcpStream::connect(&self.addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "`{}` did not listen on {}: {}",
                self.serve,
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.join("pid")).unwrap();
        let _ = Command::new("kill").arg(pid.trim()).status();
        let started = Instant::now();
        while TcpStream::connect(&self.addr).is_ok() && started.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Requests the registry has answered so far (its access log lines).
    fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| {
                l.contains("\"GET ")
                    || l.contains("\"HEAD ")
                    || l.contains("\"PUT ")
                    || l.contains("\"POST ")
                    || l.contains("\"PATCH ")
            })
            .map(str::to_string)
            .collect()
    }
}

/// The plain-HTTP registry this test binary shares (tests/attest.rs uses it too).
pub(crate) fn registry() -> Option<&'static Registry> {
    static R: OnceLock<Option<Registry>> = OnceLock::new();
    R.get_or_init(|| Registry::start(RegistryConfig::default()))
        .as_ref()
}

/// The registry with the OCI 1.1 referrers API this test binary shares.
pub(crate) fn registry_with_referrers_api() -> Option<&'static Registry> {
    static R: OnceLock<Option<Registry>> = OnceLock::new();
    R.get_or_init(Registry::start_with_referrers_api).as_ref()
}

/// stdout without surrounding whitespace (a digest, a reference).
fn trimmed_stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// `kiln image` of the committed hellos for `platforms`, with a fixed SOURCE_DATE_EPOCH
/// and a private cache.
fn image_cmd(platforms: &[&str], cache: &Path) -> Command {
    let mut c = kiln();
    c.arg("image")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("KILN_CACHE_DIR", cache)
        .env("KILN_REGISTRY_TIMEOUT", "20")
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE");
    for p in platforms {
        c.arg("--binary")
            .arg(format!("linux/{p}={}", hello_named(p).display()));
    }
    c
}

/// The committed hello for `arch`, named `hello` (the image's entrypoint is its name).
fn hello_named(arch: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("registry-hello-{arch}"));
    std::fs::create_dir_all(&dir).unwrap();
    let dst = dir.join("hello");
    if !dst.exists() {
        std::fs::copy(fixture_hello(arch), &dst).unwrap();
    }
    dst
}

pub(crate) fn skopeo_raw(reference: &str) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The registry holds an index with `digest` for amd64 and arm64 under `reference`.
fn assert_two_platform_index(reference: &str, digest: &str) {
    let raw = skopeo_raw(reference);
    assert_eq!(sha256(&raw), digest, "{reference}");
    assert_eq!(
        support::index_platforms(&raw),
        ["linux/amd64", "linux/arm64"]
    );
}

/// `skopeo copy --all docker://REFERENCE LAYOUT` succeeds (every blob is there).
fn skopeo_copy_all(reference: &str, layout: &str) {
    let copied = Command::new("skopeo")
        .args(["copy", "--all", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(layout)
        .output()
        .unwrap();
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
}

fn sha256(b: &[u8]) -> String {
    kiln::digest::sha256_digest(b)
}

/// `key` of every message with `reason`, in order.
fn fields<'a>(lines: &'a [serde_json::Value], reason: &str, key: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|l| l["reason"] == reason)
        .map(|l| l[key].as_str().unwrap())
        .collect()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn push_a_multi_platform_image_and_read_it_back() {
    let Some(reg) = registry() else { return };
    if !have_tool("skopeo", "apt-get install -y skopeo") {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let a = &reg.addr;
    let out = run_ok(
        image_cmd(&["amd64", "arm64"], cache.path())
            .args(["--output", &format!("docker://{a}/hello:1.0")])
            .args(["--output", &format!("docker://{a}/hello:latest")])
            .args(["--message-format", "json"]),
    );
    let lines = json_lines(&out);
    let digest = fields(&lines, "index", "digest")[0].to_string();
    let tags = fields(&lines, "tag", "reference");
    assert_eq!(
        tags,
        [format!("{a}/hello:1.0"), format!("{a}/hello:latest")]
    );
    let pushed = lines.iter().find(|l| l["reason"] == "pushed").unwrap();
    assert_eq!(pushed["digest"], digest.as_str());
    assert!(
        lines
            .iter()
            .any(|l| l["reason"] == "blob" && l["action"] == "uploaded"),
        "{lines:?}"
    );

    // The registry holds exactly the bytes kiln wrote: same digest for both tags.
    for tag in ["1.0", "latest"] {
        assert_two_platform_index(&format!("{a}/hello:{tag}"), &digest);
    }
    // skopeo copies it back into a layout, and kiln reads that as it wrote it.
    let back = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}/img:x", back.path().display());
    skopeo_copy_all(&format!("{a}/hello:1.0"), &layout);
    assert_eq!(
        kiln::oci::read_image(&layout).unwrap().digest.as_deref(),
        Some(digest.as_str())
    );

    // An unchanged re-push uploads nothing.
    let started = Instant::now();
    let again = run_ok(
        image_cmd(&["amd64", "arm64"], cache.path())
            .args(["--output", &format!("docker://{a}/hello:1.0")])
            .args(["--message-format", "json"]),
    );
    eprintln!(
        "unchanged re-push (whole kiln image run): {:.2?}",
        started.elapsed()
    );
    let again = json_lines(&again);
    let actions = fields(&again, "blob", "action");
    assert!(
        !actions.is_empty() && actions.iter().all(|a| *a == "exists"),
        "{actions:?}"
    );

    // kiln reads it from the registry, as an image to inspect, and says what it pulled.
    let inspected = run_ok(
        kiln()
            .arg("inspect")
            .arg(format!("docker://{a}/hello:1.0"))
            .env("KILN_CACHE_DIR", cache.path()),
    );
    let err = stderr(&inspected);
    assert!(
        err.contains("pulled") && err.contains(&format!("from {a}/hello")),
        "{err}"
    );
    let text = trimmed_stdout(&inspected);
    assert!(
        text.contains("linux/arm64") || text.contains("aarch64") || text.contains("arm64"),
        "{text}"
    );
}

#[test]
fn split_builds_merge_into_the_index_one_machine_builds() {
    let Some(reg) = registry() else { return };
    let a = &reg.addr;
    let cache = tempfile::tempdir().unwrap();
    // Two separate processes, one platform each, pushed by digest (arm64 first on purpose).
    let mut digests = Vec::new();
    for p in ["arm64", "amd64"] {
        let out = run_ok(image_cmd(&[p], cache.path()).args([
            "--output",
            &format!("docker://{a}/split"),
            "--push-by-digest",
            "-q",
        ]));
        let d = trimmed_stdout(&out);
        assert!(d.starts_with("sha256:"), "{d}");
        // Untagged: the registry has the manifest by digest.
        let raw = skopeo_raw(&format!("{a}/split@{d}"));
        assert_eq!(sha256(&raw), d);
        digests.push(d);
    }
    let merged = run_ok(
        kiln()
            .args([
                "index",
                "merge",
                "-q",
                "--output",
                &format!("docker://{a}/split:1.0"),
            ])
            .args(digests.iter().map(|d| format!("{a}/split@{d}")))
            .env("KILN_CACHE_DIR", cache.path()),
    );
    let merged = trimmed_stdout(&merged);
    assert_two_platform_index(&format!("{a}/split:1.0"), &merged);

    // One machine, both platforms (given in the other order), same SOURCE_DATE_EPOCH.
    let one = tempfile::tempdir().unwrap();
    let single = run_ok(
        image_cmd(&["arm64", "amd64"], cache.path())
            .args(["-q", "--output"])
            .arg(format!("oci:{}/one", one.path().display())),
    );
    assert_eq!(trimmed_stdout(&single), merged);

    // The same for layouts on disk.
    let mut layouts = Vec::new();
    for p in ["amd64", "arm64"] {
        let d = one.path().join(p);
        run_ok(
            image_cmd(&[p], cache.path())
                .args(["-q", "--output"])
                .arg(format!("oci:{}", d.display())),
        );
        layouts.push(format!("oci:{}", d.display()));
    }
    let local = run_ok(
        kiln()
            .args(["index", "merge", "-q", "--output"])
            .arg(format!("oci:{}/merged:1.0", one.path().display()))
            .args(layouts.iter().rev()),
    );
    assert_eq!(trimmed_stdout(&local), merged);
}

#[test]
fn a_registry_base_is_cached_and_a_digest_needs_no_request() {
    // Its own registry: it counts requests, and the shared one serves other tests meanwhile.
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let reg = &reg;
    let a = &reg.addr;
    let cache = tempfile::tempdir().unwrap();
    let base = trimmed_stdout(&run_ok(
        image_cmd(&["amd64", "arm64"], cache.path()).args([
            "-q",
            "--output",
            &format!("docker://{a}/base:1"),
        ]),
    ));
    // A fresh cache: the first build downloads the base.
    let cache2 = tempfile::tempdir().unwrap();
    let build = |base_ref: &str, out: &Path| {
        let mut c = image_cmd(&["amd64"], cache2.path());
        c.args(["-q", "--base", base_ref, "--output"])
            .arg(format!("oci:{}", out.display()));
        trimmed_stdout(&run_ok(&mut c))
    };
    let out = tempfile::tempdir().unwrap();
    let first = build(&format!("docker://{a}/base:1"), &out.path().join("a"));
    assert!(
        cache2
            .path()
            .join("blobs/sha256")
            .read_dir()
            .unwrap()
            .count()
            >= 3
    );
    // By tag again: one request (the manifest HEAD), nothing downloaded.
    let before = reg.requests().len();
    let second = build(&format!("{a}/base:1"), &out.path().join("b"));
    // Only this test's repository: other tests share the registry and run meanwhile.
    let new: Vec<String> = reg.requests()[before..]
        .iter()
        .filter(|l| l.contains(" /v2/base/"))
        .cloned()
        .collect();
    assert_eq!(first, second);
    assert_eq!(new.len(), 1, "{new:#?}");
    assert!(new[0].contains("\"HEAD /v2/base/manifests/1"), "{new:#?}");
    // By digest: no request at all — even with the registry's port closed.
    let dead = format!("127.0.0.1:{}/base@{base}", free_port());
    let third = build(&dead, &out.path().join("c"));
    assert_eq!(first, third);
}

/// An index with no image manifest in a registry is an error for `kiln inspect` and
/// `--base`, as it is in a layout: nothing in it can run.
#[test]
fn an_empty_registry_index_is_nothing_to_run() {
    let Some(reg) = registry() else { return };
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let mut s = TcpStream::connect(&reg.addr).unwrap();
    write!(
        s,
        "PUT /v2/empty/manifests/v1 HTTP/1.1\r\nHost: {}\r\nContent-Type: \
         application/vnd.oci.image.index.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reg.addr,
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let reference = format!("docker://{}/empty:v1", reg.addr);
    let cache = tempfile::tempdir().unwrap();
    let inspected = capture(
        kiln()
            .args(["inspect", &reference])
            .env("KILN_CACHE_DIR", cache.path()),
    );
    let based = capture(
        image_cmd(&["amd64"], cache.path())
            .args(["--base", &reference, "--output"])
            .arg(format!("oci:{}", cache.path().join("out").display())),
    );
    for o in [inspected, based] {
        assert_eq!(o.status.code(), Some(1), "{}", both(&o));
        assert!(
            both(&o).contains("no image manifest for any platform"),
            "{}",
            both(&o)
        );
    }
    assert!(!cache.path().join("out").exists(), "nothing may be written");
}

/// A server on a loopback port answering every connection with `answer(request head)`.
fn fake_server(answer: impl Fn(&str, &mut TcpStream) + Send + Sync + 'static) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        // Bounded: a few hundred connections at most, then the thread ends.
        for s in l.incoming().take(300) {
            let Ok(mut s) = s else { break };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                let mut r = BufReader::new(s.try_clone().unwrap());
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head += &line;
                    }
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    answer(&head, &mut s);
                }
            });
        }
    });
    addr
}

fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut h = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        h += &format!("{k}: {v}\r\n");
    }
    h += "\r\n";
    let _ = s.write_all(h.as_bytes());
    let _ = s.write_all(body);
}

fn inspect_remote(addr: &str, extra_env: &[(&str, &str)]) -> (Output, Duration) {
    let cache = tempfile::tempdir().unwrap();
    let mut c = kiln();
    c.arg("inspect")
        .arg(format!("docker://{addr}/app:1"))
        .env("KILN_CACHE_DIR", cache.path())
        .env("KILN_REGISTRY_TIMEOUT", "1")
        .env("KILN_REGISTRY_RETRIES", "2");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let started = Instant::now();
    let out = c.output().unwrap();
    (out, started.elapsed())
}

/// stdout and stderr: `kiln inspect` reports an unreadable input in its table.
fn both(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o))
}

#[test]
fn misbehaving_servers_give_clear_errors_in_time() {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#;
    let good = sha256(manifest);
    // Garbage where a manifest should be (its digest is what it claims, so the JSON is read).
    let garbage = b"<html>not a registry</html>".to_vec();
    let gd = sha256(&garbage);
    let addr = fake_server(move |head, s| {
        if head.starts_with("HEAD") {
            respond(s, "200 OK", &[("Docker-Content-Digest", gd.clone())], b"");
        } else {
            respond(s, "200 OK", &[], &garbage);
        }
    });
    let (out, took) = inspect_remote(&addr, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(both(&out).contains("not valid JSON"), "{}", both(&out));
    assert!(took < Duration::from_secs(20));

    // A body whose bytes do not hash to the digest asked for; a truncated one.
    for truncate in [false, true] {
        let m = manifest.to_vec();
        let g = good.clone();
        let addr = fake_server(move |head, s| {
            if head.starts_with("HEAD") {
                respond(s, "200 OK", &[("Docker-Content-Digest", g.clone())], b"");
            } else if truncate {
                let _ = s.write_all(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", m.len()).as_bytes(),
                );
                let _ = s.write_all(&m[..m.len() / 2]);
                let _ = s.shutdown(std::net::Shutdown::Both);
            } else {
                respond(s, "200 OK", &[], b"{\"schemaVersion\":2}");
            }
        });
        let (out, took) = inspect_remote(&addr, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", both(&out));
        let e = both(&out);
        assert!(e.contains(&addr), "names the registry: {e}");
        assert!(e.contains("corrupt") || e.contains("failed"), "{e}");
        assert!(!e.contains("panicked"), "{e}");
        assert!(took < Duration::from_secs(30), "{took:?}");
    }

    // A server that accepts and never answers: the timeout, not a hang.
    let addr = fake_server(|_, _| std::thread::sleep(Duration::from_secs(60)));
    let (out, took) = inspect_remote(&addr, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(both(&out).contains(&addr), "{}", both(&out));
    assert!(took < Duration::from_secs(15), "{took:?}");

    // 429 with Retry-After: 1, then the answer: kiln waits and goes on.
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = count.clone();
    let addr = fake_server(move |_, s| {
        if c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            respond(
                s,
                "429 Too Many Requests",
                &[("Retry-After", "1".into())],
                b"",
            );
        } else {
            respond(
                s,
                "404 Not Found",
                &[],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            );
        }
    });
    let (out, took) = inspect_remote(&addr, &[]);
    assert!(both(&out).contains("does not exist"), "{}", both(&out));
    assert!(
        took >= Duration::from_secs(1),
        "Retry-After was not honoured: {took:?}"
    );
    assert!(count.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}

#[test]
fn bearer_token_flow_and_refused_credentials() {
    // A registry that wants a token from its realm; the realm wants Basic credentials.
    let token_addr = fake_server(|head, s| {
        let ok = head.to_ascii_lowercase().contains(
            &format!("authorization: basic {}", base64("ci:secret")).to_ascii_lowercase(),
        );
        let scoped = head.contains("scope=repository%3Aapp%3Apull")
            || head.contains("scope=repository:app:pull");
        if ok && scoped {
            respond(s, "200 OK", &[], br#"{"token":"tok123"}"#);
        } else {
            respond(s, "401 Unauthorized", &[], b"{}");
        }
    });
    let realm = format!("http://{token_addr}/token");
    let reg_addr = fake_server(move |head, s| {
        if head.contains("Authorization: Bearer tok123")
            || head.contains("authorization: Bearer tok123")
        {
            respond(
                s,
                "404 Not Found",
                &[],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            );
        } else {
            respond(
                s,
                "401 Unauthorized",
                &[(
                    "WWW-Authenticate",
                    format!("Bearer realm=\"{realm}\",service=\"test\""),
                )],
                b"",
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let write_auth = |pass: &str| auth_file(dir.path(), &reg_addr, pass);
    let good = write_auth("secret");
    let (out, _) = inspect_remote(&reg_addr, &[("REGISTRY_AUTH_FILE", good.to_str().unwrap())]);
    // Authenticated: the registry's answer (the image does not exist) comes through.
    assert!(both(&out).contains("does not exist"), "{}", both(&out));

    let bad = write_auth("wrong");
    let (out, _) = inspect_remote(&reg_addr, &[("REGISTRY_AUTH_FILE", bad.to_str().unwrap())]);
    let e = both(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains(&reg_addr)
            && e.contains("refused the credentials")
            && e.contains(bad.to_str().unwrap()),
        "{e}"
    );

    // A credential helper program (docker-credential-NAME get) is asked the same way.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-kilntest");
    std::fs::write(&helper, "#!/bin/sh\nread server\necho \"{\\\"ServerURL\\\":\\\"$server\\\",\\\"Username\\\":\\\"ci\\\",\\\"Secret\\\":\\\"secret\\\"}\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let docker_cfg = dir.path().join("docker");
    std::fs::create_dir_all(&docker_cfg).unwrap();
    std::fs::write(
        docker_cfg.join("config.json"),
        format!("{{\"credHelpers\":{{\"{reg_addr}\":\"kilntest\"}}}}"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (out, _) = inspect_remote(
        &reg_addr,
        &[
            ("DOCKER_CONFIG", docker_cfg.to_str().unwrap()),
            ("PATH", &path),
        ],
    );
    assert!(both(&out).contains("does not exist"), "{}", both(&out));
}

/// A docker-style auth file in `dir` giving `registry` the user `ci` and `password`.
fn auth_file(dir: &Path, registry: &str, password: &str) -> PathBuf {
    let f = dir.join(format!("auth-{password}.json"));
    let auth = base64(&format!("ci:{password}"));
    std::fs::write(
        &f,
        format!("{{\"auths\":{{\"{registry}\":{{\"auth\":\"{auth}\"}}}}}}"),
    )
    .unwrap();
    f
}

fn base64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn tls_with_a_test_ca_and_basic_auth() {
    if !have_tool("openssl", "apt-get install -y openssl")
        || !have_tool("htpasswd", "apt-get install -y apache2-utils")
    {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    let sh = |cmd: &str| {
        let o = Command::new("sh")
            .args(["-c", cmd])
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=kiln-test-ca 2>/dev/null",
    );
    sh(
        "openssl req -newkey rsa:2048 -nodes -keyout reg.key -out reg.csr -subj /CN=127.0.0.1 2>/dev/null",
    );
    std::fs::write(p("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    sh(
        "openssl x509 -req -in reg.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out reg.pem -days 2 -extfile ext.cnf 2>/dev/null",
    );
    sh("htpasswd -Bbc htpasswd ci secret");
    let Some(reg) = Registry::start(RegistryConfig {
        tls: Some((p("reg.pem"), p("reg.key"))),
        htpasswd: Some(p("htpasswd")),
        ..RegistryConfig::default()
    }) else {
        return;
    };
    let a = &reg.addr;
    let auth = |pass: &str| auth_file(d.path(), a, pass);
    let cache = tempfile::tempdir().unwrap();
    // Unknown CA: the error names --registry-ca.
    let out = image_cmd(&["amd64"], cache.path())
        .args(["--output", &format!("docker://{a}/tls:1")])
        .env("REGISTRY_AUTH_FILE", auth("secret"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--registry-ca") && stderr(&out).contains(a.as_str()),
        "{}",
        stderr(&out)
    );
    // No credentials anywhere: says where kiln looked and how to log in.
    let home = p("empty-home");
    std::fs::create_dir_all(&home).unwrap();
    let out = image_cmd(&["amd64"], cache.path())
        .args(["--output", &format!("docker://{a}/tls:1"), "--registry-ca"])
        .arg(p("ca.pem"))
        .env("HOME", &home)
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains(a.as_str())
            && e.contains("none were found")
            && e.contains(&format!("docker login {a}")),
        "{e}"
    );
    // Wrong password: names the registry and where the credentials came from.
    let bad = auth("wrong");
    let out = image_cmd(&["amd64"], cache.path())
        .args(["--output", &format!("docker://{a}/tls:1"), "--registry-ca"])
        .arg(p("ca.pem"))
        .env("REGISTRY_AUTH_FILE", &bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains(a.as_str()) && e.contains("refused") && e.contains(bad.to_str().unwrap()),
        "{e}"
    );
    // The right CA and password: pushed, and skopeo (trusting the same CA) agrees.
    let ok = run_ok(
        image_cmd(&["amd64", "arm64"], cache.path())
            .args([
                "-q",
                "--output",
                &format!("docker://{a}/tls:1"),
                "--registry-ca",
            ])
            .arg(p("ca.pem"))
            .env("REGISTRY_AUTH_FILE", auth("secret")),
    );
    let digest = trimmed_stdout(&ok);
    let certs = p("certs.d");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(p("ca.pem"), certs.join("ca.crt")).unwrap();
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--creds", "ci:secret", "--cert-dir"])
        .arg(&certs)
        .arg(format!("docker://{a}/tls:1"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(sha256(&raw.stdout), digest);
    // kiln inspect takes the same --registry-ca as a push.
    let inspected = run_ok(
        kiln()
            .args(["inspect", "--json", "--registry-ca"])
            .arg(p("ca.pem"))
            .arg(format!("docker://{a}/tls:1"))
            .env("KILN_CACHE_DIR", cache.path())
            .env("REGISTRY_AUTH_FILE", auth("secret")),
    );
    assert!(
        trimmed_stdout(&inspected).contains("\"platform\": \"linux/arm64\""),
        "{}",
        trimmed_stdout(&inspected)
    );
}

#[test]
#[ignore = "docker engine; run by cargo xtask e2e"]
fn docker_pulls_and_runs_what_kiln_pushed() {
    let Some(reg) = registry() else { return };
    if !support::docker_ready() {
        return;
    }
    let a = &reg.addr;
    let cache = tempfile::tempdir().unwrap();
    run_ok(image_cmd(&["amd64", "arm64"], cache.path()).args([
        "-q",
        "--output",
        &format!("docker://{a}/run:1"),
    ]));
    let r = format!("{a}/run:1");
    let ran = support::docker_pull_and_run(&r);
    assert!(ran.to_lowercase().contains("hello"), "{ran}");
}

#[test]
#[ignore = "kills a registry mid-push; run by cargo xtask e2e"]
fn a_registry_killed_mid_push_leaves_no_tag_on_a_partial_image() {
    let Some(reg) = Registry::start(RegistryConfig::default()) else {
        return;
    };
    let a = reg.addr.clone();
    let dir = tempfile::tempdir().unwrap();
    // 48 MiB of incompressible data, so the push takes a while.
    let big = dir.path().join("big.bin");
    let mut data = vec![0u8; 48 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&big, &data).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let child = image_cmd(&["amd64", "arm64"], cache.path())
        .args(["--compression", "none", "--file"])
        .arg(format!("{}:/data/big.bin", big.display()))
        .args(["--output", &format!("docker://{a}/partial:1")])
        .env("KILN_REGISTRY_RETRIES", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the registry once uploads have begun.
    let started = Instant::now();
    while !reg.log().contains("blobs/uploads") && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    reg.kill();
    let out = child.wait_with_output().unwrap();
    reg.spawn();
    let tag = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{a}/partial:1"))
        .output()
        .unwrap();
    eprintln!(
        "push with the registry killed: exit {:?}\n{}",
        out.status.code(),
        stderr(&out)
    );
    if out.status.success() {
        // Retried through: the tag is whole.
        assert!(tag.status.success());
    } else {
        assert!(
            stderr(&out).contains("no tag was written") || stderr(&out).contains(&a),
            "{}",
            stderr(&out)
        );
        assert!(!tag.status.success(), "a failed push left a tag");
    }
}

fn examples_ci() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci")
}

#[test]
fn the_example_makefile_packs_and_pushes() {
    let Some(reg) = registry() else { return };
    if !have_tool("make", "apt-get install -y make") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    for arch in ["amd64", "arm64"] {
        let dir = d.path().join(format!("dist/linux-{arch}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(fixture_hello(arch), dir.join("hello")).unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new("make")
        .arg("-f")
        .arg(examples_ci().join("Makefile"))
        .args(["image", "push"])
        .arg(format!("KILN={}", env!("CARGO_BIN_EXE_kiln")))
        .arg(format!("REGISTRY={}", reg.addr))
        .args(["NAME=hello", "VERSION=1.0", "KILNFLAGS=-q"])
        .current_dir(d.path())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("KILN_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        trimmed_stdout(&out),
        stderr(&out)
    );
    let lines: Vec<String> = trimmed_stdout(&out)
        .lines()
        .filter(|l| l.starts_with("sha256:"))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 2, "{}", trimmed_stdout(&out));
    assert_eq!(
        lines[0], lines[1],
        "the layout and the registry hold the same index"
    );
    let layout = format!("oci:{}/dist/image:1.0", d.path().display());
    assert_eq!(
        kiln::oci::read_image(&layout).unwrap().digest.as_deref(),
        Some(lines[0].as_str())
    );
    assert_eq!(
        sha256(&skopeo_raw(&format!("{}/hello:1.0", reg.addr))),
        lines[0]
    );
    // `make build` calls kiln build with the platforms joined by commas.
    let dry = Command::new("make")
        .arg("-n")
        .arg("-f")
        .arg(examples_ci().join("Makefile"))
        .arg("build")
        .output()
        .unwrap();
    assert!(
        trimmed_stdout(&dry)
            .contains("kiln build . --release --platform linux/amd64,linux/arm64 --out-dir dist"),
        "{}",
        trimmed_stdout(&dry)
    );
}

#[test]
fn the_workflow_runs_the_release_script_steps() {
    let wf = std::fs::read_to_string(examples_ci().join("github-actions.yml")).unwrap();
    assert!(wf.contains("sh examples/ci/release.sh platform \"${{ matrix.platform }}\""));
    assert!(wf.contains("sh examples/ci/release.sh merge $(cat refs/*)"));
    assert!(wf.contains("needs: platform"));
}

#[test]
#[ignore = "builds a Go project for two platforms; run by cargo xtask e2e"]
fn the_workflow_steps_release_a_project_over_a_matrix() {
    let Some(reg) = registry() else { return };
    let cache = tempfile::tempdir().unwrap();
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello-go");
    let image = format!("{}/matrix", reg.addr);
    let step = |args: &[&str], extra: &[(&str, &str)]| {
        let mut c = Command::new("sh");
        c.arg(examples_ci().join("release.sh"))
            .args(args)
            .env("KILN", env!("CARGO_BIN_EXE_kiln"))
            .env("IMAGE", &image)
            .env("PROJECT", &project)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("KILN_CACHE_DIR", cache.path());
        for (k, v) in extra {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        trimmed_stdout(&out)
    };
    // Two "runners", one platform each, as the matrix jobs run them.
    let refs: Vec<String> = ["linux/arm64", "linux/amd64"]
        .iter()
        .map(|p| step(&["platform", p], &[]))
        .collect();
    for r in &refs {
        let digest = r
            .strip_prefix(&format!("{image}@"))
            .unwrap_or_else(|| panic!("not {image}@DIGEST: {r}"));
        // Untagged, by digest: the platform's manifest.
        assert_eq!(sha256(&skopeo_raw(r)), digest);
    }
    let mut merge_args = vec!["merge"];
    merge_args.extend(refs.iter().map(String::as_str));
    let merged = step(&merge_args, &[("TAG", "1.0"), ("KILNFLAGS", "-q")]);
    assert_two_platform_index(&format!("{image}:1.0"), &merged);
}

/// JSON lines with the registry's address (a random port) replaced by `REGISTRY`, and each
/// run of blob messages, which concurrent uploads print in any order, sorted by digest.
fn stable_messages(o: &Output, addr: &str) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(&o.stdout).replace(addr, "REGISTRY");
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let mut start = 0;
    while start < lines.len() {
        let end = (start..lines.len())
            .find(|i| lines[*i]["reason"] != "blob")
            .unwrap_or(lines.len());
        lines[start..end].sort_by_key(|b| b["digest"].as_str().unwrap_or_default().to_string());
        start = end + 1;
    }
    lines
}

#[test]
fn shards_in_other_repositories_merge_into_a_third() {
    let Some(reg) = registry() else { return };
    if !have_tool("skopeo", "apt-get install -y skopeo") {
        return;
    }
    let a = &reg.addr;
    // Each shard with its own cache, as on separate CI runners: no mount hints.
    let mut refs = Vec::new();
    let mut pushes = Vec::new();
    for (p, repo) in [("amd64", "shard-a"), ("arm64", "shard-b")] {
        let cache = tempfile::tempdir().unwrap();
        let out = run_ok(image_cmd(&[p], cache.path()).args([
            "--output",
            &format!("docker://{a}/{repo}"),
            "--push-by-digest",
            "--message-format",
            "json",
        ]));
        let lines = json_lines(&out);
        let pushed = lines.iter().find(|l| l["reason"] == "pushed").unwrap();
        assert_eq!(pushed["by_digest"], true);
        refs.push(format!("{a}/{repo}@{}", pushed["digest"].as_str().unwrap()));
        pushes.push(stable_messages(&out, a));
    }
    insta::assert_json_snapshot!("push_by_digest_messages", pushes);

    let cache = tempfile::tempdir().unwrap();
    let merged = run_ok(
        kiln()
            .args(["index", "merge", "--message-format", "json", "--output"])
            .arg(format!("docker://{a}/shard-all:1.0"))
            .args(&refs)
            .env("KILN_CACHE_DIR", cache.path()),
    );
    let lines = json_lines(&merged);
    let digest = fields(&lines, "index", "digest")[0].to_string();
    // The third repository got the blobs by mounting them: nothing was uploaded again.
    let actions = fields(&lines, "blob", "action");
    assert!(
        !actions.is_empty() && actions.iter().all(|a| *a == "mounted"),
        "{actions:?}"
    );
    insta::assert_json_snapshot!("merge_messages", stable_messages(&merged, a));

    assert_two_platform_index(&format!("{a}/shard-all:1.0"), &digest);
    // Every blob is really in the third repository: skopeo copies the whole image out.
    let back = tempfile::tempdir().unwrap();
    skopeo_copy_all(
        &format!("{a}/shard-all:1.0"),
        &format!("oci:{}/img:x", back.path().display()),
    );
    // The merge in a registry says what a merge on disk says (but the outputs).
    let local = tempfile::tempdir().unwrap();
    let on_disk = run_ok(
        kiln()
            .args(["index", "merge", "--message-format", "json", "--output"])
            .arg(format!("oci:{}/m", local.path().display()))
            .args(refs.iter().map(|r| format!("docker://{r}")))
            .env("KILN_CACHE_DIR", cache.path()),
    );
    let strip = |v: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        v.into_iter()
            .filter(|l| l["reason"] == "image" || l["reason"] == "index")
            .map(|mut l| {
                l.as_object_mut().unwrap().remove("outputs");
                l
            })
            .collect()
    };
    assert_eq!(strip(json_lines(&on_disk)), strip(lines));
}

/// A JWT the registry's token auth accepts: RS256 over `header.claims`, signed by `key`
/// (openssl), the signing certificate in the `x5c` header (docker-registry checks it
/// against its `rootcertbundle`), granting pull and push on `repo`.
fn signed_token(dir: &Path, key: &Path, cert_pem: &str, repo: &str) -> String {
    use base64::Engine as _;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let der: String = cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [der]});
    let claims = serde_json::json!({
        "iss": "kiln-test-issuer", "sub": "ci", "aud": "kiln-registry",
        "exp": now + 3600, "nbf": now - 60, "iat": now - 60, "jti": "kiln-test",
        "access": [{"type": "repository", "name": repo, "actions": ["pull", "push"]}]
    });
    let input = format!(
        "{}.{}",
        url.encode(header.to_string()),
        url.encode(claims.to_string())
    );
    let input_file = dir.join("jwt-input");
    std::fs::write(&input_file, &input).unwrap();
    let sig = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg(&input_file)
        .output()
        .unwrap();
    assert!(sig.status.success(), "{}", stderr(&sig));
    format!("{input}.{}", url.encode(&sig.stdout))
}

/// docker-registry with `auth: token` (it checks tokens; it cannot issue them, so a small
/// token server here hands out one kiln signed with openssl, for Basic `ci:secret`).
#[test]
fn token_auth_on_docker_registry() {
    if !have_tool("openssl", "apt-get install -y openssl")
        || !have_tool("skopeo", "apt-get install -y skopeo")
    {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("tok.key");
    let cert = d.path().join("tok.pem");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=kiln-test-token-signer", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let token = signed_token(
        d.path(),
        &key,
        &std::fs::read_to_string(&cert).unwrap(),
        "tok",
    );
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = asked.clone();
    let token_addr = fake_server(move |head, s| {
        log.lock()
            .unwrap()
            .push(head.lines().next().unwrap_or("").to_string());
        let ok = head.to_ascii_lowercase().contains(
            &format!("authorization: basic {}", base64("ci:secret")).to_ascii_lowercase(),
        );
        if ok {
            let body = serde_json::json!({"token": token, "access_token": token}).to_string();
            respond(s, "200 OK", &[], body.as_bytes());
        } else {
            respond(s, "401 Unauthorized", &[], b"{}");
        }
    });
    let Some(reg) = Registry::start(RegistryConfig {
        token: Some((format!("http://{token_addr}/token"), cert.clone())),
        ..RegistryConfig::default()
    }) else {
        return;
    };
    let a = &reg.addr;
    // The registry checks what it is given: a token not signed by the bundle's key is refused.
    let forged = signed_token(
        d.path(),
        &key,
        &std::fs::read_to_string(&cert).unwrap(),
        "tok",
    )
    .rsplit_once('.')
    .map(|(signed, _)| format!("{signed}.AAAA"))
    .unwrap();
    let mut c = TcpStream::connect(a).unwrap();
    write!(
        c,
        "GET /v2/tok/tags/list HTTP/1.1\r\nHost: {a}\r\nAuthorization: Bearer {forged}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let auth = |pass: &str| auth_file(d.path(), a, pass);
    let cache = tempfile::tempdir().unwrap();
    let ok = run_ok(
        image_cmd(&["amd64", "arm64"], cache.path())
            .args(["-q", "--output", &format!("docker://{a}/tok:1")])
            .env("REGISTRY_AUTH_FILE", auth("secret")),
    );
    let digest = trimmed_stdout(&ok);
    // kiln asked the token server for the repository's scope.
    let asked_for = asked.lock().unwrap().clone();
    assert!(
        asked_for
            .iter()
            .any(|l| l.contains("scope=repository%3Atok%3Apull%2Cpush")
                || l.contains("scope=repository:tok:pull,push")),
        "{asked_for:?}"
    );
    let raw = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "ci:secret",
        ])
        .arg(format!("docker://{a}/tok:1"))
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", stderr(&raw));
    assert_eq!(sha256(&raw.stdout), digest);
    // Pulled back as a base through the same token flow.
    let out = tempfile::tempdir().unwrap();
    run_ok(
        image_cmd(&["amd64"], tempfile::tempdir().unwrap().path())
            .args(["-q", "--base", &format!("{a}/tok:1"), "--output"])
            .arg(format!("oci:{}", out.path().display()))
            .env("REGISTRY_AUTH_FILE", auth("secret")),
    );
    // The token server refuses a wrong password: the error names the registry, the user
    // and the file the credentials came from.
    let bad = auth("wrong");
    let out = image_cmd(&["amd64"], cache.path())
        .args(["--output", &format!("docker://{a}/tok:2")])
        .env("REGISTRY_AUTH_FILE", &bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains(a.as_str())
            && e.contains("refused the credentials of user `ci`")
            && e.contains(bad.to_str().unwrap()),
        "{e}"
    );
}

#[test]
fn plain_http_beyond_loopback_needs_insecure_registry() {
    let Some(reg) = registry() else { return };
    let port = reg.addr.rsplit_once(':').unwrap().1;
    // `127.1` reaches 127.0.0.1 (the resolver reads it as inet_aton does) but is no loopback
    // address to kiln, which allows plain HTTP only to names it can tell are loopback.
    let host = format!("127.1:{port}");
    let cache = tempfile::tempdir().unwrap();
    let out = image_cmd(&["amd64"], cache.path())
        .args(["--output", &format!("docker://{host}/insecure:1")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("answered in plain HTTP") && e.contains("--insecure-registry 127.1"),
        "{e}"
    );
    let ok = run_ok(image_cmd(&["amd64"], cache.path()).args([
        "-q",
        "--output",
        &format!("docker://{host}/insecure:1"),
        "--insecure-registry",
        "127.1",
    ]));
    assert_eq!(
        sha256(&skopeo_raw(&format!("{}/insecure:1", reg.addr))),
        trimmed_stdout(&ok)
    );
}

#[test]
fn a_corrupt_layout_blob_is_refused_by_the_merge_or_the_registry() {
    let Some(reg) = registry() else { return };
    let a = &reg.addr;
    let cache = tempfile::tempdir().unwrap();
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("img");
    run_ok(
        image_cmd(&["amd64"], cache.path())
            .args(["-q", "--output"])
            .arg(format!("oci:{}", layout.display())),
    );
    // Flip a byte of the largest blob (the layer), keeping its size.
    let largest = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&largest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&largest, bytes).unwrap();
    let merge = |dest: String| {
        kiln()
            .args(["index", "merge", "--output", &dest])
            .arg(format!("oci:{}", layout.display()))
            .env("KILN_CACHE_DIR", cache.path())
            .output()
            .unwrap()
    };
    // Into a layout, kiln checks the blob itself.
    let out = merge(format!("oci:{}/copy", d.path().display()));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
    // Into a registry, the registry refuses the upload, and no tag is written.
    let out = merge(format!("docker://{a}/corrupt:1"));
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("no tag was written") && e.contains(a.as_str()),
        "{e}"
    );
    let tag = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{a}/corrupt:1"))
        .output()
        .unwrap();
    assert!(!tag.status.success(), "a refused push left a tag");
}

/// With `--push-by-digest` and one platform only that platform's manifest is pushed: the
/// messages must not say the index went to the registry.
#[test]
fn one_platform_by_digest_reports_the_manifest_not_an_index() {
    let Some(reg) = registry() else { return };
    let a = &reg.addr;
    let cache = tempfile::tempdir().unwrap();
    let out = run_ok(image_cmd(&["arm64"], cache.path()).args([
        "--output",
        &format!("docker://{a}/bydigest"),
        "--push-by-digest",
        "--message-format",
        "json",
    ]));
    let lines = json_lines(&out);
    let manifest = fields(&lines, "image", "manifest")[0].to_string();
    let index = lines.iter().find(|l| l["reason"] == "index").unwrap();
    assert!(
        index["outputs"].as_array().unwrap().is_empty(),
        "the index was written nowhere: {index}"
    );
    let pushed = lines.iter().find(|l| l["reason"] == "pushed").unwrap();
    assert_eq!(pushed["digest"], manifest.as_str());
    assert_eq!(pushed["by_digest"], true);
    assert_eq!(
        sha256(&skopeo_raw(&format!("{a}/bydigest@{manifest}"))),
        manifest
    );
    let index_digest = index["digest"].as_str().unwrap();
    let absent = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{a}/bydigest@{index_digest}"))
        .output()
        .unwrap();
    assert!(!absent.status.success(), "an index was pushed after all");
}
