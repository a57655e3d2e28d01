//! `kiln build` on real C projects with real zig, make, cmake and qemu-user: the bundled
//! Makefile example, a CMake project, a direct source list, the error paths (failing
//! command, no `output`, a Makefile that ignores CC), and (ignored, `cargo xtask e2e`)
//! every platform.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::*;

/// [`build_into`] for a project built with make (or a cmake that writes Makefiles); None
/// when make is missing (see `support::unavailable`).
fn build(project: &Path, platforms: &str, out: &Path, extra: &[&str]) -> Option<Output> {
    have_tool("make", "apt-get install -y make").then(|| build_into(project, platforms, out, extra))
}

/// Where kiln built `project` for `target` inside the shared target dir.
fn c_build_dir(project: &str, target: &str) -> PathBuf {
    let projects = shared_target_dir().join("kiln/c");
    let dir = std::fs::read_dir(&projects)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{project}-"))
        })
        .unwrap_or_else(|| panic!("no build directory for {project} in {}", projects.display()));
    dir.join(target)
}

#[test]
fn makefile_example_builds_for_amd64_arm64_armv6_armv7_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(out) = build(
        &example("hello-c"),
        "linux/amd64,linux/arm64,linux/arm/v6,linux/arm/v7",
        tmp.path(),
        &["--smoke"],
    ) else {
        return;
    };
    assert!(out.status.success(), "build failed: {}", stderr(&out));
    let err = stderr(&out);
    for (dir, arch, printed) in [
        ("linux-amd64", "amd64", "arch=x86_64 libc=musl"),
        ("linux-arm64", "arm64", "arch=aarch64 libc=musl"),
        ("linux-arm-v6", "arm", "arch=armv6 libc=musl"),
        ("linux-arm-v7", "arm", "arch=armv7 libc=musl"),
    ] {
        assert_static_for(&tmp.path().join(dir).join("hello-c"), arch);
        assert!(err.contains(printed), "{printed} missing from\n{err}");
    }
    // The build attributes say v6 and v7 (arm1176jzf-s is an ARMv6KZ core).
    let v6 = arm_cpu_arch(&tmp.path().join("linux-arm-v6/hello-c")).unwrap_or_default();
    let v7 = arm_cpu_arch(&tmp.path().join("linux-arm-v7/hello-c")).unwrap_or_default();
    assert!(v6.starts_with("v6"), "armv6 Tag_CPU_arch: {v6}");
    assert_eq!(v7, "v7");
    for v in ["v6", "v7"] {
        let bin = tmp.path().join(format!("linux-arm-{v}/hello-c"));
        assert_eq!(report(&bin).variant.as_deref(), Some(v));
    }

    // Each target built in its own copy of the project: the objects differ per CPU.
    let machine = |t: &str| {
        let obj = c_build_dir("hello-c", t).join("src/build/main.o");
        report(&obj).machine
    };
    assert_eq!(machine("amd64"), 62);
    assert_eq!(machine("arm64"), 183);
    // The project itself stays clean.
    assert!(!example("hello-c").join("build").exists());
}

#[test]
fn cmake_project_builds_for_arm64_and_runs() {
    if !have_tool("cmake", "apt-get install -y cmake") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(out) = build(&fixture("c-cmake"), "linux/arm64", tmp.path(), &["--smoke"]) else {
        return;
    };
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cmake ok: adler32(Wikipedia)=11e60398"),
        "{}",
        stderr(&out)
    );
    assert_static_for(&tmp.path().join("linux-arm64/cmake-hello"), "arm64");
    let toolchain =
        std::fs::read_to_string(c_build_dir("c-cmake", "arm64").join("toolchain.cmake")).unwrap();
    assert!(
        toolchain.contains("set(CMAKE_SYSTEM_PROCESSOR aarch64)"),
        "{toolchain}"
    );
}

#[test]
fn cmake_output_does_not_depend_on_where_the_project_is() {
    if !have_tool("cmake", "apt-get install -y cmake") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for copy in ["a", "somewhere/else/entirely"] {
        let project = tmp.path().join(copy).join("c-cmake");
        copy_dir(&fixture("c-cmake"), &project);
        let out = capture(
            kiln()
                .arg("build")
                .arg(&project)
                .args(["--platform", "linux/arm64", "--message-format", "json"])
                .arg("--out-dir")
                .arg(project.join("dist")),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let lines = json_lines(&out);
        let artifact = lines.iter().find(|v| v["reason"] == "artifact").unwrap();
        digests.push(artifact["sha256"].as_str().unwrap().to_string());
    }
    assert_eq!(
        digests[0], digests[1],
        "the build path leaked into the binary"
    );
}

#[test]
fn source_list_compiles_directly_with_defines_includes_and_libs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(out) = build(
        &fixture("c-sources"),
        "linux/amd64",
        tmp.path(),
        &["--smoke"],
    ) else {
        return;
    };
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("direct build ok: answer=42 hypotenuse=5.0"),
        "{}",
        stderr(&out)
    );
    assert_static_for(&tmp.path().join("linux-amd64/sources-hello"), "amd64");
}

/// Every compiler command of a source-list build holds a job token, the link included: with
/// `-j 1` and two targets building side by side, no two of them run at once (the trace's
/// READY..END spans, when each held its token, never overlap).
#[test]
fn source_list_compiles_and_links_within_the_job_limit() {
    if !have_zig() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace");
    let out = capture(
        kiln()
            .arg("build")
            .arg(fixture("c-sources"))
            .args(["--platform", "linux/amd64,linux/arm64", "-j", "1"])
            .arg("--target-dir")
            .arg(tmp.path().join("target"))
            .arg("--out-dir")
            .arg(tmp.path().join("dist"))
            .env("KILN_TRACE", &trace),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&trace).unwrap();
    // `START READY END TOKENS WHAT`
    let mut spans: Vec<(f64, f64, String)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(5, ' ').collect();
        let what = f[4];
        if what.starts_with("compile ") || what.starts_with("link ") {
            assert_eq!(f[3], "1", "ran without a job token: {line}");
            spans.push((
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                what.to_string(),
            ));
        }
    }
    let links = spans.iter().filter(|s| s.2.starts_with("link ")).count();
    assert_eq!(links, 2, "{text}");
    assert_eq!(spans.len(), 6, "{text}");
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "ran at once with -j 1: {w:?}");
    }
}

/// Two kiln builds of one C project into one target dir with other CFLAGS: the second waits
/// until the first has copied its binary out. Without the lock the second rebuilds in the
/// same per-target directory while the first is between make's end and its copy (a
/// debug-build hook), and the first ships the second's binary.
#[test]
fn a_second_c_build_in_the_same_target_dir_waits_for_the_first_to_copy_its_binary() {
    if !have_zig() || !have_tool("make", "apt-get install -y make") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("mark");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("main.c"),
        "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", MARK); return 0; }\n",
    )
    .unwrap();
    std::fs::write(
        project.join("Makefile"),
        "mark: main.c\n\t$(CC) $(CFLAGS) $(LDFLAGS) -o $@ main.c\n",
    )
    .unwrap();
    std::fs::write(
        project.join("kiln.toml"),
        "[c]\nbuild = \"make\"\noutput = \"mark\"\n",
    )
    .unwrap();
    let hold = tmp.path().join("hold");
    let build = |mark: &str| {
        let number = if mark == "first" { 1 } else { 2 };
        let mut cmd = kiln();
        cmd.arg("build")
            .arg(&project)
            .args(["--platform", "linux/amd64"])
            .arg("--target-dir")
            .arg(tmp.path().join("target"))
            .arg("--out-dir")
            .arg(tmp.path().join(mark))
            .env("CFLAGS", format!("-DMARK={number}"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    };
    let (first, second) = race_in_one_target_dir(
        build("first"),
        build("second"),
        &hold,
        std::time::Duration::from_secs(10),
    );
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(second.status.success(), "{}", stderr(&second));
    for (mark, number) in [("first", "1"), ("second", "2")] {
        let ran = run_ok(&mut std::process::Command::new(
            tmp.path().join(mark).join("linux-amd64/mark"),
        ));
        assert_eq!(
            stdout(&ran).trim(),
            number,
            "the {mark} build shipped another binary"
        );
    }
    assert!(
        stderr(&second).contains("waiting for another kiln build"),
        "{}",
        stderr(&second)
    );
}

/// zig cc on its own builds C without -O with UBSan in trap mode, which gcc and clang never
/// do: an unoptimised Makefile build would then die on a signed overflow gcc lets wrap.
/// kiln passes -fno-sanitize=all first (a build's own -fsanitize still wins).
#[test]
fn unoptimised_c_gets_no_sanitizer_it_did_not_ask_for() {
    if !have_tool("make", "apt-get install -y make") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("ub");
    std::fs::create_dir(&p).unwrap();
    std::fs::write(
        p.join("kiln.toml"),
        "[c]\nbuild = \"make\"\noutput = \"ub\"\n",
    )
    .unwrap();
    std::fs::write(p.join("Makefile"), "ub: ub.c\n\t$(CC) -O0 -o ub ub.c\n").unwrap();
    std::fs::write(
        p.join("ub.c"),
        "#include <limits.h>\n#include <stdio.h>\n\
         int main(int argc, char **argv) {\n  (void)argv;\n  int x = INT_MAX;\n  x += argc;\n\
         printf(\"wrapped=%d\\n\", x);\n  return 0;\n}\n",
    )
    .unwrap();
    let out = capture(
        kiln()
            .arg("build")
            .arg(&p)
            .args(["--platform", "linux/amd64", "--smoke"])
            .arg("--target-dir")
            .arg(tmp.path().join("target"))
            .arg("--out-dir")
            .arg(tmp.path().join("dist")),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("wrapped=-2147483648"),
        "{}",
        stderr(&out)
    );
}

/// An amd64 Debian host's default CFLAGS/LDFLAGS (dpkg-buildflags) in the environment reach
/// every target's compiler; the wrapper drops or rewrites the ones zig refuses for arm64.
#[test]
fn host_distribution_flags_do_not_break_a_cross_build() {
    if !have_tool("make", "apt-get install -y make") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = capture(
        kiln()
            .arg("build")
            .arg(example("hello-c"))
            .args(["--platform", "linux/arm64", "--smoke"])
            .arg("--target-dir")
            .arg(tmp.path().join("target"))
            .arg("--out-dir")
            .arg(tmp.path().join("dist"))
            .env(
                "CFLAGS",
                "-g -O2 -flto=auto -ffat-lto-objects -fstack-protector-strong \
             -fstack-clash-protection -Wformat -Werror=format-security -fcf-protection",
            )
            .env(
                "LDFLAGS",
                "-Wl,-Bsymbolic-functions -flto=auto -ffat-lto-objects -Wl,-z,relro -Wl,-z,now",
            ),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("arch=aarch64 libc=musl"),
        "{}",
        stderr(&out)
    );
    assert_static_for(&tmp.path().join("dist/linux-arm64/hello-c"), "arm64");
}

#[test]
fn failing_build_command_names_target_command_and_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(out) = build(&fixture("c-fails"), "linux/arm64", tmp.path(), &[]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("linux/arm64 failed"), "{err}");
    assert!(err.contains("sh -c make"), "{err}");
    assert!(
        err.contains("use of undeclared identifier 'kiln_undeclared_identifier'"),
        "{err}"
    );
}

#[test]
fn config_without_output_says_what_to_add() {
    let out = capture(kiln().arg("build").arg(fixture("c-no-output")));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("output = \"path/to/binary\""), "{err}");
    assert!(err.contains("kiln.toml"), "{err}");
}

#[test]
fn makefile_that_ignores_cc_is_caught_by_the_inspector_gate() {
    if !have_tool("gcc", "apt-get install -y gcc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(out) = build(&fixture("c-ignores-cc"), "linux/arm64", tmp.path(), &[]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("linux/arm64 failed"), "{err}");
    assert!(err.contains("is dynamically linked"), "{err}");
    assert!(err.contains("not for linux/arm64"), "{err}");
    assert!(err.contains("did not use kiln's compiler"), "{err}");
    assert!(err.contains("`CC = gcc`"), "{err}");
    assert!(!tmp.path().join("linux-arm64/app").exists());
}

/// The full matrix: the Makefile example, the CMake project and the source list on every
/// platform (see `matrix_platforms`), each verified and run.
#[test]
#[ignore = "long: every platform; run by `cargo xtask e2e [--all]`"]
fn every_platform_builds_and_runs_c() {
    if !have_tool("cmake", "apt-get install -y cmake")
        || !have_tool("make", "apt-get install -y make")
    {
        return;
    }
    let platforms = matrix_platforms().len();
    for (project, bin, printed) in [
        (example("hello-c"), "hello-c", "libc=musl"),
        (
            fixture("c-cmake"),
            "cmake-hello",
            "adler32(Wikipedia)=11e60398",
        ),
        (fixture("c-sources"), "sources-hello", "hypotenuse=5.0"),
    ] {
        let err = build_every_platform(&project, bin, &[], true, |_, _, _| {});
        let ran = err
            .lines()
            .filter(|l| l.contains(&format!("{bin} ran:")) && l.contains(printed))
            .count();
        assert_eq!(ran, platforms, "{err}");
    }
}
