//! Temporary directories removed on drop, and config files written into them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory under `std::env::temp_dir()` with a unique name, removed (recursively) on
/// drop unless `RINGLB_KEEP_TMP` is set.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `ringlb-<prefix>-<pid>-<n>-<nanos>`; panics if the directory cannot be made.
    pub fn new(prefix: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "ringlb-{prefix}-{}-{n}-{nanos}",
            std::process::id()
        ));
        if let Err(e) = std::fs::create_dir_all(&path) {
            panic!("TempDir: cannot create {}: {e}", path.display());
        }
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path().join(name)`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("RINGLB_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Writes `text` to `<dir>/ringlb-<n>.cfg` and returns the path; panics on I/O errors.
pub fn write_config(dir: &TempDir, text: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    write_file(dir, &format!("ringlb-{n}.cfg"), text.as_bytes())
}

/// Writes `data` to `<dir>/<name>` and returns the path; panics on I/O errors.
pub fn write_file(dir: &TempDir, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    if let Err(e) = std::fs::write(&path, data) {
        panic!("cannot write {}: {e}", path.display());
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_unique_and_removed() {
        let a = TempDir::new("t");
        let b = TempDir::new("t");
        assert_ne!(a.path(), b.path());
        let cfg = write_config(&a, "global\n");
        assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "global\n");
        let p = a.path().to_path_buf();
        assert!(p.is_dir());
        drop(a);
        if std::env::var_os("RINGLB_KEEP_TMP").is_none() {
            assert!(!p.exists());
        }
    }
}
