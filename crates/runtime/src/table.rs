//! The one table of runtime commands ringlb implements: words, HAProxy's usage line and the
//! minimum level. It drives parsing ([`lookup`]), level checks and `help` ([`usage_message`]),
//! so the help text cannot drift from what the parser accepts.

use crate::reply::{severity, Reply};

/// CLI access level of a session (`stats socket ... level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Read-only, no sensitive data.
    User,
    /// Read everything, change non-critical settings.
    Operator,
    /// Everything.
    Admin,
}

impl Level {
    /// The word used in the config and by `show cli level`.
    pub fn name(self) -> &'static str {
        match self {
            Level::User => "user",
            Level::Operator => "operator",
            Level::Admin => "admin",
        }
    }
    /// Level of a `stats socket` line: its `level` option, operator when absent (HAProxy's
    /// default); `None` for an unknown word.
    pub fn from_socket_option(level: Option<&str>) -> Option<Level> {
        level.map_or(Some(Level::Operator), Level::parse)
    }
    /// Parses `user|operator|admin`.
    pub fn parse(word: &str) -> Option<Level> {
        match word {
            "user" => Some(Level::User),
            "operator" => Some(Level::Operator),
            "admin" => Some(Level::Admin),
            _ => None,
        }
    }
}

/// Which parser handles a keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kw {
    Help,
    Prompt,
    Quit,
    User,
    Operator,
    SetSeverityOutput,
    SetTimeout,
    ShowCliLevel,
    AbortSslCert,
    AddAcl,
    AddMap,
    AddServer,
    ClearAcl,
    ClearMap,
    ClearTable,
    CommitSslCert,
    DelAcl,
    DelSslCert,
    ShowTlsKeys,
    SetSslTlsKey,
    DelMap,
    DelServer,
    DisableAgent,
    DisableFrontend,
    DisableHealth,
    DisableServer,
    EnableAgent,
    EnableFrontend,
    EnableHealth,
    EnableServer,
    GetWeight,
    NewSslCert,
    SetMap,
    SetMaxconnFrontend,
    SetMaxconnGlobal,
    SetMaxconnServer,
    SetRateLimit,
    SetServer,
    SetSslCert,
    SetTable,
    SetWeight,
    ShowAcl,
    ShowActivity,
    ShowBackend,
    ShowErrors,
    ShowEvents,
    ShowInfo,
    ShowMap,
    ShowPools,
    ShowResolvers,
    Reload,
    ShowServersConn,
    ShowServersState,
    ShowSess,
    ShowSslCert,
    ShowStat,
    ShowTable,
    ShowPeers,
    ShutdownFrontend,
    ShutdownSession,
}

/// One runtime command.
#[derive(Debug, Clone, Copy)]
pub struct Keyword {
    /// The fixed words that select it (`["set", "maxconn", "server"]`).
    pub words: &'static [&'static str],
    /// HAProxy 2.6's help line, verbatim (`None`: not listed, like help/prompt/quit).
    pub usage: Option<&'static str>,
    /// Lowest level allowed to run it; below it HAProxy answers "Permission denied".
    pub level: Level,
    /// Its parser.
    pub kw: Kw,
}

const fn k(words: &'static [&'static str], usage: &'static str, level: Level, kw: Kw) -> Keyword {
    Keyword {
        words,
        usage: Some(usage),
        level,
        kw,
    }
}

use Level::{Admin, Operator, User};

/// Every command ringlb implements, in lookup order (first full match wins, as in HAProxy).
/// Usage lines are HAProxy 2.6's, so `help` reads the same to scripts and people.
pub static KEYWORDS: &[Keyword] = &[
    Keyword { words: &["help"], usage: None, level: User, kw: Kw::Help },
    Keyword { words: &["prompt"], usage: None, level: User, kw: Kw::Prompt },
    Keyword { words: &["quit"], usage: None, level: User, kw: Kw::Quit },
    k(&["user"], "user                                    : lower the level of the current CLI session to user", User, Kw::User),
    k(&["operator"], "operator                                : lower the level of the current CLI session to operator", User, Kw::Operator),
    k(&["set", "severity-output"], "set severity-output [none|number|string]: set presence of severity level in feedback information", User, Kw::SetSeverityOutput),
    k(&["set", "timeout"], "set timeout [cli] <delay>               : change a timeout setting", User, Kw::SetTimeout),
    k(&["show", "cli", "level"], "show cli level                          : display the level of the current CLI session", User, Kw::ShowCliLevel),
    k(&["show", "info"], "show info [desc|json|typed|float]*      : report information about the running process", User, Kw::ShowInfo),
    k(&["show", "stat"], "show stat [desc|json|no-maint|typed|up]*: report counters for each proxy and server", User, Kw::ShowStat),
    k(&["show", "servers", "state"], "show servers state [<backend>]          : dump volatile server information (all or for a single backend)", User, Kw::ShowServersState),
    k(&["show", "servers", "conn"], "show servers conn [<backend>]           : dump server connections status (all or for a single backend)", User, Kw::ShowServersConn),
    k(&["show", "backend"], "show backend                            : list backends in the current running config", User, Kw::ShowBackend),
    k(&["show", "sess"], "show sess [id]                          : report the list of current sessions or dump this exact session", Operator, Kw::ShowSess),
    k(&["shutdown", "session"], "shutdown session [id]                   : kill a specific session", Admin, Kw::ShutdownSession),
    k(&["show", "errors"], "show errors [<px>] [request|response]   : report last request and/or response errors for each proxy", Operator, Kw::ShowErrors),
    k(&["show", "table"], "show table <table> [<filter>]*          : report table usage stats or dump this table's contents (filter: data/key)", User, Kw::ShowTable),
    k(&["clear", "table"], "clear table <table> [<filter>]*         : remove an entry from a table (filter: data/key)", User, Kw::ClearTable),
    k(&["set", "table"], "set table <table> key <k> [data.* <v>]* : update or create a table entry's data", User, Kw::SetTable),
    k(&["set", "server"], "set server <bk>/<srv> [opts]            : change a server's state, weight, address or ssl", Admin, Kw::SetServer),
    k(&["enable", "server"], "enable server  (DEPRECATED)             : enable a disabled server (use 'set server' instead)", Admin, Kw::EnableServer),
    k(&["disable", "server"], "disable server (DEPRECATED)             : disable a server for maintenance (use 'set server' instead)", Admin, Kw::DisableServer),
    k(&["enable", "health"], "enable health                           : enable health checks", Admin, Kw::EnableHealth),
    k(&["disable", "health"], "disable health                          : disable health checks", Admin, Kw::DisableHealth),
    k(&["enable", "agent"], "enable agent                            : enable agent checks", Admin, Kw::EnableAgent),
    k(&["disable", "agent"], "disable agent                           : disable agent checks", Admin, Kw::DisableAgent),
    k(&["get", "weight"], "get weight <bk>/<srv>                   : report a server's current weight", User, Kw::GetWeight),
    k(&["set", "weight"], "set weight <bk>/<srv>  (DEPRECATED)     : change a server's weight (use 'set server' instead)", Admin, Kw::SetWeight),
    k(&["set", "maxconn", "server"], "set maxconn server <bk>/<srv>           : change a server's maxconn setting", Admin, Kw::SetMaxconnServer),
    k(&["set", "maxconn", "frontend"], "set maxconn frontend <frontend> <value> : change a frontend's maxconn setting", Admin, Kw::SetMaxconnFrontend),
    k(&["set", "maxconn", "global"], "set maxconn global <value>              : change the per-process maxconn setting", Admin, Kw::SetMaxconnGlobal),
    k(&["set", "rate-limit"], "set rate-limit <setting> <value>        : change a rate limiting value", Admin, Kw::SetRateLimit),
    k(&["add", "server"], "add server <bk>/<srv>                   : create a new server", Admin, Kw::AddServer),
    k(&["del", "server"], "del server <bk>/<srv>                   : remove a dynamically added server", Admin, Kw::DelServer),
    k(&["show", "map"], "show map [@ver] [map]                   : report available maps or dump a map's contents", User, Kw::ShowMap),
    k(&["add", "map"], "add map [@<ver>] <map> <key> <val>      : add a map entry (payload supported instead of key/val)", User, Kw::AddMap),
    k(&["del", "map"], "del map <map> [<key>|#<ref>]            : delete map entries matching <key>", User, Kw::DelMap),
    k(&["set", "map"], "set map <map> [<key>|#<ref>] <value>    : modify a map entry", User, Kw::SetMap),
    k(&["clear", "map"], "clear map [@<ver>] <map>                : clear the contents of this map", User, Kw::ClearMap),
    k(&["show", "acl"], "show acl [@<ver>] <acl>]                : report available acls or dump an acl's contents", User, Kw::ShowAcl),
    k(&["add", "acl"], "add acl [@<ver>] <acl> <pattern>        : add an acl entry", User, Kw::AddAcl),
    k(&["del", "acl"], "del acl <acl> [<key>|#<ref>]            : delete acl entries matching <key>", User, Kw::DelAcl),
    k(&["clear", "acl"], "clear acl [@<ver>] <acl>                : clear the contents of this acl", User, Kw::ClearAcl),
    k(&["show", "ssl", "cert"], "show ssl cert [<certfile>]              : display the SSL certificates used in memory, or the details of a file", User, Kw::ShowSslCert),
    k(&["set", "ssl", "cert"], "set ssl cert <certfile> <payload>       : replace a certificate file", Admin, Kw::SetSslCert),
    k(&["commit", "ssl", "cert"], "commit ssl cert <certfile>              : commit a certificate file", Admin, Kw::CommitSslCert),
    k(&["abort", "ssl", "cert"], "abort ssl cert <certfile>               : abort a transaction for a certificate file", Admin, Kw::AbortSslCert),
    k(&["new", "ssl", "cert"], "new ssl cert <certfile>                 : create a new certificate file to be used in a crt-list or a directory", Admin, Kw::NewSslCert),
    k(&["del", "ssl", "cert"], "del ssl cert <certfile>                 : delete an unused certificate file", Admin, Kw::DelSslCert),
    // User level, as haproxy 2.6 (recorded: both work on a `level user` socket).
    k(&["set", "ssl", "tls-key"], "set ssl tls-key [id|file] <key>         : set the next TLS key for the <id> or <file> listener to <key>", User, Kw::SetSslTlsKey),
    k(&["show", "tls-keys"], "show tls-keys [id|*]                    : show tls keys references or dump tls ticket keys when id specified", User, Kw::ShowTlsKeys),
    k(&["show", "activity"], "show activity                           : show per-thread activity stats (for support/developers)", User, Kw::ShowActivity),
    k(&["show", "peers"], "show peers [dict|-] [section]           : dump some information about all the peers or this peers section", User, Kw::ShowPeers),
    k(&["show", "pools"], "show pools                              : report information about the memory pools usage", User, Kw::ShowPools),
    k(&["show", "resolvers"], "show resolvers [id]                     : dumps counters from all resolvers section and associated name servers", User, Kw::ShowResolvers),
    k(&["show", "events"], "show events [<sink>] [-w] [-n]          : show event sink state", User, Kw::ShowEvents),
    k(&["shutdown", "frontend"], "shutdown frontend <frontend>            : stop a specific frontend", Admin, Kw::ShutdownFrontend),
    k(&["disable", "frontend"], "disable frontend <frontend>             : temporarily disable specific frontend", Admin, Kw::DisableFrontend),
    // Not in haproxy 2.6's help (kept byte-identical): ringlb's in-process reload.
    Keyword { words: &["reload"], usage: None, level: Admin, kw: Kw::Reload },
    k(&["enable", "frontend"], "enable frontend <frontend>              : re-enable specific frontend", Admin, Kw::EnableFrontend),
];

/// How many leading words a keyword may have (`CLI_PREFIX_KW_NB`).
const PREFIX_KW_NB: usize = 5;
/// How many fuzzy suggestions are kept (`CLI_MAX_MATCHES`).
const MAX_MATCHES: usize = 5;

/// The keyword whose words all prefix `args` (first in table order), as HAProxy's
/// `cli_find_kw` does.
pub fn lookup(args: &[String]) -> Option<&'static Keyword> {
    lookup_in(KEYWORDS, args)
}

fn lookup_in<'a>(table: &'a [Keyword], args: &[String]) -> Option<&'a Keyword> {
    table.iter().find(|kw| {
        kw.words
            .iter()
            .enumerate()
            .all(|(i, w)| args.get(i).is_some_and(|a| a == w))
    })
}

/// Lines always appended to a usage message.
const FIXED_TAIL: &str = "  help [<command>]                        : list matching or all commands\n  prompt                                  : toggle interactive mode with prompt\n  quit                                    : disconnect\n";

/// The message for `help [words]` (`args` starts with "help") or for an unknown command:
/// the commands matching the longest exact word prefix, narrowed by fuzzy matching on the
/// next words (HAProxy's `cli_gen_usage_msg`, including its bigram "fingerprint" distance).
pub fn usage_message(args: &[String]) -> Reply {
    let listed: Vec<Keyword> = KEYWORDS
        .iter()
        .filter(|k| !NOT_YET.contains(&k.kw))
        .copied()
        .collect();
    usage_message_in(&listed, args)
}

/// Commands ringlb parses, so that they get a one-line "not supported by ringlb yet" answer
/// rather than "Unknown command", but does not run yet: `help` and the suggestions for an
/// unknown command leave them out. (`set server` is listed: most of its operations run.)
pub const NOT_YET: &[Kw] = &[];

/// [`usage_message`] over any table (tests run it on HAProxy's full command list).
pub fn usage_message_in(table: &[Keyword], args: &[String]) -> Reply {
    let (args, is_help) = match args.first() {
        Some(first) if first == "help" => (&args[1..], true),
        _ => (args, false),
    };
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let prefix_matches = |kw: &Keyword, upto: usize| -> usize {
        let mut idx = 0;
        while idx < upto {
            let Some(word) = kw.words.get(idx) else { break };
            if arg(idx).is_empty() || *word != arg(idx) {
                break;
            }
            idx += 1;
        }
        idx
    };
    let length = table
        .iter()
        .map(|kw| prefix_matches(kw, PREFIX_KW_NB))
        .max()
        .unwrap_or(0);

    let mut text = String::from(if is_help {
        "The following commands are valid at this level:\n"
    } else if length == 0 && arg(0).is_empty() {
        "Unknown command. Please enter one of the following commands only:\n"
    } else {
        "Unknown command, but maybe one of the following ones is a better match:\n"
    });

    // Keep the best MAX_MATCHES by distance; ties keep table order.
    let mut matches: Vec<(&Keyword, usize)> = Vec::with_capacity(MAX_MATCHES + 1);
    if !arg(length).is_empty() {
        for kw in table {
            if kw.usage.is_none() || prefix_matches(kw, length) != length {
                continue;
            }
            let mut word_sig = Fingerprint::new();
            let mut list_sig = Fingerprint::new();
            let mut totlen = 0usize;
            for i in length..PREFIX_KW_NB {
                if arg(i).is_empty() {
                    break;
                }
                word_sig.update(arg(i));
                totlen += arg(i).len();
            }
            for w in kw.words.iter().take(PREFIX_KW_NB).skip(length) {
                list_sig.update(w);
                totlen += w.len();
            }
            let dist = word_sig.distance(&list_sig);
            let worst = if matches.len() == MAX_MATCHES {
                matches.last().map_or(usize::MAX, |m| m.1)
            } else {
                usize::MAX
            };
            if dist < 5 * totlen / 2 && dist < worst {
                let pos = matches
                    .iter()
                    .position(|m| m.1 > dist)
                    .unwrap_or(matches.len());
                matches.insert(pos, (kw, dist));
                matches.truncate(MAX_MATCHES);
            }
        }
    }

    let mut entries: Vec<&str> = Vec::new();
    if let Some(&(_, best)) = matches.first() {
        for (kw, dist) in &matches {
            if *dist > 5 * best / 2 {
                break;
            }
            entries.extend(kw.usage);
        }
    } else {
        for kw in table {
            if prefix_matches(kw, length) == length {
                entries.extend(kw.usage);
            }
        }
    }
    entries.sort_unstable();
    for usage in entries {
        text.push_str("  ");
        text.push_str(usage);
        text.push('\n');
    }
    text.push_str(FIXED_TAIL);
    Reply::msg(severity::INFO, text)
}

/// The candidate closest to `word` by fingerprint distance, as HAProxy's `*_find_best_kw`
/// picks "did you mean" suggestions (first of equals wins; too far means none).
pub fn best_match<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut sig = Fingerprint::new();
    sig.update(word);
    let mut best: Option<(&str, usize)> = None;
    for c in candidates {
        let mut cs = Fingerprint::new();
        cs.update(c);
        let d = sig.distance(&cs);
        if best.is_none_or(|(_, bd)| d < bd) {
            best = Some((c, d));
        }
    }
    let (b, d) = best?;
    (d <= 2 * word.len() && d <= 2 * b.len()).then_some(b)
}

/// HAProxy's word fingerprint: counts of character transitions (letters, digit class,
/// other class, with begin/end markers) in a 32×32 matrix of wrapping bytes, plus a row
/// marking which characters occur.
struct Fingerprint([u8; 1024]);

impl Fingerprint {
    fn new() -> Self {
        Fingerprint([0; 1024])
    }

    fn update(&mut self, word: &str) {
        let class = |c: u8| -> usize {
            match c.to_ascii_lowercase() {
                c @ b'a'..=b'z' => usize::from(c - b'a') + 1,
                b'0'..=b'9' => 27,
                _ => 28,
            }
        };
        let mut from = 28usize;
        for c in word.bytes() {
            let to = class(c);
            // Row 0 marks which characters occur at all.
            if let Some(cell) = self.0.get_mut(to) {
                *cell = 1;
            }
            self.bump(32 * from + to);
            from = to;
        }
        self.bump(32 * from + 28);
    }

    fn bump(&mut self, i: usize) {
        if let Some(cell) = self.0.get_mut(i) {
            *cell = cell.wrapping_add(1);
        }
    }

    fn distance(&self, other: &Fingerprint) -> usize {
        self.0
            .iter()
            .zip(other.0.iter())
            .map(|(a, b)| usize::from(a.abs_diff(*b)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn usage_lines_keep_haproxy_column() {
        for kw in KEYWORDS {
            if let Some(u) = kw.usage {
                let colon = u.find(": ").unwrap();
                assert!(colon >= 40, "{u}");
                assert!(u.starts_with(&kw.words.join(" ")), "{u}");
            }
        }
    }

    #[test]
    fn stats_socket_default_level_is_operator() {
        assert_eq!(Level::from_socket_option(None), Some(Level::Operator));
        assert_eq!(Level::from_socket_option(Some("admin")), Some(Level::Admin));
        assert_eq!(Level::from_socket_option(Some("root")), None);
    }

    #[test]
    fn lookup_takes_first_full_match() {
        assert_eq!(
            lookup(&args("set server be/s1 state drain")).unwrap().kw,
            Kw::SetServer
        );
        assert_eq!(
            lookup(&args("show servers state")).unwrap().kw,
            Kw::ShowServersState
        );
        assert!(lookup(&args("show servers")).is_none());
        assert!(lookup(&args("set maxconn")).is_none());
        assert!(lookup(&[]).is_none());
    }

    #[test]
    fn help_with_exact_words_lists_that_family() {
        let r = usage_message(&args("help get weight"));
        assert_eq!(
            r.text,
            "The following commands are valid at this level:\n  get weight <bk>/<srv>                   : report a server's current weight\n".to_string()
                + FIXED_TAIL
        );
    }
}
