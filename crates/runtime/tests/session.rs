#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Session protocol: framing, prompt mode, payloads, limits, levels, and no panic on any input.

use ringlb_runtime::command::{Command, EntryRef};
use ringlb_runtime::*;

/// Feeds `input` and renders, answering every `Run` with `answer(command)`.
fn transcript(
    s: &mut CliSession,
    input: &[u8],
    answer: &mut dyn FnMut(&Command) -> Reply,
) -> (String, bool) {
    let mut out = Vec::new();
    let mut closed = false;
    for req in s.feed(input) {
        match req {
            Request::Reply(r) => s.render(&r, &mut out),
            Request::Run(p) => {
                let reply = answer(&p.command);
                s.render(&p.respond(reply), &mut out);
            }
            Request::Close => closed = true,
        }
    }
    (String::from_utf8(out).unwrap(), closed)
}

fn weight(_: &Command) -> Reply {
    Reply::raw("3 (initial 3)\n")
}

#[test]
fn one_shot_connection_closes_after_the_last_command() {
    let mut s = CliSession::new(Level::Admin, SessionConfig::default());
    let (out, closed) = transcript(&mut s, b"get weight be/s1;get weight be/s1\n", &mut weight);
    assert_eq!(out, "3 (initial 3)\n\n3 (initial 3)\n\n");
    assert!(closed);
    assert!(
        s.feed(b"get weight be/s1\n").is_empty(),
        "nothing after close"
    );
}

#[test]
fn partial_lines_wait_for_more_bytes() {
    let mut s = CliSession::new(Level::Admin, SessionConfig::default());
    assert!(s.feed(b"get weig").is_empty());
    let (out, closed) = transcript(&mut s, b"ht be/s1\r\n", &mut weight);
    assert_eq!(out, "3 (initial 3)\n\n");
    assert!(closed);
}

#[test]
fn byte_by_byte_equals_all_at_once() {
    let input = b"prompt\nget weight be/s1\nhelp get weight\nset severity-output number\nfoo\nuser\nset weight be/s1 2\nquit\n";
    let mut a = CliSession::new(Level::Admin, SessionConfig::default());
    let (whole, closed_a) = transcript(&mut a, input, &mut weight);
    let mut b = CliSession::new(Level::Admin, SessionConfig::default());
    let mut pieces = String::new();
    let mut closed_b = false;
    for byte in input {
        let (o, c) = transcript(&mut b, &[*byte], &mut weight);
        pieces.push_str(&o);
        closed_b |= c;
    }
    assert_eq!(whole, pieces);
    assert!(closed_a && closed_b);
    assert!(whole.starts_with("\n> 3 (initial 3)\n\n> The following commands"));
    assert!(whole.contains("\n> [3]: Permission denied\n\n> "));
}

#[test]
fn prompt_mode_stays_open_until_quit() {
    let mut s = CliSession::new(Level::User, SessionConfig::default());
    let (out, closed) = transcript(&mut s, b"prompt\nget weight be/s1\n", &mut weight);
    assert_eq!(out, "\n> 3 (initial 3)\n\n> ");
    assert!(!closed);
    assert!(s.interactive());
    let (out, closed) = transcript(&mut s, b"quit\n", &mut weight);
    assert_eq!(out, "");
    assert!(closed);
}

#[test]
fn levels_only_go_down() {
    let mut s = CliSession::new(Level::Admin, SessionConfig::default());
    let (out, _) = transcript(
        &mut s,
        b"prompt\noperator\nset weight be/s1 2\nuser\noperator\nshow cli level\n",
        &mut weight,
    );
    assert_eq!(
        out,
        "\n> \n> Permission denied\n\n> \n> Permission denied\n\n> user\n\n> "
    );
    assert_eq!(s.level(), Level::User);
}

#[test]
fn payload_is_collected_until_an_empty_line() {
    let mut s = CliSession::new(Level::Admin, SessionConfig::default());
    let mut seen = Vec::new();
    let (out, closed) = transcript(
        &mut s,
        b"add map #1 <<\n10.0.0.1 a\n10.0.0.2  b c\n\nget weight be/s1\n",
        &mut |c| {
            seen.push(c.clone());
            Reply::empty()
        },
    );
    assert_eq!(
        seen[0],
        Command::AddMap {
            version: None,
            map: "#1".into(),
            entries: vec![
                ("10.0.0.1".into(), "a".into()),
                ("10.0.0.2".into(), "b c".into())
            ],
        }
    );
    assert_eq!(out, "\n\n");
    assert!(closed);
    // In prompt mode each payload line is acknowledged with "+ ".
    let mut s = CliSession::new(Level::Admin, SessionConfig::default());
    let (out, _) = transcript(
        &mut s,
        b"prompt\nset ssl cert a.pem <<\nLINE1\nLINE2\n\n",
        &mut |c| {
            assert_eq!(
                *c,
                Command::SetSslCert {
                    file: "a.pem".into(),
                    payload: "LINE1\nLINE2".into()
                }
            );
            Reply::raw("Transaction created for certificate a.pem!\n")
        },
    );
    assert_eq!(
        out,
        "\n> + + + Transaction created for certificate a.pem!\n\n> "
    );
}

#[test]
fn escaped_semicolon_stays_in_the_argument() {
    let mut s = CliSession::new(Level::Admin, SessionConfig::default());
    let mut seen = Vec::new();
    transcript(&mut s, b"del map m a\\;b;del map m #3\n", &mut |c| {
        seen.push(c.clone());
        Reply::empty()
    });
    assert_eq!(
        seen,
        vec![
            Command::DelMap {
                map: "m".into(),
                entry: EntryRef::Key("a;b".into())
            },
            Command::DelMap {
                map: "m".into(),
                entry: EntryRef::Ref("3".into())
            },
        ]
    );
}

#[test]
fn overlong_line_closes_the_connection() {
    let cfg = SessionConfig {
        bufsize: 64,
        ..SessionConfig::default()
    };
    let mut s = CliSession::new(Level::Admin, cfg);
    let reqs = s.feed(&[b'a'; 100]);
    assert_eq!(reqs, vec![Request::Close]);
    let mut s = CliSession::new(Level::Admin, cfg);
    let mut line = vec![b'x'; 70];
    line.push(b'\n');
    assert_eq!(s.feed(&line), vec![Request::Close]);
    // Just under the limit is fine.
    let mut s = CliSession::new(Level::Admin, cfg);
    let mut line = b"get weight ".to_vec();
    line.extend(vec![b'x'; 40]);
    line.push(b'\n');
    assert!(matches!(s.feed(&line)[0], Request::Reply(_)));
}

#[test]
fn eof_drops_an_unfinished_line() {
    let mut s = CliSession::new(Level::Admin, SessionConfig::default());
    assert!(s.feed(b"get weight be/s1").is_empty());
    assert_eq!(s.feed_eof(), vec![Request::Close]);
    assert!(s.is_closed());
}

#[test]
fn set_timeout_cli_is_kept_by_the_session() {
    let mut s = CliSession::new(Level::User, SessionConfig::default());
    let (out, _) = transcript(&mut s, b"set timeout cli 2m\n", &mut weight);
    assert_eq!(out, "\n");
    assert_eq!(s.timeout_cli_secs(), Some(120));
}

/// xorshift64*: deterministic bytes without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn random_input_never_panics_and_levels_hold() {
    // Bytes biased towards the ones the parser cares about, plus words of real commands.
    let alphabet: &[&[u8]] = &[
        b"\n",
        b";",
        b"\\",
        b" ",
        b"\t",
        b"\r",
        b"<<",
        b"#",
        b"@",
        b"%",
        b"/",
        b"-",
        b"0",
        b"9",
        b"x",
        b"\xff",
        b"\0",
        b"set",
        b"show",
        b"server",
        b"weight",
        b"state",
        b"be/s1",
        b"prompt",
        b"quit",
        b"help",
        b"map",
        b"table",
        b"key",
        b"data.gpc0",
        b"ssl",
        b"cert",
        b"maxconn",
        b"global",
        b"addr",
        b"port",
        b"user",
        b"operator",
    ];
    let mut table = ServerTable {
        threads: 2,
        hard_maxconn: 1000,
        ..ServerTable::default()
    };
    table.backends.push(BackendRow {
        id: 1,
        name: "be".into(),
        forced_id: false,
        dynamic_weights: true,
        servers: vec![ServerRow::new(
            1,
            "s1",
            Some("127.0.0.1".parse().unwrap()),
            80,
            3,
        )],
    });
    for seed in 1..250u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let level = [Level::User, Level::Operator, Level::Admin][(seed % 3) as usize];
        let cfg = SessionConfig {
            bufsize: 64 + (seed as usize % 300),
            ..SessionConfig::default()
        };
        let mut s = CliSession::new(level, cfg);
        let mut out = Vec::new();
        for _ in 0..40 {
            let mut chunk = Vec::new();
            for _ in 0..(rng.next() % 24) {
                if rng.next().is_multiple_of(4) {
                    chunk.push((rng.next() & 0xff) as u8);
                } else {
                    let w = alphabet[(rng.next() % alphabet.len() as u64) as usize];
                    chunk.extend_from_slice(w);
                }
            }
            let mut reqs = s.feed(&chunk);
            while s.has_buffered_commands() {
                reqs.extend(s.feed(&[]));
            }
            for req in reqs {
                match req {
                    Request::Reply(r) => s.render(&r, &mut out),
                    Request::Run(p) => {
                        assert!(p.level >= p.command.min_level());
                        let reply = match apply(&table, &p.command) {
                            Some(o) => {
                                for c in &o.changes {
                                    table.apply_change(c);
                                }
                                o.reply
                            }
                            None => Reply::empty(),
                        };
                        s.render(&p.respond(reply), &mut out);
                    }
                    Request::Close => assert!(s.is_closed()),
                }
            }
            assert!(out.len() < 10_000_000);
        }
        let _ = s.feed_eof();
    }
}

#[test]
fn apply_answers_exactly_the_server_owned_commands() {
    use ringlb_runtime::command::Owner;
    let table = ServerTable::default();
    for line in [
        "show info json",
        "show stat typed",
        "show servers state",
        "show servers conn be",
        "show backend",
        "show sess",
        "shutdown session 0x12",
        "show errors",
        "show table t",
        "clear table t key k",
        "set table t key k",
        "set server b/s state drain",
        "enable server b/s",
        "disable health b/s",
        "enable agent b/s",
        "get weight b/s",
        "set weight b/s 1",
        "set maxconn server b/s 1",
        "set maxconn frontend f 1",
        "set maxconn global 1",
        "set rate-limit sessions global 1",
        "add server b/s 1.2.3.4:80",
        "del server b/s",
        "show map",
        "add map m k v",
        "del map m k",
        "set map m k v",
        "clear map m",
        "show acl",
        "add acl a p",
        "del acl a p",
        "show ssl cert",
        "commit ssl cert c",
        "abort ssl cert c",
        "show activity",
        "show pools",
        "shutdown frontend f",
        "disable frontend f",
        "enable frontend f",
    ] {
        let mut s = CliSession::new(Level::Admin, SessionConfig::default());
        let reqs = s.feed(format!("{line}\n").as_bytes());
        let Request::Run(p) = &reqs[0] else {
            panic!("{line}: {reqs:?}")
        };
        let owned = p.command.owner() == Owner::Servers;
        assert_eq!(apply(&table, &p.command).is_some(), owned, "{line}");
    }
}

#[test]
fn pending_keeps_the_words_for_owners_that_parse_them() {
    let mut s = CliSession::new(Level::Operator, SessionConfig::default());
    let reqs = s.feed(b"show table be data.gpc0 gt 3\n");
    let Request::Run(p) = &reqs[0] else {
        panic!("{reqs:?}")
    };
    assert_eq!(p.args(), ["be", "data.gpc0", "gt", "3"]);
    assert_eq!(p.level, Level::Operator);
    let r = Reply::raw_with_blank_line("# pxname,svname\nfe,FRONTEND\n\n");
    let mut out = Vec::new();
    let mut s = CliSession::new(Level::User, SessionConfig::default());
    let Request::Run(p) = s.feed(b"show stat\n").remove(0) else {
        panic!()
    };
    s.render(&p.respond(r), &mut out);
    assert_eq!(out, b"# pxname,svname\nfe,FRONTEND\n\n");
}

#[test]
fn one_read_is_answered_in_bounded_batches() {
    let cfg = SessionConfig {
        max_requests_per_feed: 10,
        ..SessionConfig::default()
    };
    let mut s = CliSession::new(Level::User, cfg);
    let input = ";".repeat(25) + "get weight be/s1\n";
    let first = s.feed(input.as_bytes());
    assert_eq!(first.len(), 10);
    assert!(s.has_buffered_commands());
    let mut total = first.len();
    let mut closed = false;
    while s.has_buffered_commands() {
        let batch = s.feed(&[]);
        assert!(batch.len() <= 10);
        closed |= batch.contains(&Request::Close);
        total += batch.len();
    }
    // 25 empty commands, one get weight, then the close of a one-shot connection.
    assert_eq!(total, 27);
    assert!(closed);
}

#[test]
fn eof_still_runs_complete_buffered_commands() {
    let cfg = SessionConfig {
        max_requests_per_feed: 1,
        ..SessionConfig::default()
    };
    let mut s = CliSession::new(Level::User, cfg);
    assert_eq!(s.feed(b"get weight a/b;get weight a/c;get wei").len(), 1);
    let rest = s.feed_eof();
    assert_eq!(rest.len(), 2, "{rest:?}");
    assert!(matches!(rest[0], Request::Run(_)));
    assert_eq!(rest[1], Request::Close);
}

/// `reload` (ringlb's in-process reload) is an admin command owned by the process, and not
/// listed by `help` (which stays haproxy 2.6's).
#[test]
fn reload_needs_admin_and_stays_out_of_help() {
    let mut seen = Vec::new();
    let mut s = CliSession::new(Level::Admin, SessionConfig::default());
    let (out, _) = transcript(&mut s, b"reload\n", &mut |c| {
        seen.push(c.clone());
        Reply::raw("done\n")
    });
    assert_eq!(out, "done\n\n");
    assert_eq!(seen, vec![Command::Reload]);
    assert_eq!(Command::Reload.owner(), command::Owner::Process);
    let mut s = CliSession::new(Level::Operator, SessionConfig::default());
    let (out, _) = transcript(&mut s, b"reload\n", &mut |_| panic!("must not run"));
    assert_eq!(out, "Permission denied\n\n");
    assert!(!ringlb_runtime::table::usage_message(&["help".to_string()])
        .text
        .contains("reload"));
}
