//! Every example configuration (the guide's configs among them) compiles into rules: every
//! ACL, condition, action, `use_backend` and log-format they hold is understood.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

#[test]
fn every_example_config_compiles() {
    let repo: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    // Examples name certificates and files relative to the repository root.
    std::env::set_current_dir(&repo).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo.join("config/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    files.sort();
    let mut compiled = 0;
    let mut failures = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&repo).unwrap().to_path_buf();
        let Ok(loaded) = ringlb_config::load(std::slice::from_ref(&rel), &|_| None) else {
            continue; // not loadable by the config crate: its own tests cover that
        };
        match ringlb_rules::ConfigRules::compile(&loaded.config) {
            Ok(_) => compiled += 1,
            Err(errs) => failures.extend(errs.iter().map(|e| format!("{}: {e}", rel.display()))),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compiled >= 10, "only {compiled} examples compiled");
}
