//! Command line of `ringlb-bench` (and so of `scripts/bench`, which passes its arguments through).
//!
//! ```text
//! ringlb-bench [run] [SCENARIO...] [--quick] [--rounds N] [--only-haproxy]
//!              [--ringlb PATH] [--relay NAME=PATH]... [--out DIR] [--no-write]
//! ringlb-bench report [--results DIR] [--doc FILE]
//! ```
//! Parsing is hand-written (a dozen flags do not justify a dependency) and pure, so it is tested.

use std::path::PathBuf;

/// Every scenario the harness knows, in the order a full run executes them.
pub const ALL_SCENARIOS: &[&str] = &["1", "2", "3", "7", "8", "10", "4", "5", "6", "9", "relay"];

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(RunArgs),
    Report(ReportArgs),
    Help,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunArgs {
    /// Scenario ids in execution order, deduplicated.
    pub scenarios: Vec<String>,
    pub quick: bool,
    /// Measured A/B pairs per variant (after the discarded warm-up).
    pub rounds: u32,
    pub only_haproxy: bool,
    /// The ringlb binary; `target/release/ringlb` of the workspace by default.
    pub ringlb: PathBuf,
    /// Relay candidates `(name, path)`; empty means "every `target/release/relay-*`".
    pub relays: Vec<(String, PathBuf)>,
    /// Where results are written (`bench/results`).
    pub out_dir: PathBuf,
    /// Print only; write no result files.
    pub no_write: bool,
    /// Longest wait (s) for a quiet machine before each measured round; 0 = do not wait.
    pub quiet_wait_s: u64,
    /// Reject a round when other processes used more than this % of one CPU during it.
    pub max_other_pct: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReportArgs {
    pub results_dir: PathBuf,
    pub doc: PathBuf,
}

pub const USAGE: &str = "\
usage: scripts/bench [SCENARIO...] [--quick] [--rounds N] [--only-haproxy]
                     [--ringlb PATH] [--relay NAME=PATH]... [--out DIR] [--no-write] [--quiet-wait S] [--max-other P]
       scripts/bench report [--results DIR] [--doc FILE]

scenarios: 1 2 3 4 5 6 7 8 9 10 relay (default: all; see docs/benchmarking.md)
  --quick         2 pairs of short rounds, primary variants only (whole run < 3 minutes)
  --rounds N      measured A/B pairs per variant (default 5, quick 2)
  --only-haproxy  do not start ringlb
  --ringlb PATH   ringlb binary (default target/release/ringlb)
  --relay N=PATH  relay candidate for the `relay` scenario (repeatable;
                  default: every executable relay-* beside the ringlb binary)
  --out DIR       results directory (default bench/results)
  --no-write      print the summary, write no files
  --quiet-wait S  before each round, wait up to S seconds (default 15) for the
                  machine to be quiet (other processes < 2 × the limit); 0 = never
  --max-other P   reject a round when other processes used more than P% of one
                  CPU during it (default 8; recorded in the results)
report: regenerate docs/performance.md from the latest results in bench/results";

/// Parses the arguments after the program name. `root` is the workspace root (defaults are
/// relative to it).
pub fn parse(args: &[String], root: &std::path::Path) -> Result<Command, String> {
    let mut it = args.iter().peekable();
    if it.peek().map(|s| s.as_str()) == Some("report") {
        it.next();
        return parse_report(it, root);
    }
    if it.peek().map(|s| s.as_str()) == Some("run") {
        it.next();
    }
    let mut run = RunArgs {
        scenarios: Vec::new(),
        quick: false,
        rounds: 0,
        only_haproxy: false,
        ringlb: root.join("target/release/ringlb"),
        relays: Vec::new(),
        out_dir: root.join("bench/results"),
        no_write: false,
        quiet_wait_s: 15,
        max_other_pct: crate::stats::MAX_OTHER_CPU_SHARE * 100.0,
    };
    let mut rounds = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" | "help" => return Ok(Command::Help),
            "--quick" => run.quick = true,
            "--only-haproxy" => run.only_haproxy = true,
            "--no-write" => run.no_write = true,
            "--rounds" => {
                let v = value(&mut it, a)?;
                let n: u32 = v
                    .parse()
                    .map_err(|_| format!("--rounds: not a number: {v}"))?;
                if !(1..=50).contains(&n) {
                    return Err(format!("--rounds: {n} is outside 1..=50"));
                }
                rounds = Some(n);
            }
            "--quiet-wait" => {
                let v = value(&mut it, a)?;
                run.quiet_wait_s =
                    v.parse().ok().filter(|s| *s <= 3600).ok_or_else(|| {
                        format!("--quiet-wait: expected seconds (0..=3600), got {v}")
                    })?;
            }
            "--max-other" => {
                let v = value(&mut it, a)?;
                run.max_other_pct = v
                    .parse()
                    .ok()
                    .filter(|p: &f64| (0.0..=200.0).contains(p))
                    .ok_or_else(|| {
                        format!("--max-other: expected a percentage (0..=200), got {v}")
                    })?;
            }
            "--ringlb" => run.ringlb = PathBuf::from(value(&mut it, a)?),
            "--out" => run.out_dir = PathBuf::from(value(&mut it, a)?),
            "--relay" => {
                let v = value(&mut it, a)?;
                let (name, path) = v
                    .split_once('=')
                    .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                    .ok_or_else(|| format!("--relay: expected NAME=PATH, got {v}"))?;
                if run.relays.iter().any(|(n, _)| n == name) || name == "haproxy" {
                    return Err(format!("--relay: name {name} used twice"));
                }
                run.relays.push((name.to_string(), PathBuf::from(path)));
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            s => {
                let id = s.trim_start_matches('s');
                if !ALL_SCENARIOS.contains(&id) {
                    return Err(format!(
                        "unknown scenario {s} (known: {})",
                        ALL_SCENARIOS.join(" ")
                    ));
                }
                if !run.scenarios.iter().any(|x| x == id) {
                    run.scenarios.push(id.to_string());
                }
            }
        }
    }
    if run.scenarios.is_empty() {
        run.scenarios = ALL_SCENARIOS.iter().map(|s| s.to_string()).collect();
    }
    run.rounds = rounds.unwrap_or(if run.quick { 2 } else { 5 });
    Ok(Command::Run(run))
}

fn parse_report<'a>(
    mut it: impl Iterator<Item = &'a String>,
    root: &std::path::Path,
) -> Result<Command, String> {
    let mut r = ReportArgs {
        results_dir: root.join("bench/results"),
        doc: root.join("docs/performance.md"),
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--results" => r.results_dir = PathBuf::from(value(&mut it, a)?),
            "--doc" => r.doc = PathBuf::from(value(&mut it, a)?),
            "-h" | "--help" => return Ok(Command::Help),
            s => return Err(format!("report: unknown argument {s}\n{USAGE}")),
        }
    }
    Ok(Command::Report(r))
}

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<String, String> {
    it.next()
        .cloned()
        .ok_or_else(|| format!("{flag} needs a value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn p(args: &[&str]) -> Result<Command, String> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&v, Path::new("/r"))
    }

    fn run(args: &[&str]) -> RunArgs {
        match p(args) {
            Ok(Command::Run(r)) => r,
            other => panic!("expected run, got {other:?}"),
        }
    }

    #[test]
    fn defaults_run_every_scenario_with_five_pairs() {
        let r = run(&[]);
        assert_eq!(r.scenarios.len(), ALL_SCENARIOS.len());
        assert_eq!(r.rounds, 5);
        assert!(!r.quick && !r.only_haproxy && !r.no_write);
        assert_eq!(r.ringlb, Path::new("/r/target/release/ringlb"));
        assert_eq!(r.out_dir, Path::new("/r/bench/results"));
    }

    #[test]
    fn quick_means_two_pairs_unless_rounds_given() {
        assert_eq!(run(&["--quick"]).rounds, 2);
        assert_eq!(run(&["--quick", "--rounds", "3"]).rounds, 3);
        assert_eq!(run(&["--rounds", "7", "--quick"]).rounds, 7);
    }

    #[test]
    fn scenarios_keep_order_dedup_and_accept_s_prefix() {
        let r = run(&["run", "10", "s1", "1", "relay"]);
        assert_eq!(r.scenarios, vec!["10", "1", "relay"]);
    }

    #[test]
    fn relay_flags_collect_candidates() {
        let r = run(&["relay", "--relay", "a=/x/relay-a", "--relay", "b=./b"]);
        assert_eq!(
            r.relays,
            vec![
                ("a".into(), "/x/relay-a".into()),
                ("b".into(), "./b".into())
            ]
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bad in [
            &["--rounds"][..],
            &["--rounds", "x"],
            &["--rounds", "0"],
            &["--rounds", "51"],
            &["11"],
            &["--frobnicate"],
            &["--relay", "noequals"],
            &["--relay", "=path"],
            &["--relay", "a=1", "--relay", "a=2"],
            &["--relay", "haproxy=/bin/true"],
            &["--ringlb"],
        ] {
            assert!(p(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn flags_and_report_subcommand() {
        let r = run(&[
            "--only-haproxy",
            "--ringlb",
            "/b/ringlb",
            "--no-write",
            "--out",
            "/o",
        ]);
        assert!(r.only_haproxy && r.no_write);
        assert_eq!(r.quiet_wait_s, 15);
        assert_eq!(run(&["--quiet-wait", "0"]).quiet_wait_s, 0);
        assert!(p(&["--quiet-wait", "-1"]).is_err());
        assert!(p(&["--quiet-wait", "9999"]).is_err());
        assert_eq!(r.max_other_pct, 8.0);
        assert_eq!(run(&["--max-other", "35"]).max_other_pct, 35.0);
        assert!(p(&["--max-other", "x"]).is_err());
        assert!(p(&["--max-other", "-1"]).is_err());
        assert_eq!(r.ringlb, Path::new("/b/ringlb"));
        assert_eq!(r.out_dir, Path::new("/o"));
        assert_eq!(
            p(&["report"]),
            Ok(Command::Report(ReportArgs {
                results_dir: "/r/bench/results".into(),
                doc: "/r/docs/performance.md".into()
            }))
        );
        assert_eq!(
            p(&["report", "--results", "/x", "--doc", "/d.md"]),
            Ok(Command::Report(ReportArgs {
                results_dir: "/x".into(),
                doc: "/d.md".into()
            }))
        );
        assert!(p(&["report", "--bogus"]).is_err());
        assert_eq!(p(&["--help"]), Ok(Command::Help));
    }
}
