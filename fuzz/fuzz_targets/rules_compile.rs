#![no_main]
//! Fuzz target: the `compile` invariant of `crates/rules/tests/harness/mod.rs` (the corpus replay test
//! runs the same function on stable Rust).

#[path = "../../crates/rules/tests/harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::compile(data));
