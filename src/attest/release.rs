//! Release archives and checksums: `<name>-<version>-<platform>.tar.gz` (and `.zip`) with
//! the binary and the project's LICENSE*, README*, CHANGELOG*, the same bytes on every run
//! (sorted entries, fixed times and owners, gzip without a name or time), and a
//! `SHA256SUMS` that `sha256sum -c` accepts.

use std::io::Write;

use anyhow::Context;

use super::sbom::sha256_hex;

/// One file in an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFile {
    /// Path inside the archive, below the top directory.
    pub name: String,
    pub data: Vec<u8>,
    /// 0o755 for binaries, 0o644 otherwise.
    pub mode: u32,
}

/// Whether a project file belongs in a release archive (LICENSE*, COPYING*, README*,
/// CHANGELOG*, NOTICE*).
pub fn is_release_doc(file_name: &str) -> bool {
    let upper = file_name.to_ascii_uppercase();
    [
        "LICENSE",
        "LICENCE",
        "COPYING",
        "README",
        "CHANGELOG",
        "NOTICE",
    ]
    .iter()
    .any(|p| upper.starts_with(p))
}

fn sorted(files: &[ArchiveFile]) -> Vec<&ArchiveFile> {
    let mut v: Vec<&ArchiveFile> = files.iter().collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// A gzip-compressed tar: one top directory `top/`, entries sorted, mtime `mtime`, owner 0:0.
pub fn tar_gz(top: &str, files: &[ArchiveFile], mtime: u64) -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_mtime(mtime);
    dir.set_uid(0);
    dir.set_gid(0);
    dir.set_size(0);
    dir.set_cksum();
    tar.append_data(&mut dir, format!("{top}/"), std::io::empty())?;
    for f in sorted(files) {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(f.mode);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(f.data.len() as u64);
        h.set_cksum();
        tar.append_data(&mut h, format!("{top}/{}", f.name), f.data.as_slice())
            .with_context(|| format!("adding {} to the archive", f.name))?;
    }
    let tar = tar.into_inner()?;
    // No file name, mtime 0, OS "unknown": the header is the same everywhere.
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar)?;
    Ok(gz.finish()?)
}

/// MS-DOS date and time for a Unix time (zip's format; 1980 at the earliest).
fn dos_time(epoch: u64) -> (u16, u16) {
    let t = super::sbom::rfc3339(epoch.max(315_532_800));
    let n = |r: std::ops::Range<usize>| t[r].parse::<u16>().unwrap_or(0);
    let date = ((n(0..4) - 1980) << 9) | (n(5..7) << 5) | n(8..10);
    let time = (n(11..13) << 11) | (n(14..16) << 5) | (n(17..19) / 2);
    (time, date)
}

/// A zip archive with the same entries (deflated, Unix modes, fixed times).
pub fn zip(top: &str, files: &[ArchiveFile], mtime: u64) -> anyhow::Result<Vec<u8>> {
    let (time, date) = dos_time(mtime);
    let mut out: Vec<u8> = Vec::new();
    let mut central: Vec<u8> = Vec::new();
    let files = sorted(files);
    for f in &files {
        let name = format!("{top}/{}", f.name);
        let mut crc = flate2::Crc::new();
        crc.update(&f.data);
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&f.data)?;
        let deflated = enc.finish()?;
        let offset =
            u32::try_from(out.len()).context("zip archives over 4 GiB are not supported")?;
        let size =
            u32::try_from(f.data.len()).context("files over 4 GiB are not supported in zip")?;
        let csize = deflated.len() as u32;
        let mut local = Vec::new();
        local.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        local.extend_from_slice(&20u16.to_le_bytes()); // version needed
        local.extend_from_slice(&0u16.to_le_bytes()); // flags
        local.extend_from_slice(&8u16.to_le_bytes()); // deflate
        local.extend_from_slice(&time.to_le_bytes());
        local.extend_from_slice(&date.to_le_bytes());
        local.extend_from_slice(&crc.sum().to_le_bytes());
        local.extend_from_slice(&csize.to_le_bytes());
        local.extend_from_slice(&size.to_le_bytes());
        local.extend_from_slice(&(name.len() as u16).to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes()); // extra
        local.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&local);
        out.extend_from_slice(&deflated);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes()); // made by Unix
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&8u16.to_le_bytes());
        central.extend_from_slice(&time.to_le_bytes());
        central.extend_from_slice(&date.to_le_bytes());
        central.extend_from_slice(&crc.sum().to_le_bytes());
        central.extend_from_slice(&csize.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes()); // extra
        central.extend_from_slice(&0u16.to_le_bytes()); // comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&((0o100000 | f.mode) << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    Ok(out)
}

/// `SHA256SUMS`: `<hex>  <path>` per file, sorted by path (paths relative to its directory).
pub fn sha256sums(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let hashed: Vec<(String, String)> = files
        .iter()
        .map(|(p, d)| (p.clone(), sha256_hex(d)))
        .collect();
    sha256sums_hashed(&hashed)
}

/// [`sha256sums`] of files whose sha256 (lowercase hex) is known: (path, sha256).
pub fn sha256sums_hashed(files: &[(String, String)]) -> Vec<u8> {
    let mut lines: Vec<String> = files.iter().map(|(p, h)| format!("{h}  {p}\n")).collect();
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    lines.concat().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn files() -> Vec<ArchiveFile> {
        vec![
            ArchiveFile {
                name: "hello".into(),
                data: b"\x7fELF binary".to_vec(),
                mode: 0o755,
            },
            ArchiveFile {
                name: "LICENSE-MIT".into(),
                data: b"MIT".to_vec(),
                mode: 0o644,
            },
        ]
    }

    #[test]
    fn tar_gz_is_deterministic_and_sorted() {
        let a = tar_gz("hello-0.1.0-linux-arm64", &files(), 0).unwrap();
        let mut rev = files();
        rev.reverse();
        assert_eq!(a, tar_gz("hello-0.1.0-linux-arm64", &rev, 0).unwrap());
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(a.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        let mut ar = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "hello-0.1.0-linux-arm64/",
                "hello-0.1.0-linux-arm64/LICENSE-MIT",
                "hello-0.1.0-linux-arm64/hello"
            ]
        );
    }

    #[test]
    fn zip_layout() {
        let z = zip("top", &files(), 1700000000).unwrap();
        assert_eq!(&z[..4], b"PK\x03\x04");
        assert_eq!(&z[z.len() - 22..z.len() - 18], b"PK\x05\x06");
        assert_eq!(z, zip("top", &files(), 1700000000).unwrap());
    }

    #[test]
    fn sums_sorted_by_path() {
        let s = sha256sums(&[("b".into(), b"x".to_vec()), ("a".into(), b"".to_vec())]);
        let s = String::from_utf8(s).unwrap();
        assert!(
            s.starts_with("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a\n")
        );
        assert_eq!(s.lines().count(), 2);
    }

    #[test]
    fn release_docs() {
        assert!(is_release_doc("LICENSE-APACHE"));
        assert!(is_release_doc("README.md"));
        assert!(is_release_doc("CHANGELOG.md"));
        assert!(!is_release_doc("Cargo.toml"));
    }
}
