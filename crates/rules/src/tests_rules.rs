//! Actions, conditions and the log-format engine, from config text to verdicts and output.

use std::net::IpAddr;

use crate::context::Ctx;
use crate::logformat::{LogFormat, LogValue, CLF_FORMAT, HTTPLOG_FORMAT, TCPLOG_FORMAT};
use crate::message::HttpMessage;
use crate::rules::{HttpReply, Verdict};
use crate::sample::Sample;
use crate::tests::{fe_rules, get, req, Host};

fn hdrs(m: &HttpMessage<'_>) -> Vec<(String, String)> {
    m.headers
        .iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

#[test]
fn conditions_or_not_unless_and_repeated_acls() {
    let r = fe_rules(
        " acl a path_beg /a
 acl b path_beg /b
 acl ab hdr(x-ab) yes
 acl ab path_end .ab
 http-request set-header X-Or 1 if a || b
 http-request set-header X-Or2 1 if a or b
 http-request set-header X-NotA 1 if !a
 http-request set-header X-And 1 if a { hdr(x-k) k }
 http-request set-header X-Unless 1 unless a b
 http-request set-header X-Repeated 1 if ab
 http-request set-header X-Mix 1 if a !b || b { method POST }",
    );
    let mut h = Host::default();
    let run = |t: &mut crate::context::Txn<'_>, h: &mut Host| {
        assert_eq!(r.http_request(h, t), Verdict::Continue);
        let mut names: Vec<String> = hdrs(&t.req)
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with("X-") && n != "X-K" && n != "X-Ab")
            .collect();
        names.sort();
        names.join(",")
    };
    assert_eq!(
        run(&mut get("/a", &[]), &mut h),
        "X-Mix,X-Or,X-Or2,X-Unless"
    );
    assert_eq!(
        run(&mut get("/b", &[]), &mut h),
        "X-NotA,X-Or,X-Or2,X-Unless"
    );
    assert_eq!(
        run(&mut req("POST", "/b", &[]), &mut h),
        "X-Mix,X-NotA,X-Or,X-Or2,X-Unless"
    );
    assert_eq!(
        run(&mut get("/a", &[("X-K", "k")]), &mut h),
        "X-And,X-Mix,X-Or,X-Or2,X-Unless"
    );
    assert_eq!(run(&mut get("/c", &[]), &mut h), "X-NotA,X-Unless");
    // Two `acl ab` lines are OR'ed.
    assert_eq!(
        run(&mut get("/c.ab", &[]), &mut h),
        "X-NotA,X-Repeated,X-Unless"
    );
    assert_eq!(
        run(&mut get("/c", &[("X-Ab", "yes")]), &mut h),
        "X-NotA,X-Repeated,X-Unless"
    );
}

#[test]
fn predefined_acls() {
    let r = fe_rules(
        " http-request set-header X-Get 1 if METH_GET
 http-request set-header X-Post 1 if METH_POST
 http-request set-header X-Local 1 if LOCALHOST
 http-request set-header X-11 1 if HTTP_1.1
 http-request set-header X-10 1 if HTTP_1.0
 http-request set-header X-Abs 1 if HTTP_URL_ABS
 http-request set-header X-Slash 1 if HTTP_URL_SLASH
 http-request set-header X-Star 1 if HTTP_URL_STAR
 http-request set-header X-Content 1 if HTTP_CONTENT
 http-request set-header X-True 1 if TRUE
 http-request set-header X-False 1 if FALSE
 http-request set-header X-Http 1 if HTTP",
    );
    let mut h = Host::default();
    let names = |t: &crate::context::Txn<'_>| {
        let mut v: Vec<String> = hdrs(&t.req)
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with("X-"))
            .collect();
        v.sort();
        v.join(",")
    };
    let mut t = get("/", &[]);
    r.http_request(&mut h, &mut t);
    assert_eq!(names(&t), "X-11,X-Get,X-Http,X-Slash,X-True");
    h.src = "127.0.0.5:1000".parse().unwrap();
    let mut t = req("HEAD", "http://h/x", &[("Content-Length", "3")]);
    r.http_request(&mut h, &mut t);
    assert_eq!(
        names(&t),
        "X-11,X-Abs,X-Content,X-Get,X-Http,X-Local,X-True",
        "METH_GET includes HEAD"
    );
    let mut t = req("OPTIONS", "*", &[]);
    t.req.version = std::borrow::Cow::Borrowed(b"HTTP/1.0");
    h.src = "[::1]:1000".parse().unwrap();
    r.http_request(&mut h, &mut t);
    assert_eq!(names(&t), "X-10,X-Http,X-Local,X-Star,X-True");
}

#[test]
fn header_actions_apply_in_order() {
    let r = fe_rules(
        " http-request set-header X-A first
 http-request set-header X-Copy %[req.hdr(x-a)]
 http-request add-header X-A second
 http-request set-header X-Count %[req.hdr_cnt(x-a)]
 http-request del-header X-Remove
 http-request del-header x-pre -m beg
 http-request del-header ^x-re[0-9]$ -m reg
 http-request replace-header Cookie foo=([^;]*);(.*) foo=\\1;ip=%ci;\\2
 http-request replace-value X-Forwarded-For ^192\\.168\\.(.*)$ 172.16.\\1
 http-request set-var(txn.host) req.hdr(host),lower
 http-request set-header X-Host %[var(txn.host)]
 http-request set-var-fmt(txn.both) %[src]-%[var(txn.host)]
 http-request set-header X-Both %[var(txn.both)]
 http-request unset-var(txn.both)
 http-request set-header X-Gone [%[var(txn.both)]]
 http-request set-header X-Empty %[hdr(none)]",
    );
    let mut h = Host::default();
    let mut t = get(
        "/",
        &[
            ("Host", "WWW.Example.COM"),
            ("X-Remove", "1"),
            ("X-Prefix-1", "1"),
            ("x-pre", "2"),
            ("X-Re1", "1"),
            ("X-Re12", "keep"),
            (
                "Cookie",
                "foo=foobar; expires=Tue, 14-Jun-2016 01:40:45 GMT;",
            ),
            ("X-Forwarded-For", "192.168.10.1, 192.168.13.24, 10.0.0.37"),
        ],
    );
    assert_eq!(r.http_request(&mut h, &mut t), Verdict::Continue);
    let got = hdrs(&t.req);
    let want: Vec<(&str, &str)> = vec![
        ("Host", "WWW.Example.COM"),
        ("X-Re12", "keep"),
        // configuration.txt replace-header and replace-value examples.
        (
            "Cookie",
            "foo=foobar;ip=198.51.100.7; expires=Tue, 14-Jun-2016 01:40:45 GMT;",
        ),
        ("X-Forwarded-For", "172.16.10.1, 172.16.13.24, 10.0.0.37"),
        ("X-A", "first"),
        ("X-Copy", "first"),
        ("X-A", "second"),
        ("X-Count", "2"),
        ("X-Host", "www.example.com"),
        ("X-Both", "198.51.100.7-www.example.com"),
        ("X-Gone", "[]"),
        ("X-Empty", ""),
    ];
    let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(got, want);
    assert!(t.vars.get("txn.host").is_some());
    assert!(t.vars.get("txn.both").is_none());
}

#[test]
fn uri_actions() {
    let r = fe_rules(
        " http-request set-path /v2%[path] if { path_beg /api/ }
 http-request set-query lang=fr if { path_beg /v2/api/q }
 http-request replace-path /old/(.*) /new/\\1
 http-request set-method POST if { path /force }
 http-request set-uri /forced?x=1 if { path /force }
 http-request replace-uri ^http://([^/]*)/(.*) /\\2 if { url_beg http:// }
 http-request set-pathq /pq?z=9 if { path /pq }",
    );
    let mut h = Host::default();
    let cases = [
        ("GET", "/api/users?id=3", "GET", "/v2/api/users?id=3"),
        ("GET", "/api/q?old=1", "GET", "/v2/api/q?lang=fr"),
        ("GET", "/old/a/b?k=v", "GET", "/new/a/b?k=v"),
        ("GET", "/force", "POST", "/forced?x=1"),
        ("GET", "http://h.example/abs/x?y", "GET", "/abs/x?y"),
        ("GET", "/pq?a=1", "GET", "/pq?z=9"),
        ("GET", "/same", "GET", "/same"),
    ];
    for (m, uri, want_m, want_uri) in cases {
        let mut t = req(m, uri, &[]);
        r.http_request(&mut h, &mut t);
        assert_eq!(
            (&*t.req.method, &*t.req.uri),
            (want_m.as_bytes(), want_uri.as_bytes()),
            "{uri}"
        );
        assert_eq!(t.req.modified, uri != "/same", "{uri}");
    }
    let mut t = get("/old/x", &[("Host", "h")]);
    r.http_request(&mut h, &mut t);
    let mut out = Vec::new();
    t.req.write_request_head(&mut out);
    assert_eq!(out, b"GET /new/x HTTP/1.1\r\nhost: h\r\n\r\n");
}

#[test]
fn replies_deny_return_tarpit() {
    let r = fe_rules(
        " http-request deny deny_status 429 content-type application/json string '{\"error\":\"slow down\"}' hdr Retry-After 10 if { path /deny-json }
 http-request deny if { path /deny }
 http-request tarpit deny_status 503 if { path /tarpit }
 http-request return status 404 content-type text/html lf-string \"<p>%[path] not here</p>\" hdr X-Src %[src] if { path_beg /missing }
 http-request return status 204 hdr Access-Control-Allow-Origin * if { method OPTIONS }
 http-request allow if { path /allowed }
 http-request deny deny_status 401",
    );
    let mut h = Host::default();
    let mut run = |m: &str, p: &str| r.http_request(&mut h, &mut req(m, p, &[]));
    assert_eq!(
        run("GET", "/deny-json"),
        Verdict::Deny(HttpReply {
            status: 429,
            headers: vec![
                (b"content-type".to_vec(), b"application/json".to_vec()),
                (b"Retry-After".to_vec(), b"10".to_vec())
            ],
            body: Some(b"{\"error\":\"slow down\"}".to_vec()),
            raw: None
        })
    );
    assert_eq!(
        run("GET", "/deny"),
        Verdict::Deny(HttpReply {
            status: 403,
            headers: vec![],
            body: None,
            raw: None
        })
    );
    assert!(matches!(
        run("GET", "/tarpit"),
        Verdict::Tarpit(HttpReply { status: 503, .. })
    ));
    match run("GET", "/missing/page") {
        Verdict::Return(rep) => {
            assert_eq!(rep.status, 404);
            assert_eq!(
                rep.body.as_deref(),
                Some(&b"<p>/missing/page not here</p>"[..])
            );
            assert_eq!(
                rep.headers,
                vec![
                    (b"content-type".to_vec(), b"text/html".to_vec()),
                    (b"X-Src".to_vec(), b"198.51.100.7".to_vec())
                ]
            );
        }
        v => panic!("{v:?}"),
    }
    match run("OPTIONS", "/x") {
        Verdict::Return(rep) => {
            assert_eq!(rep.status, 204);
            assert_eq!(
                rep.headers,
                vec![(b"Access-Control-Allow-Origin".to_vec(), b"*".to_vec())]
            );
        }
        v => panic!("{v:?}"),
    }
    // `allow` stops the list: the final deny is not reached.
    assert_eq!(run("GET", "/allowed"), Verdict::Allow);
    assert!(matches!(
        run("GET", "/other"),
        Verdict::Deny(HttpReply { status: 401, .. })
    ));
}

#[test]
fn redirects() {
    let r = fe_rules(
        " http-request redirect location https://www.example.com/new code 308 if { path /moved }
 http-request redirect location %[hdr(x-to)] ignore-empty if { path /dyn }
 http-request redirect prefix https://cdn.example.com drop-query if { path_beg /img }
 http-request redirect prefix / append-slash if { path /dir }
 http-request redirect scheme https set-cookie SEEN=1 if { path /cookie }
 http-request redirect location /bye clear-cookie SEEN= if { path /logout }
 redirect prefix http://legacy.example.com code 301 if { path_beg /legacy }",
    );
    let mut h = Host::default();
    let mut run = |p: &str, hs: &[(&str, &str)]| r.http_request(&mut h, &mut get(p, hs));
    let redir = |code, loc: &str, ck: Option<&str>| Verdict::Redirect {
        code,
        location: loc.as_bytes().to_vec(),
        set_cookie: ck.map(|c| c.as_bytes().to_vec()),
    };
    assert_eq!(
        run("/moved", &[]),
        redir(308, "https://www.example.com/new", None)
    );
    assert_eq!(
        run("/dyn", &[("X-To", "/there")]),
        redir(302, "/there", None)
    );
    // haproxy 2.6 renders a missing sample as empty outside logs (recorded with
    // haproxy -db and curl), so ignore-empty skips the redirect.
    assert_eq!(run("/dyn", &[]), Verdict::Continue, "ignore-empty");
    assert_eq!(
        run("/img/a.png?v=3", &[]),
        redir(302, "https://cdn.example.com/img/a.png", None)
    );
    assert_eq!(run("/dir?x=1", &[]), redir(302, "/dir/?x=1", None));
    assert_eq!(
        run("/cookie", &[("Host", "h.example")]),
        redir(302, "https://h.example/cookie", Some("SEEN=1; path=/;"))
    );
    assert_eq!(
        run("/logout", &[]),
        redir(302, "/bye", Some("SEEN=; path=/; Max-Age=0;"))
    );
    assert_eq!(
        run("/legacy/x?q", &[]),
        redir(301, "http://legacy.example.com/legacy/x?q", None)
    );
}

#[test]
fn response_rules_status_and_delete() {
    let r = fe_rules(
        " http-response set-status 503 reason \"Maintenance\" if { status 500 }
 http-response del-header Server
 http-response set-header X-Status %[status]
 http-response deny if { res.hdr(x-leak) -m found }
 http-response set-var(txn.ct) res.hdr(content-type)",
    );
    let mut h = Host::default();
    let mut t = get("/", &[]);
    let mut res = HttpMessage::response(b"HTTP/1.1", 500, b"Internal Server Error");
    res.push_header(b"Server", b"nginx");
    res.push_header(b"Content-Type", b"text/plain");
    t.res = Some(res);
    assert_eq!(r.http_response(&mut h, &mut t), Verdict::Continue);
    let res = t.res.as_ref().unwrap();
    assert_eq!(res.status, 503);
    assert_eq!(&*res.reason, b"Maintenance");
    assert_eq!(
        hdrs(res),
        vec![
            ("Content-Type".into(), "text/plain".into()),
            ("X-Status".into(), "503".into())
        ]
    );
    assert_eq!(
        t.vars.get("txn.ct"),
        Some(&Sample::owned(b"text/plain".to_vec()))
    );
    let mut out = Vec::new();
    res.write_response_head(&mut out);
    assert_eq!(
        out,
        b"HTTP/1.1 503 Maintenance\r\ncontent-type: text/plain\r\nx-status: 503\r\n\r\n"
    );
    let mut t = get("/", &[]);
    let mut res = HttpMessage::response(b"HTTP/1.1", 200, b"OK");
    res.push_header(b"X-Leak", b"1");
    t.res = Some(res);
    assert!(matches!(
        r.http_response(&mut h, &mut t),
        Verdict::Deny(HttpReply { status: 502, .. })
    ));
}

#[test]
fn capture_log_level_and_dynamic_backend() {
    let r = fe_rules(
        " http-request capture req.hdr(user-agent) len 5
 http-request set-log-level silent if { path /health }
 use_backend %[req.hdr(x-backend),lower] if { req.hdr(x-backend) -m found }
 use_backend admin_servers if { path /admin }",
    );
    let mut h = Host::default();
    let mut t = get(
        "/health",
        &[("User-Agent", "curl/8.0"), ("X-Backend", "API_Servers")],
    );
    r.http_request(&mut h, &mut t);
    assert_eq!(h.captures, vec![(0, b"curl/".to_vec())]);
    assert_eq!(h.level.as_deref(), Some("silent"));
    assert_eq!(r.select_backend(&h, &t).as_deref(), Some("api_servers"));
    let t = get("/", &[]);
    assert_eq!(
        r.select_backend(&h, &t).as_deref(),
        Some("web"),
        "default_backend"
    );
    let t = get("/", &[("X-Backend", "nosuch")]);
    let known = |n: &str| n == "api_servers" || n == "web";
    assert_eq!(
        r.select_backend_known(&h, &t, &known).as_deref(),
        Some("web"),
        "an unknown dynamic name falls through to default_backend"
    );
    let t = get("/admin", &[("X-Backend", "nosuch")]);
    assert_eq!(
        r.select_backend_known(&h, &t, &known).as_deref(),
        Some("web"),
        "... without evaluating later rules (haproxy breaks the loop)"
    );
    let t = get("/", &[("X-Backend", "API_SERVERS")]);
    assert_eq!(
        r.select_backend_known(&h, &t, &known).as_deref(),
        Some("api_servers")
    );
}

#[test]
fn basic_auth_with_userlist() {
    let text = "userlist admins\n group ops users alice\n user alice insecure-password s3cret\n user bob insecure-password pw groups dev\n\
        defaults\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n\
        frontend fe_main\n bind 127.0.0.1:8080\n acl ok http_auth(admins)\n acl ops http_auth_group(admins) ops\n\
         http-request auth realm Admin unless ok\n http-request deny if !ops\n default_backend web\n\
        backend web\n server s1 127.0.0.1:9000\n";
    let l = ringlb_config::parse_str("t.cfg", text).unwrap_or_else(|d| panic!("{d}"));
    let r = crate::ProxyRules::frontend(l.config.frontend("fe_main").unwrap(), &l.config).unwrap();
    let mut h = Host::default();
    let b64 = |s: &str| {
        String::from_utf8(crate::conv::b64_encode(
            s.as_bytes(),
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            true,
        ))
        .unwrap()
    };
    let alice = format!("Basic {}", b64("alice:s3cret"));
    let bad = format!("Basic {}", b64("alice:nope"));
    let bob = format!("Basic {}", b64("bob:pw"));
    assert_eq!(
        r.http_request(&mut h, &mut get("/", &[])),
        Verdict::Auth {
            realm: "Admin".into(),
            proxy: false,
        }
    );
    assert_eq!(
        r.http_request(&mut h, &mut get("/", &[("Authorization", &bad)])),
        Verdict::Auth {
            realm: "Admin".into(),
            proxy: false,
        }
    );
    assert_eq!(
        r.http_request(&mut h, &mut get("/", &[("Authorization", &alice)])),
        Verdict::Continue
    );
    assert!(
        matches!(
            r.http_request(&mut h, &mut get("/", &[("Authorization", &bob)])),
            Verdict::Deny(_)
        ),
        "bob is valid but not in group ops"
    );
}

#[test]
fn tcp_rules_and_sni_routing() {
    let text =
        "defaults\n mode tcp\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n\
        frontend fe_main\n bind 127.0.0.1:8443\n tcp-request inspect-delay 5s\n\
         tcp-request connection reject if { src 192.0.2.0/24 }\n\
         tcp-request content accept if { req.ssl_sni -m found }\n\
         use_backend api if { req.ssl_sni -i api.example.com }\n default_backend web\n\
        backend web\n server s1 127.0.0.1:9000\nbackend api\n server s1 127.0.0.1:9001\n";
    let l = ringlb_config::parse_str("t.cfg", text).unwrap_or_else(|d| panic!("{d}"));
    let r = crate::ProxyRules::frontend(l.config.frontend("fe_main").unwrap(), &l.config).unwrap();
    assert_eq!(r.inspect_delay_ms, Some(5000));
    struct Tcp {
        h: Host,
        payload: Vec<u8>,
    }
    impl crate::SampleSource for Tcp {
        fn now_ms(&self) -> i64 {
            self.h.now_ms
        }
        fn random_u64(&self) -> u64 {
            4
        }
        fn src(&self) -> Option<std::net::SocketAddr> {
            Some(self.h.src)
        }
        fn req_payload(&self) -> Option<&[u8]> {
            Some(&self.payload)
        }
        fn is_http(&self) -> bool {
            false
        }
    }
    impl crate::RuleHost for Tcp {}
    let mut tcp = Tcp {
        h: Host::default(),
        payload: crate::tls::client_hello("API.example.com"),
    };
    let mut t = crate::Txn::default();
    assert_eq!(
        r.tcp_rules(crate::TcpPhase::Connection, &mut tcp, &mut t),
        crate::TcpVerdict::Continue
    );
    assert_eq!(
        r.tcp_rules(crate::TcpPhase::Content, &mut tcp, &mut t),
        crate::TcpVerdict::Accept
    );
    assert_eq!(r.select_backend(&tcp, &t).as_deref(), Some("api"));
    tcp.payload = b"\x16\x03\x01".to_vec();
    assert_eq!(
        r.tcp_rules(crate::TcpPhase::Content, &mut tcp, &mut t),
        crate::TcpVerdict::Continue
    );
    assert_eq!(r.select_backend(&tcp, &t).as_deref(), Some("web"));
    // Within the inspect-delay a partial hello is a "miss": wait, then resume at that rule.
    t.payload_final = false;
    assert_eq!(
        r.tcp_rules(crate::TcpPhase::Content, &mut tcp, &mut t),
        crate::TcpVerdict::Wait { resume: 0 }
    );
    tcp.payload = crate::tls::client_hello("www.example.com");
    assert_eq!(
        r.tcp_rules_from(crate::TcpPhase::Content, 0, &mut tcp, &mut t),
        crate::TcpVerdict::Accept
    );
    t.payload_final = true;
    tcp.h.src = "192.0.2.9:1".parse().unwrap();
    assert_eq!(
        r.tcp_rules(crate::TcpPhase::Connection, &mut tcp, &mut t),
        crate::TcpVerdict::Reject { silent: false }
    );
}

fn log_host() -> Host {
    let mut h = Host {
        be: Some("api_servers"),
        srv: Some("api1"),
        // 2000-10-10 13:55:36.123 UTC, HAProxy's documented example date.
        now_ms: 971_186_136_123,
        ..Host::default()
    };
    let int = |v| LogValue::Int(v);
    for (k, v) in [
        ("B", 1234),
        ("Tt", 120),
        ("Tw", 0),
        ("Tc", 1),
        ("Tr", 15),
        ("TR", 2),
        ("Ta", 118),
        ("rc", 0),
        ("ac", 5),
        ("fc", 4),
        ("bc", 3),
        ("sc", 2),
        ("sq", 0),
        ("bq", 0),
        ("ST", 200),
    ] {
        h.log
            .insert(crate::logformat::LogVar::by_name(k).unwrap().name(), int(v));
    }
    h.log.insert("t", LogValue::TimeMs(971_186_136_123));
    h.log.insert("ts", LogValue::Str(b"--"));
    h.log.insert("tsc", LogValue::Str(b"----"));
    h
}

fn render(fmt: &str, h: &Host, t: &crate::context::Txn<'_>) -> String {
    let f = LogFormat::parse(fmt, &()).unwrap_or_else(|e| panic!("{fmt}: {e}"));
    String::from_utf8(f.render_vec(Ctx::new(h, t))).unwrap()
}

#[test]
fn guide_json_log_format() {
    let h = log_host();
    let t = get("/api/users?id=7", &[("Host", "api.example.com")]);
    let fmt = r#"{"time":"%t","client":"%ci:%cp","frontend":"%f","backend":"%b","server":"%s","method":"%HM","uri":"%HP","status":%ST,"bytes_read":%B,"time_total":%Tt,"time_queue":%Tw,"time_connect":%Tc,"time_response":%Tr,"retries":%rc,"conn_active":%ac,"conn_frontend":%fc,"conn_backend":%bc,"conn_server":%sc}"#;
    let out = render(fmt, &h, &t);
    assert_eq!(
        out,
        r#"{"time":"10/Oct/2000:13:55:36.123","client":"198.51.100.7:41000","frontend":"fe_main","backend":"api_servers","server":"api1","method":"GET","uri":"/api/users","status":200,"bytes_read":1234,"time_total":120,"time_queue":0,"time_connect":1,"time_response":15,"retries":0,"conn_active":5,"conn_frontend":4,"conn_backend":3,"conn_server":2}"#
    );
}

#[test]
fn predefined_log_formats() {
    let h = log_host();
    let t = get("/index.html", &[]);
    assert_eq!(
        render(HTTPLOG_FORMAT, &h, &t),
        "198.51.100.7:41000 [10/Oct/2000:13:55:36.123] fe_main api_servers/api1 2/0/1/15/118 200 1234 - - ---- 5/4/3/2/0 0/0 \"GET /index.html HTTP/1.1\""
    );
    assert_eq!(
        render(TCPLOG_FORMAT, &h, &t),
        "198.51.100.7:41000 [10/Oct/2000:13:55:36.123] fe_main api_servers/api1 0/1/120 1234 -- 5/4/3/2/0 0/0"
    );
    assert_eq!(
        render(CLF_FORMAT, &h, &t),
        "198.51.100.7 - - [10/Oct/2000:13:55:36 +0000] \"GET /index.html HTTP/1.1\" 200 1234 \"\" \"\" 41000 123 \"fe_main\" \"api_servers\" \"api1\" 2 0 1 15 118 ---- 5 4 3 2 0 0 0 \"\" \"\""
    );
}

#[test]
fn log_format_flags_and_errors() {
    let mut h = log_host();
    h.log
        .insert("bi", LogValue::Ip(IpAddr::from([10, 0, 0, 2])));
    let t = get("/a?b=1", &[("User-Agent", "say \"hi\" ]")]);
    let cases: &[(&str, &str)] = &[
        ("%%%ci", "%198.51.100.7"),
        ("%{+Q}ci", "\"198.51.100.7\""),
        ("%{+X}ci:%{+X}cp", "C6336407:A028"),
        ("%{+Q}o %b %{-Q}s %ST", "\"api_servers\" api1 200"),
        ("%{+Q}[req.fhdr(user-agent)]", "\"say \"hi\" ]\""),
        ("%{+Q,+E}[req.fhdr(user-agent)]", "\"say \\\"hi\\\" \\]\""),
        (
            "%{+json}[req.fhdr(user-agent)] %{+json}[hdr(none)] %{+json}[int(3)]",
            "\"say \\\"hi\\\" ]\" null 3",
        ),
        ("%[hdr(none)] %{+Q}[hdr(none)]", "- \"\""),
        ("%HU %HQ %HV %HPO", "/a?b=1 ?b=1 HTTP/1.1 /a"),
        ("%bi %si %H", "10.0.0.2 - lb1"),
        ("%T", "10/Oct/2000:13:55:36 +0000"),
        ("%Ts %{+X}Ts %ms", "971186136 39E31FD8 123"),
        ("a  b   c", "a b c"),
        ("%[src,ipmask(16)]/%[path,upper]", "198.51.0.0//A"),
        ("%[date,utime(%Y)]", "2000"),
    ];
    for (fmt, want) in cases {
        assert_eq!(render(fmt, &h, &t), *want, "{fmt}");
    }
    for (fmt, needle) in [
        ("%zz", "no such format variable 'zz'"),
        ("%[src", "missing ']'"),
        ("%[nosuch]", "unknown fetch"),
        ("%{+Z}ci", "unknown flag"),
        ("50%", "unexpected character after '%'"),
    ] {
        let e = LogFormat::parse(fmt, &()).unwrap_err();
        assert!(e.contains(needle), "{fmt}: {e}");
    }
    assert_eq!(
        LogFormat::parse("max-age=1; x", &())
            .unwrap()
            .literal()
            .unwrap(),
        b"max-age=1; x"
    );
    assert!(LogFormat::parse("%[src]", &()).unwrap().literal().is_none());
}

#[test]
fn compiled_rules_are_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<crate::ProxyRules>();
    check::<crate::LogFormat>();
    check::<crate::acl::CompiledAcl>();
}

#[test]
fn compile_errors_carry_location_and_keyword() {
    let text = "defaults\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n\
        frontend fe_main\n bind 127.0.0.1:8080\n http-request replace-path (unclosed x\n default_backend web\n\
        backend web\n server s1 127.0.0.1:9000\n";
    let l = ringlb_config::parse_str("t.cfg", text).unwrap_or_else(|d| panic!("{d}"));
    let e =
        crate::ProxyRules::frontend(l.config.frontend("fe_main").unwrap(), &l.config).unwrap_err();
    assert_eq!((e.loc.line, e.keyword.as_str()), (8, "http-request"));
    assert!(e.msg.contains("regex '(unclosed' is invalid"), "{e}");
}

#[test]
fn hdr_follows_the_rule_direction() {
    // haproxy 2.6 (recorded with `haproxy -c`): `%[hdr()]` follows the rule's direction; an
    // ACL's `hdr()` reads the request, so in an `http-response` rule it never matches;
    // `%[req.hdr()]` or `%[cook()]` there is a configuration error.
    let r = fe_rules(
        " acl from_api hdr(host) api.example.com
 http-request set-header X-Req-Host %[hdr(host)]
 http-response set-header X-Srv %[hdr(server)]
 http-response set-header X-Api 1 if from_api
 http-response set-header X-Cookie %[cookie(srv)]",
    );
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0]
        .msg
        .starts_with("acl 'from_api' will never match"));
    let mut h = Host::default();
    let mut t = get("/", &[("Host", "api.example.com"), ("Cookie", "srv=s1")]);
    r.http_request(&mut h, &mut t);
    assert_eq!(
        t.req.full_values(b"x-req-host").next(),
        Some(&b"api.example.com"[..])
    );
    let mut res = HttpMessage::response(b"HTTP/1.1", 200, b"OK");
    res.push_header(b"Server", b"nginx");
    res.push_header(b"Set-Cookie", b"srv=s2; Path=/");
    t.res = Some(res);
    r.http_response(&mut h, &mut t);
    assert!(!t.in_response, "reset after the run");
    let got = hdrs(t.res.as_ref().unwrap());
    assert!(
        got.contains(&("X-Srv".into(), "nginx".into())),
        "{got:?}: hdr() reads the response"
    );
    assert!(!got.iter().any(|(n, _)| n == "X-Api"), "{got:?}");
    assert!(
        got.contains(&("X-Cookie".into(), "s2".into())),
        "{got:?}: cookie() reads Set-Cookie in responses"
    );
    for rule in [
        "http-response set-header X-Req %[req.hdr(host)]",
        "http-response set-header X-Req-Cookie %[cook(srv)]",
    ] {
        let text = format!("frontend fe_main\n    mode http\n    bind :80\n    {rule}\n");
        let l = ringlb_config::parse_str("t.cfg", &text).unwrap_or_else(|d| panic!("{d}"));
        let e = crate::ProxyRules::frontend(l.config.frontend("fe_main").unwrap(), &l.config)
            .unwrap_err();
        assert!(e.msg.contains("HTTP request headers"), "{rule}: {e}");
    }
}

#[test]
fn basic_auth_with_sha512_crypt_password() {
    // `openssl passwd -6 -salt saltstring 'Hello world!'`
    let text = "userlist ul\n user carol password $6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1\n\
        defaults\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n\
        frontend fe_main\n bind 127.0.0.1:8080\n http-request auth unless { http_auth(ul) }\n default_backend web\n\
        backend web\n server s1 127.0.0.1:9000\n";
    let l = ringlb_config::parse_str("t.cfg", text).unwrap_or_else(|d| panic!("{d}"));
    let r = crate::ProxyRules::frontend(l.config.frontend("fe_main").unwrap(), &l.config).unwrap();
    let mut h = Host::default();
    let cred = |s: &str| {
        format!(
            "Basic {}",
            String::from_utf8(crate::conv::b64_encode(
                s.as_bytes(),
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                true
            ))
            .unwrap()
        )
    };
    let good = cred("carol:Hello world!");
    let bad = cred("carol:hello world!");
    assert_eq!(
        r.http_request(&mut h, &mut get("/", &[("Authorization", &good)])),
        Verdict::Continue
    );
    assert_eq!(
        r.http_request(&mut h, &mut get("/", &[("Authorization", &bad)])),
        Verdict::Auth {
            realm: "fe_main".into(),
            proxy: false,
        },
        "realm defaults to the proxy name"
    );
}

#[test]
fn whole_config_compiles_and_collects_every_error() {
    let text = "defaults\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n\
        frontend a\n bind 127.0.0.1:8080\n http-request set-header X %[src,ipmask(40)]\n default_backend b\n\
        frontend ok\n bind 127.0.0.1:8081\n default_backend b\n\
        backend b\n http-request replace-uri ( x\n server s1 127.0.0.1:9000\n";
    let l = ringlb_config::parse_str("t.cfg", text).unwrap_or_else(|d| panic!("{d}"));
    let errs = crate::ConfigRules::compile(&l.config).unwrap_err();
    let lines: Vec<u32> = errs.iter().map(|e| e.loc.line).collect();
    assert_eq!(lines, [8, 14], "{errs:?}");
    assert!(errs[0].msg.contains("invalid IPv4 mask"), "{}", errs[0]);
    let good = "defaults\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n\
        frontend ok\n bind 127.0.0.1:8081\n default_backend b\nbackend b\n server s1 127.0.0.1:9000\n";
    let l = ringlb_config::parse_str("t.cfg", good).unwrap();
    let all = crate::ConfigRules::compile(&l.config).unwrap();
    assert!(all.frontend("ok").is_some() && all.backend("b").is_some());
}

#[test]
fn tcp_actions_the_engine_does_not_do_are_refused_and_the_others_run() {
    let cfg = |rule: &str| {
        format!(
            "defaults\n mode tcp\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n\
             frontend fe\n bind 127.0.0.1:8443\n {rule}\n default_backend be\n\
             backend be\n server s1 127.0.0.1:9000\n"
        )
    };
    for refused in [
        "tcp-request content set-mark 1",
        "tcp-request connection set-tos 2",
        "tcp-request content capture src len 10",
        "tcp-request session set-log-level silent",
    ] {
        let l = ringlb_config::parse_str("t.cfg", &cfg(refused)).unwrap_or_else(|d| panic!("{d}"));
        let r = crate::ProxyRules::frontend(l.config.frontend("fe").unwrap(), &l.config);
        let err = r.err().map(|e| e.msg).unwrap_or_default();
        assert!(err.contains("not supported"), "{refused}: {err:?}");
    }
    // `proc.` variables are shared by the engine (per-shard copies kept in step).
    for accepted in [
        "tcp-request connection set-src src",
        "tcp-request connection set-dst-port int(1)",
        "tcp-request content set-var(proc.x) src",
        "tcp-request connection unset-var(proc.x)",
        "http-request set-var(proc.y) int(1)",
        "tcp-request content set-log-level silent",
        "tcp-request content set-src req.payload(0,4),hex",
        "tcp-request content set-dst-port int(8080)",
    ] {
        let l = ringlb_config::parse_str("t.cfg", &cfg(accepted)).unwrap_or_else(|d| panic!("{d}"));
        let r = crate::ProxyRules::frontend(l.config.frontend("fe").unwrap(), &l.config);
        assert!(r.is_ok(), "{accepted}: {:?}", r.err());
    }
    let l = ringlb_config::parse_str(
        "t.cfg",
        &cfg("tcp-request content set-var-fmt(txn.who) src-%[src]"),
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let r = crate::ProxyRules::frontend(l.config.frontend("fe").unwrap(), &l.config).unwrap();
    let mut h = Host::default();
    let mut t = crate::Txn::default();
    assert_eq!(
        r.tcp_rules(crate::TcpPhase::Content, &mut h, &mut t),
        crate::TcpVerdict::Continue
    );
    let who = t.vars.get("txn.who").map(|s| s.to_bytes().into_owned());
    assert_eq!(
        who.as_deref(),
        Some(&b"src-198.51.100.7"[..]),
        "{:?}",
        t.vars
    );
}

/// `tcp-response content` on a TCP backend: `res.payload` waits (within the inspect-delay)
/// only while the payload is too short; `close` is its own verdict; in `mode http` the rules
/// are refused rather than ignored.
#[test]
fn tcp_response_rules_wait_for_short_payloads_only() {
    let text =
        "defaults\n mode tcp\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n\
                backend be\n tcp-request inspect-delay 5s\n tcp-response inspect-delay 2s\n\
                \x20tcp-response content close if { res.payload(0,4) -m str QUIT }\n\
                \x20tcp-response content reject if { res.len gt 100 }\n server s1 127.0.0.1:9000\n";
    let loaded = ringlb_config::parse_str("t.cfg", text).unwrap();
    let be = loaded.config.backend("be").unwrap();
    let r = crate::ProxyRules::backend(be, &loaded.config).unwrap();
    assert_eq!(
        (r.inspect_delay_ms, r.res_inspect_delay_ms),
        (Some(5000), Some(2000))
    );
    #[derive(Default)]
    struct Res {
        h: Host,
        payload: Vec<u8>,
    }
    impl crate::SampleSource for Res {
        fn now_ms(&self) -> i64 {
            self.h.now_ms()
        }
        fn random_u64(&self) -> u64 {
            0
        }
        fn res_payload(&self) -> Option<&[u8]> {
            Some(&self.payload)
        }
    }
    impl crate::RuleHost for Res {}
    let mut h = Res {
        payload: b"QU".to_vec(),
        ..Res::default()
    };
    let mut t = crate::Txn {
        payload_final: false,
        ..crate::Txn::default()
    };
    let phase = crate::TcpPhase::ResponseContent;
    assert_eq!(
        r.tcp_rules(phase, &mut h, &mut t),
        crate::TcpVerdict::Wait { resume: 0 }
    );
    h.payload = b"QUIT".to_vec();
    assert_eq!(r.tcp_rules(phase, &mut h, &mut t), crate::TcpVerdict::Close);
    // Enough bytes and no match: a definite no, then `res.len` may still grow: wait at rule 1.
    h.payload = b"HELO".to_vec();
    assert_eq!(
        r.tcp_rules(phase, &mut h, &mut t),
        crate::TcpVerdict::Wait { resume: 1 }
    );
    t.payload_final = true;
    assert_eq!(
        r.tcp_rules(phase, &mut h, &mut t),
        crate::TcpVerdict::Continue
    );
    let http = text.replace("mode tcp", "mode http");
    let loaded = ringlb_config::parse_str("t.cfg", &http).unwrap();
    let be = loaded.config.backend("be").unwrap();
    let e = crate::ProxyRules::backend(be, &loaded.config).unwrap_err();
    assert!(
        e.to_string()
            .contains("not supported by ringlb in 'mode http'"),
        "{e}"
    );
}

/// `balance rdp-cookie` and `balance hash <expr>`: the key the engine hands the balancer,
/// cast to binary as HAProxy's `sample_fetch_as_type(.., SMP_T_BIN)`.
#[test]
fn balance_keys() {
    struct Tcp(Vec<u8>);
    impl crate::RuleHost for Tcp {}
    impl crate::SampleSource for Tcp {
        fn now_ms(&self) -> i64 {
            0
        }
        fn random_u64(&self) -> u64 {
            4
        }
        fn req_payload(&self) -> Option<&[u8]> {
            Some(&self.0)
        }
        fn is_http(&self) -> bool {
            false
        }
    }
    let be = |balance: &str| {
        let text = format!(
            "defaults\n mode tcp\nbackend b\n balance {balance}\n tcp-request inspect-delay 1s\n server s1 127.0.0.1:9000\n"
        );
        let l = ringlb_config::parse_str("t.cfg", &text).unwrap_or_else(|d| panic!("{d}"));
        crate::ProxyRules::backend(l.config.backend("b").unwrap(), &l.config).unwrap()
    };
    let mut rdp = vec![3, 0, 0, 0, 0, 0xe0, 0, 0, 0, 0, 0];
    rdp.extend_from_slice(b"Cookie: mstshash=alice\r\n\x01\x00\x08\x00");
    let t = crate::Txn::default();
    let key = |r: &crate::ProxyRules, p: &[u8]| r.balance_key(&Tcp(p.to_vec()), &t);
    assert_eq!(key(&be("rdp-cookie"), &rdp), Some(b"alice".to_vec()));
    assert_eq!(
        key(&be("rdp-cookie(mstshash)"), &rdp),
        Some(b"alice".to_vec())
    );
    assert_eq!(key(&be("rdp-cookie(other)"), &rdp), None);
    assert_eq!(key(&be("rdp-cookie"), b"GET / HTTP/1.1\r\n\r\n"), None);
    assert_eq!(
        key(&be("hash req.len"), &rdp),
        Some((rdp.len() as i64).to_be_bytes().to_vec()),
        "integers hash as 8 bytes in network order"
    );
    assert_eq!(key(&be("roundrobin"), &rdp), None);
    // HAProxy's documented companion rule: wait for the cookie within the inspect-delay.
    let text = "defaults\n mode tcp\nlisten l\n bind :3389\n balance rdp-cookie\n tcp-request inspect-delay 5s\n tcp-request content accept if RDP_COOKIE\n server s1 127.0.0.1:9000\n";
    let l = ringlb_config::parse_str("t.cfg", text).unwrap_or_else(|d| panic!("{d}"));
    let fe = crate::ProxyRules::frontend(l.config.frontend("l").unwrap(), &l.config).unwrap();
    let mut t = crate::Txn {
        payload_final: false,
        ..Default::default()
    };
    let mut src = Tcp(Vec::new());
    assert_eq!(
        fe.tcp_rules(crate::TcpPhase::Content, &mut src, &mut t),
        crate::TcpVerdict::Wait { resume: 0 }
    );
    let mut src = Tcp(rdp.clone());
    assert_eq!(
        fe.tcp_rules(crate::TcpPhase::Content, &mut src, &mut t),
        crate::TcpVerdict::Accept
    );
}
