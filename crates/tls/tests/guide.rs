//! Every configuration of the guide (config/examples) builds its TLS with ringlb-tls, from the
//! repository's fixture certificates (paths are relative to the repository root).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

#[test]
fn guide_examples_build_their_tls() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    // The only test of this binary, so changing the working directory is safe.
    std::env::set_current_dir(&repo).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir("config/examples")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    files.sort();
    let mut with_tls = 0;
    for f in &files {
        let loaded = ringlb_config::load(std::slice::from_ref(f), &|_| None)
            .unwrap_or_else(|d| panic!("{}: {d}", f.display()));
        let tls = ringlb_tls::build_config(&loaded.config, 2_000_000_000)
            .unwrap_or_else(|d| panic!("{}: {d:?}", f.display()));
        with_tls += usize::from(!tls.binds.is_empty());
        assert!(
            tls.warnings.is_empty(),
            "{}: {:?}",
            f.display(),
            tls.warnings
        );
    }
    assert!(
        with_tls >= 3,
        "guide-13, -15 and -22 terminate TLS ({with_tls})"
    );
}
