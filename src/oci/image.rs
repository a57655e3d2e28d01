//! One platform's image config and manifest, and the multi-platform index, as OCI
//! image-spec v1.1 documents built with oci-spec's types and written as canonical JSON.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use anyhow::Context;
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, HistoryBuilder, ImageConfiguration,
    ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType, Os,
    PlatformBuilder, RootFsBuilder,
};

use super::json::to_canonical_vec;
use super::layer::Layer;
use super::{ImageSpec, Warning};
use crate::digest::sha256_digest;
use crate::target::Platform;

/// The user an image runs as when the spec names none: distroless's `nonroot`.
pub const DEFAULT_USER: &str = "65532:65532";
/// PATH in every image kiln writes unless the spec or the base sets one.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A serialized document and its digest.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(bytes: Vec<u8>) -> Self {
        Blob {
            digest: sha256_digest(&bytes),
            bytes,
        }
    }
}

/// `1700000000` → `2023-11-14T22:13:20Z` (UTC, RFC 3339).
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86400) as i64;
    let secs = epoch % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn digest(d: &str) -> anyhow::Result<Digest> {
    Digest::from_str(d).with_context(|| format!("`{d}` is not a valid digest"))
}

/// A descriptor with fields as kiln writes them.
pub fn descriptor(
    media_type: &str,
    digest_str: &str,
    size: u64,
    platform: Option<&Platform>,
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<Descriptor> {
    let mut b = DescriptorBuilder::default()
        .media_type(MediaType::from(media_type))
        .digest(digest(digest_str)?)
        .size(size);
    if let Some(p) = platform {
        let mut pb = PlatformBuilder::default()
            .os(Os::from(p.os.as_str()))
            .architecture(Arch::from(p.architecture.as_str()));
        if let Some(v) = &p.variant {
            pb = pb.variant(v.clone());
        }
        b = b.platform(pb.build()?);
    }
    if !annotations.is_empty() {
        b = b.annotations(to_hash(annotations));
    }
    Ok(b.build()?)
}

fn to_hash(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The user, and a warning when the image will run as root.
pub fn effective_user(spec: &ImageSpec) -> (String, Option<Warning>) {
    let user = spec.user.trim();
    if user.is_empty() {
        return (DEFAULT_USER.to_string(), None);
    }
    let name = user.split(':').next().unwrap_or("");
    let warning = (name == "root" || name == "0").then(|| {
        Warning(format!(
            "the image runs as root (user `{user}`): a process that escapes the container is root on the host; drop --user to run as 65532:65532 (nonroot)"
        ))
    });
    (user.to_string(), warning)
}

/// `8080` → `8080/tcp`; `53/udp` stays.
pub fn normalize_port(p: &str) -> anyhow::Result<String> {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let n: u16 = num.parse().with_context(|| {
        format!("`{p}` is not a port: use NUMBER[/tcp|/udp|/sctp], e.g. 8080/tcp")
    })?;
    anyhow::ensure!(
        matches!(proto, "tcp" | "udp" | "sctp"),
        "`{p}`: the protocol must be tcp, udp or sctp"
    );
    Ok(format!("{n}/{proto}"))
}

/// Merge `KEY=value` lists: later keys replace earlier ones in place, new keys append.
pub fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for e in over {
        let key = e.split('=').next().unwrap_or(e);
        match out
            .iter_mut()
            .find(|o| o.split('=').next().unwrap_or(o) == key)
        {
            Some(slot) => *slot = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

/// Everything the image config is made of.
pub struct ConfigInput<'a> {
    pub platform: &'a Platform,
    pub spec: &'a ImageSpec,
    /// The base image's config, when there is a base image.
    pub base: Option<&'a ImageConfiguration>,
    /// Environment the base kind adds (SSL_CERT_FILE for distroless).
    pub base_env: &'a [String],
    /// All layers, base first.
    pub diff_ids: Vec<String>,
    /// One `created_by` per layer kiln adds (base history is kept as is).
    pub history: Vec<String>,
    /// `SOURCE_DATE_EPOCH`, when set.
    pub created: Option<u64>,
    /// Labels kiln adds (from the automatic annotations); the spec's labels win.
    pub auto_labels: &'a BTreeMap<String, String>,
}

/// The image config document.
pub fn config(input: &ConfigInput<'_>) -> anyhow::Result<(Blob, Vec<Warning>)> {
    let spec = input.spec;
    let mut warnings = Vec::new();
    let base_cfg = input.base.and_then(|b| b.config().as_ref());
    let (user, w) = effective_user(spec);
    warnings.extend(w);

    let runtime = runtime_config(input, base_cfg, user)?;
    let created = input.created.map(rfc3339);
    let mut history = input
        .base
        .and_then(|b| b.history().clone())
        .unwrap_or_default();
    for h in &input.history {
        let mut hb = HistoryBuilder::default()
            .created_by(h.clone())
            .comment("kiln".to_string());
        if let Some(c) = &created {
            hb = hb.created(c.clone());
        }
        history.push(hb.build()?);
    }

    let mut b = ImageConfigurationBuilder::default()
        .os(Os::from(input.platform.os.as_str()))
        .architecture(Arch::from(input.platform.architecture.as_str()))
        .config(runtime)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers".to_string())
                .diff_ids(input.diff_ids.clone())
                .build()?,
        );
    if let Some(v) = &input.platform.variant {
        b = b.variant(v.clone());
    }
    if let Some(c) = created {
        b = b.created(c);
    }
    if !history.is_empty() {
        b = b.history(history);
    }
    let cfg = b.build()?;
    Ok((Blob::new(to_canonical_vec(&cfg)?), warnings))
}

/// The config's `config` object: the spec's settings over the base's (environment merged,
/// ports and labels joined, entrypoint and cmd as a Dockerfile's ENTRYPOINT/CMD would).
fn runtime_config(
    input: &ConfigInput<'_>,
    base_cfg: Option<&oci_spec::image::Config>,
    user: String,
) -> anyhow::Result<oci_spec::image::Config> {
    let spec = input.spec;
    let mut env: Vec<String> = base_cfg
        .and_then(|c| c.env().clone())
        .unwrap_or_else(|| vec![DEFAULT_PATH.to_string()]);
    env = merge_env(&env, input.base_env);
    env = merge_env(&env, &spec.env);
    for e in &spec.env {
        anyhow::ensure!(
            e.contains('=') && !e.starts_with('='),
            "environment entry `{e}` is not KEY=value"
        );
    }

    let (entrypoint, cmd) = if spec.entrypoint.is_empty() && spec.cmd.is_empty() {
        (
            base_cfg.and_then(|c| c.entrypoint().clone()),
            base_cfg.and_then(|c| c.cmd().clone()),
        )
    } else {
        // As in a Dockerfile: a new ENTRYPOINT drops the base's CMD.
        let ep = (!spec.entrypoint.is_empty())
            .then(|| spec.entrypoint.clone())
            .or_else(|| base_cfg.and_then(|c| c.entrypoint().clone()));
        let cmd = (!spec.cmd.is_empty()).then(|| spec.cmd.clone());
        (ep, cmd)
    };

    let mut ports: Vec<String> = base_cfg
        .and_then(|c| c.exposed_ports().clone())
        .unwrap_or_default();
    for p in &spec.exposed_ports {
        ports.push(normalize_port(p)?);
    }
    ports.sort();
    ports.dedup();

    let mut labels: BTreeMap<String, String> = base_cfg
        .and_then(|c| c.labels().clone())
        .map(|l| l.into_iter().collect())
        .unwrap_or_default();
    labels.extend(
        input
            .auto_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    labels.extend(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())));

    let workdir = spec
        .workdir
        .clone()
        .or_else(|| base_cfg.and_then(|c| c.working_dir().clone()));
    let stop_signal = spec
        .stop_signal
        .clone()
        .or_else(|| base_cfg.and_then(|c| c.stop_signal().clone()));

    let mut cb = ConfigBuilder::default().user(user).env(env);
    if let Some(ep) = entrypoint {
        cb = cb.entrypoint(ep);
    }
    if let Some(c) = cmd {
        cb = cb.cmd(c);
    }
    if !ports.is_empty() {
        cb = cb.exposed_ports(ports);
    }
    if !labels.is_empty() {
        cb = cb.labels(to_hash(&labels));
    }
    if let Some(w) = workdir {
        cb = cb.working_dir(w);
    }
    if let Some(s) = stop_signal {
        cb = cb.stop_signal(s);
    }
    if let Some(v) = base_cfg.and_then(|c| c.volumes().clone()) {
        cb = cb.volumes(v);
    }

    Ok(cb.build()?)
}

/// A layer as a manifest sees it.
pub fn layer_descriptor(l: &Layer) -> anyhow::Result<Descriptor> {
    descriptor(&l.media_type, &l.digest, l.size, None, &BTreeMap::new())
}

/// The image manifest document.
pub fn manifest(
    config: &Blob,
    layers: &[Descriptor],
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<Blob> {
    let mut b = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig.as_ref(),
            &config.digest,
            config.bytes.len() as u64,
            None,
            &BTreeMap::new(),
        )?)
        .layers(layers.to_vec());
    if !annotations.is_empty() {
        b = b.annotations(to_hash(annotations));
    }
    Ok(Blob::new(to_canonical_vec(&b.build()?)?))
}

/// The image index document over per-platform manifests.
pub fn index(
    manifests: &[(Platform, &Blob)],
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<Blob> {
    let descs = manifests
        .iter()
        .map(|(p, m)| {
            descriptor(
                MediaType::ImageManifest.as_ref(),
                &m.digest,
                m.bytes.len() as u64,
                Some(p),
                &BTreeMap::new(),
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut b = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(descs);
    if !annotations.is_empty() {
        b = b.annotations(to_hash(annotations));
    }
    Ok(Blob::new(to_canonical_vec(&b.build()?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_platform_survives_oci_spec_types() {
        for t in crate::target::Targets::builtin().all {
            let d = descriptor(
                MediaType::ImageManifest.as_ref(),
                &sha256_digest(b""),
                0,
                Some(&t.platform),
                &BTreeMap::new(),
            )
            .unwrap();
            let v = serde_json::to_value(&d).unwrap();
            let p = &v["platform"];
            let back = Platform {
                os: p["os"].as_str().unwrap().to_string(),
                architecture: p["architecture"].as_str().unwrap().to_string(),
                variant: p["variant"].as_str().map(str::to_string),
            };
            assert_eq!(back, t.platform, "{}", t.name);
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1700000000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951782400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4102444799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn users_and_ports_and_env() {
        let mut spec = ImageSpec::default();
        assert_eq!(effective_user(&spec), (DEFAULT_USER.to_string(), None));
        spec.user = "root".into();
        assert!(effective_user(&spec).1.is_some());
        spec.user = "0:0".into();
        assert!(effective_user(&spec).1.is_some());
        spec.user = "1000:1000".into();
        assert!(effective_user(&spec).1.is_none());
        assert_eq!(normalize_port("8080").unwrap(), "8080/tcp");
        assert_eq!(normalize_port("53/udp").unwrap(), "53/udp");
        assert!(normalize_port("http").is_err());
        assert!(normalize_port("1/xyz").is_err());
        let env = merge_env(
            &["PATH=/bin".into(), "A=1".into()],
            &["A=2".into(), "B=3".into()],
        );
        assert_eq!(env, ["PATH=/bin", "A=2", "B=3"]);
    }

    #[test]
    fn config_has_the_spec_and_no_created_without_epoch() {
        let spec = ImageSpec {
            entrypoint: vec!["/usr/local/bin/hello".into()],
            cmd: vec!["--serve".into()],
            env: vec!["RUST_LOG=info".into()],
            workdir: Some("/data".into()),
            exposed_ports: vec!["8080".into(), "53/udp".into()],
            stop_signal: Some("SIGTERM".into()),
            labels: [("a".to_string(), "b".to_string())].into(),
            ..Default::default()
        };
        let platform: Platform = "linux/arm/v7".parse().unwrap();
        let input = ConfigInput {
            platform: &platform,
            spec: &spec,
            base: None,
            base_env: &[],
            diff_ids: vec![sha256_digest(b"")],
            history: vec!["kiln: add /usr/local/bin/hello".into()],
            created: None,
            auto_labels: &BTreeMap::new(),
        };
        let (blob, warnings) = config(&input).unwrap();
        assert!(warnings.is_empty());
        let v: serde_json::Value = serde_json::from_slice(&blob.bytes).unwrap();
        assert_eq!(v["architecture"], "arm");
        assert_eq!(v["variant"], "v7");
        assert_eq!(v["os"], "linux");
        assert!(v.get("created").is_none());
        let c = &v["config"];
        assert_eq!(c["User"], "65532:65532");
        assert_eq!(c["Entrypoint"][0], "/usr/local/bin/hello");
        assert_eq!(c["Cmd"][0], "--serve");
        assert_eq!(c["Env"][0], DEFAULT_PATH);
        assert_eq!(c["Env"][1], "RUST_LOG=info");
        assert_eq!(c["WorkingDir"], "/data");
        assert_eq!(c["StopSignal"], "SIGTERM");
        assert_eq!(c["Labels"]["a"], "b");
        assert_eq!(
            c["ExposedPorts"],
            serde_json::json!({"53/udp": {}, "8080/tcp": {}})
        );
        assert_eq!(v["rootfs"]["diff_ids"][0], sha256_digest(b""));
        assert!(v["history"][0].get("created").is_none());

        let with_date = ConfigInput {
            created: Some(1700000000),
            ..input
        };
        let v: serde_json::Value =
            serde_json::from_slice(&config(&with_date).unwrap().0.bytes).unwrap();
        assert_eq!(v["created"], "2023-11-14T22:13:20Z");
        assert_eq!(v["history"][0]["created"], "2023-11-14T22:13:20Z");
    }
}
