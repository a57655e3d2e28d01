//! Whiteouts (OCI image spec, "Representation of changes"): a layer hides what lower layers
//! put at a path with an empty file named `.wh.NAME` beside it, and everything lower layers
//! put in a directory with `.wh..wh..opq` inside it. One classifier for every reader of
//! layers: the inspector's file tree, `kiln debug`'s unpacking, the base image's account
//! files.

use anyhow::bail;

/// What a layer entry's file name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    /// An ordinary file, directory or link.
    Plain,
    /// `.wh..wh..opq`: the directory holding it loses everything lower layers put there.
    Opaque,
    /// `.wh.NAME`: NAME (file or whole directory) beside it is gone.
    Hide(&'a str),
}

/// Classify `name`, the last component of an entry's path. A whiteout that names no file
/// (`.wh.`, `.wh..`, `.wh...`) is an error: it could only reach outside its directory.
pub fn classify(name: &str) -> anyhow::Result<Entry<'_>> {
    if name == ".wh..wh..opq" {
        return Ok(Entry::Opaque);
    }
    match name.strip_prefix(".wh.") {
        None => Ok(Entry::Plain),
        Some("" | "." | "..") => bail!("`{name}` is a whiteout that names no file"),
        Some(hidden) => Ok(Entry::Hide(hidden)),
    }
}

/// Split a layer entry's path into its directory (relative, without `./` or a leading or
/// trailing `/`; empty for the root) and its last component.
pub fn split(path: &str) -> (&str, &str) {
    let path = path.trim_start_matches("./").trim_matches('/');
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(classify("passwd").unwrap(), Entry::Plain);
        assert_eq!(classify(".whatever").unwrap(), Entry::Plain);
        assert_eq!(classify(".wh..wh..opq").unwrap(), Entry::Opaque);
        assert_eq!(classify(".wh.passwd").unwrap(), Entry::Hide("passwd"));
        assert_eq!(classify(".wh..config").unwrap(), Entry::Hide(".config"));
        for bad in [".wh.", ".wh..", ".wh..."] {
            let e = classify(bad).unwrap_err().to_string();
            assert!(e.contains("names no file"), "{bad}: {e}");
        }
        assert_eq!(split("./etc/.wh.passwd"), ("etc", ".wh.passwd"));
        assert_eq!(split("/.wh.etc"), ("", ".wh.etc"));
        assert_eq!(split("usr/lib/"), ("usr", "lib"));
    }
}
