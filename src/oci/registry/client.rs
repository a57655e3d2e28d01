//! One registry's HTTP side: TLS, the scheme, authentication (anonymous, Basic, the
//! Bearer token flow with the scopes a request needs), retries with backoff, and error
//! texts that name the registry. Everything above speaks in distribution API requests.
//!
//! Why a small blocking client (ureq + rustls) and not `oci-client`: kiln must own the
//! retries (per request, with `Retry-After`), the auth scopes a cross-repository mount
//! needs, the exact bytes of every manifest, and its error texts; `oci-client` hides the
//! first two inside its own calls, and it brings tokio, hyper and reqwest (about 90 more
//! crates to compile on a 2-core CI runner) where ureq with rustls adds about 15. Pushes
//! run on a bounded pool of threads, which is all the concurrency a push needs.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::pki_types::CertificateDer;

use super::RegistryOptions;
use super::auth::{self, Challenge, Credential};

/// A response, whatever its status.
pub type Response = ureq::Response;

/// A request body.
#[derive(Clone, Copy)]
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// Opened for each attempt: its length and a reader over it.
    Stream(&'a (dyn Fn() -> anyhow::Result<(u64, std::io::Take<fs_err::File>)> + Sync)),
}

/// How to reach one registry.
pub struct Client {
    /// `host[:port]` as the user named it.
    pub registry: String,
    /// `https` or `http`: `None` until the first request decides it, for hosts that may use
    /// plain HTTP (loopback, `--insecure-registry`). The lock is held while deciding, so
    /// concurrent first requests wait for one probe instead of racing.
    scheme: Mutex<Option<&'static str>>,
    may_use_http: bool,
    api_host: String,
    /// Requests over plain HTTP, and the TLS probe: its TLS config trusts no root at all, so
    /// no request gets through it to a TLS server.
    plain: ureq::Agent,
    /// Requests over TLS, with the system roots plus `--registry-ca`; built on the first
    /// HTTPS request, so that a push to a plain-HTTP loopback registry never reads the
    /// system's CA store (about 20-50 ms, seen in `cargo xtask bench push`).
    tls: OnceLock<ureq::Agent>,
    /// The `--registry-ca` certificates, read (and checked) when the client is made.
    extra_roots: Vec<CertificateDer<'static>>,
    timeout: Duration,
    idle: usize,
    auth: Mutex<AuthState>,
    retries: u32,
    /// `--registry-ca` files given, for the error text of an untrusted certificate.
    ca_hint: String,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// Bearer tokens by scope set.
    tokens: HashMap<String, String>,
    creds: Option<Option<Credential>>,
}

/// Is `host` (without the port) a loopback address, where plain HTTP is allowed?
pub fn is_loopback(registry: &str) -> bool {
    let host = host_part(registry);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn host_part(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').map_or(registry, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            registry
        }
    })
}

/// The certificates of every `--registry-ca` file.
fn extra_roots(opts: &RegistryOptions) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let mut all = Vec::new();
    for f in &opts.ca_files {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(f)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| {
                format!("--registry-ca {}: not a PEM certificate file", f.display())
            })?;
        if certs.is_empty() {
            bail!("--registry-ca {}: no certificate in the file", f.display());
        }
        let mut check = rustls::RootCertStore::empty();
        for c in certs {
            check.add(c.clone()).with_context(|| {
                format!("--registry-ca {}: a certificate is invalid", f.display())
            })?;
            all.push(c);
        }
    }
    Ok(all)
}

/// rustls trusting `roots`.
fn tls_config(roots: rustls::RootCertStore) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

fn agent(tls: Arc<rustls::ClientConfig>, timeout: Duration, idle: usize) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .tls_config(tls)
        .timeout_connect(Duration::from_secs(10).min(timeout))
        .timeout_read(timeout)
        .timeout_write(timeout)
        .max_idle_connections_per_host(idle)
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Did a TLS handshake fail because the server does not speak TLS (it answered the hello
/// in plain HTTP, or dropped it), rather than because it could not be reached?
fn not_tls(t: &ureq::Transport) -> bool {
    format!("{t}").contains("tls connection init failed")
        || t.kind() != ureq::ErrorKind::ConnectionFailed
}

/// Does a transport error say that the server's certificate was not trusted?
fn is_certificate_error(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains("certificate") || lower.contains("unknownissuer")
}

impl Client {
    pub fn new(registry: &str, opts: &RegistryOptions) -> anyhow::Result<Client> {
        trace_epoch();
        let idle = opts.jobs.max(1) * 2;
        let extra_roots = extra_roots(opts)?;
        let plain = agent(
            tls_config(rustls::RootCertStore::empty())?,
            opts.timeout,
            idle,
        );
        let may_use_http = is_loopback(registry)
            || opts
                .insecure
                .iter()
                .any(|h| h == registry || h == host_part(registry));
        let api_host = if registry == "docker.io" {
            "registry-1.docker.io".to_string()
        } else {
            registry.to_string()
        };
        let ca_hint = if opts.ca_files.is_empty() {
            "pass the CA that signed it with --registry-ca FILE".to_string()
        } else {
            format!(
                "it is not signed by the system roots nor by --registry-ca {}: pass the right CA with --registry-ca FILE",
                opts.ca_files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Ok(Client {
            registry: registry.to_string(),
            scheme: Mutex::new((!may_use_http).then_some("https")),
            may_use_http,
            api_host,
            plain,
            tls: OnceLock::new(),
            extra_roots,
            timeout: opts.timeout,
            idle,
            auth: Mutex::new(AuthState::default()),
            retries: opts.retries,
            ca_hint,
        })
    }

    /// The agent for `url`: the TLS one (built now if this is the first HTTPS request)
    /// or the plain one.
    fn agent_for(&self, url: &str) -> anyhow::Result<&ureq::Agent> {
        if !url.starts_with("https://") {
            return Ok(&self.plain);
        }
        if let Some(a) = self.tls.get() {
            return Ok(a);
        }
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        for c in &self.extra_roots {
            roots.add(c.clone())?;
        }
        let a = agent(tls_config(roots)?, self.timeout, self.idle);
        Ok(self.tls.get_or_init(|| a))
    }

    /// `https` or `http`. For a host that may use plain HTTP, the first call tries a TLS
    /// handshake that trusts no certificate: a server that answers it in plain HTTP (or
    /// drops it) gets plain HTTP; one that presents a certificate speaks TLS. A refused
    /// connection decides nothing (the request's retries report it).
    fn scheme(&self) -> &'static str {
        let mut s = self.scheme.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = *s {
            return s;
        }
        match self
            .plain
            .get(&format!("https://{}/v2/", self.api_host))
            .call()
        {
            Err(ureq::Error::Transport(t)) if is_certificate_error(&format!("{t}")) => {
                *s = Some("https")
            }
            Err(ureq::Error::Transport(t)) if not_tls(&t) => *s = Some("http"),
            Err(ureq::Error::Transport(_)) => return "https",
            // A handshake without trusted roots cannot succeed; if it somehow did, TLS it is.
            Ok(_) | Err(ureq::Error::Status(..)) => *s = Some("https"),
        }
        s.unwrap_or("https")
    }

    /// `scheme://host/v2/…` for `path` (`/v2/…`), or an absolute `Location` as it is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.to_string();
        }
        format!("{}://{}{path}", self.scheme(), self.api_host)
    }

    fn credentials(&self) -> anyhow::Result<Option<Credential>> {
        let mut st = self.auth.lock().unwrap_or_else(|e| e.into_inner());
        if st.creds.is_none() {
            st.creds = Some(
                auth::lookup(&self.registry)
                    .with_context(|| format!("reading the credentials for {}", self.registry))?,
            );
        }
        Ok(st.creds.clone().flatten())
    }

    /// The Authorization header for `scopes`, fetching a token when the registry wants one.
    fn authorization(&self, scopes: &[String], refresh: bool) -> anyhow::Result<Option<String>> {
        let challenge = self
            .auth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .challenge
            .clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(Some(
                self.credentials()?
                    .ok_or_else(|| self.no_credentials())?
                    .basic_header(),
            )),
            Some(Challenge::Bearer { realm, service }) => {
                let key = scopes.join(" ");
                if !refresh
                    && let Some(t) = self
                        .auth
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .tokens
                        .get(&key)
                {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let token = self.fetch_token(&realm, service.as_deref(), scopes)?;
                self.auth
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .tokens
                    .insert(key, token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    fn no_credentials(&self) -> anyhow::Error {
        let files: Vec<String> = auth::auth_files()
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        anyhow::anyhow!(
            "{} asks for credentials and none were found (looked in {}): run `docker login {}` or set REGISTRY_AUTH_FILE",
            self.registry,
            if files.is_empty() {
                "no auth file".into()
            } else {
                files.join(", ")
            },
            self.registry
        )
    }

    fn refused(&self, creds: Option<&Credential>, status: u16) -> anyhow::Error {
        match creds {
            Some(c) => anyhow::anyhow!(
                "{} refused the credentials of user `{}` from {} (HTTP {status}): check the password, or log in again with `docker login {}`",
                self.registry,
                c.username,
                c.source,
                self.registry
            ),
            None => self.no_credentials(),
        }
    }

    /// The token flow: GET realm?service=…&scope=…, with Basic credentials when there are some.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> anyhow::Result<String> {
        let creds = self.credentials()?;
        let mut req = self.agent_for(realm)?.get(realm);
        if let Some(s) = service {
            req = req.query("service", s);
        }
        for s in scopes {
            req = req.query("scope", s);
        }
        if let Some(c) = &creds {
            req = req.set("Authorization", &c.basic_header());
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code @ (401 | 403), _)) => {
                return Err(self.refused(creds.as_ref(), code));
            }
            Err(ureq::Error::Status(code, _)) => {
                bail!(
                    "the token server of {} ({realm}) answered HTTP {code}",
                    self.registry
                )
            }
            Err(e) => bail!(
                "the token server of {} ({realm}) failed: {e}",
                self.registry
            ),
        };
        let mut text = String::new();
        resp.into_reader()
            .take(1 << 20)
            .read_to_string(&mut text)
            .with_context(|| format!("reading a token from {realm}"))?;
        let v: serde_json::Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "the token server of {} ({realm}) answered no JSON",
                self.registry
            )
        })?;
        v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .map(str::to_string)
            .with_context(|| {
                format!(
                    "the token server of {} ({realm}) answered no token",
                    self.registry
                )
            })
    }

    fn tls_problem(&self, e: &ureq::Transport) -> Option<anyhow::Error> {
        let text = format!("{e}");
        is_certificate_error(&text).then(|| {
            anyhow::anyhow!(
                "{}: the TLS certificate is not trusted ({text}): {}",
                self.registry,
                self.ca_hint
            )
        })
    }

    /// Send a request (retried on 5xx, 429 with `Retry-After`, and dropped connections;
    /// authenticated on a 401). Returns the response whatever its status.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        scopes: &[String],
    ) -> anyhow::Result<Response> {
        let mut attempt = 0;
        let mut reauthed = false;
        let mut refresh = false;
        loop {
            let auth = self.authorization(scopes, refresh)?;
            refresh = false;
            let url = self.url(path);
            let started = std::time::Instant::now();
            let mut req = self.agent_for(&url)?.request(method, &url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(a) = &auth {
                req = req.set("Authorization", a);
            }
            let result = match body {
                Body::Empty => {
                    if matches!(method, "PUT" | "POST" | "PATCH") {
                        req.send_bytes(&[])
                    } else {
                        req.call()
                    }
                }
                Body::Bytes(b) => req.send_bytes(b),
                Body::Stream(open) => {
                    let (len, reader) = open()?;
                    req.set("Content-Length", &len.to_string()).send(reader)
                }
            };
            trace(
                method,
                path,
                started,
                match &result {
                    Ok(r) | Err(ureq::Error::Status(_, r)) => Some(r.status()),
                    Err(_) => None,
                },
            );
            let resp = match result {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => {
                    if let Some(e) = self.tls_problem(&t) {
                        return Err(e);
                    }
                    // A server that answered the TLS hello in plain HTTP will do so again.
                    let text = format!("{t}");
                    if !self.may_use_http && text.contains("InvalidContentType") {
                        bail!(
                            "{}: the registry answered in plain HTTP, not TLS: if you trust the network to it, allow plain HTTP with --insecure-registry {}",
                            self.registry,
                            host_part(&self.registry)
                        );
                    }
                    if attempt < self.retries {
                        attempt += 1;
                        std::thread::sleep(backoff(attempt));
                        continue;
                    }
                    bail!(
                        "{}: {method} {} failed after {} attempts: {t}",
                        self.registry,
                        strip_query(path),
                        attempt + 1
                    );
                }
            };
            let status = resp.status();
            if status == 401 {
                if reauthed {
                    let creds = self.credentials()?;
                    return Err(self.refused(creds.as_ref(), status));
                }
                let challenge = resp
                    .header("www-authenticate")
                    .and_then(auth::parse_challenge)
                    .with_context(|| {
                        format!(
                            "{} answered 401 without a usable WWW-Authenticate challenge",
                            self.registry
                        )
                    })?;
                self.auth
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .challenge = Some(challenge);
                reauthed = true;
                refresh = true;
                continue;
            }
            if (status == 429 || status >= 500) && attempt < self.retries {
                attempt += 1;
                let wait = resp
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(60)))
                    .unwrap_or_else(|| backoff(attempt));
                std::thread::sleep(wait);
                continue;
            }
            return Ok(resp);
        }
    }

    /// An error for an unexpected status, with the registry's own error text.
    pub fn status_error(&self, what: &str, resp: Response) -> anyhow::Error {
        let status = resp.status();
        let mut text = String::new();
        let _ = resp.into_reader().take(4096).read_to_string(&mut text);
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                let errs = v["errors"].as_array()?;
                Some(
                    errs.iter()
                        .map(|e| {
                            format!(
                                "{}: {}",
                                e["code"].as_str().unwrap_or("?"),
                                e["message"].as_str().unwrap_or("")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })
            .unwrap_or_else(|| {
                text.chars()
                    .take(200)
                    .collect::<String>()
                    .trim()
                    .to_string()
            });
        let hint = match status {
            403 => ": the credentials may not push to this repository",
            429 => ": the registry is rate-limiting; try again later",
            _ => "",
        };
        anyhow::anyhow!("{}: {what}: HTTP {status} {detail}{hint}", self.registry)
    }
}

/// With `KILN_REGISTRY_TRACE` set: when the first client was made (the trace's zero).
fn trace_epoch() -> Option<std::time::Instant> {
    static EPOCH: OnceLock<Option<std::time::Instant>> = OnceLock::new();
    *EPOCH
        .get_or_init(|| std::env::var_os("KILN_REGISTRY_TRACE").map(|_| std::time::Instant::now()))
}

/// With `KILN_REGISTRY_TRACE` set, each request's start, duration and status on stderr
/// (milliseconds since the first client was made), to see where a push spends its time.
fn trace(method: &str, path: &str, started: std::time::Instant, status: Option<u16>) {
    let Some(epoch) = trace_epoch() else {
        return;
    };
    let at = started.saturating_duration_since(epoch).as_secs_f64() * 1000.0;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    let status = status.map_or("error".to_string(), |s| s.to_string());
    let path = path.rsplit_once("/v2/").map_or(path, |(_, p)| p);
    eprintln!(
        "kiln registry trace: {at:8.1} ms +{took:6.1} ms {method} {} {status}",
        strip_query(path)
    );
}

fn strip_query(p: &str) -> &str {
    p.split('?').next().unwrap_or(p)
}

/// 0.2 s, 0.4 s, 0.8 s, … at most 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((200u64 << attempt.min(5).saturating_sub(1)).min(5000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("reg.example:5000"));
        assert_eq!(host_part("reg.example:5000"), "reg.example");
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(9), Duration::from_millis(3200));
    }
}
