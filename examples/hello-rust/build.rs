fn main() {
    cc::Build::new().file("src/answer.c").compile("answer");
    println!("cargo:rerun-if-changed=src/answer.c");
}
