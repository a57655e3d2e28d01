//! Image settings → per-platform images, with kiln's defaults in one place: the user
//! (65532:65532, distroless's `nonroot`), where binaries go (`/usr/local/bin`) and which
//! binary is the entrypoint. `kiln build` (from `[image]`) and `kiln image` (from its flags)
//! both describe what they want as [`ImageSettings`] and get their images from here.

use std::collections::BTreeMap;
use std::path::Path;

pub use super::image::DEFAULT_USER;
use super::{ImageSpec, LayerEntry, PlatformImage};
use crate::target::Platform;

/// Where binaries go inside an image.
pub const DEFAULT_BIN_DIR: &str = "/usr/local/bin";

/// Image settings as configured; `None` / empty means kiln's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSettings {
    /// `uid[:gid]` or a name; default [`DEFAULT_USER`].
    pub user: Option<String>,
    /// The program and its first arguments; default: see [`ImageSettings::entrypoint`].
    /// `Some(vec![])` is an image without an entrypoint.
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Vec<String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `8080`, `8080/tcp`, `53/udp`.
    pub ports: Vec<String>,
    pub stop_signal: Option<String>,
    /// Annotations on the manifests and the index.
    pub annotations: BTreeMap<String, String>,
    /// Directory of the binaries; default [`DEFAULT_BIN_DIR`].
    pub bin_dir: Option<String>,
}

impl ImageSettings {
    /// The directory that holds the binaries.
    pub fn bin_dir(&self) -> &str {
        self.bin_dir.as_deref().unwrap_or(DEFAULT_BIN_DIR)
    }

    /// Where binary `name` lands in the image.
    pub fn bin_path(&self, name: &str) -> String {
        format!("{}/{name}", self.bin_dir().trim_end_matches('/'))
    }

    /// The entrypoint: as configured, else the only binary, else the one named like the
    /// package, else the first; none when there is no binary.
    pub fn entrypoint(&self, bins: &[&str], package: Option<&str>) -> Vec<String> {
        if let Some(e) = &self.entrypoint {
            return e.clone();
        }
        let name = match bins {
            [one] => Some(*one),
            _ => package
                .filter(|p| bins.contains(p))
                .or(bins.first().copied()),
        };
        name.map(|n| vec![self.bin_path(n)]).unwrap_or_default()
    }

    /// The image config for an image holding `bins` (entrypoint candidates, in order).
    pub fn spec(&self, bins: &[&str], package: Option<&str>) -> ImageSpec {
        ImageSpec {
            user: self
                .user
                .clone()
                .unwrap_or_else(|| DEFAULT_USER.to_string()),
            entrypoint: self.entrypoint(bins, package),
            cmd: self.cmd.clone(),
            env: self.env.clone(),
            workdir: self.workdir.clone(),
            labels: self.labels.clone(),
            exposed_ports: self.ports.clone(),
            stop_signal: self.stop_signal.clone(),
            annotations: self.annotations.clone(),
        }
    }

    /// One platform's image: each binary at [`bin_path`](Self::bin_path) (mode 0755), then
    /// `extra`; the entrypoint chosen among `bins`.
    pub fn platform_image(
        &self,
        platform: &Platform,
        binaries: &[(&str, &Path)],
        bins: &[&str],
        package: Option<&str>,
        extra: &[LayerEntry],
    ) -> PlatformImage {
        PlatformImage {
            platform: platform.clone(),
            entries: binaries
                .iter()
                .map(|(name, path)| LayerEntry::file(self.bin_path(name), *path, 0o755))
                .chain(extra.iter().cloned())
                .collect(),
            layers: Vec::new(),
            spec: self.spec(bins, package),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_the_entrypoint_rule() {
        let s = ImageSettings::default();
        assert_eq!(s.bin_path("app"), "/usr/local/bin/app");
        assert_eq!(s.spec(&[], None).user, "65532:65532");
        assert_eq!(s.entrypoint(&["a"], Some("b")), ["/usr/local/bin/a"]);
        assert_eq!(s.entrypoint(&["a", "b"], Some("b")), ["/usr/local/bin/b"]);
        assert_eq!(s.entrypoint(&["a", "b"], Some("c")), ["/usr/local/bin/a"]);
        assert_eq!(s.entrypoint(&["a", "b"], None), ["/usr/local/bin/a"]);
        assert!(s.entrypoint(&[], None).is_empty());
        let s = ImageSettings {
            bin_dir: Some("/app/".into()),
            entrypoint: Some(vec![]),
            user: Some("1000".into()),
            ..Default::default()
        };
        assert_eq!(s.bin_path("x"), "/app/x");
        assert!(s.entrypoint(&["x"], None).is_empty());
        assert_eq!(s.spec(&["x"], None).user, "1000");
    }
}
