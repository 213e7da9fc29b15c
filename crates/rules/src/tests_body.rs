//! `req.body*` fetches, `wait-for-body` and the stream/connection actions (`set-timeout`,
//! `set-mark`, `set-tos`, `disable-l7-retry`, `early-hint`) on a fake engine.

use crate::context::{RuleHost, SampleSource};
use crate::rules::{BodyWait, Effect, Verdict};
use crate::sample::Sample;
use crate::tests::{fe_rules, get, req, Host};

/// The test engine with a buffered body and a record of effects.
#[derive(Default)]
struct BodyHost {
    inner: Host,
    body: Option<Vec<u8>>,
    effects: Vec<String>,
}

impl SampleSource for BodyHost {
    fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }
    fn random_u64(&self) -> u64 {
        self.inner.random_u64()
    }
    fn req_body(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }
}

impl RuleHost for BodyHost {
    fn effect(&mut self, e: Effect<'_>) {
        self.effects.push(match e {
            Effect::SetTimeout { tunnel, ms } => format!("timeout {tunnel} {ms}"),
            Effect::DisableL7Retry => "no-retry".into(),
            Effect::SetMark(m) => format!("mark {m}"),
            Effect::SetTos(t) => format!("tos {t}"),
            Effect::EarlyHint { name, value, last } => format!(
                "hint {}: {} {last}",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(&value)
            ),
            Effect::CacheUse(c) => format!("cache-use {c}"),
            Effect::CacheStore(c) => format!("cache-store {c}"),
        });
    }
}

fn fetch(host: &BodyHost, expr: &str, hdrs: &[(&str, &str)]) -> Option<Sample<'static>> {
    let e = crate::expr::Expr::parse(expr, &()).unwrap();
    let t = req("POST", "/login", hdrs);
    e.eval(crate::context::Ctx::new(host, &t))
        .map(Sample::into_owned)
}

#[test]
fn body_fetches_read_the_buffered_body() {
    let h = BodyHost {
        body: Some(b"user=bob&pass=x%20y&user=eve&flag".to_vec()),
        ..BodyHost::default()
    };
    let cl = [("Content-Length", "99")];
    assert_eq!(
        fetch(&h, "req.body", &cl),
        Some(Sample::Bin(
            b"user=bob&pass=x%20y&user=eve&flag".to_vec().into()
        ))
    );
    assert_eq!(fetch(&h, "req.body_len", &cl), Some(Sample::Int(33)));
    // The advertised length, not what is buffered (HAProxy's definition).
    assert_eq!(fetch(&h, "req.body_size", &cl), Some(Sample::Int(99)));
    // No Content-Length (chunked): what is available.
    assert_eq!(fetch(&h, "req.body_size", &[]), Some(Sample::Int(33)));
    // First occurrence, not decoded.
    assert_eq!(
        fetch(&h, "req.body_param(user)", &cl),
        Some(Sample::str(&b"bob"[..]).into_owned())
    );
    assert_eq!(
        fetch(&h, "req.body_param(pass)", &cl),
        Some(Sample::str(&b"x%20y"[..]).into_owned())
    );
    assert_eq!(
        fetch(&h, "req.body_param", &cl),
        Some(Sample::str(&b"bob"[..]).into_owned())
    );
    assert_eq!(fetch(&h, "req.body_param(nope)", &cl), None);
    let none = BodyHost::default();
    assert_eq!(fetch(&none, "req.body", &cl), None);
    assert_eq!(fetch(&none, "req.body_len", &cl), Some(Sample::Int(0)));
    assert_eq!(fetch(&none, "req.body_size", &[]), Some(Sample::Int(0)));
}

#[test]
fn body_param_acl_tests_every_value() {
    let r = fe_rules(" http-request deny if { req.body_param(user) -m str eve }");
    let mut h = BodyHost {
        body: Some(b"user=bob&user=eve".to_vec()),
        ..BodyHost::default()
    };
    let mut t = req("POST", "/", &[]);
    assert!(matches!(r.http_request(&mut h, &mut t), Verdict::Deny(_)));
    h.body = Some(b"user=bob&x=eve".to_vec());
    let mut t = req("POST", "/", &[]);
    assert_eq!(r.http_request(&mut h, &mut t), Verdict::Continue);
}

#[test]
fn wait_for_body_is_found_by_its_condition() {
    let r = fe_rules(
        " http-request set-header x-a 1\n\
         http-request wait-for-body time 1s at-least 1k if METH_POST\n\
         http-request wait-for-body time 3s",
    );
    let h = BodyHost::default();
    let t = req("POST", "/", &[]);
    assert_eq!(
        r.body_wait(&h, &t),
        Some(BodyWait {
            time_ms: Some(1000),
            at_least: 1024
        })
    );
    let t = get("/", &[]);
    assert_eq!(
        r.body_wait(&h, &t),
        Some(BodyWait {
            time_ms: Some(3000),
            at_least: 0
        })
    );
    let plain = fe_rules(" http-request set-header x-a 1");
    assert_eq!(plain.body_wait(&h, &t), None);
}

#[test]
fn stream_actions_reach_the_engine() {
    let text = "defaults\n mode http\nlisten fe_main\n bind 127.0.0.1:8080\n\
         http-request set-timeout server 2s\n\
         http-request set-timeout tunnel req.hdr(x-t),mul(1000)\n\
         http-request set-timeout server 0\n\
         http-request disable-l7-retry if METH_POST\n\
         http-request set-mark 0x2a\n\
         http-request set-tos 16\n\
         http-request early-hint link \"</style.css>; rel=preload\"\n\
         http-request early-hint x-path %[path]\n\
         http-request early-hint x-c 1 if TRUE\n\
         http-request early-hint x-d 2 if FALSE\n\
         http-request early-hint x-e 3\n\
         server s 127.0.0.1:9000\n";
    let loaded = ringlb_config::parse_str("t.cfg", text).unwrap();
    let fe = loaded.config.frontend("fe_main").unwrap();
    let r = crate::proxy::ProxyRules::frontend(fe, &loaded.config).unwrap();
    let mut h = BodyHost::default();
    let mut t = get("/p", &[("x-t", "5")]);
    assert_eq!(r.http_request(&mut h, &mut t), Verdict::Continue);
    assert_eq!(
        h.effects,
        [
            "timeout false 2000",
            "timeout true 5000",
            "mark 42",
            "tos 16",
            "hint link: </style.css>; rel=preload false",
            // The next hint is conditional: haproxy ends the 103 here.
            "hint x-path: /p true",
            "hint x-c: 1 true",
            "hint x-e: 3 true",
        ]
    );
}

#[test]
fn cache_actions_name_their_cache() {
    let text = "defaults\n mode http\ncache c1\n total-max-size 4\nlisten fe_main\n \
         bind 127.0.0.1:8080\n http-request cache-use c1 if { path_beg /p }\n \
         http-response cache-store c1\n \
         server s 127.0.0.1:9000\n";
    let loaded = ringlb_config::parse_str("t.cfg", text).unwrap();
    let fe = loaded.config.frontend("fe_main").unwrap();
    let r = crate::proxy::ProxyRules::frontend(fe, &loaded.config).unwrap();
    let mut h = BodyHost::default();
    let mut t = get("/p", &[]);
    assert_eq!(r.http_request(&mut h, &mut t), Verdict::Continue);
    assert_eq!(h.effects, ["cache-use c1"]);
}

#[test]
fn bad_action_arguments_are_refused() {
    for bad in [
        "http-request set-timeout client 5s",
        // A frontend has no server timeout to change (haproxy refuses it too).
        "http-request set-timeout server 5s",
        "http-request set-timeout server",
        "http-request set-mark nope",
        "http-request set-tos 300",
        "http-request wait-for-body at-least 1k",
    ] {
        let text = format!(
            "defaults\n mode http\nfrontend f\n bind 127.0.0.1:8080\n {bad}\n default_backend b\n\
             backend b\n server s 127.0.0.1:9000\n"
        );
        let loaded = ringlb_config::parse_str("t.cfg", &text).unwrap();
        let fe = loaded.config.frontend("f").unwrap();
        assert!(
            crate::proxy::ProxyRules::frontend(fe, &loaded.config).is_err(),
            "{bad} must be refused"
        );
    }
}
