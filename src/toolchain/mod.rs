//! Finding and installing toolchains: zig, go, rust targets; the zig-cc wrapper.

pub mod zigcc;
