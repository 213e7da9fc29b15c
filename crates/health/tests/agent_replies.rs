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
    // haproxy 2.6: a relative weight is capped at 256 (the percentage at 25600).
    assert_eq!(weight_from_percent("99999999999999999999%", 7), Ok(256));
    assert_eq!(weight_from_percent("18446744073709551615%", 256), Ok(256));
    assert_eq!(weight_from_percent("200%", 100), Ok(200));
    assert_eq!(weight_from_percent("300%", 100), Ok(256));
    assert_eq!(weight_from_percent("150%", 10), Ok(15));
    assert_eq!(
        weight_from_percent("50%x", 10),
        Err("Trailing garbage in weight string")
    );
    assert_eq!(
        weight_from_percent("-5%", 10),
        Err("Relative weight must be positive.\n")
    );
    assert_eq!(weight_from_percent("12", 10), Ok(12));
    assert!(weight_from_percent("300", 10).is_err());
    assert!(weight_from_percent("x%", 10).is_err());
    assert_eq!(parse_maxconn("25"), Ok(25));
    assert_eq!(
        parse_maxconn("x"),
        Err("maxconn string empty or preceded by garbage")
    );
    assert_eq!(
        parse_maxconn("10x"),
        Err("Trailing garbage in maxconn string")
    );
}

#[test]
fn results_and_texts() {
    let r = reply("down # disk full\n").check_result(None);
    assert_eq!(
        (r.status, r.info.as_deref()),
        (CheckStatus::L7Sts, Some("via agent : down (disk full)"))
    );
    let r = reply("up\n").check_result(None);
    assert_eq!(
        (r.status, r.info.as_deref()),
        (CheckStatus::L7Ok, Some("via agent : up"))
    );
    let r = reply("up bogus\n").check_result(None);
    assert_eq!(r.info.as_deref(), Some("via agent : up (bogus)"));
    let r = reply("bogus\n").check_result(None);
    assert_eq!(
        (r.status, r.info.as_deref()),
        (CheckStatus::Checked, Some("agent reports an error : bogus"))
    );
    let r = reply("50%x\n").check_result(Some("Trailing garbage in weight string"));
    assert_eq!(
        (r.status, r.info.as_deref()),
        (
            CheckStatus::Checked,
            Some("agent warns : Trailing garbage in weight string")
        )
    );
}

/// Replays `traces/agent-2.6.txt` (`capture_agent.sh`): the same replies, in order, through
/// `agent::parse`, the weight rule and the health/admin transitions, compared with haproxy's
/// log lines and weights.
#[test]
fn agent_sequence_matches_haproxy_2_6() {
    use ringlb_health::status::{
        drain_message, leaving_drain_message, leaving_maint_message, maint_message,
        no_server_message, state_change_message, BackendCounts,
    };
    use ringlb_health::{CheckTiming, HealthState, Transition};
    use std::time::Duration;
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/agent-2.6.txt"),
    )
    .unwrap();
    let (stats, log) = text.split_once("# log\n").unwrap();
    let mask = |l: &str| {
        let l = l.split_once("] ").map_or(l, |(_, m)| m).to_string();
        match l.find("check duration: ") {
            Some(i) => {
                let end = l[i..].find("ms").unwrap() + i;
                format!("{}N{}", &l[..i + 16], &l[end..])
            }
            None => l,
        }
    };
    let theirs: Vec<String> = log.lines().map(mask).collect();
    let weights: Vec<u32> = stats
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    let replies = [
        "50%\n",
        "drain\n",
        "ready\n",
        "down # disk full\n",
        "up\n",
        "maint\n",
        "ready up 100%\n",
        "bogus\n",
        "300%\n",
        "stopped\n",
    ];
    let mut h = HealthState::new(CheckTiming::default());
    let (mut admin, mut weight, mut ours, mut seen_weights) =
        (AgentAdmin::Ready, 10u32, Vec::new(), vec![]);
    let none = BackendCounts::default();
    let one = BackendCounts {
        active: 1,
        ..BackendCounts::default()
    };
    for (i, line) in replies.iter().enumerate() {
        let AgentParse::Reply(r) = parse(line.as_bytes(), false) else {
            panic!("{line}")
        };
        if let Some(a) = r.admin.filter(|a| *a != admin) {
            match a {
                AgentAdmin::Drain => ours.extend([
                    drain_message("be", "s1", false, &none),
                    no_server_message("be", false),
                ]),
                AgentAdmin::Maint => ours.extend([
                    maint_message("be", "s1", false, &none),
                    no_server_message("be", false),
                ]),
                AgentAdmin::Ready if admin == AgentAdmin::Drain => {
                    ours.push(leaving_drain_message("be", "s1", false))
                }
                AgentAdmin::Ready => ours.push(leaving_maint_message("be", "s1", false)),
            }
            admin = a;
        }
        if let Some(p) = &r.weight_percent {
            weight = weight_from_percent(p, 10).unwrap();
        }
        if seen_weights.last() != Some(&weight) {
            seen_weights.push(weight);
        }
        if let Some(health) = r.health {
            let res = r.check_result(None);
            let mut res = res;
            res.duration_ms = Some(0);
            if let Some(t) = h.force(health == AgentHealth::Up, Duration::from_secs(i as u64)) {
                let counts = if t == Transition::Up { one } else { none };
                ours.push(state_change_message("be", "s1", false, t, &res, &counts));
                if t == Transition::Down {
                    ours.push(no_server_message("be", false));
                }
            }
        }
    }
    let ours: Vec<String> = ours.iter().map(|l| mask(l)).collect();
    assert_eq!(ours, theirs);
    let mut dedup = weights.clone();
    dedup.dedup();
    assert_eq!(
        seen_weights, dedup,
        "weights after each reply (haproxy's show stat: {weights:?})"
    );
}
