#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Servers fed by ringlb-health's state machines show haproxy's check columns.

mod common;
use common::*;
use ringlb_health::{CheckResult, CheckStatus, CheckTiming, HealthState};
use ringlb_stats::health::apply_health;
use ringlb_stats::*;
use std::time::Duration;

fn result(status: CheckStatus, code: Option<u16>, info: Option<&str>) -> CheckResult {
    CheckResult {
        status,
        code,
        info: info.map(str::to_string),
        duration_ms: Some(0),
    }
}

#[test]
fn check_columns_match_haproxy_for_s1_and_s3() {
    let mut snap = recorded_snapshot();
    let t = CheckTiming::default();
    let mut ok = HealthState::new(t);
    ok.record(
        &result(CheckStatus::L7Ok, Some(200), None),
        Duration::from_millis(1000),
    );
    let mut refused = HealthState::new(t);
    refused.record(
        &result(CheckStatus::L4Con, None, Some("Connection refused")),
        Duration::from_millis(1000),
    );
    let app = &mut snap.proxies[2];
    for sv in &mut app.servers {
        match sv.name.as_str() {
            "s1" | "s2" => apply_health(sv, Some(&ok), None),
            "s3" => apply_health(sv, Some(&refused), None),
            _ => {}
        }
    }
    let theirs = csv_cells(&fixture("show_stat.csv"));
    let ours = csv_cells(&cli_show_stat(&snap, &[]));
    let header = &theirs[0];
    for name in [
        "status",
        "chkfail",
        "chkdown",
        "check_status",
        "check_code",
        "check_duration",
        "last_chk",
        "check_desc",
        "check_rise",
        "check_fall",
        "check_health",
        "act",
        "bck",
        "weight",
    ] {
        let i = header.iter().position(|h| h == name).unwrap();
        for (o, t) in ours
            .iter()
            .zip(&theirs)
            .skip(1)
            .filter(|(_, t)| t[0] == "app")
        {
            assert_eq!(o[i], t[i], "{}/{} {name}", t[0], t[1]);
        }
    }
    let s3 = &snap.proxies[2].servers[2];
    assert_eq!((s3.oper, s3.last_change_ms), (OperState::Stopped, 1000));
}

#[test]
fn before_the_first_check_the_server_is_initializing() {
    let mut sv = ServerStats {
        name: "s".into(),
        ..Default::default()
    };
    let h = HealthState::new(CheckTiming::default());
    apply_health(&mut sv, Some(&h), None);
    let c = sv.check.as_ref().unwrap();
    assert_eq!(
        (c.status.as_str(), c.desc.as_str(), c.health),
        ("INI", "Initializing", 2)
    );
    assert_eq!((c.code, c.duration_ms), (None, None));
    assert_eq!(server_status_text(&sv), "UP 1/3");
}
