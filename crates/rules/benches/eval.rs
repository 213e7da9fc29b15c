//! Micro-benchmark: the guide's rules and JSON log-format per request.
//! `cargo bench -p ringlb-rules` prints nanoseconds per request (no assertions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use ringlb_rules::{Ctx, HttpMessage, ProxyRules, RuleHost, Sample, SampleSource, ScFetch, Txn};

struct Host;

impl SampleSource for Host {
    fn now_ms(&self) -> i64 {
        1_795_516_200_000
    }
    fn random_u64(&self) -> u64 {
        0x1234_5678_9abc_def0
    }
    fn src(&self) -> Option<SocketAddr> {
        Some(SocketAddr::from(([10, 2, 3, 4], 5555)))
    }
    fn frontend_name(&self) -> Option<&str> {
        Some("fe")
    }
    fn backend_name(&self) -> Option<&str> {
        Some("static")
    }
    fn server_name(&self) -> Option<&str> {
        Some("s1")
    }
    fn sc(&self, _: &ScFetch, _: Option<std::net::IpAddr>) -> Option<Sample<'static>> {
        Some(Sample::Int(12))
    }
}

impl RuleHost for Host {}

fn bench(name: &str, iters: u32, mut f: impl FnMut()) {
    for _ in 0..iters / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    let ns = t.elapsed().as_nanos() / u128::from(iters);
    println!("{name:<48} {ns:>8} ns/iter");
}

fn main() {
    let cfg = "defaults\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n\
        frontend fe\n bind 127.0.0.1:8080\n\
         acl is_api hdr(host) -i api.example.com\n\
         acl is_static path_beg /static/ /images/ /css/ /js/\n\
         acl is_graphql path /graphql\n\
         acl is_mobile hdr_sub(User-Agent) -i mobile android iphone\n\
         acl is_delete method DELETE\n acl is_options method OPTIONS\n\
         acl is_internal src 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16\n\
         acl is_office src 203.0.113.0/24\n\
         acl is_debug url_param(debug) -m str true\n\
         acl is_abuser sc_http_req_rate(0) gt 100\n\
         http-request return status 200 content-type text/plain if is_options\n\
         http-request deny deny_status 403 if is_delete !is_office\n\
         http-request deny deny_status 429 if is_abuser\n\
         use_backend api if is_api\n use_backend static if is_static\n use_backend gql if is_graphql\n\
         default_backend web\n\
        backend web\n server s 127.0.0.1:1\nbackend api\n server s 127.0.0.1:1\n\
        backend static\n server s 127.0.0.1:1\nbackend gql\n server s 127.0.0.1:1\n";
    let l = ringlb_config::parse_str("b.cfg", cfg).unwrap();
    let rules = ProxyRules::frontend(l.config.frontend("fe").unwrap(), &l.config).unwrap();
    let hdrs: &[(&[u8], &[u8])] = &[
        (b"Host", b"www.example.com"),
        (
            b"User-Agent",
            b"Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
        ),
        (b"Accept", b"text/html,application/xhtml+xml"),
        (b"Accept-Encoding", b"gzip, deflate, br"),
        (b"Cookie", b"session=abc; lang=en"),
    ];
    let build = || {
        let mut m = HttpMessage::request(b"GET", b"/images/logo.png?v=3", b"HTTP/1.1");
        for (n, v) in hdrs {
            m.push_header(n, v);
        }
        Txn::new(m)
    };
    let mut host = Host;
    bench("guide ACLs: http-request + use_backend", 200_000, || {
        let mut txn = build();
        black_box(rules.http_request(&mut host, &mut txn));
        black_box(rules.select_backend(&host, &txn));
    });
    let set_hdr = ProxyRules::frontend(
        ringlb_config::parse_str(
            "b.cfg",
            "defaults\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n\
             frontend fe\n bind 127.0.0.1:8080\n\
             http-request set-header X-Forwarded-Proto https if { ssl_fc }\n\
             http-request set-header X-Real-IP %[src]\n\
             http-request set-header X-Request-ID %[uuid()]\n default_backend web\n\
             backend web\n server s 127.0.0.1:1\n",
        )
        .unwrap()
        .config
        .frontend("fe")
        .unwrap(),
        &ringlb_config::parse_str("b.cfg", cfg).unwrap().config,
    )
    .unwrap();
    let mut out = Vec::with_capacity(512);
    bench(
        "guide set-header X-Real-IP + X-Request-ID, render",
        200_000,
        || {
            let mut txn = build();
            black_box(set_hdr.http_request(&mut host, &mut txn));
            out.clear();
            txn.req.write_request_head(&mut out);
            black_box(&out);
        },
    );
    let lf = ringlb_rules::LogFormat::parse(
        r#"{"time":"%t","client":"%ci:%cp","frontend":"%f","backend":"%b","server":"%s","method":"%HM","uri":"%HP","status":%ST,"bytes_read":%B,"time_total":%Tt,"time_queue":%Tw,"time_connect":%Tc,"time_response":%Tr,"retries":%rc,"conn_active":%ac,"conn_frontend":%fc,"conn_backend":%bc,"conn_server":%sc}"#,
        &(),
    )
    .unwrap();
    let txn = build();
    let mut line = Vec::with_capacity(512);
    bench("guide JSON log-format line", 200_000, || {
        line.clear();
        lf.render(Ctx::new(&host, &txn), &mut line);
        black_box(&line);
    });
}
