//! The integration tests, one binary: each file under tests/ is a module here (one link
//! instead of one per file, and one registry/daemon per run). Run one file with
//! `cargo test --test integration build_c::`.

mod support;

mod architecture;
mod attest;
mod build_c;
mod build_go;
mod build_rust;
mod debug_cmd;
mod dockerfile_gen;
mod harden_config;
mod harden_elf;
mod harden_images;
mod harden_outputs;
mod image_build;
mod image_cli;
mod image_distroless;
mod image_docker;
mod image_golden;
mod inspect_cli;
mod inspect_image;
mod inspect_mutations;
mod inspect_real;
mod lint_cli;
mod messages;
mod oci_archives;
mod oci_layout;
mod polyglot;
mod registry;
mod toolchain;
mod variants;
