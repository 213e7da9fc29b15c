#![no_main]
//! Fuzz target: the `h2_downgrade` invariant of `crates/shard/tests/harness/mod.rs` (the corpus replay test
//! runs the same function on stable Rust).

#[path = "../../crates/shard/tests/harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::h2_downgrade(data));
