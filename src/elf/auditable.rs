//! Rust dependency lists embedded by cargo-auditable: a `.dep-v0` section holding
//! zlib-compressed JSON (`{"packages":[{"name","version","source","kind","root"}…]}`).
//! Decompression is capped, so a zip bomb costs at most [`MAX_JSON`] bytes.

use std::io::Read;

use serde::{Deserialize, Serialize};

/// cargo-auditable's own reader caps the decompressed JSON at 8 MiB; so do we.
const MAX_JSON: u64 = 8 << 20;

/// One crate of the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditablePackage {
    pub name: String,
    pub version: String,
    /// `crates.io`, `git`, `local`, `registry` ...
    #[serde(default)]
    pub source: Option<String>,
    /// `build` for build-dependencies; absent (runtime) otherwise.
    #[serde(default)]
    pub kind: Option<String>,
    /// The package the binary was built from.
    #[serde(default)]
    pub root: bool,
}

#[derive(Deserialize)]
struct VersionInfo {
    packages: Vec<AuditablePackage>,
}

/// Decompress and parse `.dep-v0`.
pub fn parse(section: &[u8]) -> Result<Vec<AuditablePackage>, String> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(section)
        .take(MAX_JSON + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("not zlib data ({e})"))?;
    if json.len() as u64 > MAX_JSON {
        return Err(format!("more than {MAX_JSON} bytes of JSON"));
    }
    let info: VersionInfo =
        serde_json::from_slice(&json).map_err(|e| format!("not the expected JSON ({e})"))?;
    Ok(info.packages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zlib(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_packages() {
        let json = br#"{"packages":[{"name":"hello","version":"0.1.0","source":"local","root":true,"dependencies":[1]},{"name":"libc","version":"0.2.170","source":"crates.io"},{"name":"cc","version":"1.2.0","source":"crates.io","kind":"build"}]}"#;
        let p = parse(&zlib(json)).unwrap();
        assert_eq!(p.len(), 3);
        assert!(p[0].root);
        assert_eq!(p[1].name, "libc");
        assert_eq!(p[2].kind.as_deref(), Some("build"));
    }

    #[test]
    fn bombs_and_garbage_are_errors() {
        assert!(parse(b"not zlib").is_err());
        assert!(parse(&zlib(b"{}")).is_err());
        let bomb = zlib(&vec![b' '; (MAX_JSON + 10) as usize]);
        let err = parse(&bomb).unwrap_err();
        assert!(err.contains("more than"), "{err}");
    }
}
