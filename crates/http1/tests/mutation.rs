//! Seeded mutation loop over the request corpus and a few responses and chunked bodies: the
//! invariants of `harness` hold on every mutant (bounded: a fixed number of mutants, fixed
//! seed, so a failure reproduces).

mod harness;

/// Mutants per run; `RINGLB_MUTATION_ROUNDS` raises it for a longer local hunt.
const ROUNDS: usize = 20_000;

fn rounds() -> usize {
    std::env::var("RINGLB_MUTATION_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ROUNDS)
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b":",
    b",",
    b";",
    b"0",
    b"f",
    b"\x00",
    b"\x7f",
    b"\xff",
    b"chunked",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 5\r\n",
    b"Connection: close\r\n",
    b"Host: y\r\n",
    b"0\r\n\r\n",
    b"\r\n\r\n",
    b"HTTP/1.0",
    b"ffffffffffffffff",
];

fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(v.len() + 1);
        match rng.below(8) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(v.len());
                v.drain(at.min(end)..end);
            }
            2 => {
                let ins = INTERESTING[rng.below(INTERESTING.len())];
                v.splice(at..at, ins.iter().copied());
            }
            3 if rng.below(4) == 0 => v.truncate(at),
            _ => {
                if !v.is_empty() {
                    let i = rng.below(v.len());
                    v[i] = rng.next() as u8;
                }
            }
        }
    }
    v
}

fn seeds() -> Vec<Vec<u8>> {
    let text = include_str!("corpus/requests.txt");
    let mut out: Vec<Vec<u8>> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains('{'))
        .filter_map(|l| l.splitn(4, '\t').nth(3))
        .map(|s| {
            // The corpus escapes are simple enough to undo here for seeding purposes.
            let mut v = Vec::new();
            let b = s.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'\\' && i + 1 < b.len() {
                    match b[i + 1] {
                        b'r' => v.push(b'\r'),
                        b'n' => v.push(b'\n'),
                        b't' => v.push(b'\t'),
                        b'x' if i + 3 < b.len() => {
                            let h = std::str::from_utf8(&b[i + 2..i + 4]).unwrap_or("00");
                            v.push(u8::from_str_radix(h, 16).unwrap_or(0));
                            i += 2;
                        }
                        c => v.push(c),
                    }
                    i += 2;
                } else {
                    v.push(b[i]);
                    i += 1;
                }
            }
            v
        })
        .collect();
    out.push(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nT: v\r\n\r\n"
            .to_vec(),
    );
    out.push(
        b"HTTP/1.0 404 Not Found\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc"
            .to_vec(),
    );
    out.push(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            .to_vec(),
    );
    out
}

#[test]
fn invariants_hold_on_mutants() {
    let seeds = seeds();
    assert!(seeds.len() > 150);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for seed in &seeds {
        harness::request(seed);
        harness::response(seed);
    }
    let mut complete = 0usize;
    for round in 0..rounds() {
        let seed = &seeds[rng.below(seeds.len())];
        let m = mutate(&mut rng, seed);
        let mut head = ringlb_http1::RequestHead::default();
        let limits = ringlb_http1::Limits::default();
        if let Ok(ringlb_http1::Parsed::Complete { .. }) =
            ringlb_http1::parse_request(&m, &limits, &mut head)
        {
            complete += 1;
        }
        let r = std::panic::catch_unwind(|| {
            harness::request(&m);
            harness::response(&m);
            if let Some(pos) = m.windows(4).position(|w| w == b"\r\n\r\n") {
                harness::chunked(&m[pos + 4..]);
            }
        });
        assert!(
            r.is_ok(),
            "round {round}: {:?}",
            String::from_utf8_lossy(&m)
        );
    }
    // The loop is only useful if many mutants still parse.
    assert!(complete * 20 > rounds(), "only {complete} mutants parsed");
}
