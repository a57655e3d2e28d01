//! The .deb reader behind the distroless base: an `ar` archive whose `data.tar.*` holds the
//! package's files and `control.tar.*` its control file. Packages are pinned by sha256
//! before they get here, so this reads trusted input.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, bail};

use super::EntrySource;

/// A member of an ar archive.
fn ar_member(deb: &[u8], prefix: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let mut a = ar::Archive::new(deb);
    while let Some(e) = a.next_entry() {
        let mut e = e.context("reading a .deb (ar archive)")?;
        let name = String::from_utf8_lossy(e.header().identifier())
            .trim_end_matches('/')
            .to_string();
        if name.starts_with(prefix) {
            let mut buf = Vec::new();
            e.read_to_end(&mut buf)?;
            return Ok((name, buf));
        }
    }
    bail!("the .deb has no {prefix}* member")
}

/// Decompress `data.tar.xz|zst|gz|tar` (xz by its name; the others through the decoder
/// every layer goes through).
fn untar_member(name: &str, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    if name.ends_with(".xz") {
        lzma_rs::xz_decompress(&mut std::io::BufReader::new(data), &mut out)
            .map_err(|e| anyhow::anyhow!("decompressing {name}: {e:?}"))?;
    } else if [".zst", ".gz", ".tar"].iter().any(|s| name.ends_with(s)) {
        super::decode::decoder(data, name, name)?
            .read_to_end(&mut out)
            .with_context(|| format!("decompressing {name}"))?;
    } else {
        bail!("unsupported .deb member {name}");
    }
    Ok(out)
}

/// A file, link or directory from a package's data.tar.
#[derive(Debug, Clone)]
pub struct DebEntry {
    /// Without leading `./` or `/`.
    pub path: String,
    pub mode: u32,
    pub source: EntrySource,
}

/// Every entry of a .deb's data.tar (hard links resolved to copies).
pub fn deb_entries(deb: &[u8]) -> anyhow::Result<Vec<DebEntry>> {
    let (name, data) = ar_member(deb, "data.tar")?;
    let tar = untar_member(&name, &data)?;
    let mut out = Vec::new();
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut a = tar::Archive::new(tar.as_slice());
    for e in a.entries()? {
        let mut e = e?;
        let path = String::from_utf8_lossy(&e.path_bytes())
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        if path.is_empty() {
            continue;
        }
        let mode = e.header().mode()? & 0o7777;
        let link = || -> anyhow::Result<String> {
            Ok(
                String::from_utf8_lossy(&e.link_name_bytes().context("a link without a target")?)
                    .into_owned(),
            )
        };
        let source = match e.header().entry_type() {
            tar::EntryType::Directory => EntrySource::Dir,
            tar::EntryType::Symlink => EntrySource::Symlink(link()?),
            tar::EntryType::Link => {
                let target = link()?;
                let target = target.trim_start_matches("./").trim_start_matches('/');
                EntrySource::Bytes(
                    contents
                        .get(target)
                        .with_context(|| {
                            format!("hard link {path} to {target}, which comes later")
                        })?
                        .clone(),
                )
            }
            t if t.is_file() => {
                let mut buf = Vec::new();
                e.read_to_end(&mut buf)?;
                contents.insert(path.clone(), buf.clone());
                EntrySource::Bytes(buf)
            }
            _ => continue,
        };
        out.push(DebEntry { path, mode, source });
    }
    Ok(out)
}

/// `Package`, `Version` and `Architecture` from a .deb's control file.
pub fn deb_control(deb: &[u8]) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(deb_control_text(deb)?
        .lines()
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// A .deb's control file as it is (one dpkg control paragraph).
pub fn deb_control_text(deb: &[u8]) -> anyhow::Result<String> {
    let (name, data) = ar_member(deb, "control.tar")?;
    let tar = untar_member(&name, &data)?;
    let mut a = tar::Archive::new(tar.as_slice());
    for e in a.entries()? {
        let mut e = e?;
        let path = e.path_bytes();
        let path = path.as_ref();
        if path == b"control" || path.ends_with(b"/control") {
            let mut text = String::new();
            e.read_to_string(&mut text)?;
            return Ok(text);
        }
    }
    bail!("the .deb has no control file")
}
