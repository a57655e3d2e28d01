//! Credentials as users already have them, and the registry's `WWW-Authenticate` challenge.
//!
//! Sources, first match wins: `REGISTRY_AUTH_FILE` (podman, skopeo), then
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, then
//! `$XDG_RUNTIME_DIR/containers/auth.json`. In each file `credHelpers` for the host, then
//! `auths` (base64 `user:password`, or `username`/`password`), then `credsStore`.
//! Helpers are `docker-credential-NAME get` with the server on stdin, as docker runs them.
//!
//! Not the `docker_credential` crate: it reads only docker's file (no `REGISTRY_AUTH_FILE`),
//! spawns helpers itself (kiln spawns through `exec`), and cannot say which source answered,
//! which kiln's error for a refused password must name.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use serde_json::Value;

/// A user name and password (or identity token) and where they came from.
#[derive(Clone)]
pub struct Credential {
    pub username: String,
    pub password: String,
    /// `auths in /home/me/.docker/config.json`, `docker-credential-pass`.
    pub source: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({} from {})", self.username, self.source)
    }
}

impl Credential {
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The auth files to look in, in order.
pub fn auth_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        files.push(PathBuf::from(f));
    }
    match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        Some(d) => files.push(PathBuf::from(d).join("config.json")),
        None => {
            if let Some(h) = std::env::var_os("HOME") {
                files.push(PathBuf::from(h).join(".docker").join("config.json"));
            }
        }
    }
    if let Some(r) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        files.push(PathBuf::from(r).join("containers").join("auth.json"));
    }
    files
}

/// Credentials for `registry` (`host[:port]`) from the first source that has some.
pub fn lookup(registry: &str) -> anyhow::Result<Option<Credential>> {
    for file in auth_files() {
        let text = match fs_err::read(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let doc: Value = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not valid JSON", file.display()))?;
        if let Some(c) = from_config(&doc, &file, registry)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Does a key of `auths` name `registry`? Keys may be `host`, `https://host/v1/`, ...
fn key_matches(key: &str, registry: &str) -> bool {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k);
    k == registry
        || (registry == "docker.io" && (k == "index.docker.io" || k == "registry-1.docker.io"))
}

fn from_config(doc: &Value, file: &Path, registry: &str) -> anyhow::Result<Option<Credential>> {
    let where_ = file.display();
    if let Some(helpers) = doc["credHelpers"].as_object() {
        for (k, v) in helpers {
            if key_matches(k, registry)
                && let Some(h) = v.as_str()
            {
                return helper(h, registry, &format!("credHelpers in {where_}"));
            }
        }
    }
    if let Some(auths) = doc["auths"].as_object() {
        for (k, v) in auths {
            if !key_matches(k, registry) {
                continue;
            }
            let source = format!("auths[\"{k}\"] in {where_}");
            if let Some(a) = v["auth"].as_str().filter(|a| !a.is_empty()) {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(a.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .with_context(|| format!("{source}: `auth` is not base64 of user:password"))?;
                let (u, p) = raw
                    .split_once(':')
                    .with_context(|| format!("{source}: `auth` is not base64 of user:password"))?;
                return Ok(Some(Credential {
                    username: u.to_string(),
                    password: p.to_string(),
                    source,
                }));
            }
            if let (Some(u), Some(p)) = (v["username"].as_str(), v["password"].as_str()) {
                return Ok(Some(Credential {
                    username: u.to_string(),
                    password: p.to_string(),
                    source,
                }));
            }
            if let Some(t) = v["identitytoken"].as_str() {
                return Ok(Some(Credential {
                    username: "<token>".into(),
                    password: t.to_string(),
                    source,
                }));
            }
        }
    }
    if let Some(h) = doc["credsStore"].as_str().filter(|h| !h.is_empty()) {
        return helper(h, registry, &format!("credsStore in {where_}"));
    }
    Ok(None)
}

/// `docker-credential-NAME get`, the server on stdin; "not found" is no credential.
fn helper(name: &str, registry: &str, how: &str) -> anyhow::Result<Option<Credential>> {
    let program = format!("docker-credential-{name}");
    let Ok(path) = which::which(&program) else {
        bail!("{how} names `{name}`, but {program} is not on PATH: install it or edit that file");
    };
    let out = crate::exec::Cmd::new(&path, format!("ask {program} for {registry}"))
        .arg("get")
        .stdin_bytes(registry.as_bytes().to_vec())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let msg = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        if msg.to_lowercase().contains("not found") {
            return Ok(None);
        }
        bail!(
            "{program} get failed for {registry}: {}",
            crate::exec::tail(&msg, 5)
        );
    }
    let v: Value = serde_json::from_str(&stdout)
        .with_context(|| format!("{program} get printed no JSON for {registry}"))?;
    let (Some(u), Some(p)) = (v["Username"].as_str(), v["Secret"].as_str()) else {
        bail!("{program} get printed no Username/Secret for {registry}");
    };
    Ok(Some(Credential {
        username: u.to_string(),
        password: p.to_string(),
        source: format!("{program} ({how})"),
    }))
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parse `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let (scheme, params) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    let mut realm = None;
    let mut service = None;
    // key="value" pairs; values may hold commas inside quotes.
    let mut rest = params.trim();
    while !rest.is_empty() {
        let Some((k, v)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (val, after) = if let Some(q) = v.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = v.find(',').unwrap_or(v.len());
            (&v[..end], &v[end..])
        };
        match k.as_str() {
            "realm" => realm = Some(val.to_string()),
            "service" => service = Some(val.to_string()),
            _ => {}
        }
        rest = after.trim_start_matches([',', ' ']);
    }
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: realm?,
            service,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="reg, one",scope="repository:a:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg, one".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer"), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn config_files() {
        let doc: Value = serde_json::json!({
            "auths": {
                "https://reg.example:5000/v1/": {"auth": base64::engine::general_purpose::STANDARD.encode("u:p:q")},
                "other": {"username": "a", "password": "b"}
            }
        });
        let f = Path::new("/x/config.json");
        let c = from_config(&doc, f, "reg.example:5000").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:q"));
        assert!(c.source.contains("/x/config.json"));
        assert!(from_config(&doc, f, "reg.example").unwrap().is_none());
        let c = from_config(&doc, f, "other").unwrap().unwrap();
        assert_eq!(c.username, "a");
        let bad = serde_json::json!({"auths": {"h": {"auth": "!!"}}});
        assert!(from_config(&bad, f, "h").is_err());
    }
}
