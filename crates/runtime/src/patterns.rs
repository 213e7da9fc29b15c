//! Pattern references: the contents of the map and ACL files the configuration loads, as the
//! runtime socket shows and changes them (`show|add|del|set|clear map`, `show|add|del|clear
//! acl`), with haproxy 2.6's texts (recorded by `crates/ringlb/tests/fixtures/
//! record_patterns.sh`).
//!
//! The control shard owns one [`PatRefs`]; after a change it sends the changed reference's
//! entries ([`PatRefs::entries`]) to every worker shard, which rebuilds the converters and
//! ACLs that use that file. Entry "addresses" (`show map` prints haproxy's pointers) are stable
//! pseudo-addresses, usable as `#<ref>` in `del map` / `set map`.

use std::fmt::Write as _;

use crate::command::{Command, EntryRef};
use crate::reply::Reply;

/// Whether a reference was loaded for a map converter or an ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Map,
    Acl,
}

/// What the users of a file require of a new entry (from their match and output types), so
/// that `add map` / `add acl` refuse what the shards could not use, with haproxy's texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryCheck {
    /// The key is an address or network (`map_ip`, an ACL on `src`).
    IpKey,
    /// The value is an integer (`map_*_int`).
    IntValue,
    /// The value is an address (`map_*_ip`).
    IpValue,
}

impl EntryCheck {
    fn check(self, key: &str, value: &str) -> Result<(), String> {
        match self {
            EntryCheck::IpKey if !is_net(key) => {
                Err(format!("'{key}' is not a valid IPv4 or IPv6 address.\n"))
            }
            EntryCheck::IntValue if value.trim().parse::<i64>().is_err() => {
                Err(format!("unable to parse '{value}'.\n"))
            }
            EntryCheck::IpValue if value.trim().parse::<std::net::IpAddr>().is_err() => {
                Err(format!("unable to parse '{value}'.\n"))
            }
            _ => Ok(()),
        }
    }
}

/// `addr`, `addr/len` or `v4/mask`.
fn is_net(s: &str) -> bool {
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    match (a.parse::<std::net::IpAddr>(), m) {
        (Err(_), _) => false,
        (Ok(_), None) => true,
        (Ok(std::net::IpAddr::V4(_)), Some(m)) => {
            m.parse::<u8>().is_ok_and(|l| l <= 32) || m.parse::<std::net::Ipv4Addr>().is_ok()
        }
        (Ok(std::net::IpAddr::V6(_)), Some(m)) => m.parse::<u8>().is_ok_and(|l| l <= 128),
    }
}

/// One line of a pattern file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatEntry {
    /// Stable per reference (the pseudo-address is derived from it).
    pub id: u64,
    pub key: String,
    /// The map value (empty for ACL patterns).
    pub value: String,
}

/// One pattern file as the runtime socket knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatRef {
    /// The `#<id>` of `show map` / `show acl`.
    pub id: u32,
    pub kind: RefKind,
    /// The file name as written in the configuration (the reference's name).
    pub file: String,
    /// haproxy's description ("pattern loaded from file '...' used by map at file '...'
    /// line N").
    pub desc: String,
    pub entries: Vec<PatEntry>,
    next_entry: u64,
    /// What every user of the file requires of an entry.
    pub checks: Vec<EntryCheck>,
    /// Digest of the entries as read from the file: an in-process reload keeps the runtime
    /// edits of a file whose contents did not change on disk ([`PatRefs::carry_edits`]).
    pub loaded: u64,
}

impl PatRef {
    /// The first check a new entry fails, with haproxy's text.
    fn check(&self, key: &str, value: &str) -> Result<(), String> {
        self.checks.iter().try_for_each(|c| c.check(key, value))
    }

    /// The pseudo-address `show map` prints for entry `e`.
    pub fn address(&self, e: &PatEntry) -> u64 {
        0x5600_0000_0000 + (u64::from(self.id) << 28) + e.id * 0x40
    }

    fn push(&mut self, key: String, value: String) {
        self.entries.push(PatEntry {
            id: self.next_entry,
            key,
            value,
        });
        self.next_entry += 1;
    }

    /// Entries selected by `key` or `#<address>`.
    fn selects(&self, e: &PatEntry, which: &EntryRef) -> bool {
        match which {
            EntryRef::Key(k) => e.key == *k,
            EntryRef::Ref(r) => parse_address(r) == Some(self.address(e)),
        }
    }
}

/// A digest of a file's entries (stable within the process: `DefaultHasher::new` has fixed
/// keys).
fn digest(lines: &[(String, String)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    lines.hash(&mut h);
    h.finish()
}

impl PatRefs {
    /// In-process reload: `self` was just read from the files, `old` is what the runtime
    /// socket left. A file that reads as it did when `old` loaded it keeps `old`'s entries
    /// (and their `#<ref>` addresses), so `add map`/`del acl`... survive; a file changed on
    /// disk takes its new contents and drops the edits made to the old ones. Returns the
    /// indexes in `self` whose entries now differ from the file (the shards need them).
    pub fn carry_edits(&mut self, old: &PatRefs) -> Vec<usize> {
        let mut carried = Vec::new();
        for (i, r) in self.refs.iter_mut().enumerate() {
            let Some(o) = old
                .refs
                .iter()
                .find(|o| o.kind == r.kind && o.file == r.file)
            else {
                continue;
            };
            if o.loaded != r.loaded || o.entries == r.entries {
                continue;
            }
            r.entries = o.entries.clone();
            r.next_entry = o.next_entry;
            carried.push(i);
        }
        carried
    }
}

/// `#<ref>` as haproxy reads it (`strtoul(.., 16)` after an optional `0x`).
fn parse_address(r: &str) -> Option<u64> {
    let h = r.strip_prefix("0x").unwrap_or(r);
    u64::from_str_radix(h, 16).ok()
}

const UNKNOWN_MAP: &str = "Unknown map identifier. Please use #<id> or <file>.\n";
const UNKNOWN_ACL: &str = "Unknown ACL identifier. Please use #<id> or <file>.\n";

/// Every pattern reference of the configuration, maps and ACLs numbered together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatRefs {
    pub refs: Vec<PatRef>,
}

impl PatRefs {
    /// Registers a file (once per kind: later uses share the first reference, as in haproxy).
    /// `lines` are the file's entries: `(key, value)` for maps, `(pattern, "")` for ACLs.
    pub fn add_ref(
        &mut self,
        kind: RefKind,
        file: &str,
        desc: String,
        lines: Vec<(String, String)>,
    ) {
        if self.refs.iter().any(|r| r.kind == kind && r.file == file) {
            return;
        }
        let mut r = PatRef {
            id: self.refs.len() as u32,
            kind,
            file: file.into(),
            desc,
            entries: Vec::with_capacity(lines.len()),
            next_entry: 0,
            checks: Vec::new(),
            loaded: digest(&lines),
        };
        for (k, v) in lines {
            r.push(k, v);
        }
        self.refs.push(r);
    }

    /// Records that a user of `file` (of `kind`) requires `check` of new entries.
    pub fn add_check(&mut self, kind: RefKind, file: &str, check: EntryCheck) {
        if let Some(r) = self
            .refs
            .iter_mut()
            .find(|r| r.kind == kind && r.file == file)
        {
            if !r.checks.contains(&check) {
                r.checks.push(check);
            }
        }
    }

    /// The reference named `ident` (`#<id>` or the file name) of `kind`.
    pub fn find(&self, kind: RefKind, ident: &str) -> Option<usize> {
        let by_id = ident.strip_prefix('#').and_then(|n| n.parse::<u32>().ok());
        self.refs.iter().position(|r| {
            r.kind == kind
                && match by_id {
                    Some(id) => r.id == id,
                    None => r.file == ident,
                }
        })
    }

    /// The entries of reference `idx` as the shards need them.
    pub fn entries(&self, idx: usize) -> Vec<(String, String)> {
        self.refs
            .get(idx)
            .map(|r| {
                r.entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs a map or ACL command: the reply, and the reference that changed (its entries go
    /// to the shards). `None` for other commands. Versions (`@<ver>`, haproxy's prepare and
    /// commit) are not supported.
    pub fn run(&mut self, cmd: &Command) -> Option<(Reply, Option<usize>)> {
        use RefKind::{Acl, Map};
        let versioned = |v: &Option<String>| v.is_some();
        Some(match cmd {
            Command::ShowMap { version, .. }
            | Command::AddMap { version, .. }
            | Command::ClearMap { version, .. }
            | Command::ShowAcl { version, .. }
            | Command::AddAcl { version, .. }
            | Command::ClearAcl { version, .. }
                if versioned(version) =>
            {
                (
                    Reply::err(
                        "Versioned maps and ACLs (@<ver>) are not supported by ringlb yet.\n",
                    ),
                    None,
                )
            }
            Command::ShowMap { map: None, .. } => (self.list(Map), None),
            Command::ShowAcl { acl: None, .. } => (self.list(Acl), None),
            Command::ShowMap { map: Some(m), .. } => (self.show(Map, m, UNKNOWN_MAP), None),
            Command::ShowAcl { acl: Some(a), .. } => (self.show(Acl, a, UNKNOWN_ACL), None),
            // Every entry is checked before any is added (a payload is all or nothing).
            Command::AddMap { map, entries, .. } => self.change(Map, map, UNKNOWN_MAP, |r| {
                for (k, v) in entries {
                    r.check(k, v)?;
                }
                for (k, v) in entries {
                    r.push(k.clone(), v.clone());
                }
                Ok(())
            }),
            Command::AddAcl { acl, patterns, .. } => self.change(Acl, acl, UNKNOWN_ACL, |r| {
                for p in patterns {
                    r.check(p, "")?;
                }
                for p in patterns {
                    r.push(p.clone(), String::new());
                }
                Ok(())
            }),
            // haproxy 2.6 names the map in `del acl`'s error too.
            Command::DelMap { map: name, entry } | Command::DelAcl { acl: name, entry } => {
                let kind = if matches!(cmd, Command::DelMap { .. }) {
                    Map
                } else {
                    Acl
                };
                self.change(kind, name, UNKNOWN_MAP, |r| {
                    let before = r.entries.len();
                    let keep: Vec<PatEntry> = r
                        .entries
                        .iter()
                        .filter(|e| !r.selects(e, entry))
                        .cloned()
                        .collect();
                    r.entries = keep;
                    if r.entries.len() == before {
                        Err("Key not found.\n".into())
                    } else {
                        Ok(())
                    }
                })
            }
            Command::SetMap { map, entry, value } => self.change(Map, map, UNKNOWN_MAP, |r| {
                let hits: Vec<usize> = r
                    .entries
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| r.selects(e, entry))
                    .map(|(i, _)| i)
                    .collect();
                // haproxy 2.6 leaves an entry whose new value its users cannot read as it was,
                // silently (`set map <int map> k x`).
                let readable = r
                    .checks
                    .iter()
                    .all(|c| *c == EntryCheck::IpKey || c.check("", value).is_ok());
                for i in &hits {
                    if let Some(e) = r.entries.get_mut(*i).filter(|_| readable) {
                        e.value = value.clone();
                    }
                }
                match (hits.is_empty(), entry) {
                    (false, _) => Ok(()),
                    (true, EntryRef::Key(_)) => Err("entry not found.\n".into()),
                    (true, EntryRef::Ref(_)) => Err("key or pattern not found.\n".into()),
                }
            }),
            Command::ClearMap { map, .. } => self.change(Map, map, UNKNOWN_MAP, |r| {
                r.entries.clear();
                Ok(())
            }),
            Command::ClearAcl { acl, .. } => self.change(Acl, acl, UNKNOWN_ACL, |r| {
                r.entries.clear();
                Ok(())
            }),
            _ => return None,
        })
    }

    fn change(
        &mut self,
        kind: RefKind,
        ident: &str,
        unknown: &str,
        f: impl FnOnce(&mut PatRef) -> Result<(), String>,
    ) -> (Reply, Option<usize>) {
        let Some(i) = self.find(kind, ident) else {
            return (Reply::err(unknown), None);
        };
        let Some(r) = self.refs.get_mut(i) else {
            return (Reply::err(unknown), None);
        };
        match f(r) {
            Ok(()) => (Reply::empty(), Some(i)),
            Err(e) => (Reply::err(e), None),
        }
    }

    /// `show map` / `show acl` without a name.
    fn list(&self, kind: RefKind) -> Reply {
        let mut out = String::from("# id (file) description\n");
        for r in self.refs.iter().filter(|r| r.kind == kind) {
            let _ = writeln!(
                out,
                "{} ({}) {}. curr_ver=0 next_ver=0 entry_cnt={}",
                r.id,
                r.file,
                r.desc,
                r.entries.len()
            );
        }
        Reply::raw(out)
    }

    /// `show map <map>` / `show acl <acl>`: one line per entry.
    fn show(&self, kind: RefKind, ident: &str, unknown: &str) -> Reply {
        let Some(r) = self.find(kind, ident).and_then(|i| self.refs.get(i)) else {
            return Reply::err(unknown);
        };
        let mut out = String::new();
        for e in &r.entries {
            let _ = match kind {
                RefKind::Map => writeln!(out, "{:#x} {} {}", r.address(e), e.key, e.value),
                RefKind::Acl => writeln!(out, "{:#x} {}", r.address(e), e.key),
            };
        }
        Reply::raw(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs() -> PatRefs {
        let mut p = PatRefs::default();
        p.add_ref(
            RefKind::Acl,
            "/b.acl",
            "pattern loaded from file '/b.acl' used by acl at file 'h.cfg' line 11".into(),
            vec![("10.0.0.0/8".into(), String::new())],
        );
        p.add_ref(
            RefKind::Map,
            "/h.map",
            "pattern loaded from file '/h.map' used by map at file 'h.cfg' line 14".into(),
            vec![("a".into(), "be_a".into()), ("b".into(), "be_b".into())],
        );
        p
    }

    fn words(s: &str) -> Command {
        let w: Vec<String> = s.split_whitespace().map(String::from).collect();
        let kw = crate::table::lookup(&w).unwrap();
        crate::command::parse(kw.kw, &w, None).unwrap()
    }

    #[test]
    fn map_commands_change_the_entries_in_order() {
        let mut p = refs();
        let (r, changed) = p.run(&words("add map /h.map c be_c")).unwrap();
        assert_eq!((r, changed), (Reply::empty(), Some(1)));
        p.run(&words("set map #1 a be_b")).unwrap();
        assert_eq!(
            p.run(&words("set map /h.map zz x")).unwrap().0.text,
            "entry not found.\n"
        );
        p.run(&words("del map /h.map b")).unwrap();
        assert_eq!(
            p.run(&words("del map /h.map b")).unwrap().0.text,
            "Key not found.\n"
        );
        assert_eq!(
            p.entries(1),
            vec![
                ("a".to_string(), "be_b".to_string()),
                ("c".to_string(), "be_c".to_string())
            ]
        );
        let shown = p.run(&words("show map /h.map")).unwrap().0.text;
        let first = shown.split(' ').next().unwrap().to_string();
        assert!(
            shown.starts_with("0x") && shown.contains(" a be_b\n"),
            "{shown}"
        );
        // `#<address>` as printed selects that entry.
        p.run(&words(&format!("del map /h.map #{first}"))).unwrap();
        assert_eq!(p.entries(1), vec![("c".to_string(), "be_c".to_string())]);
        assert_eq!(
            p.run(&words("show map")).unwrap().0.text,
            "# id (file) description\n1 (/h.map) pattern loaded from file '/h.map' used by map at file 'h.cfg' line 14. curr_ver=0 next_ver=0 entry_cnt=1\n"
        );
    }

    #[test]
    fn reload_keeps_edits_of_files_unchanged_on_disk_only() {
        let mut old = refs();
        old.run(&words("add map /h.map c be_c")).unwrap();
        old.run(&words("del acl /b.acl 10.0.0.0/8")).unwrap();
        // Both files read again as they were: the edits are kept, the shards told of both.
        let mut new = refs();
        assert_eq!(new.carry_edits(&old), vec![0, 1]);
        assert_eq!(new, old);
        // The map changed on disk: its new contents win, the ACL's edit stays.
        let mut new = PatRefs::default();
        new.add_ref(
            RefKind::Acl,
            "/b.acl",
            old.refs[0].desc.clone(),
            vec![("10.0.0.0/8".into(), String::new())],
        );
        new.add_ref(
            RefKind::Map,
            "/h.map",
            old.refs[1].desc.clone(),
            vec![("a".into(), "be_z".into())],
        );
        assert_eq!(new.carry_edits(&old), vec![0]);
        assert!(new.entries(0).is_empty());
        assert_eq!(new.entries(1), vec![("a".to_string(), "be_z".to_string())]);
        // Nothing edited: nothing carried.
        assert!(refs().carry_edits(&refs()).is_empty());
        // A later `add map` numbers after the carried entries (distinct `#<ref>`).
        let mut new = refs();
        new.carry_edits(&old);
        new.run(&words("add map /h.map d be_d")).unwrap();
        let ids: Vec<u64> = new.refs[1].entries.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![0, 1, 2, 3]);
    }

    #[test]
    fn new_entries_must_suit_every_user_of_the_file() {
        let mut p = refs();
        p.add_check(RefKind::Acl, "/b.acl", EntryCheck::IpKey);
        p.add_check(RefKind::Map, "/h.map", EntryCheck::IntValue);
        assert_eq!(
            p.run(&words("add acl /b.acl foo")).unwrap(),
            (
                Reply::err("'foo' is not a valid IPv4 or IPv6 address.\n"),
                None
            )
        );
        assert_eq!(
            p.run(&words("add acl /b.acl 1.2.3.4/99")).unwrap().0.text,
            "'1.2.3.4/99' is not a valid IPv4 or IPv6 address.\n"
        );
        assert_eq!(
            p.run(&words("add acl /b.acl 1.2.3.0/24")).unwrap().1,
            Some(0)
        );
        assert_eq!(
            p.run(&words("add map /h.map k notint")).unwrap().0.text,
            "unable to parse 'notint'.\n"
        );
        assert_eq!(p.entries(1).len(), 2, "nothing added");
        assert_eq!(p.run(&words("add map /h.map k 7")).unwrap().1, Some(1));
        assert_eq!(
            p.run(&words("set map /h.map k x")).unwrap().0,
            Reply::empty()
        );
        assert_eq!(p.entries(1)[2], ("k".to_string(), "7".to_string()));
        p.run(&words("set map /h.map k 8")).unwrap();
        assert_eq!(p.entries(1)[2], ("k".to_string(), "8".to_string()));
    }

    #[test]
    fn unknown_names_get_haproxys_texts() {
        let mut p = refs();
        assert_eq!(p.run(&words("show map nope")).unwrap().0.text, UNKNOWN_MAP);
        assert_eq!(
            p.run(&words("show acl /h.map")).unwrap().0.text,
            UNKNOWN_ACL
        );
        assert_eq!(p.run(&words("add acl nope x")).unwrap().0.text, UNKNOWN_ACL);
        assert_eq!(p.run(&words("del acl nope x")).unwrap().0.text, UNKNOWN_MAP);
        assert_eq!(p.run(&words("clear acl nope")).unwrap().0.text, UNKNOWN_ACL);
        let (r, changed) = p.run(&words("clear acl #0")).unwrap();
        assert_eq!((r.text.as_str(), changed), ("", Some(0)));
        assert_eq!(p.run(&words("show acl /b.acl")).unwrap().0.text, "");
    }
}
