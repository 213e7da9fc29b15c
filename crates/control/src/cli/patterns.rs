//! Maps and ACL files on the runtime socket (`show|add|del|set|clear map`, `show|add|del|clear
//! acl`). The control shard owns the files' contents ([`PatRefs`], read once at start, before
//! the shards run); every change sends the file's new contents to every worker shard
//! (`ControlMsg::SetPatterns`), which rebuild the converters and ACLs reading it
//! (`shard::patterns`), and the answer waits until all have applied it.
//!
//! Which files the configuration loads is found by reading the configuration files again:
//! every `map*(<file>...)` converter and every `-f <file>` of an ACL. Differences from haproxy
//! 2.6: only file-backed references are listed (haproxy also lists each ACL's inline patterns
//! and internal ones), numbered from 0 in configuration order, ACL files first. `add map|acl`
//! refuse entries their users cannot read (an address for `map_ip` or an ACL on `src`, an
//! integer for `map_*_int`...) with haproxy's texts; other mismatches are caught by the shards,
//! which keep the previous version of the file in use.

use std::sync::Arc;

use ringlb_config::model::Config;
use ringlb_runtime::{EntryCheck, PatRefs, Pending, RefKind, Reply};
use ringlb_shard::ControlMsg;

use super::exec::{barrier, Ctx};

/// The map and ACL files the configuration loads, with their contents.
pub fn build_refs(cfg: &Config) -> PatRefs {
    let mut acls = Vec::new();
    let mut maps = Vec::new();
    for path in &cfg.files {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let at = path.display().to_string();
        for (n, line) in text.lines().enumerate() {
            scan_line(line, &at, n + 1, &mut acls, &mut maps);
        }
    }
    let mut refs = PatRefs::default();
    for (kind, uses) in [(RefKind::Acl, acls), (RefKind::Map, maps)] {
        let what = if kind == RefKind::Acl { "acl" } else { "map" };
        for u in uses {
            let desc = format!(
                "pattern loaded from file '{}' used by {what} at file '{}' line {}",
                u.file, u.cfg_file, u.line
            );
            refs.add_ref(kind, &u.file, desc, read_entries(&u.file, kind));
            for c in u.checks {
                refs.add_check(kind, &u.file, c);
            }
        }
    }
    refs
}

/// One use of a pattern file in the configuration.
struct Use {
    file: String,
    cfg_file: String,
    line: usize,
    /// What this user requires of an entry (from its match and output types).
    checks: Vec<EntryCheck>,
}

type Uses = Vec<Use>;

/// `acl <name> <criterion> ...` / `{ <criterion> ...`: whether the criterion matches addresses.
fn acl_matches_ip(words: &[&str]) -> bool {
    if words.windows(2).any(|p| p == ["-m", "ip"]) {
        return true;
    }
    let crit = match words.iter().position(|w| *w == "{") {
        Some(i) => words.get(i + 1),
        None => words.get(2),
    };
    let Some(crit) = crit else { return false };
    if crit.contains(',') {
        return false; // converters decide; not inferred here
    }
    let base = crit.split('(').next().unwrap_or(crit);
    matches!(
        base,
        "src" | "dst" | "fc_src" | "fc_dst" | "bc_src" | "bc_dst"
    ) || base.ends_with("_ip")
}

/// `map_<match>_<out>`: the checks its entries need.
fn map_checks(name: &str) -> Vec<EntryCheck> {
    let rest = name
        .strip_prefix("map")
        .unwrap_or(name)
        .trim_start_matches('_');
    let mut parts = rest.splitn(2, '_');
    let matching = parts.next().filter(|m| !m.is_empty()).unwrap_or("str");
    let out = parts.next().unwrap_or("str");
    let mut checks = Vec::new();
    if matching == "ip" {
        checks.push(EntryCheck::IpKey);
    }
    match out {
        "int" => checks.push(EntryCheck::IntValue),
        "ip" => checks.push(EntryCheck::IpValue),
        _ => {}
    }
    checks
}

/// Finds `-f <file>` on ACL lines and `map*(<file>` converters on any line.
fn scan_line(line: &str, cfg_file: &str, n: usize, acls: &mut Uses, maps: &mut Uses) {
    let words: Vec<&str> = line
        .split_whitespace()
        .take_while(|w| !w.starts_with('#'))
        .collect();
    let acl_line = words.first() == Some(&"acl") || words.contains(&"{");
    if acl_line {
        let ip = acl_matches_ip(&words);
        for pair in words.windows(2) {
            if let [flag, file] = pair {
                if *flag == "-f" {
                    acls.push(Use {
                        file: file.to_string(),
                        cfg_file: cfg_file.into(),
                        line: n,
                        checks: if ip {
                            vec![EntryCheck::IpKey]
                        } else {
                            Vec::new()
                        },
                    });
                }
            }
        }
    }
    for w in &words {
        let mut rest = *w;
        while let Some(i) = rest.find("map") {
            let before = rest[..i].chars().last();
            let after = &rest[i + 3..];
            let name_end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let suffix = &after[..name_end];
            let opens = after[name_end..].starts_with('(');
            let conv = matches!(before, None | Some(',') | Some('[') | Some('('))
                && (suffix.is_empty() || suffix.starts_with('_'))
                && opens;
            if conv {
                let args = &after[name_end + 1..];
                let file_end = args.find([',', ')']).unwrap_or(args.len());
                let file = &args[..file_end];
                if !file.is_empty() {
                    maps.push(Use {
                        file: file.to_string(),
                        cfg_file: cfg_file.into(),
                        line: n,
                        checks: map_checks(&format!("map{suffix}")),
                    });
                }
            }
            rest = after;
        }
    }
}

/// A pattern file's entries as the rules crate reads it: trimmed lines, `#` comments and
/// empty lines skipped; for maps the key is the first word and the value the rest.
fn read_entries(file: &str, kind: RefKind) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read(file) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&text)
        .lines()
        .map(|l| l.trim_matches([' ', '\t', '\r']))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match (kind, l.find([' ', '\t'])) {
            (RefKind::Map, Some(i)) => (
                l[..i].to_string(),
                l[i..].trim_matches([' ', '\t']).to_string(),
            ),
            _ => (l.to_string(), String::new()),
        })
        .collect()
}

/// Runs one map or ACL command; a change reaches every shard before the answer.
pub(super) async fn run(ctx: &Ctx, p: &Pending) -> Reply {
    let outcome = ctx.patterns.borrow_mut().run(&p.command);
    let Some((reply, changed)) = outcome else {
        return Reply::err("Internal error.\n");
    };
    if let Some(i) = changed {
        let (file, entries) = {
            let refs = ctx.patterns.borrow();
            let file = refs.refs.get(i).map(|r| r.file.clone()).unwrap_or_default();
            (file, refs.entries(i))
        };
        send_patterns(ctx, file, entries).await;
        barrier(ctx).await;
    }
    reply
}

/// Sends a file's current entries to the shards under a new version (in order with the other
/// messages).
pub(crate) async fn send_patterns(ctx: &Ctx, file: String, entries: Vec<(String, String)>) {
    let version = ctx.pattern_version.get() + 1;
    ctx.pattern_version.set(version);
    ctx.bus
        .send(ControlMsg::SetPatterns {
            file: Arc::from(file),
            version,
            entries: Arc::new(entries),
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_acl_files_and_map_converters() {
        let (mut acls, mut maps) = (Vec::new(), Vec::new());
        let lines = [
            "    acl blocked src -f /etc/blocked.acl -f rel.acl",
            "    http-request deny if { src -f /etc/deny.lst }",
            "    use_backend %[req.hdr(host),lower,map(/etc/hosts.map,be_default)]",
            "    http-request set-header X %[src,map_ip(/etc/geo.map)] # map(/not/this)",
            "    http-request set-header Y %[path,bitmap(x)]",
        ];
        for (i, l) in lines.iter().enumerate() {
            scan_line(l, "h.cfg", i + 1, &mut acls, &mut maps);
        }
        let files = |v: &Uses| {
            v.iter()
                .map(|u| (u.file.clone(), u.line))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            files(&acls),
            vec![
                ("/etc/blocked.acl".to_string(), 1),
                ("rel.acl".to_string(), 1),
                ("/etc/deny.lst".to_string(), 2)
            ]
        );
        assert_eq!(
            files(&maps),
            vec![
                ("/etc/hosts.map".to_string(), 3),
                ("/etc/geo.map".to_string(), 4)
            ]
        );
    }
}
