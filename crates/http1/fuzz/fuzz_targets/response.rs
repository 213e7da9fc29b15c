#![no_main]
//! Fuzz target: the `response` invariants of `tests/harness/mod.rs`.

#[path = "../../tests/harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::response(data));
