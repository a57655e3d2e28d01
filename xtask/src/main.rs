//! `cargo xtask <task>`: project automation that is code, not shell.

mod bench_inspect;
mod fuzz;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("fuzz") => fuzz::run(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60)),
        Some("bench") => bench_inspect::run(),
        _ => anyhow::bail!("usage: cargo xtask fuzz [SECONDS] | cargo xtask bench"),
    }
}
