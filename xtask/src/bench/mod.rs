//! `cargo xtask bench [NAME]`: kiln against the peer tools, one file per benchmark. Each
//! prints its inputs, the times and the ratios against its goal.

mod build;
mod go;
mod image;
mod inspect;
mod polyglot;
mod push;

use std::path::{Path, PathBuf};

use anyhow::bail;

/// A benchmark: it times the kiln binary it is given against its peer tools.
type Bench = fn(kiln: &Path) -> anyhow::Result<()>;

/// The benchmarks by name, in the order `cargo xtask bench` runs them all.
const BENCHES: [(&str, Bench); 6] = [
    ("go", go::run_bench),
    ("build", build::run_bench),
    ("image", image::run_bench),
    ("inspect", inspect::run_bench),
    ("push", push::run_bench),
    ("polyglot", polyglot::run_bench),
];

/// The benchmark names, for the usage text.
pub fn names() -> Vec<&'static str> {
    BENCHES.iter().map(|(name, _)| *name).collect()
}

/// All benchmarks, or the one named.
pub fn run(only: Option<&str>) -> anyhow::Result<()> {
    if let Some(name) = only
        && !BENCHES.iter().any(|(n, _)| *n == name)
    {
        bail!(
            "no benchmark `{name}`: choose one of {}",
            names().join(", ")
        );
    }
    crate::setup::run_setup()?;
    // KILN_BENCH_EXE: time this kiln binary instead of building a release one.
    let kiln = match std::env::var_os("KILN_BENCH_EXE") {
        Some(exe) => std::path::absolute(PathBuf::from(exe))?,
        None => crate::build_kiln()?,
    };
    for (name, bench) in BENCHES {
        if only.is_none_or(|o| o == name) {
            bench(&kiln)?;
        }
    }
    Ok(())
}

/// `/proc/loadavg`'s three averages (1, 5, 15 minutes), printed next to every figure: the
/// machine may be shared, and a figure means little without the load it was taken at.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The middle value after sorting (the upper one of the two middles for an even count).
pub fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}
