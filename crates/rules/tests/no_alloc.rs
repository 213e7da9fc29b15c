//! The request path of the guide's routing and filtering rules does not allocate: ACLs,
//! conditions, `use_backend` and non-matching deny/return rules run on borrowed samples.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use ringlb_rules::{
    HttpMessage, ProxyRules, RuleHost, Sample, SampleSource, ScFetch, Txn, Verdict,
};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

struct Host;

impl SampleSource for Host {
    fn now_ms(&self) -> i64 {
        1_795_516_200_000
    }
    fn random_u64(&self) -> u64 {
        3
    }
    fn src(&self) -> Option<SocketAddr> {
        Some(SocketAddr::from(([10, 2, 3, 4], 5555)))
    }
    fn sc(&self, _: &ScFetch, _: Option<std::net::IpAddr>) -> Option<Sample<'static>> {
        Some(Sample::Int(12))
    }
}

impl RuleHost for Host {}

#[test]
fn guide_rules_evaluate_without_allocating() {
    let cfg = "defaults\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n\
        frontend fe\n bind 127.0.0.1:8080\n\
         acl is_api hdr(host) -i api.example.com\n\
         acl is_static path_beg /static/ /images/ /css/ /js/\n\
         acl is_graphql path /graphql\n\
         acl is_mobile hdr_sub(User-Agent) -i mobile android iphone\n\
         acl is_delete method DELETE\n\
         acl is_options method OPTIONS\n\
         acl is_internal src 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16\n\
         acl is_office src 203.0.113.0/24\n\
         acl is_debug url_param(debug) -m str true\n\
         acl is_business_hours date_hour 9-17\n\
         acl is_weekday date_dow 1-5\n\
         acl is_abuser sc_http_req_rate(0) gt 100\n\
         http-request return status 200 content-type text/plain if is_options\n\
         http-request deny deny_status 403 if is_delete !is_office\n\
         http-request deny deny_status 429 if is_abuser\n\
         http-request deny if is_debug !is_internal\n\
         http-request deny if !is_business_hours !is_weekday is_mobile\n\
         http-request redirect scheme https code 301 if { path_reg ^/never }\n\
         use_backend api if is_api\n use_backend static if is_static\n use_backend gql if is_graphql\n\
         default_backend web\n\
        backend web\n server s 127.0.0.1:1\nbackend api\n server s 127.0.0.1:1\n\
        backend static\n server s 127.0.0.1:1\nbackend gql\n server s 127.0.0.1:1\n";
    let l = ringlb_config::parse_str("t.cfg", cfg).unwrap_or_else(|d| panic!("{d}"));
    let rules = ProxyRules::frontend(l.config.frontend("fe").unwrap(), &l.config).unwrap();
    let mut m = HttpMessage::request(b"GET", b"/images/a.png?debug=true&x=1", b"HTTP/1.1");
    m.push_header(b"Host", b"www.example.com");
    m.push_header(b"User-Agent", b"Mozilla/5.0 (Linux; Android 10)");
    m.push_header(b"Accept", b"*/*");
    let mut txn = Txn::new(m);
    let mut host = Host;
    // Warm-up: the regex engine fills its per-thread cache on first use.
    assert_eq!(rules.http_request(&mut host, &mut txn), Verdict::Continue);
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut backends = 0;
    for _ in 0..100 {
        assert_eq!(rules.http_request(&mut host, &mut txn), Verdict::Continue);
        if rules.select_backend(&host, &txn).as_deref() == Some("static") {
            backends += 1;
        }
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(backends, 100);
    assert_eq!(
        allocs, 0,
        "rule evaluation allocated {allocs} times in 100 requests"
    );
}
