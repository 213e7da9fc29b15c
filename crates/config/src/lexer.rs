//! Line lexer: cuts one configuration line into words with HAProxy's quoting, escaping and
//! environment-variable rules. The grammar is `haproxy.pest`; this module walks its pairs.
//!
//! Owns: [`lex_line`] and [`Word`]. Does not know sections or keywords.

use pest::iterators::Pair;
use pest::Parser;
use pest_derive::Parser;

#[derive(Parser)]
#[grammar = "haproxy.pest"]
struct LineParser;

/// One word of a line after quotes and escapes were resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    /// True when any part of the word was quoted (so `""` is a real empty argument and
    /// `"{"` is not an ACL brace).
    pub quoted: bool,
}

/// Resolves environment variables (and the `.FILE`/`.LINE`/`.SECTION` pseudo-variables).
pub trait EnvLookup {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> EnvLookup for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Cuts `line` into words. Errors are messages without location (the caller adds file:line).
pub fn lex_line(line: &str, env: &dyn EnvLookup) -> Result<Vec<Word>, String> {
    let mut pairs = LineParser::parse(Rule::line, line).map_err(|e| lex_error(line, &e))?;
    let mut words = Vec::new();
    let Some(top) = pairs.next() else {
        return Ok(words);
    };
    for pair in top.into_inner() {
        if pair.as_rule() == Rule::word {
            lex_word(pair, env, &mut words)?;
        }
    }
    Ok(words)
}

/// Explains why the grammar rejected `line` (HAProxy's messages, 1-based positions).
fn lex_error(line: &str, _e: &pest::error::Error<Rule>) -> String {
    let bytes = line.as_bytes();
    let mut quote: Option<(u8, usize)> = None;
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        match (quote, c) {
            (Some((b'\'', _)), b'\'') => quote = None,
            (Some((b'\'', _)), _) => {}
            (_, b'\\') => i += 1,
            (Some((b'"', _)), b'"') => quote = None,
            (Some((b'"', _)), b'$') => {
                let next = bytes.get(i + 1).copied().unwrap_or(b' ');
                if !(next == b'{' || next == b'_' || next == b'.' || next.is_ascii_alphabetic()) {
                    return format!(
                        "forbidden first char in environment variable name at position {}",
                        i + 1
                    );
                }
                if next == b'{' && !line.get(i..).is_some_and(|r| r.contains('}')) {
                    return format!(
                        "missing '}}' after environment variable at position {}",
                        i + 1
                    );
                }
            }
            (None, b'"' | b'\'') => quote = Some((c, i)),
            (None, b'#') => break,
            _ => {}
        }
        i += 1;
    }
    match quote {
        Some((_, pos)) => format!("unmatched quote at position {}", pos + 1),
        None => "unparsable line".to_string(),
    }
}

/// Appends one or more words (a `${VAR[*]}` expansion may yield several).
fn lex_word(pair: Pair<'_, Rule>, env: &dyn EnvLookup, out: &mut Vec<Word>) -> Result<(), String> {
    let mut cur = Word {
        text: String::new(),
        quoted: false,
    };
    let mut extra: Vec<String> = Vec::new();
    for part in pair.into_inner() {
        match part.as_rule() {
            Rule::bare => cur.text.push_str(part.as_str()),
            Rule::escape => push_escape(&mut cur.text, part.as_str()),
            Rule::squoted => {
                cur.quoted = true;
                cur.text.push_str(inner_text(part));
            }
            Rule::dquoted => {
                cur.quoted = true;
                lex_dquoted(part, env, &mut cur.text, &mut extra)?;
            }
            _ => {}
        }
    }
    if extra.is_empty() {
        out.push(cur);
    } else {
        // `${VAR[*]}`: the word's text so far is the first element, the rest follow.
        out.push(cur);
        out.extend(extra.into_iter().map(|text| Word { text, quoted: true }));
    }
    Ok(())
}

fn inner_text(pair: Pair<'_, Rule>) -> &str {
    pair.into_inner().next().map(|p| p.as_str()).unwrap_or("")
}

fn lex_dquoted(
    pair: Pair<'_, Rule>,
    env: &dyn EnvLookup,
    text: &mut String,
    extra: &mut Vec<String>,
) -> Result<(), String> {
    for part in pair.into_inner() {
        match part.as_rule() {
            Rule::dq_text => text.push_str(part.as_str()),
            Rule::escape => push_escape(text, part.as_str()),
            Rule::env => expand_env(part, env, text, extra),
            _ => {}
        }
    }
    Ok(())
}

fn expand_env(
    pair: Pair<'_, Rule>,
    env: &dyn EnvLookup,
    text: &mut String,
    extra: &mut Vec<String>,
) {
    let mut name = "";
    let mut list = false;
    let mut default: Option<&str> = None;
    let mut stack: Vec<Pair<'_, Rule>> = pair.into_inner().collect();
    while let Some(p) = stack.pop() {
        match p.as_rule() {
            Rule::env_braced | Rule::env_default => stack.extend(p.into_inner()),
            Rule::env_name => name = p.as_str(),
            Rule::env_list => list = true,
            Rule::env_dflt_txt => default = Some(p.as_str()),
            _ => {}
        }
    }
    let value = env
        .get(name)
        .or_else(|| default.map(str::to_string))
        .unwrap_or_default();
    if list {
        let mut it = value.split(' ').filter(|s| !s.is_empty());
        if let Some(first) = it.next() {
            text.push_str(first);
        }
        extra.extend(it.map(str::to_string));
    } else {
        text.push_str(&value);
    }
}

/// Resolves one backslash escape (`\x41`, `\n`, `\ `...); unknown escapes keep the backslash.
fn push_escape(out: &mut String, esc: &str) {
    let body = esc.get(1..).unwrap_or("");
    match body {
        "" => out.push('\\'),
        "n" => out.push('\n'),
        "r" => out.push('\r'),
        "t" => out.push('\t'),
        " " | "\\" | "#" | "'" | "\"" | "$" | "\t" => out.push_str(body),
        b if b.len() == 3 && b.starts_with('x') => match u8::from_str_radix(&b[1..], 16) {
            Ok(v) => out.push(char::from(v)),
            Err(_) => out.push_str(esc),
        },
        _ => out.push_str(esc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/root".into()),
            "LIST" => Some("a b  c".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn words(line: &str) -> Vec<String> {
        lex_line(line, &env)
            .unwrap()
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    #[test]
    fn splits_on_blanks_and_comments() {
        assert_eq!(
            words("  bind  *:80\tname x # comment"),
            ["bind", "*:80", "name", "x"]
        );
        assert_eq!(words("timeout client 1s#x"), ["timeout", "client", "1s"]);
        assert!(words("   # only a comment").is_empty());
        assert!(words("").is_empty());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(words(r#"a "b c" 'd e'"#), ["a", "b c", "d e"]);
        assert_eq!(words(r#"x"y z"'w'\ v"#), ["xy zw v"]);
        assert_eq!(
            words(r#"'$HOME \n' "\x41\"" \#"#),
            ["$HOME \\n", "A\"", "#"]
        );
        assert_eq!(
            words(r#"expect body "status":"ok""#),
            ["expect", "body", "status:ok"]
        );
        assert_eq!(words(r#""" x"#), ["", "x"]);
        assert_eq!(words("a b \\"), ["a", "b", "\\"]);
    }

    #[test]
    fn env_expansion_only_in_double_quotes() {
        assert_eq!(
            words(r#""$HOME" $HOME '${HOME}' "${HOME}/x""#),
            ["/root", "$HOME", "${HOME}", "/root/x"]
        );
        assert_eq!(
            words(r#""${NOPE-dflt}" "${EMPTY-dflt}" "<$NOPE>""#),
            ["dflt", "", "<>"]
        );
        assert_eq!(words(r#"x "${LIST[*]}" y"#), ["x", "a", "b", "c", "y"]);
    }

    #[test]
    fn errors() {
        assert!(lex_line(r#"a "b"#, &env)
            .unwrap_err()
            .contains("unmatched quote"));
        assert!(lex_line("a 'b", &env)
            .unwrap_err()
            .contains("unmatched quote"));
        assert!(lex_line(r#"a "x$""#, &env)
            .unwrap_err()
            .contains("environment variable"));
    }
}
