//! Keyword registry: every HAProxy keyword ringlb knows, its section(s), its status and a
//! one-line doc. The parse tables live beside their parsers (`parse/*`); this module gathers
//! them for lookups, suggestions and the generated `docs/compatibility.md`.
//!
//! Owns: [`Status`], [`SECTIONS`], [`all`], [`nearest`], [`compatibility_markdown`].

use std::fmt;

/// What ringlb does with a keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Parsed into the model and implemented by the engine.
    Supported,
    /// Parsed and validated into the model; takes effect when the given issue lands.
    Parsed { issue: u16 },
    /// Meaningless for ringlb: accepted with a warning saying why.
    Accepted { why: &'static str },
    /// A HAProxy keyword ringlb rejects ("not supported by ringlb yet").
    Unsupported,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Supported => f.write_str("supported"),
            Status::Parsed { issue } => write!(f, "parsed (issue #{issue})"),
            Status::Accepted { why } => write!(f, "accepted, ignored: {why}"),
            Status::Unsupported => f.write_str("unsupported"),
        }
    }
}

/// A section keyword.
#[derive(Debug)]
pub struct SectionKw {
    pub name: &'static str,
    pub status: Status,
    pub doc: &'static str,
}

const fn sec(name: &'static str, status: Status, doc: &'static str) -> SectionKw {
    SectionKw { name, status, doc }
}

/// Section keywords of HAProxy 2.6.
pub static SECTIONS: &[SectionKw] = &[
    sec("global", Status::Supported, "process-wide settings"),
    sec(
        "defaults",
        Status::Supported,
        "defaults for following proxies (named, `from`)",
    ),
    sec(
        "frontend",
        Status::Supported,
        "listeners and request classification",
    ),
    sec("backend", Status::Supported, "server pools"),
    sec("listen", Status::Supported, "frontend and backend in one"),
    sec(
        "userlist",
        Status::Supported,
        "users and groups for http auth",
    ),
    sec(
        "peers",
        Status::Supported,
        "stick-table replication peers (haproxy's protocol 2.1, interoperates with haproxy 2.6)",
    ),
    sec(
        "resolvers",
        Status::Supported,
        "DNS resolvers for servers (UDP nameservers, A/AAAA)",
    ),
    sec(
        "http-errors",
        Status::Supported,
        "named sets of errorfiles (errorfiles)",
    ),
    sec(
        "ring",
        Status::Supported,
        "in-memory log rings (log ring@name, show events)",
    ),
    sec(
        "cache",
        Status::Supported,
        "HTTP small-object cache (one store per shard)",
    ),
    sec(
        "program",
        Status::Supported,
        "external programs run by the master (master-worker mode)",
    ),
    sec(
        "mailers",
        Status::Supported,
        "SMTP servers for email alerts (sent by the control shard)",
    ),
    sec("log-forward", Status::Unsupported, "syslog forwarding"),
    sec("fcgi-app", Status::Unsupported, "FastCGI applications"),
];

/// The section keyword `name`, if it is one.
pub fn section(name: &str) -> Option<&'static SectionKw> {
    SECTIONS.iter().find(|s| s.name == name)
}

/// One registry entry, for documentation and tests.
#[derive(Debug, Clone)]
pub struct KeywordInfo {
    /// Where it is written: `global`, `proxy (defaults, frontend, backend)`, `bind`, ...
    pub context: String,
    pub name: String,
    pub status: Status,
    pub doc: &'static str,
}

fn caps_text(caps: u8) -> String {
    use crate::parse::proxy::{BE, DEF, FE, NDEF};
    let mut v = Vec::new();
    if caps & DEF != 0 {
        v.push("defaults");
    } else if caps & NDEF != 0 {
        v.push("named defaults");
    }
    if caps & FE != 0 {
        v.push("frontend");
    }
    if caps & BE != 0 {
        v.push("backend");
    }
    format!("proxy: {}", v.join(", "))
}

/// Every registered keyword, grouped by table, in table order.
pub fn all() -> Vec<KeywordInfo> {
    use crate::parse::{bind, global, proxy_kw, rules, sections, server};
    let mut out = Vec::new();
    let mut add = |context: &str, name: &str, status: &Status, doc: &'static str| {
        out.push(KeywordInfo {
            context: context.to_string(),
            name: name.to_string(),
            status: status.clone(),
            doc,
        });
    };
    for s in SECTIONS {
        add("section", s.name, &s.status, s.doc);
    }
    for k in global::KEYWORDS {
        add("global", k.name, &k.status, k.doc);
    }
    for k in proxy_kw::KEYWORDS {
        add(&caps_text(k.caps), k.name, &k.status, k.doc);
    }
    for o in bind::BIND_OPTIONS {
        add("bind option", o.name, &o.status, o.doc);
    }
    for o in server::SERVER_OPTIONS {
        add("server option", o.name, &o.status, o.doc);
    }
    for a in rules::HTTP_REQUEST_ACTIONS {
        add("http-request action", a.name, &a.status, a.doc);
    }
    for a in rules::HTTP_RESPONSE_ACTIONS {
        add("http-response action", a.name, &a.status, a.doc);
    }
    for a in rules::HTTP_AFTER_RESPONSE_ACTIONS {
        add("http-after-response action", a.name, &a.status, a.doc);
    }
    for (section, name, status, doc) in sections::SECTION_KEYWORDS {
        add(section, name, status, doc);
    }
    for (name, status, doc) in PSEUDO {
        add("other", name, status, doc);
    }
    out
}

/// Non-keyword constructs whose use is recorded like a keyword.
pub static PSEUDO: &[(&str, Status, &str)] = &[
    (
        "condition (if/unless)",
        Status::Supported,
        "ACL conditions on any rule, including use_backend",
    ),
    (
        "acl date_hour",
        Status::Supported,
        "ringlb extension: hour of day, `9-17` or `9:17`",
    ),
    (
        "acl date_dow",
        Status::Supported,
        "ringlb extension: day of week, `1-5` or `1:5`",
    ),
];

/// Levenshtein distance (small strings only).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            if let Some(c) = cur.get_mut(j + 1) {
                *c = sub.min(del).min(ins);
            }
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// The candidate closest to `word`, if close enough to be a plausible typo.
pub fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The compatibility table, generated from the registry (`docs/compatibility.md`).
pub fn compatibility_markdown() -> String {
    let mut s = String::from(HEADER);
    let mut context = String::new();
    for k in all() {
        if k.context != context {
            context = k.context.clone();
            s.push_str(&format!(
                "\n### {context}\n\n| keyword | status | notes |\n|---|---|---|\n"
            ));
        }
        s.push_str(&format!(
            "| `{}` | {} | {} |\n",
            k.name,
            k.status,
            k.doc.replace('|', "\\|")
        ));
    }
    s
}

const HEADER: &str = "# HAProxy configuration compatibility\n\n\
<!-- Generated by ringlb_config::compatibility_markdown(); do not edit. \
Regenerate with `RINGLB_BLESS=1 cargo test -p ringlb-config compatibility`. -->\n\n\
ringlb reads HAProxy 2.6 configuration files. Every keyword it knows is listed below with a status:\n\n\
- **supported** — parsed into the model and implemented by the engine.\n\
- **parsed (issue #N)** — parsed and validated (so `ringlb -c` accepts the line, and reports mistakes in it \
as haproxy would), stored in the typed model, and takes effect when issue #N lands. `ringlb -c` accepts it \
silently; the engine decides whether it can start without it (`Config::keyword_uses` lists every use).\n\
- **accepted, ignored** — meaningless for ringlb; accepted with a warning that says why.\n\
- **unsupported** — a HAProxy keyword ringlb does not implement: an error, \
\"HAProxy keyword 'X' is not supported by ringlb yet\".\n\n\
A word that is not a HAProxy keyword is an error naming the nearest known keyword.\n\n\
## Decisions on the guide's constructs that haproxy 2.6 rejects\n\n\
- `acl ... date_hour 9-17` / `date_dow 1-5`: ringlb extensions. They parse now (ranges `9-17` and HAProxy's \
`9:17` form, validated against 0-23 / 0-7) and evaluate when the rules engine (issue #6) lands. \
`-c` warns that haproxy rejects them.\n\
- `http-check expect body \"...\"`: accepted as a synonym of `http-check expect string`, with a warning. \
HAProxy's lexical rules are kept: `\"status\":\"ok\"` becomes `status:ok`; write `'\"status\":\"ok\"'` \
(single quotes) to keep the JSON text.\n\
- A second `http-check send` after an `expect` without `http-check connect` (the guide's multi-step check): \
accepted with a warning; it means a new connection for each send/expect pair.\n\
- `ssl-engine`, `ssl-mode-async`: accepted no-ops with a warning (rustls has no engines).\n\
- `hash-type ... none` (issue #5 lists it; haproxy 2.6 refuses it, later versions added it): accepted with a \
warning; the key's decimal value is the hash, as in those versions.\n\
- Two `stick-table` lines in one proxy: an error (one table per proxy; put extra tables in dedicated backends \
and use `track-scN <key> table <backend>`).\n\
- `track-sc1 src,path`: an error (`path` is a fetch, not a converter; use `base32+src` or `concat` for a combined key).\n\n\
Paths in configs (errorfiles, certificates) are relative to the working directory, as in HAProxy.\n\n\
## Lexical rules (as haproxy 2.6, checked against `haproxy -c`)\n\n\
- Environment variables (`$VAR`, `${VAR}`, `${VAR-default}`, `${VAR[*]}`) expand only inside double quotes; \
unquoted and single-quoted `$` is literal. `.FILE`, `.LINE`, `.SECTION` pseudo-variables are supported.\n\
- `#` starts a comment anywhere outside quotes; `\\` escapes (`\\ `, `\\#`, `\\n`, `\\xNN`...) work unquoted \
and in double quotes; single quotes protect everything.\n\
- `.if/.elif/.else/.endif` with `defined()`, `feature()`, `streq()`, `strneq()`, `version_atleast()`, \
`version_before()`, `!`, `&&`, `||` and parentheses; ringlb answers as HAProxy 2.6.12. `.diag` messages show with `-dD`.\n\
- `-f DIR` loads the directory's `*.cfg` files in lexical order.\n\n\
## Known differences from `haproxy -c`\n\n\
- Keywords listed as *unsupported* below (e.g. `compression`, `filter`, `lua-load`) \
are errors in ringlb while haproxy accepts them: ringlb refuses what it would not honour.\n\
- Like haproxy, ports and server `weight`/`maxconn`/`maxqueue`/`minconn`/`rise`/`fall` are read with \
`atoi()` semantics (`:80x` is port 80); ringlb is stricter elsewhere (timeouts, sizes, global integers).\n\
- Errorfiles are checked for an `HTTP/1.x <code>` status line and an end of headers, not fully parsed.\n\n\
## Keywords\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_keyword() {
        let c = ["nbthread", "maxconn", "daemon"];
        assert_eq!(nearest("nbthred", c.iter().copied()), Some("nbthread"));
        assert_eq!(nearest("maxcon", c.iter().copied()), Some("maxconn"));
        assert_eq!(nearest("zzzzzzzz", c.iter().copied()), None);
    }

    #[test]
    fn registry_has_no_duplicates_per_context() {
        let mut seen = std::collections::HashSet::new();
        for k in all() {
            assert!(
                seen.insert((k.context.clone(), k.name.clone())),
                "duplicate {} {}",
                k.context,
                k.name
            );
            assert!(!k.doc.is_empty(), "{} has no doc", k.name);
        }
    }

    #[test]
    fn compatibility_doc_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/compatibility.md");
        let want = compatibility_markdown();
        if std::env::var_os("RINGLB_BLESS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(have == want, "docs/compatibility.md is stale: run RINGLB_BLESS=1 cargo test -p ringlb-config compatibility");
    }
}
