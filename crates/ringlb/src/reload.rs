//! The binary's half of the in-process reload: read the configuration files the process was
//! started with and run every stage a start runs (load and validate as `-c` does, resolve
//! server addresses, refuse keywords not implemented, build the topology, the health checks
//! and the runtime socket's table). The control shard (`ringlb_control::reload`) does the
//! rest. Runs on the control shard's thread, off the request path.

use ringlb_config::model::Config;
use ringlb_control::checks::CheckPlan;
use ringlb_control::cli::{build_table, CliPlan};
use ringlb_control::reload::{ReloadPlan, Reloader};
use ringlb_shard::Topology;

use crate::cli::Cli;

/// The reloader for a process started with `cli` and `cfg`.
pub fn reloader(cli: Cli, cfg: &Config) -> Reloader {
    let chroot = cfg.global.chroot.clone();
    Box::new(move || {
        match &chroot {
        // The files of -f are outside the jail the process now lives in.
        Some(dir) => Err(vec![format!(
            "[ALERT]    ({}) : 'chroot' {}: the configuration files cannot be read again in process; use a process reload (SIGUSR2 with -W, or a restart).",
            std::process::id(),
            dir.display()
        )]),
        None => plan(&cli),
    }
    })
}

fn plan(cli: &Cli) -> Result<ReloadPlan, Vec<String>> {
    let pid = std::process::id();
    let alert = |m: &str| format!("[ALERT]    ({pid}) : {m}");
    let mut loaded = ringlb_config::load(&cli.files, &|k| std::env::var(k).ok()).map_err(|d| {
        d.items
            .iter()
            .filter(|d| d.level != ringlb_config::diag::Level::Diag)
            .map(crate::cli::format_diag)
            .collect::<Vec<_>>()
    })?;
    let mut warnings: Vec<String> = loaded
        .warnings
        .iter()
        .filter(|d| d.level == ringlb_config::diag::Level::Warning)
        .map(crate::cli::format_diag)
        .collect();
    let errors = crate::cli::resolve_server_addrs(&mut loaded.config);
    if !errors.is_empty() {
        return Err(errors.iter().map(|e| alert(e)).collect());
    }
    let mut cfg = loaded.config;
    // The running process keeps the budget it started with (its open-files limit and
    // threads do not change), so the default `maxconn` is the same as at start.
    let budget = crate::run::start_budget();
    if let Some(b) = &budget {
        crate::run::apply_budget(&mut cfg, b);
    }
    let mut errors = Vec::new();
    for p in crate::run::pending_keywords(&cfg) {
        if p.starts_anyway {
            warnings.push(format!("[WARNING]  ({pid}) : {}", p.message));
        } else {
            errors.push(alert(&p.message));
        }
    }
    let topology = Topology::from_config(&cfg).map_err(|errs| {
        errs.iter()
            .map(|e| {
                alert(&format!(
                    "config : parsing [{}:{}] : {}",
                    e.loc.file, e.loc.line, e.message
                ))
            })
            .collect::<Vec<_>>()
    });
    let topology = match topology {
        Ok(t) if errors.is_empty() => Topology {
            fds: budget.unwrap_or_default(),
            ..t
        },
        Ok(_) => return Err(errors),
        Err(mut e) => {
            errors.append(&mut e);
            return Err(errors);
        }
    };
    for w in &topology.warnings {
        warnings.push(format!("[WARNING]  ({pid}) : config : {}", w.text()));
    }
    let with_global = crate::cli::with_global(cli, &cfg);
    if with_global.zero_warning && !warnings.is_empty() {
        warnings.push(alert(crate::cli::zero_warning_message(&cfg)));
        return Err(warnings);
    }
    let mut checks = CheckPlan::from_config(&cfg, &topology).map_err(|e| {
        e.iter()
            .map(|m| alert(&format!("config : {m}")))
            .collect::<Vec<_>>()
    })?;
    checks.quiet = with_global.quiet;
    let mut cli_plan = CliPlan::from_config(&cfg).map_err(|e| {
        e.iter()
            .map(|m| alert(&format!("config : {m}")))
            .collect::<Vec<_>>()
    })?;
    cli_plan.table = build_table(&cfg, &topology, &checks.backends);
    Ok(ReloadPlan {
        process: process_settings(&cfg),
        topology,
        checks,
        cli: cli_plan,
        warnings,
    })
}

/// What a running process cannot change (the shards, the open-files limit, privileges,
/// runtime sockets, the control shard's own logs and rings are set up once), as (keyword,
/// value) pairs compared by the control shard: a difference refuses the in-process reload
/// and names the keyword. Line numbers are left out (moving a line is no change).
pub fn process_settings(cfg: &Config) -> Vec<(String, String)> {
    let g = &cfg.global;
    let d = |v: &dyn std::fmt::Debug| without_locs(&format!("{v:?}"));
    vec![
        ("nbthread".into(), d(&g.nbthread)),
        ("cpu-map".into(), d(&g.cpu_map)),
        ("maxconn".into(), d(&g.maxconn)),
        ("user".into(), d(&(&g.user, g.uid))),
        ("group".into(), d(&(&g.group, g.gid))),
        ("chroot".into(), d(&g.chroot)),
        ("daemon".into(), d(&g.daemon)),
        ("master-worker".into(), d(&g.master_worker)),
        ("pidfile".into(), d(&g.pidfile)),
        ("ulimit-n".into(), d(&g.ops.ulimit_n)),
        ("fd-hard-limit".into(), d(&g.ops.fd_hard_limit)),
        ("stats socket".into(), d(&g.stats_sockets)),
        ("stats timeout".into(), d(&g.stats_timeout)),
        ("stats maxconn".into(), d(&g.stats_maxconn)),
        ("log (global)".into(), d(&g.log)),
        ("ring".into(), d(&cfg.rings)),
        ("spread-checks".into(), d(&g.spread_checks)),
        ("hard-stop-after".into(), d(&g.hard_stop_after)),
    ]
}

/// A `Debug` text without its `loc: Loc { .. }` fields.
fn without_locs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("loc: Loc {") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let end = after.find('}').map_or(after.len(), |e| e + 1);
        rest = after[end..].strip_prefix(", ").unwrap_or(&after[end..]);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_do_not_count_as_changes() {
        let a = "[LogTarget { loc: Loc { file: \"a.cfg\", line: 3 }, global: false }]";
        let b = "[LogTarget { loc: Loc { file: \"a.cfg\", line: 9 }, global: false }]";
        assert_eq!(without_locs(a), without_locs(b));
        assert_eq!(without_locs(a), "[LogTarget { global: false }]");
    }

    #[test]
    fn a_thread_count_change_is_seen() {
        let cfg = |t: &str| {
            ringlb_config::parse_str("t.cfg", &format!("global\n nbthread {t}\n"))
                .unwrap()
                .config
        };
        assert_ne!(process_settings(&cfg("2")), process_settings(&cfg("3")));
        assert_eq!(process_settings(&cfg("2")), process_settings(&cfg("2")));
    }
}
