//! Where a built index goes: `--output` values parsed by the transport grammar
//! (`transport.rs`) and the sink each one names.

use anyhow::Context;

use super::transport::ImageRef;
use super::{BuiltIndex, archive, layout};
use crate::error::UsageError;

/// A sink for a built index: an [`ImageRef`] (the one transport grammar, `transport.rs`).
pub type OutputSpec = ImageRef;

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

/// Parse one `--output` value.
pub fn parse_output(s: &str) -> Result<OutputSpec, UsageError> {
    ImageRef::parse(s, "output")
}

/// Write a built index to a sink.
pub fn write_output(spec: &OutputSpec, index: &BuiltIndex) -> anyhow::Result<()> {
    write_output_with(spec, index, &[])
}

/// Write a built index to a sink with OCI 1.1 referrers (SBOMs, provenance) attached;
/// a docker-archive has no place for them and gets the images only.
pub fn write_output_with(
    spec: &OutputSpec,
    index: &BuiltIndex,
    referrers: &[super::referrers::Referrer],
) -> anyhow::Result<()> {
    match spec {
        OutputSpec::OciDir { dir, tag } => {
            layout::write_oci_dir_with(dir, index, tag.as_deref(), referrers)
        }
        OutputSpec::OciArchive { file, tag } => {
            archive::write_oci_archive_with(file, index, tag.as_deref(), referrers)
        }
        OutputSpec::DockerArchive {
            file,
            reference,
            platform,
        } => archive::write_docker_archive(file, index, reference.as_deref(), platform.as_ref()),
    }
    .with_context(|| format!("writing {spec}"))
}
