//! Agent-check replies, table-driven, parsed as HAProxy 2.6 does.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

use ringlb_health::agent::{
    parse, parse_maxconn, weight_from_percent, AgentAdmin, AgentHealth, AgentParse, AgentReply,
};
use ringlb_health::CheckStatus;

fn reply(s: &str) -> AgentReply {
    match parse(s.as_bytes(), false) {
        AgentParse::Reply(r) => r,
        other => panic!("{s:?}: {other:?}"),
    }
}

/// (line, health, admin, weight, maxconn, error)
type Case = (
    &'static str,
    Option<AgentHealth>,
    Option<AgentAdmin>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

#[test]
fn words() {
    use AgentAdmin::*;
    use AgentHealth::*;
    // (line, health, admin, weight, maxconn, error)
    let cases: &[Case] = &[
        ("up\n", Some(Up), None, None, None, None),
        ("DOWN\r\n", Some(Down), None, None, None, None),
        ("stopped\n", Some(Stopped), None, None, None, None),
        ("fail\n", Some(Fail), None, None, None, None),
        ("drain\n", None, Some(Drain), None, None, None),
        ("maint\n", None, Some(Maint), None, None, None),
        ("ready\n", None, Some(Ready), None, None, None),
        ("75%\n", None, None, Some("75%"), None, None),
        ("maxconn:30\n", None, None, None, Some("30"), None),
        (
            "up 50% maxconn:10\n",
            Some(Up),
            None,
            Some("50%"),
            Some("10"),
            None,
        ),
        (
            "ready,up,100%\n",
            Some(Up),
            Some(Ready),
            Some("100%"),
            None,
            None,
        ),
        (
            "up\tdrain 10%\n",
            Some(Up),
            Some(Drain),
            Some("10%"),
            None,
            None,
        ),
        ("down up\n", Some(Up), None, None, None, None),
        ("10% 20%\n", None, None, Some("20%"), None, None),
        (
            "hello up world\n",
            Some(Up),
            None,
            None,
            None,
            Some("hello"),
        ),
        ("50\n", None, None, None, None, Some("50")),
        ("\n", None, None, None, None, None),
        ("up # back from deploy\n", Some(Up), None, None, None, None),
        (
            "up\nignored second line\n",
            Some(Up),
            None,
            None,
            None,
            None,
        ),
    ];
    for (line, h, a, w, m, e) in cases {
        let r = reply(line);
        assert_eq!(r.health, *h, "{line:?}");
        assert_eq!(r.admin, *a, "{line:?}");
        assert_eq!(r.weight_percent.as_deref(), *w, "{line:?}");
        assert_eq!(r.maxconn.as_deref(), *m, "{line:?}");
        assert_eq!(r.error.as_deref(), *e, "{line:?}");
    }
    assert_eq!(reply("down # disk full\n").description, "disk full");
}

#[test]
fn partial_lines() {
    assert_eq!(parse(b"up 5", false), AgentParse::NeedMore);
    assert_eq!(parse(b"up 5", true), AgentParse::Incomplete);
    assert_eq!(parse(b"", true), AgentParse::Reply(AgentReply::default()));
}

#[test]
fn weights_and_maxconn() {
    assert_eq!(weight_from_percent("50%", 10), Ok(5));
    assert_eq!(weight_from_percent("100%", 7), Ok(7));
    assert_eq!(weight_from_percent("0%", 7), Ok(0));
    assert_eq!(weight_from_percent("200%", 100), Ok(200));
    assert!(weight_from_percent("300%", 100).is_err());
    assert_eq!(parse_maxconn("25"), Ok(25));
    assert!(parse_maxconn("x").is_err());
}

#[test]
fn results_and_texts() {
    let r = reply("down # disk full\n").check_result(CheckStatus::L7Ok, None);
    assert_eq!(
        (r.status, r.info.as_deref()),
        (CheckStatus::L7Sts, Some("via agent : down (disk full)"))
    );
    let r = reply("up\n").check_result(CheckStatus::L7Sts, None);
    assert_eq!(
        (r.status, r.info.as_deref()),
        (CheckStatus::L7Ok, Some("via agent : up"))
    );
    let r = reply("up bogus\n").check_result(CheckStatus::L7Sts, None);
    assert_eq!(r.info.as_deref(), Some("via agent : up (bogus)"));
    let r = reply("bogus\n").check_result(CheckStatus::L7Ok, None);
    assert_eq!(
        (r.status, r.info.as_deref()),
        (CheckStatus::L7Ok, Some("agent reports an error : bogus"))
    );
    let r = reply("300%\n").check_result(CheckStatus::L7Ok, Some("Relative weight too large.\n"));
    assert_eq!(
        r.info.as_deref(),
        Some("agent warns : Relative weight too large.\n")
    );
}
