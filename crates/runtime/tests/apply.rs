#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `apply` on its own: the deploy flow of the guide (drain, ready, weight) and the rules
//! the recordings cannot reach (static algorithms, busy servers, limits).

use ringlb_runtime::command::{AdminState, Command};
use ringlb_runtime::*;

fn table(dynamic_weights: bool) -> ServerTable {
    ServerTable {
        backends: vec![BackendRow {
            id: 2,
            name: "app".into(),
            forced_id: false,
            dynamic_weights,
            servers: vec![
                ServerRow::new(1, "web1", Some("10.0.0.1".parse().unwrap()), 80, 10),
                ServerRow::new(2, "web2", Some("10.0.0.2".parse().unwrap()), 80, 10),
            ],
        }],
        frontends: vec![FrontendRow {
            name: "www".into(),
            state: FrontendState::Ready,
            maxconn: 100,
        }],
        threads: 1,
        hard_maxconn: 4000,
    }
}

/// Parses one admin command line.
fn cmd(line: &str) -> Command {
    let mut s = CliSession::new(Level::Admin, SessionConfig::default());
    match s.feed(format!("{line}\n").as_bytes()).remove(0) {
        Request::Run(p) => p.command,
        other => panic!("{line}: {other:?}"),
    }
}

fn run(t: &mut ServerTable, line: &str) -> Outcome {
    let o = apply(t, &cmd(line)).unwrap();
    for c in &o.changes {
        t.apply_change(c);
    }
    o
}

#[test]
fn drain_deploy_ready_and_reweight() {
    let mut t = table(true);
    let o = run(&mut t, "set server app/web1 state drain");
    assert_eq!(o.reply, Reply::empty());
    assert_eq!(
        o.changes,
        vec![ServerChange::Admin {
            backend: "app".into(),
            server: "web1".into(),
            state: AdminState::Drain
        }]
    );
    let state = run(&mut t, "show servers state app").reply.text;
    assert!(
        state.contains("\n2 app 1 web1 10.0.0.1 2 8 10 10 "),
        "{state}"
    );
    run(&mut t, "set server app/web1 state maint");
    assert!(run(&mut t, "show servers state")
        .reply
        .text
        .contains("\n2 app 1 web1 10.0.0.1 0 1 10 10 "));
    run(&mut t, "set server app/web1 state ready");
    assert!(run(&mut t, "show servers state")
        .reply
        .text
        .contains("\n2 app 1 web1 10.0.0.1 2 0 10 10 "));
    let o = run(&mut t, "set server app/web2 weight 50%");
    assert_eq!(
        o.changes,
        vec![ServerChange::Weight {
            backend: "app".into(),
            server: "web2".into(),
            weight: 5
        }]
    );
    assert_eq!(
        run(&mut t, "get weight app/web2").reply,
        Reply::raw("5 (initial 10)\n")
    );
}

#[test]
fn static_algorithms_accept_only_zero_and_initial_weights() {
    let mut t = table(false);
    let msg = "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.\n";
    assert_eq!(run(&mut t, "set weight app/web1 5").reply, Reply::err(msg));
    assert!(run(&mut t, "set weight app/web1 0%").changes.len() == 1);
    assert!(run(&mut t, "set weight app/web1 100%").changes.len() == 1);
    assert_eq!(
        run(&mut t, "get weight app/web1").reply.text,
        "10 (initial 10)\n"
    );
}

#[test]
fn delete_needs_maintenance_and_no_connections() {
    let mut t = table(true);
    run(&mut t, "add server app/web3 10.0.0.3:8080 weight 4 check");
    let row = &t.backends[0].servers[2];
    assert_eq!((row.id, row.port, row.uweight, row.admin), (3, 8080, 4, 1));
    t.backends[0].servers[2].cur_conns = 2;
    assert_eq!(
        run(&mut t, "del server app/web3").reply.text,
        "Server still has connections attached to it, cannot remove it."
    );
    t.backends[0].servers[2].cur_conns = 0;
    assert_eq!(
        run(&mut t, "del server app/web3").reply.text,
        "Server deleted."
    );
    assert_eq!(t.backends[0].servers.len(), 2);
    assert_eq!(
        run(&mut t, "del server app/web1").reply.text,
        "Only servers in maintenance mode can be deleted."
    );
    assert_eq!(
        run(&mut t, "add server app/web9 10.0.0.9:80 wieght 3")
            .reply
            .text,
        "unknown keyword 'wieght'; did you mean 'weight' maybe ?\n"
    );
}

#[test]
fn frontend_and_process_limits() {
    let mut t = table(true);
    assert_eq!(
        run(&mut t, "set maxconn global 5000").reply,
        Reply::err("Value out of range.\n")
    );
    assert_eq!(
        run(&mut t, "set maxconn global 0").changes,
        vec![ServerChange::GlobalMaxconn { maxconn: None }]
    );
    // Without a configured maxconn (hard limit 0 = unbounded) any value goes.
    let hard = t.hard_maxconn;
    t.hard_maxconn = 0;
    assert_eq!(
        run(&mut t, "set maxconn global 5000").changes,
        vec![ServerChange::GlobalMaxconn {
            maxconn: Some(5000)
        }]
    );
    t.hard_maxconn = hard;
    run(&mut t, "set maxconn frontend www 7");
    assert_eq!(t.frontends[0].maxconn, 7);
    run(&mut t, "disable frontend www");
    assert_eq!(
        run(&mut t, "disable frontend www").reply.text,
        "All sockets are already disabled.\n"
    );
    run(&mut t, "enable frontend www");
    assert_eq!(t.frontends[0].state, FrontendState::Ready);
    run(&mut t, "shutdown frontend www");
    assert_eq!(
        run(&mut t, "enable frontend www").reply,
        Reply::err("Frontend was previously shut down, cannot enable.\n")
    );
}

#[test]
fn addr_change_reports_what_changed() {
    let mut t = table(true);
    let o = run(&mut t, "set server app/web1 addr 10.0.0.9 port 8080");
    assert_eq!(
        o.reply.text,
        "IP changed from '10.0.0.1' to '10.0.0.9', port changed from '80' to '8080' by 'stats socket command'\n"
    );
    assert_eq!(t.backends[0].servers[0].port, 8080);
    let o = run(&mut t, "set server app/web1 addr 10.0.0.9");
    assert!(o.changes.is_empty());
    assert_eq!(
        o.reply.text,
        "no need to change the addr by 'stats socket command'\n"
    );
}
