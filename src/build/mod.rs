//! Per-language builders; each returns the artifacts it built.

pub mod rust;
