//! Replays every committed input of the cargo-fuzz corpora (`fuzz/corpus/<target>/`) through
//! the same invariants the fuzz targets check, so the corpora stay verified on stable Rust.

mod harness;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.map(|e| e.path()).unwrap_or_else(|e| panic!("{e}"));
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let r = std::panic::catch_unwind(|| check(&data));
        assert!(r.is_ok(), "{} fails", path.display());
        n += 1;
    }
    n
}

#[test]
fn request_corpus() {
    assert!(replay("request", harness::request) >= 150);
}

#[test]
fn response_corpus() {
    assert!(replay("response", harness::response) >= 10);
}

#[test]
fn chunked_corpus() {
    assert!(replay("chunked", harness::chunked) >= 30);
}
