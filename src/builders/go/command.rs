//! The `go build` command for one target, and the GOFLAGS the user set that kiln merges
//! with its own flags instead of overriding them.

use std::path::Path;

use crate::builders::go::GoProject;
use crate::config::GoConfig;
use crate::exec::Cmd;
use crate::target::Target;
use crate::toolchain::Wrappers;
use crate::toolchain::go::{Go, GoEnv};

/// The build flags the user set in GOFLAGS that kiln would otherwise set itself. A flag on
/// `go build`'s command line replaces the GOFLAGS one, so kiln merges instead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserGoFlags {
    pub trimpath: bool,
    pub buildvcs: bool,
    pub ldflags: Option<String>,
    pub tags: Vec<String>,
    /// The user set CGO_LDFLAGS (in the environment, not GOFLAGS, but it is theirs too).
    pub cgo_ldflags: bool,
}

impl UserGoFlags {
    /// Parse GOFLAGS: space-separated `-flag[=value]` entries; values may be quoted.
    pub fn parse(goflags: &str) -> Self {
        let mut f = UserGoFlags::default();
        for word in split_quoted(goflags) {
            let word = word.trim_start_matches('-');
            let (name, value) = match word.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (word, None),
            };
            match name {
                "trimpath" => f.trimpath = true,
                "buildvcs" => f.buildvcs = true,
                "ldflags" => f.ldflags = value.map(str::to_string),
                "tags" => f.tags.extend(
                    value
                        .unwrap_or("")
                        .split([',', ' '])
                        .filter(|t| !t.is_empty())
                        .map(str::to_string),
                ),
                _ => {}
            }
        }
        f
    }
}

/// The user's GOFLAGS tags, then the config's (a command-line `-tags` replaces GOFLAGS').
pub(super) fn merged_tags(user: &UserGoFlags, config: &GoConfig) -> Vec<String> {
    let mut tags = user.tags.clone();
    for t in &config.tags {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    tags
}

/// Split on whitespace, keeping single- or double-quoted runs together (GOFLAGS quoting).
fn split_quoted(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// What every target's `go build` of one project shares.
#[derive(Clone, Copy)]
pub struct GoBuild<'a> {
    pub go: &'a Go,
    pub env: &'a GoEnv,
    /// The user's GOFLAGS, merged into kiln's flags.
    pub user: &'a UserGoFlags,
    pub project: &'a GoProject,
    pub config: &'a GoConfig,
}

/// The `go build` command for one target, writing the executables into `out`; `cgo`: the
/// zig wrappers when building with cgo.
pub fn build_command(b: GoBuild, target: &Target, cgo: Option<&Wrappers>, out: &Path) -> Cmd {
    let GoBuild {
        go,
        env,
        user,
        project,
        config,
    } = b;
    let bins: Vec<&str> = project.mains.iter().map(|m| m.bin.as_str()).collect();
    let mut cmd = Cmd::new(
        &go.path,
        format!("build {} for {}", bins.join(", "), target.platform),
    )
    .arg("build")
    .dir(&project.dir);
    if !user.trimpath {
        cmd = cmd.arg("-trimpath");
    }
    if !user.buildvcs {
        cmd = cmd.arg(format!("-buildvcs={}", config.buildvcs));
    }
    let mut ldflags: Vec<String> = Vec::new();
    if !config.debug {
        ldflags.push("-s -w".into());
    }
    if cgo.is_some() {
        // Go's own linker cannot link C objects statically; zig (as CC) can, with musl.
        ldflags.push("-linkmode=external -extldflags=-static".into());
    }
    ldflags.extend(user.ldflags.iter().cloned());
    ldflags.extend(config.ldflags.iter().cloned());
    if !ldflags.is_empty() {
        cmd = cmd.arg(format!("-ldflags={}", ldflags.join(" ")));
    }
    let tags = merged_tags(user, config);
    if !tags.is_empty() {
        cmd = cmd.arg(format!("-tags={}", tags.join(",")));
    }
    // A trailing slash makes `go build` write every main package into the directory.
    let mut out_arg = out.as_os_str().to_owned();
    out_arg.push("/");
    cmd = cmd.arg("-o").arg(out_arg);
    for m in &project.mains {
        cmd = cmd.arg(&m.import_path);
    }
    cmd = cmd
        .env("GOOS", "linux")
        .env("GOARCH", &target.goarch)
        .env("GOCACHE", &env.gocache)
        .env("GOMODCACHE", &env.gomodcache);
    cmd = match &target.goarm {
        Some(v) => cmd.env("GOARM", v),
        None => cmd.env_remove("GOARM"),
    };
    cmd = match &target.go386 {
        Some(v) => cmd.env("GO386", v),
        None => cmd.env_remove("GO386"),
    };
    match cgo {
        // CC/CXX are replaced even when the user set them: one compiler cannot serve every
        // CPU of a multi-platform build, and the wrappers are per target.
        Some(w) => {
            cmd = cmd
                .env("CGO_ENABLED", "1")
                .env("CC", &w.cc)
                .env("CXX", &w.cxx)
                .env("AR", &w.ar);
            // Go's default CGO_LDFLAGS is "-O2 -g", and zig lets that -g undo the -s that
            // `-ldflags -s` passes to the external link: drop -g so the binary is stripped.
            if !config.debug && !user.cgo_ldflags {
                cmd = cmd.env("CGO_LDFLAGS", "-O2");
            }
            cmd
        }
        None => cmd.env("CGO_ENABLED", "0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::go::tests::project;
    use crate::target::Targets;

    fn target(name: &str) -> Target {
        Targets::builtin().find(name).unwrap().clone()
    }

    #[test]
    fn goflags_are_parsed_with_quotes() {
        let f = UserGoFlags::parse(
            r#"-mod=vendor -trimpath "-ldflags=-X main.v=1 -linkmode=internal" -tags=a,b"#,
        );
        assert!(f.trimpath && !f.buildvcs);
        assert_eq!(f.ldflags.as_deref(), Some("-X main.v=1 -linkmode=internal"));
        assert_eq!(f.tags, ["a", "b"]);
        assert_eq!(UserGoFlags::parse(""), UserGoFlags::default());
    }

    fn line(cmd: &Cmd) -> String {
        cmd.command_line()
    }

    #[test]
    fn plain_build_command() {
        let go = Go {
            path: "/go/bin/go".into(),
            source: "PATH",
        };
        let env = GoEnv {
            gocache: "/c".into(),
            gomodcache: "/m".into(),
            ..Default::default()
        };
        let cfg = GoConfig {
            tags: vec!["netgo".into()],
            ..Default::default()
        };
        let cmd = build_command(
            GoBuild {
                go: &go,
                env: &env,
                user: &UserGoFlags::default(),
                project: &project(),
                config: &cfg,
            },
            &target("armv7"),
            None,
            Path::new("/o/armv7"),
        );
        let l = line(&cmd);
        assert!(
            l.contains("GOOS=linux GOARCH=arm GOCACHE=/c GOMODCACHE=/m GOARM=7 CGO_ENABLED=0"),
            "{l}"
        );
        assert!(
            l.ends_with(
                "/go/bin/go build -trimpath -buildvcs=false '-ldflags=-s -w' -tags=netgo -o /o/armv7/ github.com/acme/hello/v2"
            ),
            "{l}"
        );
        let cmd386 = build_command(
            GoBuild {
                go: &go,
                env: &env,
                user: &UserGoFlags::default(),
                project: &project(),
                config: &GoConfig::default(),
            },
            &target("386"),
            None,
            Path::new("/o"),
        );
        assert!(line(&cmd386).contains("GO386=sse2"), "{}", line(&cmd386));
    }

    #[test]
    fn cgo_build_command_links_statically_and_user_flags_merge() {
        let go = Go {
            path: "go".into(),
            source: "PATH",
        };
        let w = Wrappers::in_dir(Path::new("/w"));
        let user = UserGoFlags::parse("-trimpath -buildvcs=true -ldflags=-X=main.v=1 -tags=x");
        let stripped = build_command(
            GoBuild {
                go: &go,
                env: &GoEnv::default(),
                user: &UserGoFlags::default(),
                project: &project(),
                config: &GoConfig::default(),
            },
            &target("arm64"),
            Some(&w),
            Path::new("/o"),
        );
        assert!(
            line(&stripped).contains("CGO_LDFLAGS=-O2 "),
            "{}",
            line(&stripped)
        );
        let cfg = GoConfig {
            debug: true,
            tags: vec!["x".into(), "y".into()],
            ldflags: Some("-X main.w=2".into()),
            ..Default::default()
        };
        let cmd = build_command(
            GoBuild {
                go: &go,
                env: &GoEnv::default(),
                user: &user,
                project: &project(),
                config: &cfg,
            },
            &target("arm64"),
            Some(&w),
            Path::new("/o"),
        );
        let l = line(&cmd);
        assert!(l.contains("CGO_ENABLED=1 CC=/w/cc CXX=/w/cxx"), "{l}");
        assert!(
            l.contains(
                "go build '-ldflags=-linkmode=external -extldflags=-static -X=main.v=1 -X main.w=2' -tags=x,y -o"
            ),
            "{l}"
        );
        assert!(!l.contains("-trimpath") && !l.contains("-buildvcs"), "{l}");
        // debug: Go's own CGO_LDFLAGS (with -g) stay.
        assert!(!l.contains("CGO_LDFLAGS"), "{l}");
    }
}
