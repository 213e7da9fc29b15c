//! `peers` sections and `localpeer` (issue #7, ADR 0007): what the model holds and which
//! keywords are refused, naming them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ringlb_config::model::StickKey;
use ringlb_config::parse_str;

const T: &str =
    "defaults\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n";

fn ok(text: &str) -> ringlb_config::Loaded {
    parse_str("t.cfg", &format!("{T}{text}")).unwrap_or_else(|d| panic!("must load:\n{d}"))
}

fn err(text: &str) -> String {
    match parse_str("t.cfg", &format!("{T}{text}")) {
        Ok(_) => panic!("must fail:\n{text}"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn peer_lines_bind_and_tables() {
    let l = ok("global\n localpeer edge1\n\
                peers mesh\n peer edge1 127.0.0.1:10000\n peer edge2 10.0.0.2:10000\n\
                 table sessions type string len 16 size 10k expire 5m store gpc0,http_req_rate(10s)\n\
                peers other\n bind 127.0.0.1:10001\n server edge1\n server edge2 10.0.0.2:10001\n disabled\n\
                frontend fe\n bind :80\n http-request track-sc0 req.hdr(host) table mesh/sessions\n default_backend be\n\
                backend be\n server s 127.0.0.1:8080\n");
    let c = &l.config;
    assert_eq!(c.global.localpeer.as_deref(), Some("edge1"));
    let mesh = &c.peers[0];
    assert_eq!(
        mesh.peers
            .iter()
            .map(|e| (e.name.as_str(), e.address.as_str()))
            .collect::<Vec<_>>(),
        [("edge1", "127.0.0.1:10000"), ("edge2", "10.0.0.2:10000")]
    );
    let (name, t) = &mesh.tables[0];
    assert_eq!(name, "mesh/sessions");
    assert_eq!(t.key, StickKey::String { len: 16 });
    assert_eq!(t.peers.as_deref(), Some("mesh"));
    assert!(!mesh.disabled);
    let other = &c.peers[1];
    assert!(other.disabled);
    assert_eq!(other.bind.as_ref().unwrap().address, "127.0.0.1:10001");
    assert_eq!(other.peers[0].address, "");
}

#[test]
fn unknown_table_reference_is_an_error() {
    let e = err(
        "peers mesh\n peer a 127.0.0.1:1\n table t type ip size 1k\n\
                 frontend fe\n bind :80\n http-request track-sc0 src table mesh/nope\n",
    );
    assert!(e.contains("unable to find table 'mesh/nope'"), "{e}");
}

#[test]
fn skipped_keywords_are_errors_naming_them() {
    for (line, word) in [
        (" shards 2\n", "'peers shards'"),
        (" default-server ssl\n", "'peers default-server'"),
        (" peer b 127.0.0.1:2 ssl verify none\n", "option 'ssl'"),
        (" bind 127.0.0.1:2 ssl crt x.pem\n", "'bind' option 'ssl'"),
        (" peer c 127.0.0.1\n", "invalid or missing port"),
        (" peer d\n", "'peer' expects"),
    ] {
        let e = err(&format!("peers mesh\n peer a 127.0.0.1:1\n{line}"));
        assert!(e.contains(word), "{line}: {e}");
        assert!(e.contains("t.cfg:"), "{e}");
    }
}

#[test]
fn max_updates_at_once_is_accepted_with_a_reason() {
    let l = ok("global\n tune.peers.max-updates-at-once 200\n");
    let w: Vec<String> = l.warnings.iter().map(|d| d.to_string()).collect();
    assert!(
        w.iter()
            .any(|m| m.contains("tune.peers.max-updates-at-once") && m.contains("100 ms")),
        "{w:?}"
    );
}
