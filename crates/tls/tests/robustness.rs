//! Hostile and fragmented input: seeded mutation loops over the DER walker and the crt-list
//! parser, garbage and one-byte-at-a-time records into a `TlsSession`. Never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use ringlb_tls::der::CertInfo;
use ringlb_tls::store::parse_crt_list;
use ringlb_tls::{build_bind, TlsGlobals, TlsSession, TlsShared};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::time_provider::DefaultTimeProvider;

/// xorshift64*: a fixed-seed generator, so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn der_walker_survives_mutations() {
    let p = Pki::new("fuzzder");
    p.leaf(
        "a",
        "/C=FR/CN=a.test",
        &["a.test", "b.test"],
        "0x0102",
        false,
        false,
    );
    let der = CertificateDer::from_pem_file(p.file("a.crt"))
        .unwrap()
        .to_vec();
    let info = CertInfo::parse(&der).unwrap();
    assert_eq!(info.serial, [1, 2]);
    assert_eq!(info.dns_names, ["a.test", "b.test"]);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let mut m = der.clone();
        match rng.below(3) {
            0 => {
                for _ in 0..=rng.below(4) {
                    let i = rng.below(m.len());
                    m[i] = rng.next() as u8;
                }
            }
            1 => m.truncate(rng.below(m.len())),
            _ => {
                let i = rng.below(m.len());
                m.insert(i, rng.next() as u8);
            }
        }
        let _ = CertInfo::parse(&m);
    }
}

#[test]
fn crt_list_parser_survives_garbage() {
    let alphabet = b"ab.pem [ ] ! * # \n\talpn verify ciphers h2";
    let mut rng = Rng(42);
    for _ in 0..5_000 {
        let len = rng.below(80);
        let text: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())] as char)
            .collect();
        let _ = parse_crt_list(Path::new("l"), &text);
    }
}

#[test]
fn fragmented_and_garbage_records() {
    let p = Pki::new("fuzzsess");
    p.leaf("a", "/CN=a.test", &["a.test"], "1", false, false);
    p.combined("a", &p.file("a.pem"), true);
    let (b, cfg) = bind_cfg(
        &p.dir.0,
        "",
        &format!("ssl crt {} alpn h2", p.file("a.pem").display()),
    );
    let g = TlsGlobals::from_global(&cfg.global);
    let bt = build_bind(&b, &g, now_unix()).unwrap();
    let sh = bt.for_shard(
        &TlsShared::new(&g, Arc::new(DefaultTimeProvider)).unwrap(),
        1,
    );
    let cc = ClientOpts {
        alpn: &["h2"],
        ..ClientOpts::new(&p.file("ca.pem"))
    }
    .build();

    // One byte at a time, both directions' worth of records from the client.
    let mut c = connect(&cc, "a.test");
    let mut s = TlsSession::new(sh.clone());
    let mut wire = Vec::new();
    for _ in 0..10 {
        wire.clear();
        while c.wants_write() {
            c.write_tls(&mut wire).unwrap();
        }
        for byte in &wire {
            assert_eq!(s.feed(std::slice::from_ref(byte)).unwrap(), 1);
        }
        let mut out = Vec::new();
        s.take_ciphertext(&mut out);
        let mut rd = out.as_slice();
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets().unwrap();
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            break;
        }
    }
    assert_eq!(s.facts().unwrap().alpn.as_deref(), Some(&b"h2"[..]));

    // Random bytes instead of a ClientHello, and a valid hello followed by garbage.
    let mut rng = Rng(7);
    for _ in 0..2_000 {
        let mut s = TlsSession::new(sh.clone());
        let len = 1 + rng.below(600);
        let mut junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if rng.below(2) == 0 {
            // Looks like a handshake record header.
            junk.splice(0..0, [0x16, 0x03, 0x01, (len >> 8) as u8, len as u8]);
        }
        let mut off = 0;
        while off < junk.len() {
            match s.feed(&junk[off..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => off += n,
            }
        }
        let mut out = Vec::new();
        s.take_ciphertext(&mut out);
    }
}
