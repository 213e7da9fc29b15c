#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `help` and unknown-command suggestions: the matching algorithm (exact word prefix, then
//! HAProxy's fingerprint distance) run on haproxy 2.6's *full* command list must reproduce
//! haproxy's recorded answers byte for byte; and ringlb's own help lists only lines that
//! haproxy prints too.

use ringlb_runtime::table::{
    usage_message, usage_message_in, Keyword, Kw, Level, KEYWORDS, NOT_YET,
};

fn recorded(input: &str) -> String {
    let text = include_str!("../fixtures/recorded.txt");
    let head = format!("### admin|{input}\n");
    let start = text.find(&head).unwrap() + head.len();
    let end = text[start..]
        .find("\n### ")
        .map_or(text.len(), |e| start + e + 1);
    text[start..end].to_string()
}

/// haproxy's commands, rebuilt from its `help` output: the leading plain words are the
/// keyword, the whole line its usage.
fn haproxy_table() -> Vec<Keyword> {
    let help = recorded("help");
    help.lines()
        .filter(|l| l.starts_with("  "))
        .filter(|l| {
            !l.starts_with("  help ") && !l.starts_with("  prompt ") && !l.starts_with("  quit ")
        })
        .map(|l| {
            let usage: &'static str = Box::leak(l[2..].to_string().into_boxed_str());
            let head = &usage[..usage.find(": ").unwrap()];
            let words: Vec<&'static str> = head
                .split_whitespace()
                .take_while(|w| w.bytes().all(|c| c.is_ascii_lowercase() || c == b'-'))
                .collect();
            Keyword {
                words: Box::leak(words.into_boxed_slice()),
                usage: Some(usage),
                level: Level::User,
                kw: Kw::ShowInfo,
            }
        })
        .collect()
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

#[test]
fn suggestions_match_haproxy_on_its_own_command_list() {
    let mut table = haproxy_table();
    // Equal distances keep registration order, which `help` (sorted) does not show: haproxy
    // registers `show stat` (stats.c) before `show servers ...` (proxy.c), and "help show
    // serv" ties those three.
    let stat = table
        .iter()
        .position(|k| k.words == ["show", "stat"])
        .unwrap();
    let kw = table.remove(stat);
    table.insert(0, kw);
    assert!(table.len() > 90, "{}", table.len());
    for input in [
        "help",
        "foo",
        "",
        "show",
        "set",
        "show servers",
        "get wieght be/s1",
        "help set",
        "help show serv",
        "help get weight",
        "set maxconn",
    ] {
        let want = recorded(input);
        let got = usage_message_in(&table, &words(input)).text + "\n";
        assert_eq!(got, want, "input {input:?}");
    }
}

#[test]
fn ringlb_help_is_a_subset_of_haproxy_help_in_the_same_order() {
    let theirs = recorded("help");
    let ours = usage_message(&words("help")).text;
    let their_lines: Vec<&str> = theirs.lines().collect();
    let mut last = 0;
    for line in ours.lines() {
        let pos = their_lines
            .iter()
            .position(|l| *l == line)
            .unwrap_or_else(|| panic!("not in haproxy's help: {line:?}"));
        assert!(pos >= last, "out of order: {line:?}");
        last = pos;
    }
    // Every command ringlb runs is listed once (help/prompt/quit are the fixed tail).
    let listed = ours.lines().filter(|l| l.starts_with("  ")).count();
    let with_usage = KEYWORDS
        .iter()
        .filter(|k| k.usage.is_some() && !NOT_YET.contains(&k.kw))
        .count();
    assert_eq!(listed, with_usage + 3);
}

#[test]
fn unknown_command_suggests_close_commands() {
    let r = usage_message(&words("get wieght be/s1"));
    assert!(r
        .text
        .starts_with("Unknown command, but maybe one of the following ones is a better match:\n"));
    assert!(r.text.contains("  get weight <bk>/<srv>"));
    let r = usage_message(&words("shwo servers state"));
    assert!(
        r.text.contains("show servers state [<backend>]"),
        "{}",
        r.text
    );
}

/// `help` lists what ringlb runs, not the commands it only answers "not supported" to.
#[test]
fn help_lists_only_what_runs() {
    let help = usage_message(&words("help")).text;
    for runs in [
        "  clear table <table>",
        "  set table <table> key",
        "  show map [@ver] [map]",
        "  add map [@<ver>] <map>",
        "  clear acl [@<ver>] <acl>",
        "  set server <bk>/<srv> [opts]",
        "  show servers conn [<backend>]",
        "  show ssl cert [<certfile>]",
        "  commit ssl cert <certfile>",
        "  add server <bk>/<srv>",
        "  del server <bk>/<srv>",
        "  disable frontend <frontend>",
        "  enable frontend <frontend>",
        "  shutdown frontend <frontend>",
        "  set maxconn frontend <frontend>",
        "  set maxconn global <value>",
        "  set rate-limit <setting> <value>",
        "  show errors [<px>] [request|response]",
        "  show sess [id]",
        "  shutdown session [id]",
        "  show activity",
        "  show pools",
    ] {
        assert!(help.contains(runs), "{runs:?} missing:\n{help}");
    }
}
