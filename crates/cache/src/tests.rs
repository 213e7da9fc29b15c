//! The rules of the configuration manual's section 6 ("Cache"), one case each.

use super::*;

type H<'a> = [(&'a [u8], &'a [u8])];

fn spec() -> CacheSpec {
    CacheSpec {
        max_age_s: 240,
        ..CacheSpec::new(4, None)
    }
}

#[test]
fn section_defaults() {
    let s = CacheSpec::new(4, None);
    assert_eq!(s.total_max_size, 4 << 20);
    assert_eq!(s.max_object_size, (4 << 20) / 256);
    assert_eq!(
        (s.max_age_s, s.process_vary, s.max_secondary_entries),
        (60, false, 10)
    );
}

#[test]
fn requests_served_from_the_cache() {
    let none: &H = &[];
    assert_eq!(request_use(b"GET", true, none), RequestUse::Lookup);
    assert_eq!(request_use(b"HEAD", true, none), RequestUse::Bypass);
    assert_eq!(request_use(b"POST", true, none), RequestUse::Bypass);
    assert_eq!(
        request_use(b"GET", false, none),
        RequestUse::Bypass,
        "HTTP/1.0"
    );
    let auth: &H = &[(b"Authorization", b"Basic eDp5")];
    assert_eq!(request_use(b"GET", true, auth), RequestUse::Bypass);
    let nc: &H = &[(b"Cache-Control", b"max-age=0, no-cache")];
    assert_eq!(request_use(b"GET", true, nc), RequestUse::Refresh);
    let pragma: &H = &[(b"Pragma", b"no-cache")];
    assert_eq!(request_use(b"GET", true, pragma), RequestUse::Refresh);
}

#[test]
fn responses_stored_and_their_lifetime() {
    let s = spec();
    let now = 1_795_516_200;
    let ok = |h: &H| store_decision(&s, 200, h, 100, now);
    let ttl = |h: &H| ok(h).map(|f| f.ttl_s);
    assert_eq!(
        store_decision(&s, 404, &[(b"Cache-Control", b"max-age=10")], 100, now),
        Err(NotStored::Status)
    );
    assert_eq!(ttl(&[(b"Cache-Control", b"max-age=10")]), Ok(10));
    // s-maxage first, and the section's max-age bounds both.
    assert_eq!(
        ttl(&[(b"Cache-Control", b"max-age=10, s-maxage=20")]),
        Ok(20)
    );
    assert_eq!(ttl(&[(b"Cache-Control", b"max-age=1000")]), Ok(240));
    for cc in [&b"no-store"[..], b"no-cache", b"private, max-age=10"] {
        assert_eq!(ok(&[(b"Cache-Control", cc)]), Err(NotStored::Uncacheable));
    }
    // Expires relative to Date.
    let e: &H = &[
        (b"Date", b"Tue, 24 Nov 2026 10:30:00 GMT"),
        (b"Expires", b"Tue, 24 Nov 2026 10:31:40 GMT"),
    ];
    assert_eq!(ttl(e), Ok(100));
    let past: &H = &[(b"Expires", b"Sun, 06 Nov 1994 08:49:37 GMT")];
    assert_eq!(ok(past), Err(NotStored::Stale));
    // No expiry: only a validator makes it storable (for the section's max-age).
    assert_eq!(
        ok(&[(b"Content-Type", b"text/css")]),
        Err(NotStored::NoExpiry)
    );
    assert_eq!(ttl(&[(b"ETag", b"\"x\"")]), Ok(240));
    assert_eq!(
        ttl(&[(b"Last-Modified", b"Sun, 06 Nov 1994 08:49:37 GMT")]),
        Ok(240)
    );
    // Age counts against the lifetime.
    let aged = ok(&[(b"Cache-Control", b"max-age=10"), (b"Age", b"4")]).unwrap();
    assert_eq!((aged.ttl_s, aged.age_s), (6, 4));
    assert_eq!(
        ok(&[(b"Cache-Control", b"max-age=10"), (b"Age", b"10")]),
        Err(NotStored::Stale)
    );
    // Cookies, size. haproxy 2.6 stores a response with `Set-Cookie` (and serves the
    // cookie with it: recorded in crates/ringlb/tests/cache_differential.rs).
    assert_eq!(
        ttl(&[(b"Cache-Control", b"max-age=10"), (b"Set-Cookie", b"a=1")]),
        Ok(10)
    );
    assert_eq!(
        ttl(&[
            (b"Cache-Control", b"public, max-age=10"),
            (b"Set-Cookie", b"a=1")
        ]),
        Ok(10)
    );
    let big = (s.max_object_size - 99).to_string();
    assert_eq!(
        ok(&[
            (b"Cache-Control", b"max-age=10"),
            (b"Content-Length", big.as_bytes())
        ]),
        Err(NotStored::TooBig)
    );
}

#[test]
fn vary_needs_process_vary_and_known_headers() {
    let mut s = spec();
    let h: &H = &[
        (b"Cache-Control", b"max-age=10"),
        (b"Vary", b"Accept-Encoding"),
    ];
    assert_eq!(store_decision(&s, 200, h, 0, 0), Err(NotStored::Vary));
    s.process_vary = true;
    assert_eq!(
        store_decision(&s, 200, h, 0, 0).unwrap().vary,
        [b"accept-encoding".to_vec()]
    );
    let other: &H = &[
        (b"Cache-Control", b"max-age=10"),
        (b"Vary", b"accept-encoding, user-agent"),
    ];
    assert_eq!(store_decision(&s, 200, other, 0, 0), Err(NotStored::Vary));
    // The same encodings in another order are the same variant; others are not.
    let v: [&[u8]; 1] = [b"accept-encoding"];
    let a = secondary_key(&v, &[(b"Accept-Encoding", b"gzip, br")]);
    assert_eq!(a, secondary_key(&v, &[(b"accept-encoding", b"br,gzip")]));
    assert_ne!(a, secondary_key(&v, &[(b"Accept-Encoding", b"gzip")]));
    assert_eq!(secondary_key(&[], &[(b"Accept-Encoding", b"gzip")]), 0);
}

#[test]
fn keys_are_host_and_uri() {
    assert_eq!(
        primary_key(b"a.example", b"/x"),
        primary_key(b"a.example", b"/x")
    );
    assert_ne!(
        primary_key(b"a.example", b"/x"),
        primary_key(b"b.example", b"/x")
    );
    assert_ne!(
        primary_key(b"a.example", b"/x"),
        primary_key(b"a.example", b"/x?q")
    );
    assert_ne!(primary_key(b"ab", b"/"), primary_key(b"a", b"b/"));
}

#[test]
fn http_dates() {
    assert_eq!(
        parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(784_111_777)
    );
    assert_eq!(parse_http_date(b"Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
    assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), None);
    assert_eq!(parse_http_date(b"garbage"), None);
}

fn fresh(ttl: u64, age: u64) -> Fresh {
    Fresh {
        ttl_s: ttl,
        age_s: age,
        vary: Vec::new(),
    }
}

#[test]
fn store_hits_ages_and_expiry() {
    let mut st = Store::new(spec());
    st.insert(
        1,
        0,
        b"HTTP/1.1 200 OK\r\n\r\nx".to_vec(),
        &fresh(10, 2),
        1000,
    )
    .unwrap();
    let hit = st.get(1, 0, 1003).unwrap();
    assert_eq!(
        hit.age_s, 5,
        "Age from the server plus the time in the cache"
    );
    assert_eq!(hit.bytes, b"HTTP/1.1 200 OK\r\n\r\nx");
    assert!(st.get(1, 1, 1003).is_none(), "another variant");
    assert!(st.get(1, 0, 1010).is_none(), "expired");
    assert_eq!(st.used(), 0, "an expired object is dropped");
}

#[test]
fn store_bounds_size_and_variants() {
    let mut s = spec();
    s.total_max_size = 30;
    s.max_object_size = 15;
    s.max_secondary_entries = 2;
    let mut st = Store::new(s);
    assert_eq!(
        st.insert(1, 0, vec![0; 16], &fresh(10, 0), 0),
        Err(InsertError::TooBig)
    );
    st.insert(1, 0, vec![1; 10], &fresh(10, 0), 0).unwrap();
    st.insert(2, 0, vec![2; 10], &fresh(10, 0), 0).unwrap();
    st.insert(3, 0, vec![3; 10], &fresh(10, 0), 0).unwrap();
    // A fourth evicts the oldest.
    st.insert(4, 0, vec![4; 10], &fresh(10, 0), 0).unwrap();
    assert!(st.get(1, 0, 1).is_none());
    assert!(st.get(2, 0, 1).is_some());
    assert_eq!(st.used(), 30);
    // Replacing a variant keeps one copy.
    st.insert(4, 0, vec![5; 10], &fresh(10, 0), 0).unwrap();
    assert_eq!(st.get(4, 0, 1).unwrap().bytes, &[5; 10][..]);
    assert_eq!(st.used(), 30);
    st.insert(4, 1, vec![6; 5], &fresh(10, 0), 0).unwrap();
    assert_eq!(
        st.insert(4, 2, vec![7; 5], &fresh(10, 0), 0),
        Err(InsertError::TooManyVariants)
    );
}
