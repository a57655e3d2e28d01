//! The one grammar for naming where an image is, read or written, as skopeo names
//! transports: `oci:DIR[:TAG]` (alias `oci-layout:`), `oci-archive:FILE[:TAG]`,
//! `docker-archive:FILE[:REPO:TAG]`, `docker://HOST/REPO[:TAG][@sha256:…]` (a registry; the
//! `docker://` may be left out where the first component is a host, as docker reads names).
//! As in skopeo, the path ends at the first `:` after the transport. `--output`, `--base`,
//! `kiln inspect IMAGE`, `kiln index merge` and the readers all parse here.
//!
//! Adding a transport: a variant of [`ImageRef`], a row in [`TRANSPORTS`], an arm in
//! [`ImageRef::parse`] and in `Display`; then the sink in `output::write_output` and, if it
//! can be read, the source in `read::read_image`.

use std::path::PathBuf;

use super::layout;
use super::registry::reference::{self, Reference};
use crate::error::UsageError;
use crate::target::Platform;

/// Every transport name kiln knows, as written before the `:`.
/// A registry's is `docker://`, told apart by its `//` (see [`is_image_ref`]).
pub const TRANSPORTS: &[&str] = &["oci", "oci-layout", "oci-archive", "docker-archive"];

/// How the forms are spelled in error messages.
pub const FORMS: &str = "oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REPO:TAG] or docker://HOST/REPO[:TAG]";

/// Where an image is (or goes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// An OCI image layout directory; the tag is the `org.opencontainers.image.ref.name` of
    /// its `index.json` entry.
    OciDir { dir: PathBuf, tag: Option<String> },
    /// The same layout in one tar file.
    OciArchive { file: PathBuf, tag: Option<String> },
    /// `docker load`'s format. It holds one image, so one platform.
    DockerArchive {
        file: PathBuf,
        /// `repo:tag` given to the loaded image (normalised: `latest` when untagged).
        /// Reading ignores it: an archive holds one image.
        reference: Option<String>,
        /// When writing: the platform it holds (`--docker-platform`); `None` = the only
        /// one, else this machine's. Never set by parsing.
        platform: Option<Platform>,
    },
    /// An image in an OCI distribution registry: written by a push (tags last), read
    /// through kiln's blob cache.
    Registry(Reference),
}

/// Whether `s` names an image (starts with a known transport) rather than a file.
pub fn is_image_ref(s: &str) -> bool {
    // A registry image counts only as `docker://…` here: `dist.v2/app` is a file path.
    s.starts_with("docker://")
        || s.split_once(':')
            .is_some_and(|(t, _)| TRANSPORTS.contains(&t))
}

impl ImageRef {
    /// Does this output stream to standard output (`oci-archive:-`, `docker-archive:-`)?
    /// Reports then go to stderr, so the archive is all that stdout carries.
    pub fn is_stdout(&self) -> bool {
        match self {
            ImageRef::OciDir { .. } | ImageRef::Registry(_) => false,
            ImageRef::OciArchive { file, .. } | ImageRef::DockerArchive { file, .. } => {
                file.as_os_str() == "-"
            }
        }
    }

    /// Parse `TRANSPORT:PATH[:REST]` or a registry reference. `what` names the value in
    /// errors ("output", "image", "base"). An output in a registry names a tag, not a digest.
    pub fn parse(s: &str, what: &str) -> Result<ImageRef, UsageError> {
        if reference::is_registry_ref(s) {
            let r = reference::parse(s)?;
            if what == "output" && r.digest.is_some() {
                return Err(UsageError(format!(
                    "{what} `{s}`: a push names a tag (or none, with --push-by-digest), not a digest"
                )));
            }
            return Ok(ImageRef::Registry(r));
        }
        let Some((transport, rest)) = s.split_once(':') else {
            return Err(UsageError(format!(
                "{what} `{s}` has no transport: use {FORMS}"
            )));
        };
        let (path, tail) = match rest.split_once(':') {
            Some((p, t)) => (p, Some(t.to_string())),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(UsageError(format!("{what} `{s}` has no path: use {FORMS}")));
        }
        let tag = |t: Option<String>| match t {
            Some(t) if !layout::valid_ref_name(&t) => Err(UsageError(format!(
                "`{t}` in {what} `{s}` is not a valid tag: use letters, digits and -._:@/+"
            ))),
            t => Ok(t),
        };
        let path = PathBuf::from(path);
        match transport {
            "oci" | "oci-layout" => Ok(ImageRef::OciDir {
                dir: path,
                tag: tag(tail)?,
            }),
            "oci-archive" => Ok(ImageRef::OciArchive {
                file: path,
                tag: tag(tail)?,
            }),
            "docker-archive" => Ok(ImageRef::DockerArchive {
                file: path,
                reference: tail.map(|r| docker_reference(&r)).transpose()?,
                platform: None,
            }),
            "docker" => Err(UsageError(format!(
                "{what} `{s}`: a registry image is written docker://HOST/REPO[:TAG]"
            ))),
            "docker-daemon" | "containers-storage" | "dir" => Err(UsageError(format!(
                "transport `{transport}:` is not supported yet: use {FORMS} (then `skopeo copy` it onward)"
            ))),
            _ => Err(UsageError(format!(
                "unknown transport `{transport}:` in {what} `{s}`: use {FORMS}"
            ))),
        }
    }
}

impl std::str::FromStr for ImageRef {
    type Err = UsageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s, "image")
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, path, r) = match self {
            ImageRef::Registry(r) => return write!(f, "docker://{r}"),
            ImageRef::OciDir { dir, tag } => ("oci", dir, tag),
            ImageRef::OciArchive { file, tag } => ("oci-archive", file, tag),
            ImageRef::DockerArchive {
                file, reference, ..
            } => ("docker-archive", file, reference),
        };
        write!(f, "{kind}:{}", path.display())?;
        if let Some(r) = r {
            write!(f, ":{r}")?;
        }
        Ok(())
    }
}

/// `repo[:tag]` → `repo:tag` (tag `latest` when missing), checked as Docker checks it.
pub fn docker_reference(r: &str) -> Result<String, UsageError> {
    let bad = |why: &str| {
        UsageError(format!(
            "`{r}` is not a docker image reference ({why}): use REPO:TAG, e.g. hello:1.0 or example.com/team/hello:latest"
        ))
    };
    if r.contains('@') {
        return Err(bad("a docker archive takes a tag, not a digest"));
    }
    let (name, tag) = match r.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (r, "latest"),
    };
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !tag_ok {
        return Err(bad("bad tag"));
    }
    let comps: Vec<&str> = name.split('/').collect();
    for (i, c) in comps.iter().enumerate() {
        let registry =
            i == 0 && comps.len() > 1 && (c.contains('.') || c.contains(':') || *c == "localhost");
        let ok = if registry {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ".-:".contains(ch))
        } else {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if !ok {
            return Err(bad(
                "repository names are lower-case letters, digits and ._-",
            ));
        }
    }
    Ok(format!("{name}:{tag}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ImageRef, UsageError> {
        ImageRef::parse(s, "image")
    }

    #[test]
    fn parses_skopeo_names() {
        assert_eq!(
            parse("oci:out/img:1.0").unwrap(),
            ImageRef::OciDir {
                dir: "out/img".into(),
                tag: Some("1.0".into())
            }
        );
        assert_eq!(parse("oci-layout:out").unwrap(), parse("oci:out").unwrap());
        assert_eq!(
            parse("oci:out").unwrap(),
            ImageRef::OciDir {
                dir: "out".into(),
                tag: None
            }
        );
        assert_eq!(
            parse("oci-archive:/tmp/x.tar:latest").unwrap(),
            ImageRef::OciArchive {
                file: "/tmp/x.tar".into(),
                tag: Some("latest".into())
            }
        );
        assert_eq!(
            parse("docker-archive:x.tar:hello:1.0").unwrap(),
            ImageRef::DockerArchive {
                file: "x.tar".into(),
                reference: Some("hello:1.0".into()),
                platform: None
            }
        );
        assert_eq!(
            parse("docker-archive:x.tar:example.com:5000/team/hello").unwrap(),
            ImageRef::DockerArchive {
                file: "x.tar".into(),
                reference: Some("example.com:5000/team/hello:latest".into()),
                platform: None
            }
        );
        for bad in [
            "out",
            "oci:",
            "oci:dir:bad tag",
            "tarball:x",
            "docker://",
            "docker:x",
            "docker://127.0.0.1:5000/App",
            "docker-archive:x.tar:Bad:Ref",
            "nothing",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse("oci:d:t").unwrap().to_string(), "oci:d:t");
        let r = parse("docker://127.0.0.1:5000/team/app:1.0").unwrap();
        assert_eq!(r.to_string(), "docker://127.0.0.1:5000/team/app:1.0");
        assert_eq!(parse("127.0.0.1:5000/team/app:1.0").unwrap(), r);
        let d = format!("docker://reg.example/app@sha256:{}", "a".repeat(64));
        assert_eq!(parse(&d).unwrap().to_string(), d);
        assert!(ImageRef::parse(&d, "output").is_err());
        assert_eq!(
            parse("docker-archive:x.tar:hello").unwrap().to_string(),
            "docker-archive:x.tar:hello:latest"
        );
    }

    #[test]
    fn image_refs_are_told_from_paths() {
        for yes in [
            "oci:x",
            "oci-layout:x",
            "oci-archive:x.tar",
            "docker-archive:x",
            "docker://127.0.0.1:5000/app:1",
        ] {
            assert!(is_image_ref(yes), "{yes}");
        }
        for no in ["x", "./oci:x", "/tmp/a:b", "dist.v2/app"] {
            assert!(!is_image_ref(no), "{no}");
        }
    }

    #[test]
    fn docker_references() {
        assert_eq!(docker_reference("hello").unwrap(), "hello:latest");
        assert_eq!(docker_reference("hello:1.0").unwrap(), "hello:1.0");
        assert_eq!(
            docker_reference("localhost:5000/a/b").unwrap(),
            "localhost:5000/a/b:latest"
        );
        for bad in ["Hello:1", "a@sha256:00", "a:-x", "a//b", "a:", "/a"] {
            assert!(docker_reference(bad).is_err(), "{bad}");
        }
    }
}
