//! ringlb-bench: runs ringlb and HAProxy side by side from one config file, with an nginx origin
//! and wrk/h2load/an open-loop generator on loopback, and writes results, Markdown and SVG.
//! `scripts/bench` installs the tools, builds, and calls this. Method: docs/benchmarking.md.
//!
//! Owns: orchestration (processes, CPU pinning, rounds), measurement from /proc, the reports.
//! Must not: touch anything outside 127.0.0.1, leave a process running (every process is a
//! guard that kills it by pid on drop), or run in CI (timing is noisy; its logic is unit-tested).

mod cli;
mod h2load;
mod idle;
mod machine;
mod openloop;
mod origin;
mod procfs;
mod procs;
mod report;
mod results;
mod runner;
mod scenarios;
mod stats;
mod svg;
mod wrk;

use cli::{Command, RunArgs};
use runner::{Kind, Subject};
use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let code = match cli::parse(&args, &root) {
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            0
        }
        Ok(Command::Report(r)) => report_or_err(report::regenerate(&r.results_dir, &r.doc)),
        Ok(Command::Run(r)) => report_or_err(run(r, &root)),
        Err(e) => {
            eprintln!("ringlb-bench: {e}");
            2
        }
    };
    std::process::exit(code);
}

fn report_or_err(r: Result<(), String>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ringlb-bench: {e}");
            1
        }
    }
}

/// The workspace root: `RINGLB_ROOT`, else the current directory when it is the repo root
/// (scripts/bench runs from there), else the parent of this package's manifest directory when it
/// exists (a build from the repo), else the current directory.
fn workspace_root() -> PathBuf {
    if let Some(r) = std::env::var_os("RINGLB_ROOT") {
        return PathBuf::from(r);
    }
    if let Ok(cwd) = std::env::current_dir() {
        if cwd.join("bench/Cargo.toml").is_file() && cwd.join("Cargo.toml").is_file() {
            return cwd;
        }
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf);
    match built {
        Some(p) if p.join("Cargo.toml").is_file() => p,
        _ => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    }
}

/// Relay candidates: the `--relay` flags, else every executable `relay-*` next to the ringlb
/// binary (`target/release/` by default).
fn relay_subjects(args: &RunArgs, root: &Path) -> Vec<Subject> {
    let mut v: Vec<(String, PathBuf)> = args.relays.clone();
    if v.is_empty() {
        let dir = args
            .ringlb
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| root.join("target/release"));
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let p = e.path();
                if name.starts_with("relay-") && !name.ends_with(".d") && is_executable(&p) {
                    v.push((name, p));
                }
            }
        }
        v.sort();
    }
    v.into_iter()
        .map(|(name, p)| Subject {
            name,
            kind: Kind::Relay(p),
        })
        .collect()
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn run(args: RunArgs, root: &Path) -> Result<(), String> {
    let t0 = std::time::Instant::now();
    // The harness itself (and the open-loop generator's threads) runs on the load CPU.
    procs::pin_current_thread(1);
    procs::install_signal_handlers();
    let group = procs::AutogroupNice::raise();
    if !procs::raise_priority() || !group.active() {
        println!(
            "ringlb-bench: cannot set nice {} (not root?); other work will disturb more",
            procs::NICE
        );
    }
    let nofile = procs::raise_nofile();
    let machine = machine::describe(root, &args.ringlb);
    println!(
        "ringlb-bench: {} × {} · {} · load average {} · open files {nofile}",
        machine.cpus, machine.cpu_model, machine.haproxy, machine.load_before
    );
    let haproxy = Subject {
        name: results::BASELINE.into(),
        kind: Kind::Haproxy,
    };
    let mut main_subjects = vec![haproxy.clone()];
    if !args.only_haproxy {
        main_subjects.push(Subject {
            name: "ringlb".into(),
            kind: Kind::Ringlb(args.ringlb.clone()),
        });
    }
    let mut relay = vec![haproxy];
    relay.extend(relay_subjects(&args, root));
    let mut ctx = runner::Ctx::new(args.clone(), machine)?;
    let mut failures = Vec::new();
    for id in &args.scenarios {
        let subjects = if id == "relay" {
            &relay
        } else {
            &main_subjects
        };
        if id == "relay" && subjects.len() == 1 {
            println!("\n## Scenario relay: no relay candidates (pass --relay NAME=PATH or build target/release/relay-*); HAProxy alone");
        }
        match runner::run_scenario(&mut ctx, id, subjects) {
            Ok(r) => {
                let stem = results::file_stem(&r.started_utc, &r.scenario);
                if args.no_write {
                    println!("\n{}", report::table(&r));
                } else {
                    let md = report::write(&r, &args.out_dir)?;
                    println!(
                        "\n{md}\n(wrote {}/{stem}.json, .md, -*.svg)",
                        args.out_dir.display()
                    );
                }
            }
            Err(e) => {
                eprintln!("scenario {id} failed: {e}");
                failures.push(format!("{id}: {e}"));
            }
        }
        if procs::stopping() {
            break;
        }
    }
    println!(
        "\nringlb-bench: done in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} scenario(s) failed: {}",
            failures.len(),
            failures.join("; ")
        ))
    }
}
