//! Map and ACL files changed on the runtime socket (`add map`, `set map`, `del acl`...), as
//! this shard sees them. The control shard sends a file's whole new contents
//! (`ControlMsg::SetPatterns`); the shard keeps them and rebuilds, on first use after each
//! change, the converters and ACLs that read that file (`live_map`, `live_acl`). Requests
//! never wait: a rule holds an `Rc` of the version it started with, and a change only swaps
//! this shard's `Rc` on the shard's own thread. Files never changed cost one empty-map check.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use ringlb_rules::acl::CompiledAcl;
use ringlb_rules::conv::MapConv;
use ringlb_rules::pattern::Patterns;

/// A file's contents as the runtime socket left them: `(key, value)` lines (value empty for
/// ACL patterns).
pub type Entries = Arc<Vec<(String, String)>>;

/// This shard's changed files and what it built from them, keyed by the converter's or the
/// ACL's address in the shared topology (stable for the process's life).
#[derive(Default)]
pub struct LiveStore {
    /// Some file changed: until then every lookup returns at once.
    any: Cell<bool>,
    files: RefCell<HashMap<Box<str>, (u64, Entries)>>,
    maps: RefCell<HashMap<usize, (u64, Rc<MapConv>)>>,
    acls: RefCell<HashMap<usize, (u64, Rc<Patterns>)>>,
}

impl LiveStore {
    /// A new version of `file` (versions only grow; an older one arriving late is ignored).
    pub fn set(&self, file: &str, version: u64, entries: Entries) {
        let mut files = self.files.borrow_mut();
        if files.get(file).is_some_and(|(v, _)| *v >= version) {
            return;
        }
        files.insert(file.into(), (version, entries));
        self.any.set(true);
    }

    /// The current form of map converter `m`, or `None` while its file is as loaded. A
    /// version whose entries do not fit the converter (a value that is no integer in an
    /// `_int` map) keeps the last one that did.
    pub fn map(&self, m: &MapConv) -> Option<Rc<MapConv>> {
        if !self.any.get() {
            return None;
        }
        let (version, entries) = {
            let files = self.files.borrow();
            let (v, e) = files.get(&*m.file)?;
            (*v, e.clone())
        };
        let key = m as *const MapConv as usize;
        if let Some((v, built)) = self.maps.borrow().get(&key) {
            if *v == version {
                return Some(built.clone());
            }
        }
        let built = match m.rebuild(&entries) {
            Ok(b) => Rc::new(b),
            Err(_) => return self.maps.borrow().get(&key).map(|(_, b)| b.clone()),
        };
        self.maps.borrow_mut().insert(key, (version, built.clone()));
        Some(built)
    }

    /// The current patterns of ACL `a` (loaded from files), or `None` while none of its files
    /// changed.
    pub fn acl(&self, a: &CompiledAcl) -> Option<Rc<Patterns>> {
        if !self.any.get() {
            return None;
        }
        let src = a.source.as_ref()?;
        let version = {
            let files = self.files.borrow();
            let mut sum = 0u64;
            let mut any = false;
            for (f, _) in &src.files {
                if let Some((v, _)) = files.get(&**f) {
                    sum = sum.wrapping_add(*v);
                    any = true;
                }
            }
            if !any {
                return None;
            }
            sum
        };
        let key = a as *const CompiledAcl as usize;
        if let Some((v, built)) = self.acls.borrow().get(&key) {
            if *v == version {
                return Some(built.clone());
            }
        }
        let live = |f: &str| {
            self.files
                .borrow()
                .get(f)
                .map(|(_, e)| e.iter().map(|(k, _)| k.clone()).collect())
        };
        let built = match a.rebuild(&live) {
            Ok(p) => Rc::new(p),
            Err(_) => return self.acls.borrow().get(&key).map(|(_, b)| b.clone()),
        };
        self.acls.borrow_mut().insert(key, (version, built.clone()));
        Some(built)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringlb_rules::Sample;

    fn value(store: &LiveStore, m: &MapConv, key: &str) -> Option<Vec<u8>> {
        let live = store.map(m)?;
        let v = live.lookup(&Sample::str(key.as_bytes()))?;
        Some(v.to_bytes().to_vec())
    }

    #[test]
    fn a_changed_file_is_rebuilt_once_per_version_and_old_versions_are_ignored() {
        let mut m = MapConv::from_bytes("map", b"a x\n", Some("dflt")).unwrap();
        m.file = "/f.map".into();
        let store = LiveStore::default();
        assert!(store.map(&m).is_none(), "unchanged file: the loaded map");
        store.set("/f.map", 2, Arc::new(vec![("a".into(), "y".into())]));
        assert_eq!(value(&store, &m, "a"), Some(b"y".to_vec()));
        assert_eq!(
            value(&store, &m, "zz"),
            Some(b"dflt".to_vec()),
            "default kept"
        );
        let (first, second) = (store.map(&m).unwrap(), store.map(&m).unwrap());
        assert!(Rc::ptr_eq(&first, &second), "built once per version");
        store.set("/f.map", 1, Arc::new(Vec::new()));
        assert_eq!(
            value(&store, &m, "a"),
            Some(b"y".to_vec()),
            "late old version"
        );
        store.set("/f.map", 3, Arc::new(vec![("a".into(), "z".into())]));
        assert_eq!(value(&store, &m, "a"), Some(b"z".to_vec()));
    }
}
