//! Image settings checked where they are read, so a typo is a usage error (exit 2) before
//! anything is built, not a config that runtimes reject (or misread) after a long build.

use crate::error::UsageError;

use super::ImageSpec;

/// Signal names a runtime accepts in `StopSignal` (with or without `SIG`).
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
    "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS",
];

fn usage(msg: String) -> UsageError {
    UsageError(msg)
}

/// Check every setting of `spec`; `has_passwd` says whether the image will have an
/// `/etc/passwd` to look a user name up in (`None`: unknown, e.g. a base image by reference).
pub fn image_spec(spec: &ImageSpec, has_passwd: Option<bool>) -> Result<(), UsageError> {
    user(&spec.user, has_passwd)?;
    if let Some(w) = &spec.workdir
        && !w.starts_with('/')
    {
        return Err(usage(format!(
            "workdir `{w}` is not absolute: runtimes resolve a relative workdir differently; \
             write it from the root, e.g. /app"
        )));
    }
    if let Some(s) = &spec.stop_signal {
        stop_signal(s)?;
    }
    if !spec.entrypoint.is_empty() && spec.entrypoint[0].trim().is_empty() {
        return Err(usage(
            "the entrypoint's first element (the program) is empty: name the program to run, \
             e.g. [\"/usr/local/bin/app\"]"
                .into(),
        ));
    }
    for p in &spec.exposed_ports {
        port(p)?;
    }
    for kv in &spec.env {
        match kv.split_once('=') {
            Some((k, _)) if !k.is_empty() && !k.contains('\0') => {}
            _ => {
                return Err(usage(format!(
                    "environment entry `{kv}` is not KEY=value with a non-empty KEY"
                )));
            }
        }
    }
    for k in spec.labels.keys().chain(spec.annotations.keys()) {
        if k.trim().is_empty() {
            return Err(usage(
                "a label or annotation has an empty key: give every label a name".into(),
            ));
        }
    }
    Ok(())
}

/// `uid`, `uid:gid`, `name` or `name:group`: ids are decimal below 2^32 - 1 (4294967295 is
/// "no id") without leading zeros; names are what useradd accepts. A name needs an
/// `/etc/passwd` in the image to be looked up in.
pub fn user(user: &str, has_passwd: Option<bool>) -> Result<(), UsageError> {
    if user.is_empty() {
        return Ok(());
    }
    let bad = |why: &str| {
        usage(format!(
            "user `{user}` is not valid ({why}): use UID[:GID] (e.g. 65532:65532) or a user \
             name from the image's /etc/passwd"
        ))
    };
    let parts: Vec<&str> = user.split(':').collect();
    if parts.len() > 2 {
        return Err(bad("more than one `:`"));
    }
    let mut names = false;
    for p in &parts {
        if p.is_empty() {
            return Err(bad("an empty part"));
        }
        if p.bytes().all(|b| b.is_ascii_digit()) {
            if p.len() > 1 && p.starts_with('0') {
                return Err(bad("an id with a leading zero"));
            }
            match p.parse::<u64>() {
                Ok(n) if n < u64::from(u32::MAX) => {}
                _ => return Err(bad("an id must be below 4294967295")),
            }
        } else {
            let ok = p.len() <= 32
                && !p.starts_with('-')
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                return Err(bad("a name may hold letters, digits and ._- only"));
            }
            names = true;
        }
    }
    if names && has_passwd == Some(false) {
        return Err(usage(format!(
            "user `{user}` is a name, but the image has no /etc/passwd to look it up in \
             (scratch base): use numeric ids such as 65532:65532, or the distroless base"
        )));
    }
    Ok(())
}

/// A signal name (`SIGTERM`, `TERM`, `SIGRTMIN+3`) or number (1-64).
pub fn stop_signal(s: &str) -> Result<(), UsageError> {
    let name = s.strip_prefix("SIG").unwrap_or(s);
    let ok = match s.parse::<u32>() {
        Ok(n) => (1..=64).contains(&n),
        Err(_) => {
            SIGNALS.contains(&name)
                || ["RTMIN", "RTMAX"].iter().any(|rt| {
                    name.strip_prefix(rt).is_some_and(|rest| {
                        rest.is_empty()
                            || rest
                                .strip_prefix(['+', '-'])
                                .and_then(|n| n.parse::<u32>().ok())
                                .is_some_and(|n| n <= 30)
                    })
                })
        }
    };
    if ok {
        Ok(())
    } else {
        Err(usage(format!(
            "stop signal `{s}` is not a signal: use a name such as SIGTERM or SIGINT, or a \
             number from 1 to 64"
        )))
    }
}

/// `N[/tcp|/udp|/sctp]` with N from 1 to 65535.
pub fn port(p: &str) -> Result<(), UsageError> {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let n_ok = num
        .parse::<u32>()
        .is_ok_and(|n| (1..=65535).contains(&n) && !num.starts_with('+'));
    if !n_ok || !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(usage(format!(
            "port `{p}` is not valid: use a number from 1 to 65535 and optionally /tcp, /udp \
             or /sctp, e.g. 8080/tcp"
        )));
    }
    Ok(())
}

/// Modes files and directories really have; used to tell a decimal slip from a choice.
const COMMON_MODES: &[u32] = &[
    0o400, 0o440, 0o444, 0o500, 0o550, 0o555, 0o600, 0o640, 0o644, 0o660, 0o664, 0o666, 0o700,
    0o710, 0o711, 0o750, 0o751, 0o755, 0o770, 0o775, 0o777, 0o1777, 0o2755, 0o2775, 0o4711, 0o4750,
    0o4755, 0o6755,
];

/// A file mode from a config file. TOML has octal literals (`0o644`); `mode = 644` is the
/// decimal number 644 = 0o1204 (sticky bit, odd permissions). A mode that is not a common
/// one while its decimal digits, read as octal, are (644 -> 0o644) is such a slip and is
/// refused with the fix; modes above 0o7777 do not exist.
pub fn mode(mode: u32, what: &str) -> Result<(), UsageError> {
    if mode > 0o7777 {
        return Err(usage(format!(
            "{what}: mode {mode} ({mode:#o}) is above 0o7777, which no file can have: write \
             the mode as an octal literal, e.g. mode = 0o644"
        )));
    }
    let as_octal = u32::from_str_radix(&mode.to_string(), 8).ok();
    if !COMMON_MODES.contains(&mode) && as_octal.is_some_and(|m| COMMON_MODES.contains(&m)) {
        return Err(usage(format!(
            "{what}: mode = {mode} is the decimal number {mode} ({mode:#o}), not 0o{mode}: \
             TOML reads numbers without a prefix as decimal; write mode = 0o{mode}"
        )));
    }
    Ok(())
}

/// A user given by name must exist in the base image it runs on: `name` in its
/// /etc/passwd, `group` in its /etc/group (numeric ids need no entry). Checked once the base
/// is read, still before anything is written.
pub fn user_in_base(
    user: &str,
    base: &str,
    files: &super::base::AccountFiles,
) -> Result<(), UsageError> {
    use super::base::BaseFile;
    let mut parts = user.split(':');
    let lookups = [
        (parts.next(), &files.passwd, "/etc/passwd", "user"),
        (parts.next(), &files.group, "/etc/group", "group"),
    ];
    for (part, file, path, what) in lookups {
        let Some(name) = part.filter(|p| !p.is_empty() && !p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let found = match file {
            BaseFile::Other => continue,
            BaseFile::Absent => false,
            BaseFile::File(bytes) => bytes
                .split(|&b| b == b'\n')
                .any(|line| line.split(|&b| b == b':').next() == Some(name.as_bytes())),
        };
        if !found {
            let has = if *file == BaseFile::Absent {
                format!("has no {path}")
            } else {
                format!("has no {what} `{name}` in {path}")
            };
            return Err(usage(format!(
                "user `{user}`: the base image {base} {has}, so a runtime cannot resolve it: \
                 use numeric ids (e.g. 65532:65532) or a {what} the base defines"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users() {
        for ok in [
            "",
            "0",
            "65532",
            "65532:65532",
            "nonroot",
            "app:app",
            "1000:staff",
        ] {
            assert!(user(ok, Some(true)).is_ok(), "{ok}");
        }
        for bad in [
            "00",
            "65532:",
            ":1",
            "a b",
            "4294967296",
            "4294967295",
            "1:2:3",
            "-x",
        ] {
            assert!(user(bad, Some(true)).is_err(), "{bad}");
        }
        assert!(user("nonroot", Some(false)).is_err());
        assert!(user("65532:65532", Some(false)).is_ok());
        assert!(user("nonroot", None).is_ok());
    }

    #[test]
    fn signals_ports_modes() {
        for ok in ["SIGTERM", "TERM", "9", "SIGRTMIN+3", "SIGRTMAX"] {
            assert!(stop_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["", "SIGFOO", "0", "65", "term", "SIGRTMIN+99"] {
            assert!(stop_signal(bad).is_err(), "{bad}");
        }
        for ok in ["1", "8080", "65535/udp", "53/sctp"] {
            assert!(port(ok).is_ok(), "{ok}");
        }
        for bad in ["0", "65536", "-1", "80/xyz", "http", "+80"] {
            assert!(port(bad).is_err(), "{bad}");
        }
        for ok in [0o644, 0o755, 0o4755, 0o1777, 420] {
            assert!(mode(ok, "f").is_ok(), "{ok:o}");
        }
        for bad in [644, 755, 0o10000, 600, 400, 1777] {
            assert!(mode(bad, "f").is_err(), "{bad}");
        }
    }
}
