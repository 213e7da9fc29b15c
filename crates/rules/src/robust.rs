//! Hostile-input robustness: parsers and matchers fed pseudo-random bytes never panic.

use crate::context::Ctx;
use crate::logformat::LogFormat;
use crate::message::{split_list, HttpMessage};
use crate::tests::{get, Host};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Bytes biased towards the syntax characters of the inputs under test.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        const ALPHA: &[u8] = b"%[](){}+-,;:=?&/\\\"' .aAzZ09_QXE\xff\x00\r\nhdrsrcpathint";
        let n = (self.next() % max as u64) as usize;
        (0..n)
            .map(|_| {
                let r = self.next();
                if r.is_multiple_of(4) {
                    r as u8
                } else {
                    ALPHA[(r >> 8) as usize % ALPHA.len()]
                }
            })
            .collect()
    }
}

#[test]
fn random_inputs_never_panic() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let h = Host::default();
    let t = get("/p?q=1", &[("Host", "h")]);
    for _ in 0..5_000 {
        let b = rng.bytes(40);
        let s = String::from_utf8_lossy(&b);
        if let Ok(f) = LogFormat::parse(&s, &()) {
            let mut out = Vec::new();
            f.render(Ctx::new(&h, &t), &mut out);
            f.render_http(Ctx::new(&h, &t), &mut out);
        }
        let _ = crate::expr::Expr::parse(&s, &());
        let _ = split_list(&b).count();
        let _ = crate::tls::client_hello_sni(&b);
        let _ = crate::conv::url_decode(&b, true);
        let _ = crate::conv::b64_decode(&b, false);
        let _ = crate::conv::json_escape(&b, crate::conv::JsonMode::Utf8);
        let _ = crate::crypt::verify(&s, &b);
        let mut m = HttpMessage::request(b"GET", &b, b"HTTP/1.1");
        let _ = (m.path().len(), m.query(), m.pathq().len());
        m.set_query(b"x");
        m.set_path(b"/y");
        let _ = crate::pattern::Net::parse(&s);
        let _ = crate::pattern::parse_range(&s, None);
    }
    // Extreme integers through the date and arithmetic converters.
    for expr in [
        "int(9223372036854775807),ltime(%Y%m%d,1)",
        "int(-9223372036854775808),utime(%c%s,-1)",
        "int(9223372036854775807),http_date(3600,ms)",
        "int(-9223372036854775808),http_date(0,us)",
        "int(-9223372036854775808),neg,div(-1),mod(-1),mul(2),add(9223372036854775807),sub(-1)",
        "str(abc),bytes(9223372036854775807,9223372036854775807)",
        "date(9223372036854775807,us)",
    ] {
        let e = crate::expr::Expr::parse(expr, &()).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let _ = e.eval(Ctx::new(&h, &t));
    }
}
