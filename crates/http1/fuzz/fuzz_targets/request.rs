#![no_main]
//! Fuzz target: the `request` invariants of `tests/harness/mod.rs`.

#[path = "../../tests/harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::request(data));
