//! End-to-end tests of the guide's rules: config text → ringlb-config model → compiled
//! rules → verdicts and edited messages, against an injected clock, RNG and stick counters.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use ringlb_config::parse_str;

use crate::context::{RuleHost, SampleSource, ScFetch, Txn};
use crate::logformat::{LogValue, LogVar};
use crate::message::HttpMessage;
use crate::proxy::ProxyRules;
use crate::rules::Verdict;
use crate::sample::Sample;

/// A fake engine: fixed addresses, clock, xorshift RNG, stick counters by name.
pub(crate) struct Host {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub now_ms: i64,
    pub rng: Cell<u64>,
    pub ssl: bool,
    pub ssl_vals: HashMap<&'static str, Sample<'static>>,
    pub sc: HashMap<String, i64>,
    pub tracked: Vec<(u8, Sample<'static>, Option<String>)>,
    pub log: HashMap<&'static str, LogValue<'static>>,
    pub fe: &'static str,
    pub be: Option<&'static str>,
    pub srv: Option<&'static str>,
    pub level: Option<String>,
    pub captures: Vec<(usize, Vec<u8>)>,
}

impl Default for Host {
    fn default() -> Host {
        Host {
            src: "198.51.100.7:41000".parse().unwrap(),
            dst: "10.0.0.1:443".parse().unwrap(),
            // 2026-11-24 (Tuesday) 10:30:00 UTC
            now_ms: 1_795_516_200_000,
            rng: Cell::new(0x9e37_79b9_7f4a_7c15),
            ssl: false,
            ssl_vals: HashMap::new(),
            sc: HashMap::new(),
            tracked: Vec::new(),
            log: HashMap::new(),
            fe: "fe_main",
            be: None,
            srv: None,
            level: None,
            captures: Vec::new(),
        }
    }
}

impl SampleSource for Host {
    fn now_ms(&self) -> i64 {
        self.now_ms
    }
    fn random_u64(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }
    fn src(&self) -> Option<SocketAddr> {
        Some(self.src)
    }
    fn dst(&self) -> Option<SocketAddr> {
        Some(self.dst)
    }
    fn frontend_name(&self) -> Option<&str> {
        Some(self.fe)
    }
    fn backend_name(&self) -> Option<&str> {
        self.be
    }
    fn server_name(&self) -> Option<&str> {
        self.srv
    }
    fn ssl(&self, name: &str, _args: &[Box<str>]) -> Option<Sample<'_>> {
        if name == "ssl_fc" {
            return Some(Sample::Bool(self.ssl));
        }
        if !self.ssl {
            return None;
        }
        self.ssl_vals.get(name).map(Sample::reborrow)
    }
    fn sc(&self, f: &ScFetch, key: Option<IpAddr>) -> Option<Sample<'static>> {
        let k = match (f.slot, key) {
            (Some(s), _) => format!("sc{s}_{}", f.what),
            (None, Some(ip)) => format!("src_{}_{ip}", f.what),
            _ => return None,
        };
        self.sc.get(&k).map(|v| Sample::Int(*v))
    }
    fn log_value(&self, v: LogVar) -> LogValue<'_> {
        self.log.get(v.name()).cloned().unwrap_or(LogValue::Missing)
    }
    fn hostname(&self) -> &[u8] {
        b"lb1"
    }
}

impl RuleHost for Host {
    fn track_sc(&mut self, slot: u8, key: &Sample<'_>, table: Option<&str>) {
        self.tracked
            .push((slot, key.clone().into_owned(), table.map(str::to_string)));
    }
    fn set_log_level(&mut self, level: &str) {
        self.level = Some(level.to_string());
    }
    fn capture(&mut self, _response: bool, slot: usize, value: &[u8]) {
        self.captures.push((slot, value.to_vec()));
    }
}

pub(crate) fn fe_rules(body: &str) -> ProxyRules {
    let text = format!(
        "defaults\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n\
         frontend fe_main\n bind 127.0.0.1:8080\n{body}\n default_backend web\n\
         backend web\n server s1 127.0.0.1:9000\n\
         backend api_servers\n server s1 127.0.0.1:9000\n\
         backend admin_servers\n server s1 127.0.0.1:9000\n\
         backend static_servers\n server s1 127.0.0.1:9000\n\
         backend websocket_servers\n server s1 127.0.0.1:9000\n\
         backend grpc_servers\n server s1 127.0.0.1:9000\n\
         backend cdn_servers\n server s1 127.0.0.1:9000\n\
         backend graphql_servers\n server s1 127.0.0.1:9000\n"
    );
    let loaded = parse_str("t.cfg", &text).unwrap_or_else(|d| panic!("config must load:\n{d}"));
    let fe = loaded.config.frontend("fe_main").unwrap();
    ProxyRules::frontend(fe, &loaded.config).unwrap_or_else(|e| panic!("compile: {e}"))
}

pub(crate) fn get<'a>(uri: &'a str, headers: &[(&'a str, &'a str)]) -> Txn<'a> {
    req("GET", uri, headers)
}

pub(crate) fn req<'a>(method: &'a str, uri: &'a str, headers: &[(&'a str, &'a str)]) -> Txn<'a> {
    let mut m = HttpMessage::request(method.as_bytes(), uri.as_bytes(), b"HTTP/1.1");
    for (n, v) in headers {
        m.push_header(n.as_bytes(), v.as_bytes());
    }
    Txn::new(m)
}

fn header<'t>(m: &'t HttpMessage<'_>, name: &'t str) -> Option<&'t [u8]> {
    m.full_values(name.as_bytes()).last()
}

const ROUTING: &str = "
 acl is_api hdr(host) -i api.example.com
 acl is_web hdr(host) -i www.example.com
 acl is_admin hdr(host) -i admin.example.com
 acl is_static path_beg /static/ /images/ /css/ /js/
 acl is_websocket hdr(Upgrade) -i websocket
 use_backend api_servers if is_api
 use_backend admin_servers if is_admin
 use_backend static_servers if is_static
 use_backend websocket_servers if is_websocket";

#[test]
fn guide_host_path_header_routing() {
    let r = fe_rules(ROUTING);
    let h = Host::default();
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        ("/", &[("Host", "api.example.com")], "api_servers"),
        ("/", &[("Host", "API.Example.COM")], "api_servers"),
        ("/", &[("Host", "admin.example.com")], "admin_servers"),
        (
            "/images/logo.png",
            &[("Host", "www.example.com")],
            "static_servers",
        ),
        ("/static", &[("Host", "www.example.com")], "web"),
        (
            "/chat",
            &[("Host", "x"), ("Upgrade", "WebSocket")],
            "websocket_servers",
        ),
        ("/", &[("Host", "api.example.com.evil")], "web"),
        ("/", &[], "web"),
        // The first matching rule wins: api host beats static path.
        ("/static/x", &[("Host", "api.example.com")], "api_servers"),
    ];
    for (uri, hdrs, want) in cases {
        let t = get(uri, hdrs);
        assert_eq!(
            r.select_backend(&h, &t).as_deref(),
            Some(*want),
            "{uri} {hdrs:?}"
        );
    }
}

const API_GW: &str = "
 acl is_api path_beg /api/
 acl is_static path_beg /static/ /images/ /css/ /js/
 acl is_graphql path /graphql
 acl is_mobile hdr_sub(User-Agent) -i mobile android iphone
 acl is_grpc hdr(Content-Type) -i application/grpc
 acl is_delete method DELETE
 acl is_options method OPTIONS
 acl is_internal src 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16
 acl is_office src 203.0.113.0/24
 acl is_debug url_param(debug) -m str true
 acl is_business_hours date_hour 9-17
 acl is_weekday date_dow 1-5
 acl is_abuser sc_http_req_rate(0) gt 100
 http-request return status 200 content-type text/plain if is_options
 http-request deny deny_status 403 if is_delete !is_office
 http-request set-header X-Debug 1 if is_debug
 http-request set-header X-Mobile 1 if is_mobile
 http-request set-header X-Internal 1 if is_internal
 http-request set-header X-Hours open if is_business_hours is_weekday
 http-request deny deny_status 429 if is_abuser
 use_backend grpc_servers if is_grpc
 use_backend api_servers if is_api
 use_backend cdn_servers if is_static
 use_backend graphql_servers if is_graphql";

#[test]
fn guide_api_gateway_rules() {
    let r = fe_rules(API_GW);
    let mut h = Host::default();

    // CORS preflight answered directly.
    let mut t = req("OPTIONS", "/api/x", &[]);
    match r.http_request(&mut h, &mut t) {
        Verdict::Return(rep) => {
            assert_eq!(rep.status, 200);
            assert!(rep.body.is_none(), "no payload configured");
        }
        v => panic!("{v:?}"),
    }

    // DELETE outside the office is denied with 403; from the office it passes.
    let mut t = req("DELETE", "/api/users/1", &[]);
    match r.http_request(&mut h, &mut t) {
        Verdict::Deny(rep) => assert_eq!(rep.status, 403),
        v => panic!("{v:?}"),
    }
    h.src = "203.0.113.44:5000".parse().unwrap();
    let mut t = req("DELETE", "/api/users/1", &[]);
    assert_eq!(r.http_request(&mut h, &mut t), Verdict::Continue);
    assert_eq!(r.select_backend(&h, &t).as_deref(), Some("api_servers"));

    // url_param, hdr_sub -i, src CIDR.
    h.src = "172.20.1.1:5000".parse().unwrap();
    let mut t = get(
        "/graphql?x=1&debug=true",
        &[("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 16_0)")],
    );
    assert_eq!(r.http_request(&mut h, &mut t), Verdict::Continue);
    assert_eq!(header(&t.req, "x-debug"), Some(&b"1"[..]));
    assert_eq!(header(&t.req, "x-mobile"), Some(&b"1"[..]));
    assert_eq!(header(&t.req, "x-internal"), Some(&b"1"[..]));
    assert_eq!(r.select_backend(&h, &t).as_deref(), Some("graphql_servers"));
    let mut t = get("/graphql?debug=TRUE", &[]);
    r.http_request(&mut h, &mut t);
    assert_eq!(header(&t.req, "x-debug"), None, "-m str is case-sensitive");

    // gRPC content type routes first.
    let t = get("/api/x", &[("Content-Type", "application/grpc")]);
    assert_eq!(r.select_backend(&h, &t).as_deref(), Some("grpc_servers"));
}

#[test]
fn guide_business_hours_with_injected_clock() {
    let r = fe_rules(API_GW);
    // (unix seconds UTC, expected header): Tuesday 10:30, Tuesday 18:00, Saturday 11:00,
    // Friday 17:59, Monday 08:59, Sunday 12:00.
    let cases: &[(i64, bool)] = &[
        (1_795_516_200, true),
        (1_795_543_200, false),
        (1_795_863_600, false),
        (1_795_802_340, true),
        (1_795_424_340, false),
        (1_795_348_800, false),
    ];
    for (secs, open) in cases {
        let c = crate::time::civil(*secs);
        let mut h = Host {
            now_ms: secs * 1000,
            ..Host::default()
        };
        let mut t = get("/", &[]);
        r.http_request(&mut h, &mut t);
        assert_eq!(
            header(&t.req, "x-hours").is_some(),
            *open,
            "dow {} {:02}:{:02}",
            c.weekday,
            c.hour,
            c.min
        );
    }
    // Local time: 10:30 UTC is 19:30 in UTC+9, outside business hours.
    struct Tz(Host);
    impl SampleSource for Tz {
        fn now_ms(&self) -> i64 {
            self.0.now_ms
        }
        fn random_u64(&self) -> u64 {
            1
        }
        fn utc_offset_secs(&self) -> i32 {
            9 * 3600
        }
    }
    impl RuleHost for Tz {}
    let mut tz = Tz(Host::default());
    let mut t = get("/", &[]);
    r.http_request(&mut tz, &mut t);
    assert_eq!(header(&t.req, "x-hours"), None);
}

#[test]
fn guide_rate_limit_through_stick_counter_hook() {
    let r = fe_rules(
        " stick-table type ip size 100k expire 30s store http_req_rate(10s),conn_cur
 http-request track-sc0 src
 http-request deny deny_status 429 if { sc_http_req_rate(0) gt 100 }
 http-request deny deny_status 429 if { sc_conn_cur(0) gt 50 }
 http-request tarpit if { sc_http_req_rate(0) gt 200 }",
    );
    let mut h = Host::default();
    h.sc.insert("sc0_http_req_rate".into(), 100);
    let mut t = get("/", &[]);
    assert_eq!(r.http_request(&mut h, &mut t), Verdict::Continue);
    assert_eq!(h.tracked.len(), 1);
    assert_eq!(h.tracked[0].0, 0);
    assert_eq!(h.tracked[0].1, Sample::Ip("198.51.100.7".parse().unwrap()));
    h.sc.insert("sc0_http_req_rate".into(), 101);
    match r.http_request(&mut h, &mut get("/", &[])) {
        Verdict::Deny(rep) => assert_eq!(rep.status, 429),
        v => panic!("{v:?}"),
    }
    h.sc.insert("sc0_http_req_rate".into(), 0);
    h.sc.insert("sc0_conn_cur".into(), 51);
    assert!(matches!(
        r.http_request(&mut h, &mut get("/", &[])),
        Verdict::Deny(_)
    ));
    // Tarpit only reached when the deny rules do not match first; test it alone.
    let r = fe_rules(" http-request tarpit if { sc_http_req_rate(0) gt 200 }");
    h.sc.insert("sc0_http_req_rate".into(), 201);
    match r.http_request(&mut h, &mut get("/", &[])) {
        Verdict::Tarpit(rep) => assert_eq!(rep.status, 500),
        v => panic!("{v:?}"),
    }
}

#[test]
fn guide_tls_redirect_and_headers() {
    let r = fe_rules(
        " http-request redirect scheme https code 301 unless { ssl_fc }
 http-request set-header X-Forwarded-Proto https if { ssl_fc }
 http-request set-header X-Real-IP %[src]
 http-request set-header X-Request-ID %[uuid()]
 http-request set-header X-Client-CN %[ssl_c_s_dn(cn)]
 http-request set-header X-Client-Serial %[ssl_c_serial,hex]
 http-response set-header Strict-Transport-Security \"max-age=63072000; includeSubDomains; preload\"
 http-response set-header X-Frame-Options \"SAMEORIGIN\"",
    );
    let mut h = Host::default();
    let mut t = get("/login?next=/home", &[("Host", "shop.example.com")]);
    assert_eq!(
        r.http_request(&mut h, &mut t),
        Verdict::Redirect {
            code: 301,
            location: b"https://shop.example.com/login?next=/home".to_vec(),
            set_cookie: None
        }
    );
    h.ssl = true;
    h.ssl_vals
        .insert("ssl_c_s_dn", Sample::owned(b"alice".to_vec()));
    h.ssl_vals
        .insert("ssl_c_serial", Sample::Bin(vec![0x01, 0xab].into()));
    let mut t = get(
        "/login",
        &[("Host", "shop.example.com"), ("X-Real-IP", "1.2.3.4")],
    );
    assert_eq!(r.http_request(&mut h, &mut t), Verdict::Continue);
    assert_eq!(header(&t.req, "x-forwarded-proto"), Some(&b"https"[..]));
    assert_eq!(
        t.req.full_values(b"x-real-ip").collect::<Vec<_>>(),
        [b"198.51.100.7"],
        "set-header replaces"
    );
    assert_eq!(header(&t.req, "x-client-cn"), Some(&b"alice"[..]));
    assert_eq!(header(&t.req, "x-client-serial"), Some(&b"01AB"[..]));
    let id = header(&t.req, "x-request-id").unwrap();
    let id = std::str::from_utf8(id).unwrap();
    assert_eq!(id.len(), 36);
    let parts: Vec<&str> = id.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(parts[2].starts_with('4'), "version 4: {id}");
    assert!("89ab".contains(&parts[3][..1]), "variant: {id}");
    assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    // Each request gets a new id.
    let mut t2 = get("/", &[]);
    r.http_request(&mut h, &mut t2);
    assert_ne!(header(&t2.req, "x-request-id").unwrap(), id.as_bytes());
    assert!(t.req.modified);

    t.res = Some(HttpMessage::response(b"HTTP/1.1", 200, b"OK"));
    assert_eq!(r.http_response(&mut h, &mut t), Verdict::Continue);
    let res = t.res.as_ref().unwrap();
    assert_eq!(
        header(res, "strict-transport-security"),
        Some(&b"max-age=63072000; includeSubDomains; preload"[..])
    );
    assert_eq!(header(res, "x-frame-options"), Some(&b"SAMEORIGIN"[..]));
    let mut out = Vec::new();
    res.write_response_head(&mut out);
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\nstrict-transport-security: max-age"));
}

#[test]
fn guide_metrics_service_and_websocket() {
    let r = fe_rules(" http-request use-service prometheus-exporter if { path /metrics }");
    let mut h = Host::default();
    assert_eq!(
        r.http_request(&mut h, &mut get("/metrics", &[])),
        Verdict::UseService("prometheus-exporter".into())
    );
    assert_eq!(
        r.http_request(&mut h, &mut get("/metrics/x", &[])),
        Verdict::Continue
    );
    assert_eq!(
        r.http_request(&mut h, &mut get("/metrics?x", &[])),
        Verdict::UseService("prometheus-exporter".into()),
        "path excludes the query string"
    );
}
