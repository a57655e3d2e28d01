//! kiln's Rust example: prints a greeting, its CPU architecture and a value computed in C.

unsafe extern "C" {
    fn kiln_answer() -> i32;
    fn kiln_c_strlen(s: *const std::ffi::c_char) -> usize;
}

fn main() {
    let answer = unsafe { kiln_answer() };
    let len = unsafe { kiln_c_strlen(c"kiln".as_ptr()) };
    let mut digits = itoa::Buffer::new();
    println!(
        "Hello from kiln! arch={} os={} answer-from-c={}",
        std::env::consts::ARCH,
        std::env::consts::OS,
        digits.format(answer)
    );
    if std::env::args().any(|a| a == "--check") && (answer != 42 || len != 4) {
        eprintln!("C part returned wrong values: {answer} {len}");
        std::process::exit(1);
    }
}
