//! Targets: one row of `toolchains/targets.toml` per platform, and OCI platform strings.
//! The table is compiled into kiln so an installed binary needs no data files; adding a
//! target is a TOML edit.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The target table shipped with kiln.
pub const TARGETS_TOML: &str = include_str!("../toolchains/targets.toml");

/// An OCI platform: `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The directory name used under `dist/`: `linux-arm-v7`.
    pub fn dir_name(&self) -> String {
        self.to_string().replace('/', "-")
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: Some(variant.to_string()),
                })
            }
            _ => Err(format!(
                "`{s}` is not an OCI platform (expected os/arch[/variant], e.g. linux/arm64)"
            )),
        }
    }
}

/// How the Rust standard library is obtained for a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RustStd {
    /// `rustup target add` gives a prebuilt std.
    Prebuilt,
    /// No prebuilt std: `cargo +nightly -Zbuild-std` with rust-src.
    BuildStd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    Little,
    Big,
}

/// One row of the target table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Short name: `arm64`, `armv7`.
    pub name: String,
    /// OCI platform string, parsed.
    #[serde(with = "platform_str")]
    pub platform: Platform,
    /// Other names accepted by `--platform`.
    #[serde(default)]
    pub aliases: Vec<String>,
    pub rust_triple: String,
    pub rust_std: RustStd,
    /// Extra rustc flags for this target (e.g. a baseline ISA), before the user's.
    #[serde(default)]
    pub rust_flags: Option<String>,
    pub zig_triple: String,
    /// Passed to zig as `-mcpu=` when set.
    pub zig_cpu: Option<String>,
    pub goarch: String,
    pub goarm: Option<String>,
    pub go386: Option<String>,
    /// qemu-user name: `qemu-<qemu>-static`.
    pub qemu: String,
    /// ELF e_machine every artifact for this target must carry.
    pub elf_machine: u16,
    /// 32 or 64.
    pub elf_class: u8,
    pub endian: Endian,
}

mod platform_str {
    use super::Platform;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Platform, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Platform, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Target {
    /// `CARGO_TARGET_<TRIPLE>_LINKER`-style upper-case form of the Rust triple.
    pub fn rust_triple_env(&self) -> String {
        self.rust_triple.to_uppercase().replace(['-', '.'], "_")
    }

    /// Whether this target is the machine kiln runs on (no qemu needed).
    pub fn is_host(&self) -> bool {
        let host = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "riscv64" => "riscv64",
            "s390x" => "s390x",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "loongarch64" => "loong64",
            _ => "",
        };
        self.name == host
    }

    /// Whether this machine runs the target's binaries natively (amd64 runs 386 too).
    pub fn runs_natively(&self) -> bool {
        self.is_host() || (self.name == "386" && std::env::consts::ARCH == "x86_64")
    }
}

#[derive(Deserialize)]
struct TargetFile {
    target: Vec<Target>,
}

/// The target table.
#[derive(Debug, Clone)]
pub struct Targets {
    pub all: Vec<Target>,
}

impl Targets {
    /// The table compiled into kiln.
    pub fn builtin() -> Self {
        Self::parse(TARGETS_TOML).expect("toolchains/targets.toml is valid (checked by tests)")
    }

    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        let file: TargetFile = toml::from_str(text)?;
        Ok(Targets { all: file.target })
    }

    /// Find a target by platform string, short name or alias.
    pub fn find(&self, wanted: &str) -> Option<&Target> {
        let w = wanted.trim().to_ascii_lowercase();
        let w = w.strip_prefix("linux/").unwrap_or(&w).to_string();
        self.all.iter().find(|t| {
            let plat = t.platform.to_string();
            plat == wanted
                || plat.strip_prefix("linux/") == Some(w.as_str())
                || t.name == w
                || t.aliases
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(wanted) || a.eq_ignore_ascii_case(&w))
        })
    }

    /// Resolve a comma-separated `--platform` list (`all` expands to every target). Order is
    /// kept, duplicates dropped.
    pub fn resolve(&self, specs: &[String]) -> Result<Vec<Target>, UnknownPlatform> {
        let mut out: Vec<Target> = Vec::new();
        for spec in specs.iter().flat_map(|s| s.split(',')) {
            let spec = spec.trim();
            if spec.is_empty() {
                continue;
            }
            let found: Vec<&Target> = if spec == "all" {
                self.all.iter().collect()
            } else {
                match self.find(spec) {
                    Some(t) => vec![t],
                    None => {
                        return Err(UnknownPlatform {
                            given: spec.to_string(),
                            known: self.all.iter().map(|t| t.platform.to_string()).collect(),
                        });
                    }
                }
            };
            for t in found {
                if !out.iter().any(|o| o.name == t.name) {
                    out.push(t.clone());
                }
            }
        }
        Ok(out)
    }
}

/// A `--platform` value that names no target.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown platform `{given}`. Known platforms: {}. Short names (amd64, arm64, armv7, ...) and `all` work too; `kiln targets` lists them.",
    known.join(", ")
)]
pub struct UnknownPlatform {
    pub given: String,
    pub known: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses_and_names_are_unique() {
        let t = Targets::builtin();
        assert!(t.all.len() >= 9);
        let mut names: Vec<_> = t.all.iter().map(|t| t.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), t.all.len());
        for target in &t.all {
            assert!(
                target.elf_class == 32 || target.elf_class == 64,
                "{}",
                target.name
            );
            assert!(target.rust_triple.contains("linux-musl"), "{}", target.name);
        }
    }

    #[test]
    fn platform_strings_and_aliases_resolve() {
        let t = Targets::builtin();
        let cases = [
            ("linux/amd64", "amd64"),
            ("amd64", "amd64"),
            ("x86_64", "amd64"),
            ("linux/arm64", "arm64"),
            ("aarch64", "arm64"),
            ("linux/arm64/v8", "arm64"),
            ("linux/arm/v7", "armv7"),
            ("arm/v7", "armv7"),
            ("armv7", "armv7"),
            ("linux/arm/v6", "armv6"),
            ("linux/386", "386"),
            ("i686", "386"),
            ("linux/riscv64", "riscv64"),
            ("linux/ppc64le", "ppc64le"),
            ("linux/s390x", "s390x"),
            ("linux/loong64", "loong64"),
        ];
        for (given, want) in cases {
            assert_eq!(
                t.find(given).map(|t| t.name.as_str()),
                Some(want),
                "{given}"
            );
        }
        assert!(t.find("linux/mips").is_none());
        assert!(t.find("windows/amd64").is_none());
    }

    #[test]
    fn resolve_lists_and_all() {
        let t = Targets::builtin();
        let r = t
            .resolve(&["linux/amd64,arm64".into(), "amd64".into()])
            .unwrap();
        assert_eq!(
            r.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["amd64", "arm64"]
        );
        assert_eq!(t.resolve(&["all".into()]).unwrap().len(), t.all.len());
        let err = t.resolve(&["linux/mips".into()]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("linux/mips") && msg.contains("linux/arm/v7"),
            "{msg}"
        );
    }

    #[test]
    fn platform_parse_roundtrip() {
        for s in ["linux/amd64", "linux/arm/v7"] {
            assert_eq!(s.parse::<Platform>().unwrap().to_string(), s);
        }
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//".parse::<Platform>().is_err());
        assert_eq!(
            "linux/arm/v7".parse::<Platform>().unwrap().dir_name(),
            "linux-arm-v7"
        );
    }
}
