//! `mailers` + `email-alert`: server state changes mailed over plain SMTP to a small sink
//! in the test (loopback), compared with what haproxy 2.6 sends to the same kind of sink
//! (the `Date:` header masked).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringlb_testkit::{free_addr, haproxy_available, write_config, Haproxy, Ringlb, TempDir};

/// A minimal SMTP server: answers every command with the code the dialogue needs and
/// records each session's client lines, one string per session.
struct Sink {
    addr: SocketAddr,
    mails: Arc<Mutex<Vec<String>>>,
}

impl Sink {
    fn start() -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        l.set_nonblocking(true).unwrap();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let m = mails.clone();
        // Bounded: the thread ends after 30 s whatever happens.
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(30);
            while Instant::now() < end {
                match l.accept() {
                    Ok((c, _)) => {
                        if let Some(t) = session(c) {
                            m.lock().unwrap().push(t);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Sink { addr, mails }
    }

    /// The first mail containing `needle`, within `within`.
    fn wait(&self, needle: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(m) = self
                .mails
                .lock()
                .unwrap()
                .iter()
                .find(|m| m.contains(needle))
            {
                return m.clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no mail with {needle:?}; got {:#?}",
            self.mails.lock().unwrap()
        );
    }
}

fn session(c: std::net::TcpStream) -> Option<String> {
    c.set_nonblocking(false).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut w = c.try_clone().ok()?;
    let mut r = BufReader::new(c);
    w.write_all(b"220 sink ESMTP\r\n").ok()?;
    let mut text = String::new();
    let mut data = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            break;
        }
        text.push_str(&line);
        if data {
            if line == ".\r\n" {
                data = false;
                w.write_all(b"250 queued\r\n").ok()?;
            }
            continue;
        }
        let up = line.to_ascii_uppercase();
        if up.starts_with("DATA") {
            data = true;
            w.write_all(b"354 go ahead\r\n").ok()?;
        } else if up.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n").ok()?;
            break;
        } else if up.starts_with("HELO") {
            // A multi-line reply: the client must wait for the last line.
            w.write_all(b"250-sink\r\n250 ok\r\n").ok()?;
        } else {
            w.write_all(b"250 ok\r\n").ok()?;
        }
    }
    Some(text)
}

/// Masks the `Date:` header and check durations.
fn mask_date(mail: &str) -> String {
    mail.lines()
        .map(|l| {
            if l.starts_with("Date: ") {
                return "Date: DATE".to_string();
            }
            match l.find("check duration: ") {
                Some(i) => {
                    let rest = &l[i + 16..];
                    let end = rest.find("ms").unwrap_or(0);
                    format!("{}check duration: Nms{}", &l[..i], &rest[end + 2..])
                }
                None => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn cfg(front: SocketAddr, srv: SocketAddr, smtp: SocketAddr) -> String {
    format!(
        "mailers mta\n    mailer smtp1 {smtp}\n    timeout mail 2s\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n    timeout check 1s\nfrontend fe\n    bind {front}\n    default_backend be\nbackend be\n    email-alert mailers mta\n    email-alert from haproxy@example.com\n    email-alert to ops@example.com\n    email-alert level notice\n    email-alert myhostname lb1\n    server s1 {srv} check inter 150 fall 1 rise 1\n"
    )
}

#[test]
fn state_changes_are_mailed_as_haproxy_does() {
    let dir = TempDir::new("mail");
    let (rsink, rf, rsrv) = (Sink::start(), free_addr(), free_addr());
    let rpath = dir.join("ringlb.cfg");
    std::fs::write(&rpath, cfg(rf, rsrv, rsink.addr)).unwrap();
    let _r = Ringlb::start(&rpath, &[rf]);
    let t = Duration::from_secs(10);
    let down = rsink.wait("is DOWN", t);
    assert_eq!(
        mask_date(&down),
        "HELO lb1\nMAIL FROM:<haproxy@example.com>\nRCPT TO:<ops@example.com>\nDATA\nFrom: haproxy@example.com\nTo: ops@example.com\nDate: DATE\nSubject: [HAProxy Alert] Server be/s1 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", check duration: Nms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue\n\nServer be/s1 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", check duration: Nms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue\n\n.\nQUIT"
    );
    let _up = TcpListener::bind(rsrv).unwrap();
    let rup = rsink.wait("is UP", t);
    if !haproxy_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy is required in CI"
        );
        return;
    }
    let (hsink, hf, hsrv) = (Sink::start(), free_addr(), free_addr());
    let _h = Haproxy::start(&write_config(&dir, &cfg(hf, hsrv, hsink.addr)), &[hf]);
    // haproxy 2.6.12 loses the alert of a DOWN seen right at startup (its mail queue is not
    // running yet); the UP that follows is compared.
    std::thread::sleep(Duration::from_millis(1500));
    let _hup = TcpListener::bind(hsrv).unwrap();
    let hup = hsink.wait("is UP", t);
    assert_eq!(mask_date(&rup), mask_date(&hup));
    let date = |m: &str| m.lines().find(|l| l.starts_with("Date: ")).unwrap().len();
    assert_eq!(date(&rup), date(&hup), "{rup}\n{hup}");
}
