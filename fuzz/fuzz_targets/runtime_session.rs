#![no_main]
//! Fuzz target: the `session` invariant of `crates/runtime/tests/harness/mod.rs` (the corpus replay test
//! runs the same function on stable Rust).

#[path = "../../crates/runtime/tests/harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::session(data));
