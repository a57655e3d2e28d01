//! The C compiler / linker wrapper. Build tools call a tiny per-target script, which calls
//! back into `kiln zig-cc`; here the arguments are rewritten (flags zig rejects, rustc's
//! self-contained crt objects) by a pure, table-driven function, and zig is exec'd.

mod rules;

use std::path::PathBuf;

use rules::{Action, RULES};

/// Which tool a wrapper stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ZigMode {
    Cc,
    Cxx,
    Ar,
    Ranlib,
}

/// One wrapper call: which zig, for which target, as which tool, with what arguments.
#[derive(Debug, Clone)]
pub struct ZigCc {
    /// The zig executable.
    pub zig: PathBuf,
    /// zig target triple.
    pub target: String,
    /// `-mcpu` value.
    pub cpu: Option<String>,
    pub mode: ZigMode,
    /// The arguments the build tool passed.
    pub args: Vec<String>,
}

/// What every zig cc / c++ call gets before the build's own flags (as cargo-zigbuild does).
pub const NO_SANITIZE: &str = "-fno-sanitize=all";

/// The full zig command line (without the zig executable) for one wrapper call.
pub fn rewrite_args(
    mode: ZigMode,
    zig_target: &str,
    cpu: Option<&str>,
    args: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(args.len() + 4);
    match mode {
        ZigMode::Ar => {
            out.push("ar".into());
            out.extend(args.iter().cloned());
            return out;
        }
        ZigMode::Ranlib => {
            out.push("ranlib".into());
            out.extend(args.iter().cloned());
            return out;
        }
        ZigMode::Cc => out.push("cc".into()),
        ZigMode::Cxx => out.push("c++".into()),
    }
    out.push("-target".into());
    out.push(zig_target.into());
    if let Some(cpu) = cpu {
        out.push(format!("-mcpu={cpu}"));
    }
    // zig cc turns on UBSan (trapping) for C built without -O, which gcc and clang never
    // do: a configure test or an unoptimised Makefile build then links the sanitizer
    // runtime (slower to build, bigger binary) and traps on UB gcc would let pass.
    // First, so that a build's own -fsanitize=… still wins.
    out.push(NO_SANITIZE.into());
    let mut iter = args.iter();
    'args: while let Some(arg) = iter.next() {
        for rule in RULES {
            if rule.only_for.is_some_and(|p| !zig_target.starts_with(p))
                || rule.except_for.is_some_and(|p| zig_target.starts_with(p))
            {
                continue;
            }
            if !rule.matches.hits(arg) {
                continue;
            }
            match rule.action {
                Action::Drop => {}
                Action::DropWithValue => {
                    iter.next();
                }
                Action::Replace(with) => out.push(with.into()),
            }
            continue 'args;
        }
        out.push(arg.clone());
    }
    out
}

/// Expand `@file` arguments (rustc writes long linker command lines to a file, one
/// argument per line) so every argument goes through the rewrite.
fn expand_response_files(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        if let Some(file) = a.strip_prefix('@')
            && let Ok(text) = std::fs::read_to_string(file)
        {
            out.extend(text.lines().map(unescape_response_line));
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// rustc's response files escape `\` and newlines with a backslash.
fn unescape_response_line(line: &str) -> String {
    let mut s = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => s.push('\n'),
                Some(other) => s.push(other),
                None => s.push('\\'),
            }
        } else {
            s.push(c);
        }
    }
    s
}

/// `kiln zig-cc`: rewrite and exec zig. Only returns on failure to start zig.
pub fn run(call: &ZigCc) -> anyhow::Result<()> {
    let expanded = expand_response_files(&call.args);
    let zig_args = rewrite_args(call.mode, &call.target, call.cpu.as_deref(), &expanded);
    crate::exec::replace_process(&call.zig, &zig_args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    /// (mode, zig target, cpu, input, expected output)
    type Case = (
        ZigMode,
        &'static str,
        Option<&'static str>,
        &'static [&'static str],
        &'static [&'static str],
    );

    const CASES: &[Case] = &[
        // cc-rs compile call
        (
            ZigMode::Cc,
            "aarch64-linux-musl",
            None,
            &[
                "-O3",
                "-fPIC",
                "--target=aarch64-unknown-linux-musl",
                "-c",
                "a.c",
            ],
            &[
                "cc",
                "-target",
                "aarch64-linux-musl",
                "-O3",
                "-fPIC",
                "-c",
                "a.c",
            ],
        ),
        // cpu is passed; two-argument target dropped
        (
            ZigMode::Cxx,
            "arm-linux-musleabihf",
            Some("generic+v7a"),
            &["-target", "armv7-unknown-linux-musleabihf", "-c", "a.cc"],
            &[
                "c++",
                "-target",
                "arm-linux-musleabihf",
                "-mcpu=generic+v7a",
                "-c",
                "a.cc",
            ],
        ),
        // rustc link call with self-contained crt objects and gcc_s
        (
            ZigMode::Cc,
            "x86_64-linux-musl",
            None,
            &[
                "-m64",
                "/r/lib/rustlib/x86_64-unknown-linux-musl/lib/self-contained/rcrt1.o",
                "/r/lib/rustlib/x86_64-unknown-linux-musl/lib/self-contained/crti.o",
                "main.o",
                "-lgcc_s",
                "-fuse-ld=lld",
                "-static-pie",
                "-o",
                "hello",
            ],
            &[
                "cc",
                "-target",
                "x86_64-linux-musl",
                "-m64",
                "main.o",
                "-lunwind",
                "-static-pie",
                "-o",
                "hello",
            ],
        ),
        // riscv: cc-rs's -march/-mabi go, other targets keep theirs
        (
            ZigMode::Cc,
            "riscv64-linux-musl",
            None,
            &["-march=rv64gc", "-mabi=lp64d", "-c", "x.c"],
            &["cc", "-target", "riscv64-linux-musl", "-c", "x.c"],
        ),
        (
            ZigMode::Cc,
            "x86_64-linux-musl",
            None,
            &["-march=native", "-c", "x.c"],
            &[
                "cc",
                "-target",
                "x86_64-linux-musl",
                "-march=native",
                "-c",
                "x.c",
            ],
        ),
        (
            ZigMode::Cc,
            "arm-linux-musleabihf",
            Some("arm1176jzf_s"),
            &["-march=armv6", "-mfpu=vfp", "-mfloat-abi=hard", "-c", "x.c"],
            &[
                "cc",
                "-target",
                "arm-linux-musleabihf",
                "-mcpu=arm1176jzf_s",
                "-mfloat-abi=hard",
                "-c",
                "x.c",
            ],
        ),
        // a .o path that is not rustc's self-contained one stays
        (
            ZigMode::Cc,
            "aarch64-linux-musl",
            None,
            &["/home/u/self-contained-app/crt1.o.d", "x.o"],
            &[
                "cc",
                "-target",
                "aarch64-linux-musl",
                "/home/u/self-contained-app/crt1.o.d",
                "x.o",
            ],
        ),
        // linker flags rustc passes for i686 and loongarch64 that zig rejects
        (
            ZigMode::Cc,
            "x86-linux-musl",
            Some("pentium4"),
            &["-m32", "-Wl,-melf_i386", "x.o"],
            &[
                "cc",
                "-target",
                "x86-linux-musl",
                "-mcpu=pentium4",
                "-m32",
                "x.o",
            ],
        ),
        (
            ZigMode::Cc,
            "loongarch64-linux-musl",
            None,
            &["-Wl,--no-rosegment", "-Wl,--as-needed", "x.o"],
            &[
                "cc",
                "-target",
                "loongarch64-linux-musl",
                "-Wl,--as-needed",
                "x.o",
            ],
        ),
        // ar and ranlib are passed through untouched
        (
            ZigMode::Ar,
            "aarch64-linux-musl",
            None,
            &["cq", "libx.a", "--target=x", "a.o"],
            &["ar", "cq", "libx.a", "--target=x", "a.o"],
        ),
        (
            ZigMode::Ranlib,
            "aarch64-linux-musl",
            None,
            &["libx.a"],
            &["ranlib", "libx.a"],
        ),
        // An amd64 host's Debian default CFLAGS/LDFLAGS, reaching an arm64 make build:
        // CET and the GCC LTO form go, the rest stays.
        (
            ZigMode::Cc,
            "aarch64-linux-musl",
            None,
            &[
                "-O2",
                "-flto=auto",
                "-ffat-lto-objects",
                "-fstack-protector-strong",
                "-fcf-protection",
                "-Wl,-Bsymbolic-functions",
                "-Wl,-z,relro",
                "-Wl,-z,pack-relative-relocs",
                "-c",
                "a.c",
            ],
            &[
                "cc",
                "-target",
                "aarch64-linux-musl",
                "-O2",
                "-flto",
                "-ffat-lto-objects",
                "-fstack-protector-strong",
                "-Wl,-z,relro",
                "-c",
                "a.c",
            ],
        ),
        // The same flags on x86 keep CET (and its TLS dialect); -flto=8 and jobserver become
        // -flto, thin stays.
        (
            ZigMode::Cc,
            "x86_64-linux-musl",
            None,
            &[
                "-fcf-protection=full",
                "-mtls-dialect=gnu2",
                "-flto=8",
                "-flto=jobserver",
                "-flto=thin",
                "-flto=",
            ],
            &[
                "cc",
                "-target",
                "x86_64-linux-musl",
                "-fcf-protection=full",
                "-mtls-dialect=gnu2",
                "-flto",
                "-flto",
                "-flto=thin",
                "-flto=",
            ],
        ),
        // An arm64 host's branch protection reaching x86 and 32-bit ARM goes; arm64 keeps it.
        (
            ZigMode::Cxx,
            "x86-linux-musl",
            Some("pentium4"),
            &["-mbranch-protection=standard", "-c", "a.cc"],
            &[
                "c++",
                "-target",
                "x86-linux-musl",
                "-mcpu=pentium4",
                "-c",
                "a.cc",
            ],
        ),
        (
            ZigMode::Cc,
            "arm-linux-musleabihf",
            Some("generic+v7a"),
            &[
                "-mbranch-protection=standard",
                "-mtls-dialect=gnu2",
                "-c",
                "a.c",
            ],
            &[
                "cc",
                "-target",
                "arm-linux-musleabihf",
                "-mcpu=generic+v7a",
                "-c",
                "a.c",
            ],
        ),
        (
            ZigMode::Cc,
            "aarch64-linux-musl",
            None,
            &["-mbranch-protection=standard", "-c", "a.c"],
            &[
                "cc",
                "-target",
                "aarch64-linux-musl",
                "-mbranch-protection=standard",
                "-c",
                "a.c",
            ],
        ),
    ];

    #[test]
    fn rewrite_table() {
        for (i, (mode, target, cpu, input, want)) in CASES.iter().enumerate() {
            let got = rewrite_args(*mode, target, *cpu, &v(input));
            let mut want = v(want);
            if matches!(mode, ZigMode::Cc | ZigMode::Cxx) {
                // every compiler call: -fno-sanitize=all right after -target (and -mcpu)
                let at = 3 + usize::from(cpu.is_some());
                want.insert(at, NO_SANITIZE.to_string());
            }
            assert_eq!(got, want, "case {i}: {input:?}");
        }
    }

    #[test]
    fn a_build_may_still_ask_for_a_sanitizer() {
        let got = rewrite_args(
            ZigMode::Cc,
            "x86_64-linux-musl",
            None,
            &v(&["-fsanitize=address", "-c", "a.c"]),
        );
        let ours = got.iter().position(|a| a == NO_SANITIZE).unwrap();
        let theirs = got.iter().position(|a| a == "-fsanitize=address").unwrap();
        assert!(
            ours < theirs,
            "the build's own flag must come later and win: {got:?}"
        );
    }

    #[test]
    fn trailing_target_flag_without_value_does_not_panic() {
        let got = rewrite_args(ZigMode::Cc, "x86_64-linux-musl", None, &v(&["-target"]));
        assert_eq!(got, v(&["cc", "-target", "x86_64-linux-musl", NO_SANITIZE]));
    }

    #[test]
    fn response_files_are_expanded_and_unescaped() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("args");
        std::fs::write(&f, "-o\nout\\\\x\n/x/self-contained/crt1.o\n").unwrap();
        let args = vec![format!("@{}", f.display()), "-lc".to_string()];
        let expanded = expand_response_files(&args);
        assert_eq!(
            expanded,
            v(&["-o", "out\\x", "/x/self-contained/crt1.o", "-lc"])
        );
        let got = rewrite_args(ZigMode::Cc, "aarch64-linux-musl", None, &expanded);
        assert_eq!(
            got,
            v(&[
                "cc",
                "-target",
                "aarch64-linux-musl",
                NO_SANITIZE,
                "-o",
                "out\\x",
                "-lc"
            ])
        );
        // A missing response file is passed on for zig to report.
        let missing = v(&["@/nonexistent/kiln"]);
        assert_eq!(expand_response_files(&missing), missing);
    }
}
