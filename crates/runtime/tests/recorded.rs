#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Replays `fixtures/commands.list` through `CliSession` + `apply` on a table modelling
//! `fixtures/haproxy.cfg`, in order, and compares with what haproxy 2.6 answered
//! (`fixtures/recorded.txt`, made by `fixtures/record.sh`).

use std::collections::BTreeSet;

use ringlb_runtime::servers::{self, admin, chk};
use ringlb_runtime::*;

struct Block {
    level: Level,
    input: String,
    output: String,
}

fn unescape(s: &str) -> String {
    // printf %b as used by record.sh: \n, \t, \r and \\.
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('\\') => out.push('\\'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn blocks() -> Vec<Block> {
    let text = include_str!("../fixtures/recorded.txt");
    let mut out: Vec<Block> = Vec::new();
    for chunk in text.split("### ").skip(1) {
        let (head, body) = chunk.split_once('\n').unwrap();
        let (level, input) = head.split_once('|').unwrap();
        out.push(Block {
            level: Level::parse(level).unwrap(),
            input: unescape(input) + "\n",
            output: body.to_string(),
        });
    }
    // A block's output may itself contain "### " only at a line start of the next record.
    out
}

/// The servers of fixtures/haproxy.cfg as haproxy 2.6 starts them.
fn table() -> ServerTable {
    let lo = Some("127.0.0.1".parse().unwrap());
    let mut s1 = ServerRow::new(1, "s1", lo, 9001, 3);
    s1.conn.idle_per_thread = vec![0, 0];
    let mut s2 = ServerRow::new(2, "s2", lo, 9002, 1);
    s2.admin = admin::FMAINT | admin::CMAINT;
    s2.op_state = OpState::Stopped;
    s2.check.state = chk::CONFIGURED | chk::ENABLED | chk::PAUSED;
    s2.check.health = 0;
    let s3 = ServerRow::new(3, "s3", lo, 9003, 0);
    let mut s4 = ServerRow::new(1, "s4", lo, 9004, 20);
    s4.check.state = chk::CONFIGURED | chk::ENABLED;
    s4.agent.state = chk::CONFIGURED | chk::ENABLED | chk::AGENT;
    s4.agent.port = 9005;
    let s5 = ServerRow::new(2, "s5", lo, 9006, 1);
    let mut t = ServerTable {
        backends: vec![
            BackendRow {
                id: 3,
                name: "be".into(),
                forced_id: false,
                dynamic_weights: true,
                servers: vec![s1, s2, s3],
            },
            BackendRow {
                id: 4,
                name: "be2".into(),
                forced_id: false,
                dynamic_weights: true,
                servers: vec![s4, s5],
            },
        ],
        frontends: vec![FrontendRow {
            name: "fe".into(),
            state: FrontendState::Ready,
            maxconn: 0,
        }],
        threads: 2,
        hard_maxconn: 1_000_000,
    };
    for be in &mut t.backends {
        for s in &mut be.servers {
            s.conn.idle_per_thread = vec![0, 0];
        }
    }
    t
}

/// srv_time_since_last_change (10th column of a server-state row) depends on the clock.
fn mask(s: &str) -> String {
    s.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() == 25 && f[0].parse::<u32>().is_ok() {
                let mut f = f.clone();
                f[9] = "T";
                f.join(" ")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if s.ends_with('\n') { "\n" } else { "" }
}

/// Answers of other owners that follow from the grammar alone (the stick-table owner
/// prints "No such table" before any deferred argument error; the fixture's table `be`
/// stores no data types), so those replies are compared too.
fn foreign_answer(cmd: &Command) -> Option<Reply> {
    use ringlb_runtime::command::{TableFilter, TableSet};
    let deferred = |table: &str, err: Option<&Reply>, filter: Option<&TableFilter>| {
        if table != "be" {
            return Some(Reply::err("No such table\n"));
        }
        if let Some(e) = err {
            return Some(e.clone());
        }
        filter.and_then(|f| f.check(|t| t == "gpc0", |_| false).err())
    };
    match cmd {
        Command::ShowTable {
            table: Some(t),
            filter,
        }
        | Command::ClearTable { table: t, filter } => {
            deferred(t, filter.as_ref().err(), filter.as_ref().ok())
        }
        Command::SetTable { table, set } => {
            let r: &Result<Option<TableSet>, Reply> = set;
            deferred(table, r.as_ref().err(), None)
        }
        // Adding to an existing map prints nothing.
        Command::AddMap { map, .. } if map == "test.map" => Some(Reply::empty()),
        _ => None,
    }
}

enum Verdict {
    Exact,
    Usage,
    Foreign,
}

/// Runs one connection; `None` when some command belongs to another owner.
fn run(table: &mut ServerTable, b: &Block) -> (String, Verdict) {
    let mut s = CliSession::new(b.level, SessionConfig::default());
    let mut out = Vec::new();
    let mut foreign = false;
    let mut usage = false;
    for req in s.feed(b.input.as_bytes()) {
        match req {
            Request::Reply(r) => {
                usage |= r.reply.text.contains("valid at this level")
                    || r.reply.text.starts_with("Unknown command");
                s.render(&r, &mut out)
            }
            Request::Run(p) => match apply(table, &p.command) {
                Some(o) => {
                    for c in &o.changes {
                        table.apply_change(c);
                    }
                    s.render(&p.respond(o.reply), &mut out);
                }
                None => {
                    let reply = foreign_answer(&p.command).unwrap_or_else(|| {
                        foreign = true;
                        Reply::empty()
                    });
                    s.render(&p.respond(reply), &mut out);
                }
            },
            Request::Close => break,
        }
    }
    let v = if foreign {
        Verdict::Foreign
    } else if usage {
        Verdict::Usage
    } else {
        Verdict::Exact
    };
    (String::from_utf8(out).unwrap(), v)
}

/// Recorded cases where ringlb deliberately differs, with the reason.
const KNOWN_DIVERGENCES: &[(&str, &str)] = &[(
    "add server be/s6 ::1\nshow servers state be\ndel server be/s6\n",
    "haproxy 2.6 reads a bare '::1' as host ':' port 1; ringlb takes it as an IPv6 address",
)];

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.is_empty()).unwrap_or("")
}

#[test]
fn replies_match_haproxy_recordings() {
    let all = blocks();
    let full_help: BTreeSet<String> = all
        .iter()
        .find(|b| b.input == "help\n" && b.level == Level::Admin)
        .unwrap()
        .output
        .lines()
        .map(String::from)
        .collect();
    let mut t = table();
    let (mut exact, mut usage, mut foreign) = (0, 0, 0);
    let mut failures = Vec::new();
    for b in all {
        let (got, verdict) = run(&mut t, &b);
        if KNOWN_DIVERGENCES.iter().any(|(input, _)| *input == b.input) {
            continue;
        }
        match verdict {
            Verdict::Exact => {
                exact += 1;
                if mask(&got) != mask(&b.output) {
                    failures.push(format!(
                        "[{}] {:?}\n--- haproxy\n{}--- ringlb\n{}",
                        b.level.name(),
                        b.input,
                        b.output,
                        got
                    ));
                }
            }
            Verdict::Usage => {
                usage += 1;
                // ringlb implements fewer commands, so its lists are shorter and its
                // suggestions may differ; the header must match and every command line
                // must be one of haproxy's (see usage.rs for the matching algorithm).
                if first_line(&got) != first_line(&b.output) {
                    failures.push(format!("{:?}: header {:?}", b.input, first_line(&got)));
                }
                for line in got.lines().filter(|l| l.starts_with("  ")) {
                    if !full_help.contains(line) {
                        failures.push(format!(
                            "{:?}: line not in haproxy's help: {line:?}",
                            b.input
                        ));
                    }
                }
            }
            Verdict::Foreign => foreign += 1,
        }
    }
    eprintln!("{exact} exact, {usage} usage, {foreign} for other owners");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The recording must keep exercising the server commands.
    assert!(
        exact >= 200,
        "only {exact} exact comparisons ({usage} usage, {foreign} foreign)"
    );
}

/// A saved state applied at start-up gives what haproxy 2.6 showed after loading it.
#[test]
fn server_state_file_is_applied_like_haproxy() {
    use ringlb_runtime::state_file;
    let rows = state_file::parse(include_str!("../fixtures/state-in.txt")).unwrap();
    assert_eq!(rows.len(), 7);
    let mut t = table();
    assert_eq!(
        t.restore_state(&rows),
        5,
        "s9 and backend nobe do not exist"
    );
    let got = servers::show_servers_state(&t, None).text + "\n";
    assert_eq!(got, include_str!("../fixtures/state-in-loaded.txt"));
}

/// One bad line and haproxy applies nothing, with this warning.
#[test]
fn corrupted_server_state_file_is_refused() {
    use ringlb_runtime::state_file;
    let err = state_file::parse(include_str!("../fixtures/state-corrupt.txt")).unwrap_err();
    let recorded = include_str!("../fixtures/state-corrupt-loaded.txt");
    let warning = recorded.lines().last().unwrap();
    assert_eq!(format!("config: {warning}"), err.message("DIR/state"));
    // ... and the servers keep their configured state.
    let t = table();
    let shown = servers::show_servers_state(&t, None).text + "\n";
    assert_eq!(
        mask(&shown),
        mask(recorded.strip_suffix(&format!("{warning}\n")).unwrap())
    );
    assert!(matches!(
        state_file::parse("2\n"),
        Err(state_file::StateFileError::Version(_))
    ));
}
