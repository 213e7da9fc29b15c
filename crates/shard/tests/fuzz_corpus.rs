//! Replays every committed input of the `h2_downgrade` cargo-fuzz corpus (and saved crashes)
//! through the target's invariant, on stable Rust.

mod harness;

use std::path::Path;

#[test]
fn h2_downgrade_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for sub in ["corpus/h2_downgrade", "artifacts/h2_downgrade"] {
        let Ok(dir) = std::fs::read_dir(root.join(sub)) else {
            continue;
        };
        for entry in dir {
            let path = entry.map(|e| e.path()).unwrap_or_else(|e| panic!("{e}"));
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let r = std::panic::catch_unwind(|| harness::h2_downgrade(&data));
            assert!(r.is_ok(), "{} fails", path.display());
            n += 1;
        }
    }
    assert!(n >= 20, "only {n} corpus inputs");
}
