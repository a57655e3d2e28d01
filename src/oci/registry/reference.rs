//! Registry references as docker and skopeo spell them: `[docker://]HOST[:PORT]/REPO[:TAG][@sha256:HEX]`.

use crate::error::UsageError;

/// One image in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `host[:port]` as the user named it (`docker.io` for Docker Hub).
    pub registry: String,
    /// `team/app`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:…`.
    pub digest: Option<String>,
}

const FORM: &str =
    "docker://HOST[:PORT]/REPO[:TAG][@sha256:DIGEST], e.g. docker://127.0.0.1:5000/app:1.0";

impl Reference {
    /// `host/repo`.
    pub fn repo_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What the manifests endpoint is asked for: the digest if any, else the tag, else `latest`.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same repository with another digest and no tag.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Does `s` name a registry image: `docker://…`, or `HOST/…` whose first component is a
/// host (has a `.` or a `:port`, or is `localhost`)? Local transports (`oci:`…) never do.
pub fn is_registry_ref(s: &str) -> bool {
    if s.starts_with("docker://") {
        return true;
    }
    if ["oci:", "oci-layout:", "oci-archive:", "docker-archive:"]
        .iter()
        .any(|t| s.starts_with(t))
    {
        return false;
    }
    match s.split_once('/') {
        Some((host, rest)) => !rest.is_empty() && looks_like_host(host),
        None => false,
    }
}

/// `name.with.dots[:PORT]`, `localhost[:PORT]`, `name:PORT` or `[v6]:PORT`. A `:` must
/// be followed by a port, so `oci-arcive:x/y` (a mistyped transport) is no host.
fn looks_like_host(h: &str) -> bool {
    let port_ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = h.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((addr, tail)) => {
                !addr.is_empty()
                    && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
                    && (tail.is_empty() || tail.strip_prefix(':').is_some_and(port_ok))
            }
            None => false,
        };
    }
    let (name, port) = match h.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (h, None),
    };
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        && port.is_none_or(port_ok)
        && (name.contains('.') || port.is_some() || name == "localhost")
}

fn valid_component(c: &str) -> bool {
    // distribution's path component: lowercase alphanumerics joined by `.`, `_`, `__`, `-`s.
    !c.is_empty()
        && c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        && c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && !t.starts_with(['.', '-'])
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Parse `[docker://]HOST[:PORT]/REPO[:TAG][@sha256:HEX]`. A name without a host
/// (`library/alpine`, `alpine`) is on `docker.io`, as docker reads it.
pub fn parse(s: &str) -> Result<Reference, UsageError> {
    let bad = |why: &str| UsageError(format!("registry reference `{s}` {why}: use {FORM}"));
    let rest = s.strip_prefix("docker://").unwrap_or(s);
    if rest.is_empty() {
        return Err(bad("is empty"));
    }
    let (name, digest) = match rest.split_once('@') {
        Some((n, d)) => {
            if !valid_digest(d) {
                return Err(bad(&format!("has an invalid digest `{d}`")));
            }
            (n, Some(d.to_string()))
        }
        None => (rest, None),
    };
    // A tag is after the last `:` that follows the last `/` (a port comes before a `/`).
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name[last_slash..].rfind(':') {
        Some(i) => {
            let t = &name[last_slash + i + 1..];
            if !valid_tag(t) {
                return Err(bad(&format!("has an invalid tag `{t}`")));
            }
            (&name[..last_slash + i], Some(t.to_string()))
        }
        None => (name, None),
    };
    let (registry, repository) = match name.split_once('/') {
        Some((h, r)) if looks_like_host(h) => (h.to_string(), r.to_string()),
        Some(_) => ("docker.io".to_string(), name.to_string()),
        None => ("docker.io".to_string(), format!("library/{name}")),
    };
    if !repository.split('/').all(valid_component) {
        return Err(bad(&format!(
            "has an invalid repository `{repository}` (lowercase letters, digits and ._- between slashes)"
        )));
    }
    Ok(Reference {
        registry,
        repository,
        tag,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r = parse("docker://127.0.0.1:5000/team/app:1.0").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "team/app", Some("1.0"))
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("localhost:5000/app@{d}")).unwrap();
        assert_eq!((r.tag, r.digest.as_deref()), (None, Some(d.as_str())));
        let r = parse(&format!("reg.example/app:v1@{d}")).unwrap();
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.to_string(), format!("reg.example/app:v1@{d}"));
        let r = parse("alpine").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/alpine")
        );
        assert_eq!(parse("reg:5000/app").unwrap().manifest_ref(), "latest");
        for bad in [
            "docker://",
            "reg:5000/App:1",
            "reg:5000/app:bad tag",
            "reg:5000/app@sha256:12",
            "reg:5000/a//b",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(is_registry_ref("docker://x/y"));
        assert!(is_registry_ref("127.0.0.1:5000/app:1"));
        assert!(is_registry_ref("localhost/app"));
        assert!(!is_registry_ref("oci:dir:tag"));
        assert!(!is_registry_ref("dist/image"));
        assert!(!is_registry_ref("scratch"));
        assert!(!is_registry_ref("oci-arcive:x/y"));
        assert!(is_registry_ref("[::1]:5000/app"));
        assert!(!is_registry_ref("[::1]:x/app"));
    }
}
