//! sha256, the one hash kiln uses: content addresses of blobs (`sha256:<hex>`), artifact
//! checksums and cache keys (`<hex>`). Every caller goes through here so the two spellings
//! cannot drift.

use sha2::{Digest as _, Sha256};

/// sha256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// sha256 of `data` as an OCI digest: `sha256:<hex>`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// An incremental sha256, for data that arrives in pieces (tar streams, downloads).
#[derive(Clone, Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn new() -> Self {
        Hasher(Sha256::new())
    }

    pub fn update(&mut self, data: impl AsRef<[u8]>) {
        self.0.update(data.as_ref());
    }

    /// The hash so far as lowercase hex.
    pub fn finish_hex(self) -> String {
        hex::encode(self.0.finalize())
    }

    /// The hash so far as an OCI digest, `sha256:<hex>`.
    pub fn finish_digest(self) -> String {
        format!("sha256:{}", self.finish_hex())
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_agree() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_hex(b""), empty);
        assert_eq!(sha256_digest(b""), format!("sha256:{empty}"));
        let mut h = Hasher::new();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.finish_digest(), sha256_digest(b"abc"));
    }
}
