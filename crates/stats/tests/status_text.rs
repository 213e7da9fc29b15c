#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `server_status_text` against haproxy 2.6's status column recorded after each check of
//! scripted pass/fail sequences (`fixtures/risefall/`), plus the admin and tracking states.

mod common;
use common::check;
use ringlb_stats::*;

/// HAProxy's rise/fall arithmetic, only to produce the health values the traces went through.
fn replay(rise: u32, fall: u32, pattern: &str) -> Vec<String> {
    let top = rise + fall - 1;
    let (mut health, mut up) = (rise, true);
    let mut sv = ServerStats {
        name: "s".into(),
        ..Default::default()
    };
    let mut out: Vec<String> = Vec::new();
    for c in pattern.chars() {
        if c == '+' {
            if up {
                health = (health + 1).min(top);
            } else {
                health += 1;
                if health >= rise {
                    health = top;
                    up = true;
                }
            }
        } else if up && health > rise {
            health -= 1;
        } else {
            health = health.saturating_sub(1);
            if up {
                health = 0;
                up = false;
            }
        }
        sv.oper = if up {
            OperState::Running
        } else {
            OperState::Stopped
        };
        sv.check = Some(CheckStats {
            rise,
            fall,
            ..check("L7OK", "", None, health, "")
        });
        let text = server_status_text(&sv).into_owned();
        if out.last() != Some(&text) {
            out.push(text);
        }
    }
    out
}

#[test]
fn status_text_follows_haproxy_through_rise_and_fall() {
    for file in [
        "risefall-r1f1.txt",
        "risefall-r2f3.txt",
        "risefall-r3f2.txt",
    ] {
        let text = common::fixture(&format!("risefall/{file}"));
        let mut lines = text.lines().filter(|l| !l.starts_with('#'));
        let params = lines.next().unwrap();
        let get = |k: &str| params.split(' ').find_map(|p| p.strip_prefix(k)).unwrap();
        let (rise, fall) = (get("rise=").parse().unwrap(), get("fall=").parse().unwrap());
        let mut expected: Vec<String> = Vec::new();
        for l in lines.filter(|l| !l.is_empty()) {
            let status = l.split(',').next().unwrap().to_string();
            if expected.last() != Some(&status) {
                expected.push(status);
            }
        }
        assert_eq!(replay(rise, fall, get("pattern=")), expected, "{file}");
    }
}

#[test]
fn admin_and_tracking_states() {
    let mut sv = ServerStats {
        name: "s".into(),
        ..Default::default()
    };
    assert_eq!(server_status_text(&sv), "no check");
    sv.admin.drain = true;
    assert_eq!(server_status_text(&sv), "DRAIN");
    sv.check = Some(check("L7OK", "", None, 3, ""));
    assert_eq!(server_status_text(&sv), "DRAIN 2/3");
    sv.agent = Some(check("L7OK", "", None, 1, ""));
    assert_eq!(server_status_text(&sv), "DRAIN (agent)");
    sv.admin.maint_via = Some(("app".into(), "s1".into()));
    assert_eq!(server_status_text(&sv), "MAINT (via app/s1)");
    sv.admin.maint_via = None;
    sv.admin.maint = true;
    assert_eq!(server_status_text(&sv), "MAINT");
    let mut t = ServerStats {
        name: "t".into(),
        tracked: Some("app/s1".into()),
        ..Default::default()
    };
    t.tracked_check = Some(check("L7OK", "", None, 3, ""));
    assert_eq!(server_status_text(&t), "UP 2/3");
    t.oper = OperState::Stopping;
    assert_eq!(server_status_text(&t), "NOLB 2/3");
    t.oper = OperState::Stopped;
    t.tracked_check = Some(check("L4CON", "", None, 0, ""));
    t.agent = Some(check("L7OK", "", None, 0, ""));
    assert_eq!(server_status_text(&t), "DOWN (agent)");
}
