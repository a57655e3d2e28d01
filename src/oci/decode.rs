//! The one place kiln decides how a layer (or a .deb member) is compressed and opens a
//! streaming decoder for it. The magic bytes decide, as container runtimes decide; a media
//! type or file name that claims a compression the bytes do not have is an error rather than
//! a silent guess. Decoders stream: memory is the gzip window (32 KiB) or the zstd window
//! (at most 2^27 bytes = 128 MiB, zstd's default decoding limit; frames asking for more are
//! refused), never the decompressed size.

use std::io::{BufRead, Read};

use anyhow::bail;

/// How a stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Plain,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// Largest zstd window accepted (log2): zstd's own default limit for decoding.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;

impl Codec {
    /// What a layer media type (OCI or Docker) or a file name says.
    pub fn declared(media_type_or_name: &str) -> Codec {
        let s = media_type_or_name;
        if s.ends_with("gzip") || s.ends_with(".gz") {
            Codec::Gzip
        } else if s.ends_with("zstd") || s.ends_with(".zst") {
            Codec::Zstd
        } else {
            Codec::Plain
        }
    }

    /// What the first bytes say.
    pub fn sniff(head: &[u8]) -> Codec {
        if head.starts_with(GZIP_MAGIC) {
            Codec::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Codec::Zstd
        } else {
            Codec::Plain
        }
    }
}

/// The codec of a stream starting with `head`, whose media type or name says `declared`.
pub fn choose(head: &[u8], declared: &str, what: &str) -> anyhow::Result<Codec> {
    let claimed = Codec::declared(declared);
    let found = Codec::sniff(head);
    if claimed != Codec::Plain && found != claimed {
        bail!(
            "{what} is declared {claimed:?}-compressed ({declared}) but its bytes are not \
             (they look {found:?}): the image is damaged or was written by a broken tool"
        );
    }
    Ok(found)
}

/// A streaming decoder over `r` (buffered, so the magic can be looked at without losing
/// it), chosen by [`choose`].
pub fn decoder<'a, R: BufRead + Send + 'a>(
    mut r: R,
    declared: &str,
    what: &str,
) -> anyhow::Result<Box<dyn Read + Send + 'a>> {
    let head = r.fill_buf()?;
    Ok(match choose(head, declared, what)? {
        Codec::Plain => Box::new(r),
        Codec::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Codec::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(r)?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            Box::new(d)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_decides_and_false_claims_fail() {
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, b"hello").unwrap();
            e.finish().unwrap()
        };
        let zs = zstd::stream::encode_all(&b"hello"[..], 3).unwrap();
        for (bytes, declared) in [
            (&gz[..], "application/vnd.oci.image.layer.v1.tar+gzip"),
            (&gz[..], "application/vnd.oci.image.layer.v1.tar"),
            (&zs[..], "application/vnd.oci.image.layer.v1.tar+zstd"),
            (&zs[..], "layer.tar"),
            (&b"hello"[..], "application/vnd.oci.image.layer.v1.tar"),
        ] {
            let mut out = String::new();
            decoder(bytes, declared, "t")
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            assert_eq!(out, "hello", "{declared}");
        }
        assert!(decoder(&b"hello"[..], "x+gzip", "t").is_err());
        assert!(decoder(&gz[..], "x+zstd", "t").is_err());
    }
}
