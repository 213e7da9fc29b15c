//! `errorloc`/`errorloc302`/`errorloc303`, `errorfiles` with an `http-errors` section and
//! `http-error`, compared byte for byte with haproxy's replies for the same config.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringlb_testkit::{free_addr, haproxy_available, write_config, Haproxy, Ringlb, TempDir};

const T: Duration = Duration::from_secs(10);

fn raw_get(front: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(front).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

/// Frontends whose backends have no server (503), each with its own way to replace the 503.
fn config(dir: &TempDir, fronts: [SocketAddr; 4]) -> String {
    let page = dir.join("503.http");
    std::fs::write(
        &page,
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 9\r\nconnection: close\r\n\r\nfrom file",
    )
    .unwrap();
    let [a, b, c, d] = fronts;
    format!(
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\nhttp-errors site\n    errorfile 503 {page}\n\nlisten l302\n    bind {a}\n    errorloc 503 http://example.com/down\nlisten l303\n    bind {b}\n    errorloc303 503 /maintenance?from=lb\nlisten lfiles\n    bind {c}\n    errorfiles site 503\nlisten lother\n    bind {d}\n    errorfiles site 502\n",
        page = page.display()
    )
}

/// The replies to `GET path` on each of the four fronts, under ringlb then under haproxy.
fn ours_and_theirs(
    dir: &TempDir,
    config: impl Fn([SocketAddr; 4]) -> String,
    path: &str,
) -> ([String; 4], [String; 4]) {
    let mut replies = Vec::new();
    for under_haproxy in [false, true] {
        let fronts = [free_addr(), free_addr(), free_addr(), free_addr()];
        let text = config(fronts);
        let cfg = if under_haproxy {
            let p = dir.join("haproxy.cfg");
            std::fs::write(&p, &text).unwrap();
            p
        } else {
            write_config(dir, &text)
        };
        let guard = if under_haproxy {
            Haproxy::start(&cfg, &fronts)
        } else {
            Ringlb::start(&cfg, &fronts)
        };
        replies.push(fronts.map(|f| raw_get(f, path)));
        drop(guard);
    }
    let theirs = replies.pop().unwrap();
    (replies.pop().unwrap(), theirs)
}

#[test]
fn errorloc_and_errorfiles_replies_match_haproxy() {
    if !haproxy_available() {
        eprintln!("skipped: no haproxy");
        return;
    }
    let dir = TempDir::new("errorloc");
    let (ours, theirs) = ours_and_theirs(&dir, |f| config(&dir, f), "/");
    let (ours, theirs) = (&ours, &theirs);
    assert!(
        theirs[0].starts_with("HTTP/1.1 302 Found\r\n"),
        "{}",
        theirs[0]
    );
    assert!(
        theirs[0].contains("http://example.com/down"),
        "{:?}",
        theirs[0]
    );
    assert!(theirs[1].starts_with("HTTP/1.1 303 See Other\r\n"));
    assert!(theirs[2].ends_with("from file"));
    // `errorfiles site 502` imports no 503 page: the built-in one answers.
    assert!(!theirs[3].contains("from file"));
    for (i, (o, t)) in ours.iter().zip(theirs.iter()).enumerate() {
        assert_eq!(o, t, "front #{i}");
    }
}

/// `http-error`: a payload with `hdr` lines, a file payload used by `deny`, an empty payload,
/// and a page imported from an `http-errors` section.
#[test]
fn http_error_replies_match_haproxy() {
    if !haproxy_available() {
        eprintln!("skipped: no haproxy");
        return;
    }
    let dir = TempDir::new("http-error");
    let body = dir.join("denied.html");
    std::fs::write(&body, "<p>no</p>\n").unwrap();
    let page = dir.join("503.http");
    std::fs::write(
        &page,
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nsite",
    )
    .unwrap();
    let config = |[a, b, c, d]: [SocketAddr; 4]| {
        format!(
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\n\
             http-errors site\n    errorfile 503 {page}\n\n\
             listen payload\n    bind {a}\n    http-error status 503 content-type text/plain string \"sorry down\" hdr X-A 1 hdr X-B \"two words\"\n\
             listen denied\n    bind {b}\n    http-error status 403 content-type text/html file {body}\n    http-request deny\n\
             listen empty\n    bind {c}\n    http-error status 503 hdr x-empty yes\n\
             listen imported\n    bind {d}\n    http-error status 503 errorfiles site\n",
            page = page.display(),
            body = body.display()
        )
    };
    let (ours, theirs) = ours_and_theirs(&dir, config, "/");
    assert!(theirs[0].ends_with("sorry down"), "{}", theirs[0]);
    assert!(
        theirs[1].starts_with("HTTP/1.1 403 Forbidden\r\n") && theirs[1].ends_with("<p>no</p>\n")
    );
    assert!(
        theirs[2].contains("x-empty: yes\r\ncontent-length: 0\r\n"),
        "{}",
        theirs[2]
    );
    assert!(theirs[3].ends_with("site"), "{}", theirs[3]);
    for (i, (o, t)) in ours.iter().zip(theirs.iter()).enumerate() {
        assert_eq!(o, t, "front #{i}");
    }
}
