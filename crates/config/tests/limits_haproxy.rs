//! `ringlb_config::limits` against haproxy 2.6: each configuration in `fixtures/limits/`,
//! started by haproxy under the open-files limit of `cases.txt`, printed the `Maxconn`,
//! `Maxsock` and `Ulimit-n` recorded in `expected.txt` (`fixtures/limits/record.sh`).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ringlb_config::limits::{budget, BootFds};

#[test]
fn budgets_match_haproxy_recordings() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/limits");
    let expected = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
    let mut cases = 0;
    for line in expected.lines().filter(|l| !l.is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let n = |i: usize| -> u64 { w[i].parse().unwrap() };
        let text = std::fs::read_to_string(dir.join(format!("{}.cfg", w[0]))).unwrap();
        let cfg = ringlb_config::parse_str("limits.cfg", &text)
            .unwrap()
            .config;
        let nbthread = cfg.global.nbthread.unwrap();
        let b = budget(
            &cfg,
            nbthread,
            BootFds {
                soft: n(1),
                hard: n(2),
            },
        );
        assert_eq!(
            (u64::from(b.maxconn), b.maxsock, b.ulimit_n),
            (n(3), n(4), n(5)),
            "{line}"
        );
        cases += 1;
    }
    assert_eq!(cases, 12);
}
