//! Where a built index goes, named as skopeo names transports: `oci:DIR[:TAG]`,
//! `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REPO:TAG]`.

use std::path::PathBuf;

use anyhow::Context;

use super::{BuiltIndex, archive, layout};
use crate::error::UsageError;
use crate::target::Platform;

/// A sink for a built index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// An OCI image layout directory; the tag becomes the `ref.name` of its `index.json` entry.
    OciDir { dir: PathBuf, tag: Option<String> },
    /// The same layout in one tar file.
    OciArchive { file: PathBuf, tag: Option<String> },
    /// `docker load`'s format. It holds one image, so one platform: `platform`, else the only
    /// one, else the host's.
    DockerArchive {
        file: PathBuf,
        /// `repo:tag` given to the loaded image.
        reference: Option<String>,
        platform: Option<Platform>,
    },
}

impl std::fmt::Display for OutputSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, path, r) = match self {
            OutputSpec::OciDir { dir, tag } => ("oci", dir, tag),
            OutputSpec::OciArchive { file, tag } => ("oci-archive", file, tag),
            OutputSpec::DockerArchive {
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

impl OutputSpec {
    /// Does this output stream to standard output (`oci-archive:-`, `docker-archive:-`)?
    /// Reports then go to stderr, so the archive is all that stdout carries.
    pub fn is_stdout(&self) -> bool {
        match self {
            OutputSpec::OciDir { .. } => false,
            OutputSpec::OciArchive { file, .. } | OutputSpec::DockerArchive { file, .. } => {
                file.as_os_str() == "-"
            }
        }
    }
}

const FORMS: &str = "oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:REPO:TAG]";

/// Parse an output named as skopeo names it. As in skopeo, the path ends at the first `:`.
/// Parse `--output` values; `docker_platform` (a platform, short name or alias) picks the
/// one platform a docker-archive holds.
pub fn parse_outputs(
    outputs: &[String],
    docker_platform: Option<&str>,
) -> anyhow::Result<Vec<OutputSpec>> {
    let docker_platform = docker_platform
        .map(|p| {
            crate::target::Targets::builtin()
                .resolve(&[p.to_string()])
                .map(|mut t| t.remove(0).platform)
        })
        .transpose()?;
    let specs: Vec<OutputSpec> = outputs
        .iter()
        .map(|o| {
            let mut spec = parse_output(o)?;
            if let OutputSpec::DockerArchive { platform, .. } = &mut spec {
                platform.clone_from(&docker_platform);
            }
            // Checked now, before anything is built: a device, FIFO or directory there is a
            // usage error, not something to replace.
            match &spec {
                OutputSpec::OciArchive { file, .. } | OutputSpec::DockerArchive { file, .. } => {
                    archive::destination(file)?;
                }
                OutputSpec::OciDir { .. } => {}
            }
            Ok(spec)
        })
        .collect::<anyhow::Result<_>>()?;
    if specs.iter().filter(|s| s.is_stdout()).count() > 1 {
        return Err(
            UsageError("only one output can stream to standard output (`-`)".into()).into(),
        );
    }
    Ok(specs)
}

pub fn parse_output(s: &str) -> Result<OutputSpec, UsageError> {
    let Some((transport, rest)) = s.split_once(':') else {
        return Err(UsageError(format!(
            "output `{s}` has no transport: use {FORMS}"
        )));
    };
    let (path, tail) = match rest.split_once(':') {
        Some((p, t)) => (p, Some(t.to_string())),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(UsageError(format!("output `{s}` has no path: use {FORMS}")));
    }
    let tag_ok = |t: &Option<String>| match t {
        Some(t) if !layout::valid_ref_name(t) => Err(UsageError(format!(
            "`{t}` in output `{s}` is not a valid tag: use letters, digits and -._:@/+"
        ))),
        _ => Ok(()),
    };
    let path = PathBuf::from(path);
    match transport {
        "oci" => {
            tag_ok(&tail)?;
            Ok(OutputSpec::OciDir {
                dir: path,
                tag: tail,
            })
        }
        "oci-archive" => {
            tag_ok(&tail)?;
            Ok(OutputSpec::OciArchive {
                file: path,
                tag: tail,
            })
        }
        "docker-archive" => {
            let reference = tail.map(|r| archive::docker_reference(&r)).transpose()?;
            Ok(OutputSpec::DockerArchive {
                file: path,
                reference,
                platform: None,
            })
        }
        "docker" | "docker-daemon" | "containers-storage" | "dir" => Err(UsageError(format!(
            "output transport `{transport}:` is not supported yet: use {FORMS} (then `skopeo copy` it onward)"
        ))),
        _ => Err(UsageError(format!(
            "unknown output transport `{transport}:` in `{s}`: use {FORMS}"
        ))),
    }
}

/// Write a built index to a sink.
pub fn write_output(spec: &OutputSpec, index: &BuiltIndex) -> anyhow::Result<()> {
    match spec {
        OutputSpec::OciDir { dir, tag } => layout::write_oci_dir(dir, index, tag.as_deref()),
        OutputSpec::OciArchive { file, tag } => {
            archive::write_oci_archive(file, index, tag.as_deref())
        }
        OutputSpec::DockerArchive {
            file,
            reference,
            platform,
        } => archive::write_docker_archive(file, index, reference.as_deref(), platform.as_ref()),
    }
    .with_context(|| format!("writing {spec}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_skopeo_names() {
        assert_eq!(
            parse_output("oci:out/img:1.0").unwrap(),
            OutputSpec::OciDir {
                dir: "out/img".into(),
                tag: Some("1.0".into())
            }
        );
        assert_eq!(
            parse_output("oci:out").unwrap(),
            OutputSpec::OciDir {
                dir: "out".into(),
                tag: None
            }
        );
        assert_eq!(
            parse_output("oci-archive:/tmp/x.tar:latest").unwrap(),
            OutputSpec::OciArchive {
                file: "/tmp/x.tar".into(),
                tag: Some("latest".into())
            }
        );
        assert_eq!(
            parse_output("docker-archive:x.tar:hello:1.0").unwrap(),
            OutputSpec::DockerArchive {
                file: "x.tar".into(),
                reference: Some("hello:1.0".into()),
                platform: None
            }
        );
        assert_eq!(
            parse_output("docker-archive:x.tar:example.com:5000/team/hello").unwrap(),
            OutputSpec::DockerArchive {
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
            "docker://x/y",
            "docker-archive:x.tar:Bad:Ref",
        ] {
            assert!(parse_output(bad).is_err(), "{bad}");
        }
        let spec = parse_output("oci:d:t").unwrap();
        assert_eq!(spec.to_string(), "oci:d:t");
    }
}
