//! `ringlb`: HAProxy's command line, configuration language and behaviour on a thread-per-core
//! io_uring engine. This file only dispatches: `cli.rs` parses the command line, `ringlb-config`
//! loads the configuration, `run.rs` serves it.

mod cli;
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
    let code = match cli::action(&cli) {
        cli::Action::Exit(code) => code,
        cli::Action::Run(config) => run::run(
            config,
            run::RunOptions {
                daemon: cli.daemon,
                pidfile: cli.pidfile.clone(),
                quiet: cli.quiet,
            },
        ),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
