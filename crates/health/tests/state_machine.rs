//! The rise/fall state machine, table-driven: sequences of pass (`+`) and fail (`-`) results
//! with the state and transition after each, per HAProxy 2.6's rules.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

use std::time::Duration;

use ringlb_health::state::{initial_delay, server_up, spread};
use ringlb_health::{CheckResult, CheckState, CheckStatus, CheckTiming, HealthState, Transition};

fn timing(rise: u32, fall: u32) -> CheckTiming {
    CheckTiming {
        rise,
        fall,
        inter: Duration::from_secs(2),
        fastinter: Some(Duration::from_millis(500)),
        downinter: Some(Duration::from_secs(10)),
    }
}

fn res(c: char) -> CheckResult {
    CheckResult::new(match c {
        '+' => CheckStatus::L7Ok,
        '~' => CheckStatus::L7OkCond,
        _ => CheckStatus::L7Sts,
    })
}

/// Runs `seq` and returns the transitions as a string: `D` down, `U` up, `S` stopping,
/// `.` none.
fn run(h: &mut HealthState, seq: &str) -> String {
    seq.chars()
        .enumerate()
        .map(
            |(i, c)| match h.record(&res(c), Duration::from_secs(i as u64)) {
                Some(Transition::Down) => 'D',
                Some(Transition::Up) => 'U',
                Some(Transition::Stopping) => 'S',
                None => '.',
            },
        )
        .collect()
}

#[test]
fn transitions() {
    // (rise, fall, results, transitions)
    let cases: &[(u32, u32, &str, &str)] = &[
        // 2.6: servers start UP at health = rise: the first failure marks them DOWN...
        (2, 3, "-", "D"),
        (2, 3, "-++", "D.U"),
        // ...but after one success they are at the top and need `fall` failures.
        (2, 3, "+---", "...D"),
        (2, 3, "+--+--", "......"),
        (2, 3, "+--+---", "......D"),
        (1, 1, "-+-+", "DUDU"),
        (3, 2, "+--+++", "..D..U"),
        (3, 2, "+-+-+", "....."),
        (1, 5, "+-----", ".....D"),
        // Failures while DOWN stay DOWN; success must reach rise.
        (2, 3, "----+-++", "D......U"),
        // disable-on-404 (conditional pass): stopping, then back UP on a normal pass.
        (2, 3, "~+~", "SUS"),
        (2, 3, "-~~", "D.S"),
    ];
    for &(rise, fall, seq, want) in cases {
        let mut h = HealthState::new(timing(rise, fall));
        assert_eq!(run(&mut h, seq), want, "rise {rise} fall {fall} seq {seq}");
    }
}

#[test]
fn health_stays_in_range_under_any_sequence() {
    let mut x: u64 = 0x1234_5678;
    for rise in 1..4 {
        for fall in 1..4 {
            let t = timing(rise, fall);
            let mut h = HealthState::new(t);
            for _ in 0..2000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                h.record(
                    &res(if x.is_multiple_of(3) { '-' } else { '+' }),
                    Duration::ZERO,
                );
                assert!(h.health() < rise + fall);
                match h.state() {
                    CheckState::Up => assert!(h.health() >= rise, "UP below rise"),
                    CheckState::Down => assert!(h.health() < rise, "DOWN at or above rise"),
                    CheckState::Stopping => unreachable!("no conditional passes here"),
                }
            }
        }
    }
}

#[test]
fn intervals() {
    let mut h = HealthState::new(timing(2, 3));
    // Initial health = rise (not the top): transitional → fastinter.
    assert_eq!(h.next_interval(), Duration::from_millis(500));
    h.record(&res('+'), Duration::ZERO);
    assert_eq!(h.next_interval(), Duration::from_secs(2), "fully UP: inter");
    h.record(&res('-'), Duration::ZERO);
    assert_eq!(
        h.next_interval(),
        Duration::from_millis(500),
        "going down: fastinter"
    );
    h.record(&res('-'), Duration::ZERO);
    h.record(&res('-'), Duration::ZERO);
    assert_eq!(h.state(), CheckState::Down);
    assert_eq!(
        h.next_interval(),
        Duration::from_secs(10),
        "fully DOWN: downinter"
    );
    h.record(&res('+'), Duration::ZERO);
    assert_eq!(
        h.next_interval(),
        Duration::from_millis(500),
        "going up: fastinter"
    );
    let plain = CheckTiming {
        fastinter: None,
        downinter: None,
        ..timing(2, 3)
    };
    let h = HealthState::new_down(plain);
    assert_eq!(
        h.next_interval(),
        Duration::from_secs(2),
        "defaults to inter"
    );
}

#[test]
fn counters() {
    let mut h = HealthState::new(timing(1, 1));
    h.record(&res('-'), Duration::from_secs(10));
    h.record(&res('-'), Duration::from_secs(12));
    h.record(&res('+'), Duration::from_secs(15));
    h.record(&res('-'), Duration::from_secs(20));
    let c = h.counters();
    assert_eq!(c.failed, 2, "a failure while fully DOWN is not counted");
    assert_eq!(c.down_transitions, 2);
    assert_eq!(c.last_change, Duration::from_secs(20));
    assert_eq!(c.downtime, Duration::from_secs(5));
}

#[test]
fn agent_failures_do_not_take_a_server_down() {
    let mut h = HealthState::new(timing(2, 3));
    let unreachable = CheckResult::new(CheckStatus::L4Con);
    assert_eq!(h.record_agent(&unreachable, Duration::ZERO), None);
    assert_eq!(h.state(), CheckState::Up);
    assert_eq!(
        h.record_agent(&CheckResult::new(CheckStatus::L7Sts), Duration::ZERO),
        Some(Transition::Down)
    );
    assert_eq!(h.force(true, Duration::ZERO), Some(Transition::Up));
    assert_eq!(h.health(), 4);
    assert!(server_up(Some(&h), None));
}

#[test]
fn spreading() {
    let i = Duration::from_secs(10);
    assert_eq!(spread(i, 0, 12345), i);
    assert_eq!(spread(i, 10, 0), Duration::from_secs(11));
    assert_eq!(spread(i, 10, u32::MAX), Duration::from_secs(9));
    assert_eq!(
        initial_delay(Duration::from_secs(2), 3, 4),
        Duration::from_millis(1500)
    );
    assert_eq!(initial_delay(Duration::from_secs(2), 0, 0), Duration::ZERO);
}

/// Replays `traces/risefall-*.txt` (haproxy 2.6's `show stat` status, chkfail and chkdown
/// after each check of a scripted pass/fail sequence, recorded by `capture_risefall.sh`).
#[test]
fn rise_fall_counters_match_haproxy_2_6() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("risefall-") && name.ends_with(".txt")) {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines().filter(|l| !l.starts_with('#'));
        let head: std::collections::HashMap<&str, &str> = lines
            .next()
            .unwrap()
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let (rise, fall) = (head["rise"].parse().unwrap(), head["fall"].parse().unwrap());
        let theirs: Vec<&str> = lines.collect();
        let mut h = HealthState::new(timing(rise, fall));
        let initial = format!("{},0,0", h.stats_status());
        let mut ours: Vec<String> = vec![initial.clone()];
        for (i, c) in head["pattern"].chars().enumerate() {
            h.record(&res(c), Duration::from_secs(i as u64));
            let c = h.counters();
            let line = format!("{},{},{}", h.stats_status(), c.failed, c.down_transitions);
            if ours.last() != Some(&line) {
                ours.push(line);
            }
        }
        // haproxy checks at once: its poll sees the initial state only sometimes.
        if theirs.first() != Some(&initial.as_str()) {
            ours.remove(0);
        }
        assert_eq!(ours, theirs, "{name}");
    }
    assert!(
        seen >= 3,
        "expected the rise/fall traces in {}",
        dir.display()
    );
}

/// Replays `traces/intervals.txt`: the gaps haproxy 2.6 left between checks (inter 1000,
/// fastinter 200, downinter 500) against `next_interval()` after each result. The recorded
/// gaps include scheduling jitter: each must be within 100 ms of the expected interval (the
/// three intervals are far enough apart for that to tell them apart).
#[test]
fn check_intervals_match_haproxy_2_6() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/intervals.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let pattern = lines.next().unwrap();
    let gaps: Vec<u64> = lines.map(|l| l.trim().parse().unwrap()).collect();
    assert!(gaps.len() + 1 >= pattern.len() - 1, "trace too short");
    let t = CheckTiming {
        rise: 2,
        fall: 3,
        inter: Duration::from_millis(1000),
        fastinter: Some(Duration::from_millis(200)),
        downinter: Some(Duration::from_millis(500)),
    };
    let mut h = HealthState::new(t);
    for (i, (c, gap)) in pattern.chars().zip(&gaps).enumerate() {
        h.record(&res(c), Duration::ZERO);
        let want = h.next_interval().as_millis() as u64;
        assert!(
            gap.abs_diff(want) <= 100,
            "after check {} ({c}): haproxy waited {gap} ms, ringlb {want} ms",
            i + 1
        );
    }
}

/// `failure_goes_down` says, before each result, whether a failure now would be the one that
/// takes the server DOWN (the driver then counts the sessions for the DOWN line): checked
/// against what recording a failure does, for every prefix of mixed sequences.
#[test]
fn failure_goes_down_predicts_the_down_transition() {
    for (rise, fall) in [(1, 1), (2, 3), (3, 2)] {
        for seq in [
            "", "-", "--", "---", "+-", "-+-", "++--+-", "--++-+--", "~-",
        ] {
            let mut h = HealthState::new(timing(rise, fall));
            run(&mut h, seq);
            let predicted = h.failure_goes_down();
            let went_down = h.record(&res('-'), Duration::from_secs(100)) == Some(Transition::Down);
            assert_eq!(
                predicted, went_down,
                "rise {rise} fall {fall} after {seq:?}"
            );
        }
    }
}
