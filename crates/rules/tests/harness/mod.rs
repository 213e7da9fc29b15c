//! The rules compiler's fuzz invariant, shared by the cargo-fuzz target
//! (`fuzz/fuzz_targets/rules_compile.rs`) and the corpus replay test.

/// Any bytes as a configuration; when it parses, every ACL, rule, log-format and sample
/// expression in it goes through the rules compiler (what `ringlb -c` does). No panic.
pub fn compile(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(loaded) = ringlb_config::parse_str("fuzz.cfg", &text) {
        let _ = ringlb_rules::ConfigRules::compile(&loaded.config);
    }
}
