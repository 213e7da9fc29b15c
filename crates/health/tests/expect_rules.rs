//! Expect rules, table-driven: every kind, negation, min-recv, partial data, and the canned
//! checks' replies (redis, pgsql, mysql, smtp, ssl-hello).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

use ringlb_config::model::{CheckExpect, CheckHdr, CheckHdrValue, Loc};
use ringlb_health::{evaluate, CheckScript, CheckStatus, ExpectOutcome, ExpectRule, Step};

/// `name [-m m] <name> [value [-m m] <value>]` as whitespace-separated words (the config
/// parser's job; the words here have no spaces).
fn hdr_of(pattern: &str) -> CheckHdr {
    let w: Vec<&str> = pattern.split_whitespace().collect();
    let mut i = 1;
    let meth = |i: &mut usize| {
        if w.get(*i) == Some(&"-m") {
            *i += 2;
            w[*i - 1].to_string()
        } else {
            String::new()
        }
    };
    let name_meth = meth(&mut i);
    let name = w[i].to_string();
    i += 1;
    let value = (w.get(i) == Some(&"value")).then(|| {
        i += 1;
        let meth = meth(&mut i);
        CheckHdrValue {
            meth,
            value: w[i..].join(" "),
            lf: false,
        }
    });
    CheckHdr {
        name_meth,
        name,
        name_lf: false,
        value,
    }
}

fn rule(kind: &str, pattern: &str, negate: bool, min_recv: Option<i64>) -> ExpectRule {
    let e = CheckExpect {
        loc: Loc::default(),
        negate,
        kind: kind.into(),
        pattern: pattern.into(),
        min_recv,
        hdr: kind.ends_with("hdr").then(|| hdr_of(pattern)),
        ..CheckExpect::default()
    };
    ExpectRule::from_model(&e, 2).unwrap()
}

/// P = pass, F = fail, M = need more.
fn verdict(o: &ExpectOutcome) -> char {
    match o {
        ExpectOutcome::Pass(_) => 'P',
        ExpectOutcome::Fail(_) => 'F',
        ExpectOutcome::NeedMore => 'M',
    }
}

/// (kind, pattern, negate, min-recv, received, closed, verdict)
type TcpCase = (
    &'static str,
    &'static str,
    bool,
    Option<i64>,
    &'static [u8],
    bool,
    char,
);

#[test]
fn tcp_rules() {
    let cases: &[TcpCase] = &[
        ("string", "+PONG", false, None, b"+PONG\r\n", false, 'P'),
        ("string", "+PONG", false, None, b"+PO", false, 'M'),
        ("string", "+PONG", false, None, b"+PO", true, 'F'),
        ("string", "+PONG", false, None, b"-ERR\r\n", true, 'F'),
        (
            "string",
            "role:master",
            false,
            None,
            b"$90\r\n# Replication\r\nrole:master\r\n",
            false,
            'P',
        ),
        ("string", "+PONG", true, None, b"+PONG", false, 'F'),
        ("string", "+PONG", true, None, b"-ERR", false, 'M'),
        ("string", "+PONG", true, None, b"-ERR", true, 'P'),
        ("string", "+PONG", false, Some(10), b"+PONG", false, 'M'),
        // Fewer bytes than the exact pattern: wait, even with min-recv (haproxy 2.6).
        ("string", "+PONG", false, Some(4), b"-ERR", false, 'M'),
        ("string", "+PONG", false, Some(4), b"-ERR\r\n", false, 'F'),
        ("binary", "0a0b0c", false, Some(0), b"ab", false, 'M'),
        // Nothing at all before the close.
        ("string", "+PONG", true, None, b"", true, 'F'),
        ("rstring", "^\\+OK", false, None, b"+OK ready", false, 'P'),
        ("rstring", "^\\+OK", false, None, b"x+OK", true, 'F'),
        ("rstring", "^E", true, Some(5), b"R\0\0\0\x08", false, 'P'),
        ("rstring", "^E", true, Some(5), b"E\0\0\0\x08", false, 'F'),
        ("rstring", "^E", true, Some(5), b"E", false, 'M'),
        ("binary", "0d0a", false, None, b"abc\r\n", false, 'P'),
        (
            "binary",
            "DEADbeef",
            false,
            None,
            b"\xde\xad\xbe\xef",
            false,
            'P',
        ),
        ("binary", "ff", false, None, b"abc", true, 'F'),
        ("binary", "ff", true, None, b"abc", true, 'P'),
        (
            "rbinary",
            "^52000000(08|0A|0C)",
            false,
            None,
            b"R\0\0\0\x08\0\0\0\0",
            false,
            'P',
        ),
        (
            "rbinary",
            "^52000000(08|0A|0C)",
            false,
            None,
            b"R\0\0\0\x0a",
            false,
            'P',
        ),
        (
            "rbinary",
            "^1[56]",
            false,
            Some(5),
            b"\x16\x03\x01\x00\x02",
            false,
            'P',
        ),
        (
            "rbinary",
            "^1[56]",
            false,
            Some(5),
            b"\x15\x03\x01\x00\x02",
            false,
            'P',
        ),
        ("rbinary", "^1[56]", false, Some(5), b"HTTP/", false, 'F'),
    ];
    for (kind, pat, neg, min, data, closed, want) in cases {
        let r = rule(kind, pat, *neg, *min);
        let got = verdict(&evaluate(&r, data, *closed, false));
        assert_eq!(
            got,
            *want,
            "{kind} {}{pat:?} min {min:?} on {:?} closed {closed}",
            if *neg { "! " } else { "" },
            String::from_utf8_lossy(data)
        );
    }
}

#[test]
fn tcp_failure_texts() {
    let cases: &[(&str, &str, bool, &str)] = &[
        (
            "string",
            "+PONG",
            false,
            "TCPCHK did not match content '+PONG' at step 2",
        ),
        (
            "string",
            "x",
            true,
            "TCPCHK matched unwanted content 'x' at step 2",
        ),
        (
            "binary",
            "ff",
            false,
            "TCPCHK did not match content (binary) at step 2",
        ),
        (
            "rstring",
            "^a",
            false,
            "TCPCHK did not match content (regex) at step 2",
        ),
        (
            "rbinary",
            "^FF",
            false,
            "TCPCHK did not match content (binary regex) at step 2",
        ),
    ];
    for (kind, pat, neg, want) in cases {
        let data: &[u8] = if *neg { b"x" } else { b"zzz" };
        let ExpectOutcome::Fail(r) = evaluate(&rule(kind, pat, *neg, None), data, true, false)
        else {
            panic!("{kind}")
        };
        assert_eq!(r.status, CheckStatus::L7Rsp);
        assert_eq!(r.info.as_deref(), Some(*want));
    }
    // Recorded from haproxy 2.6 (`tests/health_tcp_expect.rs` diffs them end to end).
    let ExpectOutcome::Fail(r) = evaluate(&rule("string", "x", false, None), b"", true, false)
    else {
        panic!()
    };
    assert_eq!(
        r.info.as_deref(),
        Some("TCPCHK got an empty response at step 2")
    );
}

fn resp(status: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn http_rules() {
    let ok = resp(
        "200 OK",
        "X-Role: primary, ro\r\nServer: demo/1.2\r\n",
        "{\"status\":\"ok\"}",
    );
    let err = resp("503 Service Unavailable", "", "down");
    let cases: &[(&str, &str, bool, &[u8], char)] = &[
        ("status", "200", false, &ok, 'P'),
        ("status", "200", false, &err, 'F'),
        ("status", "200-399", false, &ok, 'P'),
        ("status", "201,500-599", false, &err, 'P'),
        ("status", "503", true, &err, 'F'),
        ("rstatus", "^2", false, &ok, 'P'),
        ("rstatus", "^[23]", false, &err, 'F'),
        ("string", "\"status\":\"ok\"", false, &ok, 'P'),
        ("string", "ok", false, &err, 'F'),
        ("string", "down", true, &err, 'F'),
        ("rstring", "status.*ok", false, &ok, 'P'),
        ("hdr", "name X-Role", false, &ok, 'P'),
        ("hdr", "name x-role value ro", false, &ok, 'P'),
        ("hdr", "name X-Role value -m beg prim", false, &ok, 'P'),
        ("hdr", "name X-Role value replica", false, &ok, 'F'),
        ("fhdr", "name X-Role value primary,", false, &ok, 'F'),
        ("fhdr", "name X-Role value primary, ro", false, &ok, 'P'),
        ("hdr", "name X-Role value primary, ro", false, &ok, 'F'),
        (
            "fhdr",
            "name server value -m reg ^demo/[0-9.]+$",
            false,
            &ok,
            'P',
        ),
        ("hdr", "name -m sub ROLE", false, &ok, 'P'),
        ("hdr", "name X-Missing", false, &ok, 'F'),
        ("hdr", "name X-Missing", true, &ok, 'P'),
    ];
    for (kind, pat, neg, data, want) in cases {
        let got = verdict(&evaluate(&rule(kind, pat, *neg, None), data, false, true));
        assert_eq!(got, *want, "http {kind} {pat}");
    }
}

#[test]
fn http_partial_and_invalid() {
    let r = rule("string", "ok", false, None);
    assert_eq!(
        verdict(&evaluate(
            &r,
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhel",
            false,
            true
        )),
        'M'
    );
    assert_eq!(
        verdict(&evaluate(&r, b"HTTP/1.1 200 OK\r\n", false, true)),
        'M'
    );
    let s = rule("status", "200", false, None);
    // Status rules decide on the head alone.
    assert_eq!(
        verdict(&evaluate(
            &s,
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n",
            false,
            true
        )),
        'P'
    );
    let ExpectOutcome::Fail(f) = evaluate(&s, b"\x16\x03\x01 garbage\r\n\r\n", false, true) else {
        panic!()
    };
    assert_eq!(f.status, CheckStatus::L7Rsp);
    let ExpectOutcome::Fail(f) =
        evaluate(&s, &resp("500 Internal Server Error", "", ""), false, true)
    else {
        panic!()
    };
    assert_eq!(
        (f.status, f.code, f.info.as_deref()),
        (CheckStatus::L7Sts, Some(500), Some("Internal Server Error"))
    );
    let ExpectOutcome::Pass(p) = evaluate(&s, &resp("200 OK", "", ""), false, true) else {
        panic!()
    };
    assert_eq!(
        (p.status, p.code, p.info),
        (CheckStatus::L7Ok, Some(200), None)
    );
}

fn script(body: &str) -> CheckScript {
    let text = format!("backend be\n    mode tcp\n{body}\n    server s1 127.0.0.1:9 check\n");
    let be = ringlb_config::parse_str("t", &text)
        .unwrap()
        .config
        .backends
        .into_iter()
        .next()
        .unwrap();
    CheckScript::from_backend(&be).unwrap()
}

/// Runs a script's expects against a scripted server: one reply per expect group.
fn run(s: &CheckScript, replies: &[&[u8]]) -> char {
    let mut received: Vec<u8> = Vec::new();
    let mut next_reply = 0;
    let mut last = 'P';
    for step in s.steps() {
        match step {
            Step::Connect(_) => received.clear(),
            Step::Send(_) | Step::SendLf(_) => received.clear(),
            Step::Var(_) => {}
            Step::Expect(e) => {
                if received.is_empty() {
                    received.extend_from_slice(replies.get(next_reply).copied().unwrap_or(b""));
                    next_reply += 1;
                }
                let o = evaluate(e, &received, true, false);
                last = verdict(&o);
                if last != 'P' {
                    return last;
                }
            }
        }
    }
    last
}

#[test]
fn canned_checks_against_scripted_servers() {
    let redis = script("    option redis-check");
    assert_eq!(run(&redis, &[b"+PONG\r\n"]), 'P');
    assert_eq!(run(&redis, &[b"-NOAUTH Authentication required.\r\n"]), 'F');
    let pg = script("    option pgsql-check user haproxy");
    assert_eq!(run(&pg, &[b"R\0\0\0\x08\0\0\0\0"]), 'P', "AuthenticationOk");
    assert_eq!(
        run(&pg, &[b"R\0\0\0\x0c\0\0\0\x05salt"]),
        'P',
        "MD5 password request"
    );
    assert_eq!(
        run(
            &pg,
            &[b"E\0\0\0\x50SFATAL\0C28000\0Mno pg_hba.conf entry\0\0"]
        ),
        'F'
    );
    assert_eq!(run(&pg, &[b"HTTP/1.1 400 Bad Request\r\n\r\n"]), 'F');
    let my = script("    option mysql-check user haproxy");
    let greeting: &[u8] = b"\x0a\0\0\0\x0a8.0.36\0rest";
    let mut hs = vec![greeting.len() as u8, 0, 0, 0];
    hs.extend_from_slice(greeting);
    let mut both = hs.clone();
    both.extend_from_slice(&[7, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(run(&my, &[&both]), 'P');
    let mut denied = hs.clone();
    denied.extend_from_slice(&[
        9, 0, 0, 2, 0xff, 0x15, 0x04, b'#', b'2', b'8', b'0', b'0', b'0',
    ]);
    assert_eq!(run(&my, &[&denied]), 'F');
    assert_eq!(run(&my, &[&hs[..6]]), 'F', "truncated");
    let smtp = script("    option smtpchk");
    let ssl = script("    option ssl-hello-chk");
    assert_eq!(run(&ssl, &[b"\x16\x03\x00\x00\x4a\x02"]), 'P');
    assert_eq!(run(&ssl, &[b"SSH-2.0-OpenSSH_9\r\n"]), 'F');
    let sends = smtp
        .steps()
        .iter()
        .filter(|s| matches!(s, Step::Send(_)))
        .count();
    assert_eq!(sends, 2, "HELO then QUIT");
}

#[test]
fn smtp_dialogue() {
    let smtp = script("    option smtpchk");
    let expects: Vec<&ExpectRule> = smtp
        .steps()
        .iter()
        .filter_map(|s| {
            if let Step::Expect(e) = s {
                Some(e)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(expects.len(), 6);
    let greet = b"220 mx.example ESMTP\r\n";
    assert!(expects[..2]
        .iter()
        .all(|e| verdict(&evaluate(e, greet, false, false)) == 'P'));
    let ExpectOutcome::Fail(f) = evaluate(expects[1], b"554 go away\r\n", false, false) else {
        panic!()
    };
    assert_eq!(
        (f.status, f.code, f.info.as_deref()),
        (CheckStatus::L7Sts, Some(554), Some("go away"))
    );
    let ExpectOutcome::Fail(f) = evaluate(expects[0], b"hello\r\n", false, false) else {
        panic!()
    };
    assert_eq!(
        (f.status, f.info.as_deref()),
        (CheckStatus::L7Rsp, Some("hello"))
    );
    let helo = b"250-mx.example\r\n250 SIZE 1000\r\n";
    assert!(expects[2..4]
        .iter()
        .all(|e| verdict(&evaluate(e, helo, false, false)) == 'P'));
    let ExpectOutcome::Pass(p) = evaluate(expects[5], b"221 2.0.0 bye now\r\n", false, false)
    else {
        panic!()
    };
    assert_eq!(
        (p.code, p.info.as_deref()),
        (Some(221), Some("2.0.0 bye now"))
    );
}

#[test]
fn hex_and_bad_patterns() {
    assert_eq!(ringlb_health::decode_hex("2a310D0a").unwrap(), b"*1\r\n");
    assert!(ringlb_health::decode_hex("abc").is_err());
    assert!(ringlb_health::decode_hex("zz").is_err());
    let bad = CheckExpect {
        kind: "rstring".into(),
        pattern: "(".into(),
        ..CheckExpect::default()
    };
    assert!(ExpectRule::from_model(&bad, 1).is_err());
    let lf = CheckExpect {
        kind: "string-lf".into(),
        pattern: "%[var(x)]".into(),
        ..bad
    };
    assert!(ExpectRule::from_model(&lf, 1).is_err());
}

#[test]
fn hostile_replies_never_panic() {
    let rules: Vec<ExpectRule> = [
        ("string", "+PONG"),
        ("rstring", "^2"),
        ("binary", "0d0a"),
        ("rbinary", "^1[56]"),
        ("status", "200-399"),
        ("hdr", "name X value -m sub y"),
    ]
    .iter()
    .map(|(k, p)| rule(k, p, false, Some(3)))
    .collect();
    let scripts = [
        script("    option mysql-check user u"),
        script("    option pgsql-check user u"),
        script("    option smtpchk"),
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds: [&[u8]; 3] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"\x10\x00\x00\x00\x0a",
        b"up 50% maxconn:",
    ];
    for i in 0..20_000 {
        let mut buf = seeds[i % 3].to_vec();
        for _ in 0..(next() % 24) {
            let at = (next() as usize) % (buf.len() + 1);
            buf.insert(at, next() as u8);
        }
        if next() % 2 == 0 {
            buf.truncate((next() as usize) % (buf.len() + 1));
        }
        for closed in [false, true] {
            for r in &rules {
                let _ = evaluate(r, &buf, closed, true);
                let _ = evaluate(r, &buf, closed, false);
            }
            for s in &scripts {
                for st in s.steps() {
                    if let Step::Expect(e) = st {
                        let _ = evaluate(e, &buf, closed, false);
                    }
                }
            }
            let _ = ringlb_health::agent::parse(&buf, closed);
            let _ = ringlb_health::http::parse(&buf, closed);
        }
    }
}

/// `on-error` / `on-success` log-format strings: rendered by the driver's renderer over the
/// data received (`res.payload`), with the rule's comment after an error.
#[test]
fn log_format_on_error_and_on_success() {
    let s = script("    option tcp-check\n    tcp-check expect string +OK on-error \"bad: %[res.payload(0,0),cut_crlf]\" on-success \"%[res.len] bytes\" comment c");
    let Some(Step::Expect(rule)) = s.steps().last() else {
        panic!()
    };
    let run = ringlb_health::lf::CheckRun::new();
    let src = ringlb_health::lf::CheckSource::default();
    let render = |f: &ringlb_health::lf::LogFormat, data: &[u8]| run.render_info(f, &src, data);
    let ExpectOutcome::Fail(r) =
        ringlb_health::evaluate_with(rule, b"-ERR no\r\n", true, false, &render)
    else {
        panic!()
    };
    assert_eq!(r.info.as_deref(), Some("bad: -ERR no comment: c"));
    let ExpectOutcome::Pass(r) =
        ringlb_health::evaluate_with(rule, b"+OK\r\n", false, false, &render)
    else {
        panic!()
    };
    assert_eq!(r.info.as_deref(), Some("5 bytes"));
    // Only the fetches a check can answer.
    let text = "backend be\n    mode tcp\n    option tcp-check\n    tcp-check expect string x on-error \"%[req.payload(0,1)]\"\n    server s1 127.0.0.1:9 check\n";
    let be = ringlb_config::parse_str("t", text)
        .unwrap()
        .config
        .backends
        .into_iter()
        .next()
        .unwrap();
    assert!(CheckScript::from_backend(&be).is_err());
}
