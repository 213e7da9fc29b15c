//! `ringlb`: HAProxy's command line, configuration language and behaviour on a thread-per-core
//! io_uring engine. This file only dispatches: `cli.rs` parses the command line, `ringlb-config`
//! loads the configuration, `run.rs` serves it.

mod cli;
mod master;
mod mcli;
mod notify;
mod reload;
mod run;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os()) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("[ALERT]    ({}) : {msg}", std::process::id());
            return ExitCode::from(1);
        }
    };
    let is_worker = std::env::var_os(master::WORKER_ENV).is_some();
    let code = match cli::action(&cli) {
        cli::Action::Exit(code) => code,
        // `-W` or `master-worker`: this process supervises a worker (itself, started again).
        cli::Action::Run(config)
            if !is_worker && (cli.master_worker || config.global.master_worker) =>
        {
            master::run(
                std::env::args_os().collect(),
                cli.pidfile.clone(),
                cli.files.clone(),
                &config,
            )
        }
        cli::Action::Run(config) => {
            let cli = cli::with_global(&cli, &config);
            run::run(
                config,
                run::RunOptions {
                    daemon: cli.daemon && !is_worker,
                    pidfile: if is_worker { None } else { cli.pidfile.clone() },
                    quiet: cli.quiet,
                    zero_warning: cli.zero_warning,
                    soft_finish: cli.soft_finish.clone(),
                    terminate: cli.terminate.clone(),
                    expose_socket: cli.expose_socket.clone(),
                    reload_cli: Some(cli.clone()),
                },
            )
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
