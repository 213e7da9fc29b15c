//! What the typed model holds after loading: defaults inheritance, `listen` split, typed
//! options, servers, rules, keyword statuses and the errors of the registry policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ringlb_config::model::{
    AclRef, Balance, HttpAction, HttpConnMode, HttpReuse, Mode, RedirectKind,
};
use ringlb_config::{parse_str, Level, Status};

const T: &str =
    "defaults\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n";

fn ok(text: &str) -> ringlb_config::Loaded {
    parse_str("t.cfg", text).unwrap_or_else(|d| panic!("must load:\n{d}"))
}

fn err(text: &str) -> String {
    match parse_str("t.cfg", text) {
        Ok(_) => panic!("must fail:\n{text}"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn defaults_are_inherited_and_named_defaults_chain() {
    let l = ok("defaults base\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n retries 5\n\
                defaults web from base\n option forwardfor except 127.0.0.0/8\n http-reuse always\n\
                defaults\n mode tcp\n timeout client 1s\n timeout connect 1s\n timeout server 1s\n\
                frontend fe from web\n bind 127.0.0.1:8080\n default_backend be\n\
                backend be from web\n timeout server 1m\n server s 127.0.0.1:9000\n\
                listen tcp\n bind 127.0.0.1:8081\n server s 127.0.0.1:9001\n");
    let c = &l.config;
    let fe = &c.frontends[0];
    assert_eq!(fe.mode, Mode::Http);
    assert_eq!(fe.timeouts.client, Some(Duration::from_secs(30)));
    let ff = fe.options.forwardfor.as_ref().unwrap();
    assert_eq!(ff.except.unwrap().prefix, 8);
    assert_eq!(ff.header, "X-Forwarded-For");
    let be = &c.backends[0];
    assert_eq!((be.retries, be.http_reuse), (5, HttpReuse::Always));
    assert_eq!(be.timeouts.server, Some(Duration::from_secs(60)));
    assert_eq!(be.timeouts.connect, Some(Duration::from_secs(5)));
    let tcp_fe = c.frontends.iter().find(|f| f.name == "tcp").unwrap();
    let tcp_be = c.backends.iter().find(|b| b.name == "tcp").unwrap();
    assert!(tcp_fe.from_listen && tcp_be.from_listen);
    assert_eq!(
        tcp_fe.mode,
        Mode::Tcp,
        "anonymous defaults after the named ones apply to later proxies"
    );
    assert_eq!(
        tcp_fe.default_backend.as_deref(),
        Some("tcp"),
        "a listen's frontend uses itself"
    );
    assert_eq!(tcp_be.retries, 3, "HAProxy default");
    assert_eq!(tcp_be.http_reuse, HttpReuse::Safe, "HAProxy default");
    assert_eq!(c.defaults.len(), 3);
}

#[test]
fn binds_servers_and_balance_are_typed() {
    let l = ok(&format!("{T}frontend fe\n bind *:8080,[::]:8081 name web\n bind 127.0.0.1:9000-9001\n default_backend be\n\
        backend be\n balance roundrobin\n default-server maxconn 50 weight 2\n option http-server-close\n\
        server a 127.0.0.1:9001 weight 3 backup\n server b 10.0.0.2:80 disabled maxconn 7\n server c db.local\n"));
    let fe = &l.config.frontends[0];
    assert_eq!(fe.binds[0].addrs.len(), 2);
    assert_eq!(fe.binds[0].name.as_deref(), Some("web"));
    assert_eq!(fe.binds[1].addrs.len(), 2);
    let be = &l.config.backends[0];
    assert_eq!(be.balance, Balance::Roundrobin);
    assert_eq!(be.options.http_conn_mode, HttpConnMode::ServerClose);
    let (a, b, c) = (&be.servers[0], &be.servers[1], &be.servers[2]);
    assert_eq!(
        (a.params.weight, a.params.maxconn, a.params.backup),
        (Some(3), Some(50), true)
    );
    assert_eq!(
        (
            b.params.maxconn,
            b.params.disabled,
            b.params.weight_or_default()
        ),
        (Some(7), true, 2)
    );
    assert_eq!(b.addr.unwrap().to_string(), "10.0.0.2:80");
    assert_eq!((c.host.as_str(), c.addr, c.port), ("db.local", None, None));
    assert_eq!(a.loc.line, 14);
}

#[test]
fn rules_and_conditions_are_typed() {
    let l = ok(&format!("{T}frontend fe\n bind :8080\n acl api path_beg /api/ /v2/\n acl office src 10.0.0.0/8\n\
        http-request redirect scheme https code 301 unless {{ ssl_fc }}\n\
        http-request deny deny_status 429 if api !office || {{ sc_http_req_rate(0) gt 10 }}\n\
        stick-table type ip size 1k expire 10s store http_req_rate(10s)\n http-request track-sc0 src\n\
        use_backend be if api\n default_backend be\nbackend be\n server s 127.0.0.1:1\n"));
    let fe = &l.config.frontends[0];
    assert_eq!(fe.acls[0].patterns, ["/api/", "/v2/"]);
    let r = &fe.http_request[0];
    match &r.action {
        HttpAction::Redirect(rd) => assert_eq!(
            (rd.kind, rd.code, rd.to.as_str()),
            (RedirectKind::Scheme, 301, "https")
        ),
        a => panic!("{a:?}"),
    }
    assert!(r.cond.as_ref().unwrap().unless);
    let c = fe.http_request[1].cond.as_ref().unwrap();
    assert_eq!(c.terms.len(), 2);
    assert_eq!(c.terms[0].len(), 2);
    assert!(c.terms[0][1].negate);
    assert!(
        matches!(&c.terms[1][0].acl, AclRef::Anonymous(a) if a.operator.as_deref() == Some("gt"))
    );
    assert!(matches!(
        &fe.http_request[1].action,
        HttpAction::Deny {
            status: Some(429),
            reply
        } if reply.body.is_none() && reply.headers.is_empty()
    ));
    assert!(matches!(
        &fe.http_request[2].action,
        HttpAction::TrackSc {
            slot: 0,
            table: None,
            ..
        }
    ));
    assert_eq!(fe.use_backends[0].backend, "be");
    assert!(fe.stick_table.is_some());
}

#[test]
fn keyword_uses_carry_statuses() {
    let l = ok(&format!("{T}frontend fe\n bind :8080\n default_backend be\nbackend be\n balance leastconn\n server s 127.0.0.1:1 check check-ssl check-proto h2\n"));
    let st = |k: &str| {
        l.config
            .keyword_uses
            .iter()
            .find(|u| u.keyword == k)
            .map(|u| u.status.clone())
    };
    assert_eq!(st("bind"), Some(Status::Supported));
    assert_eq!(st("timeout connect"), Some(Status::Supported));
    assert_eq!(st("server check"), Some(Status::Supported));
    assert_eq!(st("server check-ssl"), Some(Status::Supported));
    // `check-proto h1` and `h2` work (an HTTP mux on a non-HTTP check is refused when the
    // checks are planned, control crate).
    assert_eq!(st("server check-proto"), Some(Status::Supported));
    assert_eq!(st("server weight"), None, "no option written");
    assert_eq!(st("condition (if/unless)"), None);
    // Balanced by ringlb-balance: no pending use recorded for the algorithm.
    assert_eq!(st("balance leastconn"), None);
}

#[test]
fn registry_policy_errors() {
    let e = err(&format!("{T}listen l\n bind :80\n compression algo gzip\n"));
    assert!(
        e.contains("HAProxy keyword 'compression' is not supported by ringlb yet"),
        "{e}"
    );
    assert!(e.contains("parsing [t.cfg:8]"), "{e}");
    let e = err(&format!("{T}listen l\n bind :80\n balanse roundrobin\n"));
    assert!(
        e.contains("unknown keyword 'balanse' in 'listen' section; did you mean 'balance' maybe ?"),
        "{e}"
    );
    let e = err("global\n lua-load /x.lua\n");
    assert!(
        e.contains("HAProxy keyword 'lua-load' is not supported by ringlb yet"),
        "{e}"
    );
    let e = err(&format!("{T}listen l\n bind :80 ssl crt x.pem npn h2\n"));
    assert!(
        e.contains("not supported by ringlb yet") || e.contains("unable to load"),
        "{e}"
    );
    let e = err("log-forward x\n");
    assert!(e.contains("not supported by ringlb yet"), "{e}");
}

#[test]
fn accepted_keywords_warn_why() {
    let l = ok(&format!("global\n ssl-engine rdrand\n ssl-mode-async\n{T}listen l\n bind :80\n server s 127.0.0.1:1\n"));
    let w: Vec<_> = l
        .warnings
        .iter()
        .filter(|w| w.level == Level::Warning)
        .collect();
    assert_eq!(w.len(), 2);
    assert!(w
        .iter()
        .all(|w| w.message.contains("rustls has no OpenSSL")));
    assert_eq!(l.config.global.ssl_engines, ["rdrand"]);
}

#[test]
fn guide_decisions() {
    let l = ok(&format!("{T}backend b\n option httpchk\n http-check expect body \"status\":\"ok\"\n http-check expect body '\"status\":\"ok\"'\n server s 127.0.0.1:1 check\nlisten l\n bind :80\n server s 127.0.0.1:1\n"));
    let b = &l.config.backends[0];
    let pats: Vec<String> = b
        .http_check
        .iter()
        .filter_map(|s| match s {
            ringlb_config::model::HttpCheckStep::Expect(e) => Some(e.pattern.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        pats,
        ["status:ok", "\"status\":\"ok\""],
        "HAProxy's quoting is kept"
    );
    assert!(l
        .warnings
        .iter()
        .any(|w| w.message.contains("write it in single quotes")));
    let e = err(&format!(
        "{T}frontend f\n bind :80\n stick-table type ip size 1k\n stick-table type ip size 1k\n"
    ));
    assert!(
        e.contains("only one stick-table per proxy") && e.contains("t.cfg:8"),
        "{e}"
    );
    let e = err(&format!(
        "{T}frontend f\n bind :80\n http-request track-sc1 src,path\n"
    ));
    assert!(
        e.contains("'path' is a sample fetch, not a converter") && e.contains("concat"),
        "{e}"
    );
}

#[test]
fn env_and_conditions_via_load() {
    let dir = std::env::temp_dir().join(format!("ringlb-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("b.cfg"), "backend be\n server s \"${BE_ADDR}\"\n").unwrap();
    std::fs::write(
        dir.join("a.cfg"),
        format!("{T}.if defined(BE_ADDR)\nfrontend fe\n bind :8080\n default_backend be\n.endif\n"),
    )
    .unwrap();
    std::fs::write(dir.join("ignored.txt"), "garbage\n").unwrap();
    let env = |k: &str| (k == "BE_ADDR").then(|| "127.0.0.1:9999".to_string());
    let l = ringlb_config::load(std::slice::from_ref(&dir), &env).unwrap();
    assert_eq!(l.config.files.len(), 2, "only *.cfg, in lexical order");
    assert!(l.config.files[0].ends_with("a.cfg"));
    assert_eq!(l.config.backends[0].servers[0].port, Some(9999));
    assert_eq!(l.config.frontends.len(), 1);
    let l = ringlb_config::load(&[dir.join("a.cfg"), dir.join("b.cfg")], &|_| None);
    let d = l.expect_err("empty address without BE_ADDR");
    assert!(d.to_string().contains("b.cfg:2"), "{d}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn haproxy_parity_rules_found_by_differential_mutation() {
    // `balance` alone is roundrobin; an empty `if` is accepted.
    ok(&format!(
        "{T}listen l\n bind :80\n balance\n use_backend l if\n server s 127.0.0.1:1 weight 3x\n"
    ));
    // A keyword in the wrong proxy type is ignored with a warning but still parsed.
    let e = err(&format!("{T}frontend f\n bind :80\n default_backend b\nbackend b\n use_backend f if nope\n server s 127.0.0.1:1\n"));
    assert!(e.contains("no such ACL : 'nope'"), "{e}");
    let e = err(&format!("{T}frontend f\n bind :80\n default_backend b\nbackend b\n default_backend b\n server s 127.0.0.1:1\n"));
    assert!(e.contains("loop detected for default_backend: 'b'"), "{e}");
    // Log-format check payloads and check variables parse (rendered at each check run);
    // variable conditions are refused, a bare `set-var` is an error as in haproxy.
    ok(&format!("{T}backend b\n option httpchk\n http-check send meth GET uri-lf /%[srv_name] hdr X-S %[var(check.x)]\n server s 127.0.0.1:1 check\n"));
    ok(&format!("{T}backend b\n option tcp-check\n tcp-check set-var(check.x) str(a)\n tcp-check set-var-fmt(check.y) %[var(check.x)]b\n tcp-check unset-var(check.x)\n tcp-check send-lf %[var(check.y)]\n server s 127.0.0.1:1 check\n"));
    let e = err(&format!("{T}backend b\n option tcp-check\n tcp-check set-var(check.x,ifexists) str(a)\n server s 127.0.0.1:1 check\n"));
    assert!(e.contains("conditions on variables"), "{e}");
    let e = err(&format!("{T}backend b\n option tcp-check\n tcp-check unset-var(check.x) str(a)\n server s 127.0.0.1:1 check\n"));
    assert!(e.contains("expects no argument"), "{e}");
    let e = err(&format!("{T}backend b\n option tcp-check\n tcp-check send-binary-lf 5g\n server s 127.0.0.1:1 check\n"));
    assert!(e.contains("hexadecimal"), "{e}");
    ok(&format!("{T}backend b\n option tcp-check\n tcp-check send-binary-lf 50494e47\n server s 127.0.0.1:1 check\n"));
    // http-check ordering.
    let e = err(&format!("{T}backend b\n http-check send meth GET\n http-check send meth GET\n server s 127.0.0.1:1\n"));
    assert!(e.contains("missing connect rule"), "{e}");
    let e = err(&format!(
        "{T}backend b\n http-check connect\n http-check expect status 200\n server s 127.0.0.1:1\n"
    ));
    assert!(e.contains("missing send rule"), "{e}");
    let e = err(&format!(
        "{T}backend b\n tcp-check send PING\n tcp-check connect\n server s 127.0.0.1:1\n"
    ));
    assert!(e.contains("first step MUST also be a 'connect'"), "{e}");
    let e = err(&format!(
        "{T}backend b\n tcp-check send-binary 00 extra\n server s 127.0.0.1:1\n"
    ));
    assert!(e.contains("expects 'comment'"), "{e}");
    // HTTP-only log-format variables in a tcp proxy.
    let e = err("defaults\n timeout client 1s\n timeout server 1s\n timeout connect 1s\nlisten l\n bind :80\n log stdout local0\n log-format \"%{+Q}HM %ci\"\n server s 127.0.0.1:1\n");
    assert!(
        e.contains("format variable 'HM' is reserved for HTTP mode"),
        "{e}"
    );
}

#[test]
fn named_defaults_rules_are_inherited_but_not_their_acls() {
    let d = "defaults d\n mode http\n timeout client 1s\n timeout server 1s\n timeout connect 1s\n acl blocked src 10.0.0.1\n http-request deny if blocked\n";
    let l = ok(&format!("{d}frontend f from d\n bind :80\n acl blocked path /x\n http-request allow if blocked\n default_backend b\n{T}backend b\n server s 127.0.0.1:1\n"));
    let f = &l.config.frontends[0];
    assert_eq!(
        f.http_request.len(),
        2,
        "defaults rules first, then the proxy's"
    );
    assert!(matches!(f.http_request[0].action, HttpAction::Deny { .. }));
    let first = &f.http_request[0].cond.as_ref().unwrap().terms[0][0].acl;
    assert_eq!(first, &AclRef::Named("d/blocked".into()));
    assert!(f
        .acls
        .iter()
        .any(|a| a.name == "d/blocked" && a.patterns == ["10.0.0.1"]));
    assert!(f
        .acls
        .iter()
        .any(|a| a.name == "blocked" && a.patterns == ["/x"]));
    let e = err(&format!(
        "{d}frontend f from d\n bind :80\n http-request deny if blocked\n"
    ));
    assert!(
        e.contains("no such ACL : 'blocked'"),
        "defaults ACLs are not visible to the proxy: {e}"
    );
    let e = err(&format!(
        "{d}listen l from d\n bind :80\n server s 127.0.0.1:1\n"
    ));
    assert!(e.contains("a listen section cannot inherit"), "{e}");
    let e = err(&format!("{d}frontend f from d\n bind :80\n default_backend b\nbackend b from d\n server s 127.0.0.1:1\n"));
    assert!(
        e.contains("frontends and backends cannot inherit from the same defaults section"),
        "{e}"
    );
}

#[test]
fn config_lookups() {
    let l = ok(&format!("{T}frontend f\n bind :80\n default_backend b\nbackend b\n balance rdp-cookie\n dynamic-cookie-key k\n server s 127.0.0.1:1\n"));
    let c = &l.config;
    assert_eq!(c.backend("b").unwrap().servers.len(), 1);
    assert!(c.backend("f").is_none());
    assert_eq!(
        c.frontend("f").unwrap().default_backend.as_deref(),
        Some("b")
    );
    // `dynamic-cookie-key` is implemented now (issue #5): nothing is pending.
    let pending: Vec<&str> = c.unsupported_uses().map(|u| u.keyword.as_str()).collect();
    assert!(pending.is_empty(), "{pending:?}");
}

#[test]
fn references_to_small_sections_must_exist() {
    let e = err(&format!(
        "{T}listen l\n bind :80\n server s 127.0.0.1:1 resolvers nope\n"
    ));
    assert!(
        e.contains("unable to find required resolvers 'nope'"),
        "{e}"
    );
    let e = err(&format!(
        "{T}resolvers dns\n nameserver ns1 127.0.0.1:53\nlisten l\n bind :80\n server s _http._tcp.app.internal resolvers dns init-addr none\n"
    ));
    assert!(
        e.contains("SRV record '_http._tcp.app.internal' is not supported"),
        "{e}"
    );
    let e = err(&format!(
        "{T}resolvers dns\n nameserver ns1 tcp@127.0.0.1:53\nlisten l\n bind :80\n"
    ));
    assert!(e.contains("only UDP nameservers"), "{e}");
    let e = err(&format!(
        "{T}resolvers dns\n nameserver ns1 127.0.0.1:53\n hold foo 1s\nlisten l\n bind :80\n"
    ));
    assert!(e.contains("'hold' unknown <event>: 'foo'"), "{e}");
    let e = err(&format!(
        "{T}listen l\n bind :80\n server s app.internal:80 init-addr foo\n"
    ));
    assert!(e.contains("unknown init-addr method 'foo'"), "{e}");
    let e = err(&format!(
        "{T}listen l\n bind :80\n server s app.internal:80 resolve-opts allow-dup-ip,nope\n"
    ));
    assert!(e.contains("unknown resolve-opts option 'nope'"), "{e}");
    let e = err(&format!(
        "{T}listen l\n bind :80\n server s app.internal:80 resolve-net 10.0.0.0/99\n"
    ));
    assert!(
        e.contains("'resolve-net' invalid network '10.0.0.0/99'"),
        "{e}"
    );
    let e = err(&format!(
        "{T}listen l\n bind :80\n stick-table type ip size 1k peers nope\n server s 127.0.0.1:1\n"
    ));
    assert!(e.contains("unable to find sync peers 'nope'"), "{e}");
    let e = err(&format!("{T}listen l\n bind :80\n acl a http_auth(nope)\n http-request auth if !a\n server s 127.0.0.1:1\n"));
    assert!(e.contains("unable to find userlist 'nope'"), "{e}");
    let e = err(&format!(
        "{T}listen l\n bind :80\n http-request cache-use nope\n server s 127.0.0.1:1\n"
    ));
    assert!(e.contains("unable to find the cache 'nope'"), "{e}");
    // `filter cache` is the only filter ringlb runs; the others are refused by name.
    let e = err(&format!(
        "{T}listen l\n bind :80\n filter compression\n server s 127.0.0.1:1\n"
    ));
    assert!(e.contains("filter 'compression' is not supported"), "{e}");
}

#[test]
fn consistent_hash_without_a_function_means_sdbm_with_avalanche() {
    // configuration.txt, hash-type: "consistent hash uses sdbm and avalanche if no function is
    // specified".
    let text = |ht: &str| {
        format!("defaults\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nbackend b\n    balance source\n    hash-type {ht}\n    server s 127.0.0.1:1\n")
    };
    let ht = |t: &str| {
        ringlb_config::parse_str("t.cfg", &text(t))
            .unwrap()
            .config
            .backends[0]
            .hash_type
    };
    let bare = ht("consistent");
    assert!(bare.consistent && bare.avalanche);
    assert_eq!(bare.function, ringlb_config::model::HashFunction::Sdbm);
    assert!(!ht("consistent sdbm").avalanche);
    assert!(!ht("map-based").avalanche);
    assert!(ht("map-based djb2 avalanche").avalanche);
    // `none` is not a haproxy 2.6 function: accepted, with a warning saying so.
    let l = ok(&format!(
        "{T}backend b\n balance uri\n hash-type consistent none\n server s 127.0.0.1:1\n"
    ));
    assert_eq!(
        l.config.backends[0].hash_type.function,
        ringlb_config::model::HashFunction::None
    );
    assert!(
        l.warnings
            .iter()
            .any(|w| w.to_string().contains("unknown to haproxy 2.6")),
        "{:?}",
        l.warnings
    );
    let e = err(&format!(
        "{T}backend b\n hash-type consistent foo\n server s 127.0.0.1:1\n"
    ));
    assert!(
        e.contains(
            "'hash-type' only supports 'sdbm', 'djb2', 'crc32', 'wt6' or 'none' hash functions."
        ),
        "{e}"
    );
}

#[test]
fn expect_reporting_options_are_parsed() {
    let l = ok(&format!("{T}frontend fe\n bind :8080\n default_backend be\nbackend be\n option tcp-check\n tcp-check expect error-status L7RSP string +PONG comment pong on-error \"%[res.payload(0,0)]\"\n server s 127.0.0.1:1 check\n"));
    let u = |kw: &str| {
        l.config
            .keyword_uses
            .iter()
            .find(|u| u.keyword == kw)
            .map(|u| u.status.clone())
    };
    // Every part of an expect rule runs: nothing is left pending.
    assert_eq!(u("tcp-check expect on-error"), None);
    assert_eq!(u("tcp-check expect error-status"), None);
    let l2 = ok(&format!("{T}backend be\n option httpchk\n http-check expect hdr name-lf %[str(x)] status-code \"int(3)\"\n http-check expect string-lf %[int(1)]\n server s 127.0.0.1:1 check\n"));
    assert!(
        !l2.config
            .keyword_uses
            .iter()
            .any(|u| u.status == Status::Parsed { issue: 5 }),
        "{:?}",
        l2.config.keyword_uses
    );
    let ringlb_config::model::TcpCheckStep::Expect(e) = &l.config.backends[0].tcp_check[0] else {
        panic!("{:?}", l.config.backends[0].tcp_check)
    };
    assert_eq!(
        (
            e.kind.as_str(),
            e.pattern.as_str(),
            e.error_status.as_deref(),
            e.comment.as_deref()
        ),
        ("string", "+PONG", Some("L7RSP"), Some("pong"))
    );
}

/// HAProxy 2.6's `parse_tcpcheck_expect_rule`: options anywhere, `!` glued or alone (each
/// one toggles), one match, nothing else (messages checked with `haproxy -c`).
#[test]
fn expect_rules_parse_as_haproxy() {
    let expect = |line: &str| {
        let text = format!("{T}backend be\n option httpchk\n http-check expect {line}\n server s 127.0.0.1:1 check\n");
        parse_str("t.cfg", &text).map(|l| {
            let ringlb_config::model::HttpCheckStep::Expect(e) =
                &l.config.backends[0].http_check[0]
            else {
                panic!()
            };
            e.clone()
        })
    };
    let e = expect("!rstatus ^5").unwrap();
    assert!(e.negate && e.kind == "rstatus" && e.pattern == "^5");
    assert!(!expect("!! status 200").unwrap().negate);
    assert!(expect("! ! ! status 200").unwrap().negate);
    let e = expect("status 200 comment foo min-recv 3").unwrap();
    assert_eq!((e.comment.as_deref(), e.min_recv), (Some("foo"), Some(3)));
    let e = expect("fhdr name x-role value \"a, b\"").unwrap();
    let h = e.hdr.unwrap();
    assert_eq!(
        (h.name.as_str(), h.value.unwrap().value.as_str()),
        ("x-role", "a, b")
    );
    let e = expect("hdr name -m reg ^x value -m beg y comment c").unwrap();
    let h = e.hdr.unwrap();
    assert_eq!(
        (h.name_meth.as_str(), h.value.unwrap().meth.as_str()),
        ("reg", "beg")
    );
    assert_eq!(e.comment.as_deref(), Some("c"));
    for (line, msg) in [
        ("string hello world", "but got 'world' as argument."),
        ("status 200 string x", "only on pattern expected."),
        ("status", "'status' expects a <pattern> as argument."),
        ("hdr value x", "'hdr' expects at the name keyword as first argument followed by a pattern."),
        ("hdr name -m foo x", "'hdr' : '-m' only supports 'str', 'beg', 'end', 'sub' or 'reg' (got 'foo')."),
        ("hdr name x value", "'hdr' expect a pattern with the value keyword."),
        ("hdr name x full", "but got 'full' as argument."),
        ("min-recv", "'min-recv' expects a integer as argument."),
        ("status 2x0", "invalid character 'x' in the list of status codes."),
        ("ok-status L7STS status 200", "'ok-status' only supports 'L4OK', 'L6OK', 'L7OK' or 'L7OKC' status (got 'L7STS')."),
        ("error-status L7OKC status 200", "'error-status' only supports 'L4CON', 'L6RSP', 'L7RSP' or 'L7STS' status (got 'L7OKC')."),
    ] {
        let e = expect(line).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains(msg), "{line}: {e}");
    }
}

#[test]
fn stick_table_store_types_ringlb_does_not_implement_are_errors() {
    let e = err(&format!(
        "{T}backend t\n stick-table type ip size 200k expire 30s store http_req_rate(10s),gpc(2)\n"
    ));
    assert!(
        e.contains("data type 'gpc' is not supported by ringlb (use gpc0 and gpc1)"),
        "{e}"
    );
    let l = ok(&format!(
        "{T}backend t\n stick-table type string len 8 size 200k nopurge store gpc1_rate(1m),http_fail_cnt\n"
    ));
    let t = l.config.backends[0].stick_table.as_ref().unwrap();
    assert_eq!(t.size, 204_800);
    assert!(t.nopurge);
    assert_eq!(t.key, ringlb_config::model::StickKey::String { len: 8 });
    assert_eq!(t.store[0].period, Some(Duration::from_secs(60)));
}

#[test]
fn agent_check_needs_an_agent_port() {
    let e = err(&format!("{T}frontend fe\n bind :8080\n default_backend be\nbackend be\n server s1 127.0.0.1:1 agent-check\n"));
    assert!(
        e.contains(
            "'server be/s1' : server s1 does not have agent port. Agent check has been disabled."
        ),
        "{e}"
    );
    ok(&format!("{T}frontend fe\n bind :8080\n default_backend be\nbackend be\n server s1 127.0.0.1:1 agent-check agent-port 9\n"));
}

#[test]
fn server_template_declares_numbered_servers() {
    let l = ok(&format!("{T}frontend fe\n bind :8080\n default_backend be\nbackend be\n server-template web 1-3 127.0.0.1:81 check inter 2s\n server-template api 2 127.0.0.1:82\n"));
    let be = &l.config.backends[0];
    let names: Vec<&str> = be.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["web1", "web2", "web3", "api1", "api2"]);
    assert!(be.servers[2].params.check && !be.servers[3].params.check);
    assert_eq!(be.servers[4].port, Some(82));
    // haproxy 2.6's wording.
    let e = err(&format!("{T}frontend fe\n bind :8080\n default_backend be\nbackend be\n server-template x 3-2 127.0.0.1:82\n"));
    assert!(
        e.contains("Wrong server-template number or range arg '3-2'."),
        "{e}"
    );
}

#[test]
fn track_targets_are_checked_as_haproxy_does() {
    let e = err(&format!("{T}frontend fe\n bind :8080\n default_backend be\nbackend be\n server s1 127.0.0.1:1\n server t1 127.0.0.1:2 track s1\n server t2 127.0.0.1:2 track nope\n server t3 127.0.0.1:2 track zz/s1\n"));
    for want in [
        "'server be/t1' : unable to use be/s1 for tracking as it does not have any check nor agent enabled.",
        "'server be/t2' : unable to find required server 'nope' for tracking.",
        "'server be/t3' : unable to find required proxy 'zz' for tracking.",
    ] {
        assert!(e.contains(want), "{want}\n{e}");
    }
    ok(&format!("{T}frontend fe\n bind :8080\n default_backend be\nbackend be\n server s1 127.0.0.1:1 check\n server t1 127.0.0.1:2 track s1\n"));
}

#[test]
fn http2_bind_proto_and_tune_h2_settings() {
    let l = ok(&format!(
        "global\n tune.h2.max-concurrent-streams 50\n tune.h2.initial-window-size 1048576\n tune.h2.header-table-size 8192\n tune.h2.max-frame-size 32768\n{T}frontend fe\n bind 127.0.0.1:8080 proto h2\n bind 127.0.0.1:8081 proto h1\n default_backend be\nbackend be\n server s 127.0.0.1:9000\n"
    ));
    let t = &l.config.global.tune;
    assert_eq!(
        (
            t.h2_max_concurrent_streams,
            t.h2_initial_window_size,
            t.h2_header_table_size,
            t.h2_max_frame_size
        ),
        (Some(50), Some(1 << 20), Some(8192), Some(32768))
    );
    let binds = &l.config.frontends[0].binds;
    assert_eq!(
        binds[0].other,
        [("proto".to_string(), Some("h2".to_string()))]
    );
    // HAProxy 2.6's messages (recorded with `haproxy -c`).
    let e = err(&format!(
        "{T}frontend fe\n bind 127.0.0.1:8080 proto foo\n default_backend be\nbackend be\n server s 127.0.0.1:9000\n"
    ));
    assert!(e.contains("'proto' :  unknown MUX protocol 'foo'"), "{e}");
    for (kw, msg) in [
        (
            "tune.h2.max-frame-size 100",
            "'tune.h2.max-frame-size' expects a numeric value between 16384 and 16777215.",
        ),
        (
            "tune.h2.header-table-size 70000",
            "'tune.h2.header-table-size' expects a numeric value between 4096 and 65536.",
        ),
        (
            "tune.h2.initial-window-size 3000000000",
            "'tune.h2.initial-window-size' expects a positive numeric value.",
        ),
    ] {
        let e = err(&format!(
            "global\n {kw}\n{T}frontend fe\n bind 127.0.0.1:8080\n default_backend be\nbackend be\n server s 127.0.0.1:9000\n"
        ));
        assert!(e.contains(msg), "{kw}: {e}");
    }
}

/// `http-after-response` rules are kept in their own list (named defaults first) and accept
/// only HAProxy 2.6's actions for that rule set.
#[test]
fn after_response_rules_have_their_own_list_and_actions() {
    let l = ok(&format!(
        "defaults base\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n http-after-response set-header X-D 1\n\
         frontend fe from base\n bind 127.0.0.1:8080\n http-after-response set-status 418 if {{ status 503 }}\n http-after-response del-header Server\n default_backend be\n\
         {T}backend be\n http-after-response add-header X-B 1\n server s 127.0.0.1:9000\n"
    ));
    let fe = &l.config.frontends[0];
    assert_eq!(fe.http_after_response.len(), 3, "inherited rule first");
    assert!(
        matches!(&fe.http_after_response[0].action, HttpAction::SetHeader { name, .. } if name == "X-D")
    );
    assert!(fe.http_response.is_empty());
    assert_eq!(l.config.backends[0].http_after_response.len(), 1);
    let e = err(&format!(
        "{T}frontend fe\n bind 127.0.0.1:8080\n http-after-response deny\n"
    ));
    assert!(
        e.contains("'http-after-response deny' : unknown action"),
        "{e}"
    );
}

/// Capture slots are numbered in declaration order across `capture ... header`, `declare
/// capture` and `http-request capture ... len`; ids must name a declared slot and `len` is
/// for frontends only (haproxy 2.6's messages).
#[test]
fn capture_slots_are_numbered_in_declaration_order() {
    let l = ok(&format!(
        "{T}frontend fe\n bind 127.0.0.1:8080\n capture request header X-A len 5\n http-request capture req.hdr(host) len 3\n declare capture request len 8\n http-request capture path id 2\n default_backend be\n\
         backend be\n server s 127.0.0.1:9000\n"
    ));
    let fe = &l.config.frontends[0];
    let req: Vec<(&str, u32)> = fe
        .captures
        .iter()
        .filter(|c| c.what == "request")
        .map(|c| (c.name.as_str(), c.len))
        .collect();
    assert_eq!(req, [("X-A", 5), ("", 3), ("", 8)]);
    assert!(matches!(&fe.http_request[0].action,
        HttpAction::Other { name, args } if name == "capture" && args[1..] == ["id", "1", "len", "3"]));
    let e = err(&format!(
        "{T}frontend fe\n bind 127.0.0.1:8080\n http-request capture path id 3\n http-response capture status id 0\n"
    ));
    assert!(
        e.contains(
            "Proxy 'fe': unable to find capture id '3' referenced by http-request capture rule."
        ),
        "{e}"
    );
    assert!(
        e.contains("unable to find capture id '0' referenced by http-response capture rule."),
        "{e}"
    );
    let e = err(&format!(
        "{T}backend be\n http-request capture path len 3\n server s 127.0.0.1:9000\n"
    ));
    assert!(e.contains("proxy 'be' has no frontend capability."), "{e}");
}

/// `tcp-response` rules belong to backends (haproxy 2.6's message for a frontend), and their
/// inspect-delay is kept apart from the request's.
#[test]
fn tcp_response_rules_are_backend_only() {
    let e = err(
        "defaults\n mode tcp\n timeout connect 1s\n timeout client 1s\n timeout server 1s\n\
         frontend fe\n bind 127.0.0.1:8080\n tcp-response content reject\n default_backend be\n\
         backend be\n server s 127.0.0.1:9000\n",
    );
    assert!(e.contains("tcp-response content is only allowed in 'backend' sections or 'defaults' section with a name"), "{e}");
    let l = ok("defaults\n mode tcp\n timeout connect 1s\n timeout client 1s\n timeout server 1s\n\
                backend be\n tcp-request inspect-delay 3s\n tcp-response inspect-delay 1s\n tcp-response content accept\n server s 127.0.0.1:9000\n");
    let phases: Vec<&str> = l.config.backends[0]
        .tcp_request
        .iter()
        .map(|r| r.phase.as_str())
        .collect();
    assert_eq!(
        phases,
        [
            "inspect-delay",
            "tcp-response inspect-delay",
            "tcp-response content"
        ]
    );
}

#[test]
fn log_formats_and_unique_ids_are_inherited_from_defaults() {
    let l = ok(&format!(
        "global\n log 127.0.0.1 local0\n{T} log global\n unique-id-format %{{+X}}o\\ %ci:%cp_%rt\n unique-id-header X-Id\n \
         log-format-sd [x@1\\ s=\\\"%ST\\\"]\n error-log-format \"E %ci\"\n option log-separate-errors\n\
         frontend fe\n bind 127.0.0.1:8080\n default_backend be\n\
         frontend own\n bind 127.0.0.1:8081\n error-log-format %ci\\ own\n no option log-separate-errors\n default_backend be\n\
         backend be\n server s 127.0.0.1:9000\n"
    ));
    let fe = &l.config.frontends[0];
    assert_eq!(fe.unique_id_format.as_deref(), Some("%{+X}o %ci:%cp_%rt"));
    assert_eq!(fe.unique_id_header.as_deref(), Some("X-Id"));
    assert_eq!(fe.log_format_sd.as_deref(), Some(r#"[x@1 s="%ST"]"#));
    assert_eq!(fe.error_log_format.as_deref(), Some("E %ci"));
    assert_eq!(fe.options.other.get("log-separate-errors"), Some(&true));
    let own = &l.config.frontends[1];
    assert_eq!(own.error_log_format.as_deref(), Some("%ci own"));
    assert_eq!(own.options.other.get("log-separate-errors"), Some(&false));
}

#[test]
fn ring_sections_are_typed_and_too_small_rings_refused_as_haproxy_does() {
    let l = ok("ring buf1\n description \"My ring\"\n format rfc3164\n maxlen 200\n size 32764\nring buf2\n");
    let r = &l.config.rings[0];
    assert_eq!(r.description.as_deref(), Some("My ring"));
    assert_eq!(
        (r.format.as_deref(), r.maxlen, r.size),
        (Some("rfc3164"), Some(200), Some(32764))
    );
    assert_eq!(l.config.rings[1].size, None);
    // haproxy 2.6: "ignoring new size '40' that is smaller than current size '16384' for
    // ring 'tiny'." and the configuration is refused.
    let e = err("ring tiny\n size 40\n");
    assert!(
        e.contains(
            "ignoring new size '40' that is smaller than current size '16384' for ring 'tiny'."
        ),
        "{e}"
    );
    // Forwarding to servers: `log-proto` is the one server option taken; others are said,
    // not ignored.
    let l = ok("ring fwd\n server s1 127.0.0.1:6514 log-proto octet-count\n timeout connect 2s\n");
    let s = &l.config.rings[0].servers[0];
    assert_eq!(
        (s.address.as_str(), &s.params[..]),
        (
            "127.0.0.1:6514",
            &["log-proto".to_string(), "octet-count".to_string()][..]
        )
    );
    let e = err("ring fwd\n server s1 127.0.0.1:6514 ssl\n");
    assert!(e.contains("not supported by ringlb"), "{e}");
    let e = err("ring fwd\n timeout client 2s\n");
    assert!(e.contains("expects 'connect' or 'server'"), "{e}");
}

#[test]
fn observe_options_are_checked_as_haproxy_does() {
    let tcp = ok(&format!(
        "{T}listen l\n mode tcp\n bind :80\n server s 127.0.0.1:1 check observe layer7\n"
    ));
    assert!(
        tcp.warnings.iter().any(|w| w
            .message
            .contains("'server l/s' : 'layer7' can only be used in http proxies.")),
        "{:?}",
        tcp.warnings
    );
    let l = ok(&format!("{T}listen l\n bind :80\n server s 127.0.0.1:1 check observe layer4 error-limit 5 on-error sudden-death\n"));
    let p = &l.config.backends[0].servers[0].params;
    assert_eq!(p.error_limit, Some(5));
    assert_eq!(p.on_error.as_deref(), Some("sudden-death"));
    let e = err(&format!(
        "{T}listen l\n bind :80\n server s 127.0.0.1:1 on-error bogus\n"
    ));
    assert!(e.contains("'on-error' expects one of 'fastinter', 'fail-check', 'sudden-death' or 'mark-down' but got 'bogus'."), "{e}");
    let e = err(&format!(
        "{T}listen l\n bind :80\n server s 127.0.0.1:1 error-limit 0\n"
    ));
    assert!(e.contains("error-limit has to be > 0."), "{e}");
    let e = err(&format!(
        "{T}backend b\n hash-balance-factor 100\n server s 127.0.0.1:1\n"
    ));
    assert!(
        e.contains("'hash-balance-factor' must be 0 or greater than 100."),
        "{e}"
    );
    let l = ok(&format!("{T}defaults d2\n hash-balance-factor 150\nbackend b from d2\n balance uri\n hash-type consistent\n server s 127.0.0.1:1\n"));
    assert_eq!(
        l.config.backends[0].hash_balance_factor, 150,
        "inherited from defaults"
    );
}

/// haproxy 2.6's messages for the server actions and `spread-checks` (recorded with `-c`), and
/// `force-persist`/`ignore-persist` kept as typed rules in order.
#[test]
fn server_actions_and_persist_rules_are_checked_as_haproxy_does() {
    let e = err(&format!(
        "{T}listen l\n bind :80\n server a 127.0.0.1:2 on-marked-down foo\n"
    ));
    assert!(
        e.contains("'on-marked-down' expects 'shutdown-sessions' but got 'foo'."),
        "{e}"
    );
    let e = err(&format!(
        "{T}listen l\n bind :80\n server b 127.0.0.1:2 on-marked-up foo\n"
    ));
    assert!(
        e.contains("'on-marked-up' expects 'shutdown-backup-sessions' but got 'foo'."),
        "{e}"
    );
    let e = err(&format!("global\n spread-checks 60\n{T}"));
    assert!(
        e.contains("'spread-checks' needs a positive value in range 0..50."),
        "{e}"
    );
    let l = ok(&format!(
        "{T}listen l\n bind :80\n force-persist if {{ src 10.0.0.0/8 }}\n ignore-persist if {{ path_beg /static }}\n server a 127.0.0.1:2 on-marked-down shutdown-sessions on-marked-up shutdown-backup-sessions\n"
    ));
    let b = &l.config.backends[0];
    assert_eq!(
        b.persist_rules.iter().map(|r| r.force).collect::<Vec<_>>(),
        [true, false]
    );
    let p = &b.servers[0].params;
    assert_eq!(p.on_marked_down.as_deref(), Some("shutdown-sessions"));
    assert_eq!(p.on_marked_up.as_deref(), Some("shutdown-backup-sessions"));
}

/// `http-error` renders its reply at load time (haproxy's order: `hdr` lines, length, type)
/// and refuses what haproxy refuses, plus the log-format payloads ringlb cannot send yet.
#[test]
fn http_error_replies_and_their_errors() {
    let l = ok(&format!(
        "{T}frontend fe\n bind :80\n http-error status 429 content-type text/plain string slow hdr Retry-After 5\n default_backend be\nbackend be\n server s 127.0.0.1:9000\n"
    ));
    let page = l.config.frontends[0]
        .errorfiles
        .iter()
        .find(|e| e.status == 429)
        .unwrap();
    assert_eq!(
        &page.contents[..],
        b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 5\r\ncontent-length: 4\r\ncontent-type: text/plain\r\n\r\nslow"
    );
    let line = |l: &str| format!("{T}frontend fe\n bind :80\n {l}\n");
    for (rule, says) in [
        (
            "http-error content-type t string x",
            "expects at least a <status>",
        ),
        (
            "http-error status 599 string x",
            "status code '599' not handled",
        ),
        (
            "http-error status 503 string x",
            "a content type must be defined",
        ),
        ("http-error status 503 bogus", "unknown keyword 'bogus'"),
        (
            "http-error status 503 content-type t lf-string %[path]",
            "not supported by ringlb yet",
        ),
        (
            "http-error status 503 hdr x-path %[path]",
            "not supported by ringlb yet",
        ),
    ] {
        let e = err(&line(rule));
        assert!(e.contains("t.cfg:8") && e.contains(says), "{rule}: {e}");
    }
}

/// Rules written after rules of a later stage warn as haproxy 2.6 does (recorded with
/// `haproxy -c`: one warning per line, naming the first later stage found).
#[test]
fn misplaced_rules_warn_like_haproxy() {
    let l = ok(&format!(
        "{T}frontend f\n bind :80\n redirect location /x if {{ path /r }}\n http-request set-header A 1\n use_backend b if {{ path /b }}\n http-request set-header B 1\n tcp-request content accept\n http-request deny if {{ path /d }}\n redirect location /y if {{ path /s }}\n default_backend b\nbackend b\n use-server s1 if {{ path /u }}\n http-request set-header C 1\n server s1 127.0.0.1:2\n"
    ));
    let got: Vec<String> = l
        .warnings
        .iter()
        .filter(|w| w.level == Level::Warning && w.message.contains("placed after"))
        .map(|w| format!("{}: {}", w.line - 6, w.message))
        .collect();
    assert_eq!(
        got,
        [
            "3: a 'http-request' rule placed after a 'redirect' rule will still be processed before.",
            "5: a 'http-request' rule placed after a 'redirect' rule will still be processed before.",
            "6: a 'tcp-request' rule placed after an 'http-request' rule will still be processed before.",
            "7: a 'http-request' rule placed after a 'redirect' rule will still be processed before.",
            "8: a 'redirect' rule placed after a 'use_backend' rule will still be processed before.",
            "12: a 'http-request' rule placed after a 'use-server' rule will still be processed before.",
        ]
    );
}
