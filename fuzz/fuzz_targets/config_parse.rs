//! Fuzz target: any byte string through the config front end (`ringlb_config::parse_str`,
//! the same entry point the corpus replay test uses). It must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = ringlb_config::parse_str("fuzz.cfg", &text);
});
