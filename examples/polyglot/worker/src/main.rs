//! The polyglot example's Rust worker: counts the lines and bytes of the files it is given
//! (the site's pages, say). `--check` prints what it is and exits (kiln's smoke run).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--check") {
        println!("worker ok arch={}", std::env::consts::ARCH);
        return;
    }
    let mut failed = false;
    for path in &args {
        match std::fs::read(path) {
            Ok(data) => {
                let lines = data.iter().filter(|&&b| b == b'\n').count();
                println!("{path}: {lines} lines, {} bytes", data.len());
            }
            Err(e) => {
                eprintln!("{path}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
