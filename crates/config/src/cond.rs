//! Preprocessor conditions for `.if` / `.elif` (configuration manual 2.4): `0`, `1`,
//! predicates `defined() feature() streq() strneq() version_atleast() version_before()`,
//! `!`, `&&` (binds tighter), `||`, parentheses. ringlb reports itself as HAProxy 2.6.
//!
//! Owns: [`eval`]. The words come from the lexer (quotes and env already resolved).

use crate::lexer::EnvLookup;

/// The HAProxy version ringlb is compatible with, for `version_atleast`/`version_before`.
pub const COMPAT_VERSION: &str = "2.6.12";

/// Features ringlb reports as present for `feature()` (like `haproxy -vv` `+FEATURE`).
pub const FEATURES: &[&str] = &[
    "OPENSSL",
    "LINUX_TPROXY",
    "GETADDRINFO",
    "THREAD",
    "REGPARM",
    "CPU_AFFINITY",
    "TFO",
    "NS",
    "ACCEPT4",
    "PROMEX",
    "PRCTL",
    "THREAD_DUMP",
];

/// Evaluates the words after `.if`/`.elif`.
pub fn eval(words: &[String], env: &dyn EnvLookup) -> Result<bool, String> {
    let text = words.join(" ");
    let mut p = Cursor {
        s: text.as_bytes(),
        pos: 0,
        depth: 0,
        env,
    };
    p.skip_blank();
    if p.at_end() {
        return Ok(false);
    }
    let v = p.or_expr()?;
    p.skip_blank();
    if !p.at_end() {
        return Err(p.error(&text));
    }
    Ok(v)
}

/// Maximum nesting of `(` and `!` in a condition (bounds the recursion).
const MAX_DEPTH: usize = 64;

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
    env: &'a dyn EnvLookup,
}

impl Cursor<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_blank(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.skip_blank();
        if self
            .s
            .get(self.pos..)
            .is_some_and(|r| r.starts_with(tok.as_bytes()))
        {
            self.pos += tok.len();
            return true;
        }
        false
    }

    fn error(&self, text: &str) -> String {
        format!(
            "unparsable conditional expression '{text}' at position {}",
            self.pos + 1
        )
    }

    fn or_expr(&mut self) -> Result<bool, String> {
        let mut v = self.and_expr()?;
        while self.eat("||") {
            let r = self.and_expr()?;
            v = v || r;
        }
        Ok(v)
    }

    fn and_expr(&mut self) -> Result<bool, String> {
        let mut v = self.unary()?;
        while self.eat("&&") {
            let r = self.unary()?;
            v = v && r;
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<bool, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "conditional expression nested deeper than {MAX_DEPTH} levels"
            ));
        }
        let v = self.unary_inner();
        self.depth -= 1;
        v
    }

    fn unary_inner(&mut self) -> Result<bool, String> {
        if self.eat("!") {
            return Ok(!self.unary()?);
        }
        if self.eat("(") {
            let v = self.or_expr()?;
            if !self.eat(")") {
                return Err(self.error(&String::from_utf8_lossy(self.s)));
            }
            return Ok(v);
        }
        self.term()
    }

    fn term(&mut self) -> Result<bool, String> {
        self.skip_blank();
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            self.pos += 1;
        }
        let name =
            String::from_utf8_lossy(self.s.get(start..self.pos).unwrap_or_default()).into_owned();
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(name.bytes().any(|b| b != b'0'));
        }
        let args = self.args(start)?;
        self.predicate(&name, &args, start)
    }

    fn args(&mut self, start: usize) -> Result<Vec<String>, String> {
        if self.peek() != Some(b'(') {
            self.pos = start;
            return Err(self.error(&String::from_utf8_lossy(self.s)));
        }
        self.pos += 1;
        let close = self
            .s
            .get(self.pos..)
            .and_then(|r| r.iter().position(|&c| c == b')'));
        let Some(len) = close else {
            return Err(self.error(&String::from_utf8_lossy(self.s)));
        };
        let inner =
            String::from_utf8_lossy(self.s.get(self.pos..self.pos + len).unwrap_or_default())
                .into_owned();
        self.pos += len + 1;
        if inner.is_empty() {
            return Ok(Vec::new());
        }
        Ok(inner.split(',').map(|a| a.trim().to_string()).collect())
    }

    fn predicate(&mut self, name: &str, args: &[String], start: usize) -> Result<bool, String> {
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
        let need = match name {
            "defined" | "feature" | "version_atleast" | "version_before" => 1,
            "streq" | "strneq" => 2,
            _ => {
                self.pos = start;
                return Err(self.error(&String::from_utf8_lossy(self.s)));
            }
        };
        if args.len() != need {
            return Err(format!(
                "predicate '{name}' expects {need} argument(s), got {}",
                args.len()
            ));
        }
        Ok(match name {
            "defined" => self.env.get(arg(0)).is_some(),
            "feature" => FEATURES.contains(&arg(0)),
            "streq" => arg(0) == arg(1),
            "strneq" => arg(0) != arg(1),
            "version_atleast" => version_cmp(COMPAT_VERSION, arg(0)) != std::cmp::Ordering::Less,
            _ => version_cmp(COMPAT_VERSION, arg(0)) == std::cmp::Ordering::Less,
        })
    }
}

/// Compares dotted versions; a `-dev`/`-rc` suffix sorts before the release.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(v: &str) -> (Vec<u64>, u64) {
        let (nums, suffix) = v.split_once('-').unwrap_or((v, ""));
        let parts = nums.split('.').map(|p| p.parse().unwrap_or(0)).collect();
        let rank = if suffix.is_empty() {
            u64::MAX
        } else {
            suffix
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .parse()
                .unwrap_or(0)
        };
        (parts, rank)
    }
    let (mut pa, ra) = key(a);
    let (mut pb, rb) = key(b);
    let n = pa.len().max(pb.len());
    pa.resize(n, 0);
    pb.resize(n, 0);
    pa.cmp(&pb).then(ra.cmp(&rb))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str) -> Result<bool, String> {
        let env = |k: &str| (k == "SET").then(|| "1".to_string());
        let words: Vec<String> = s.split(' ').map(str::to_string).collect();
        eval(&words, &env)
    }

    #[test]
    fn predicates() {
        assert!(ev("1").unwrap());
        assert!(!ev("0").unwrap());
        assert!(!ev("").unwrap());
        assert!(ev("defined(SET)").unwrap());
        assert!(!ev("defined(UNSET)").unwrap());
        assert!(ev("streq(a,a)").unwrap());
        assert!(ev("strneq(a,b)").unwrap());
        assert!(ev("feature(OPENSSL)").unwrap());
        assert!(!ev("feature(QUIC)").unwrap());
        assert!(ev("version_atleast(2.4-dev19)").unwrap());
        assert!(ev("version_atleast(2.6)").unwrap());
        assert!(!ev("version_atleast(2.7)").unwrap());
        assert!(ev("version_before(2.8)").unwrap());
        assert!(!ev("version_before(2.6)").unwrap());
    }

    #[test]
    fn operators() {
        assert!(ev("streq(a,a) && !defined(ZZZ)").unwrap());
        assert!(ev("(1 || 0) && 1").unwrap());
        assert!(ev("0 && 0 || 1").unwrap());
        assert!(!ev("!1").unwrap());
        assert!(ev("foo(x)").unwrap_err().contains("unparsable"));
        assert!(ev("(1").is_err());
        assert!(ev("1 1").is_err());
        assert!(ev("streq(a)").is_err());
        assert!(ev(&"(".repeat(100_000))
            .unwrap_err()
            .contains("nested deeper"));
        assert!(ev(&"!".repeat(100_000))
            .unwrap_err()
            .contains("nested deeper"));
    }
}
