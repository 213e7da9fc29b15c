//! Reads configuration files and turns them into logical lines: lexing each line, running the
//! `.if/.elif/.else/.endif` preprocessor and the `.diag/.notice/.warning/.alert` directives, and
//! resolving the `.FILE`, `.LINE` and `.SECTION` pseudo-variables.
//!
//! Owns: [`read_paths`], [`preprocess`], [`Line`]. Knows section names only to track `.SECTION`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cond;
use crate::diag::{Diagnostic, Level};
use crate::lexer::{lex_line, Word};
use crate::model::Loc;

/// One non-empty, active configuration line.
#[derive(Debug, Clone)]
pub struct Line {
    pub loc: Loc,
    pub words: Vec<Word>,
}

impl Line {
    /// Word `i` as text, or "" when absent.
    pub fn arg(&self, i: usize) -> &str {
        self.words.get(i).map(|w| w.text.as_str()).unwrap_or("")
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// True when the line has no words.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Words from `i` on, as strings.
    pub fn rest(&self, i: usize) -> Vec<String> {
        self.words.iter().skip(i).map(|w| w.text.clone()).collect()
    }
}

/// Section keywords HAProxy 2.6 knows (ringlb rejects the unsupported ones later).
pub const SECTION_NAMES: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "userlist",
    "peers",
    "resolvers",
    "http-errors",
    "ring",
    "cache",
    "program",
    "mailers",
    "log-forward",
    "fcgi-app",
];

/// Expands `paths` (a directory yields its `*.cfg` files in lexical order) and reads them.
/// Returns (file name as given, contents) pairs.
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, Diagnostic> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            for f in cfg_files_in(p)? {
                out.push(read_one(&f)?);
            }
        } else {
            out.push(read_one(p)?);
        }
    }
    Ok(out)
}

fn cfg_files_in(dir: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        Diagnostic::global(
            Level::Alert,
            format!(
                "Cannot open configuration directory {} : {e}",
                dir.display()
            ),
        )
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    files.sort();
    Ok(files)
}

fn read_one(p: &Path) -> Result<(PathBuf, String), Diagnostic> {
    let bytes = std::fs::read(p).map_err(|e| {
        Diagnostic::global(
            Level::Alert,
            format!("Could not open configuration file {} : {e}", p.display()),
        )
    })?;
    Ok((
        p.to_path_buf(),
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

/// State of one `.if` level.
#[derive(Debug, Clone, Copy)]
struct IfLevel {
    /// This branch's lines are active.
    active: bool,
    /// Some branch of this level was already taken.
    taken: bool,
    /// `.else` was seen.
    in_else: bool,
    /// The enclosing level is active.
    parent_active: bool,
}

/// Lexes and preprocesses one file. Diagnostics (alerts, warnings, notices) go to `diags`;
/// lines with lexing errors are reported and skipped, so all errors of a file are shown.
pub fn preprocess(
    file: &Arc<str>,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Line> {
    let mut out = Vec::new();
    let mut levels: Vec<IfLevel> = Vec::new();
    let mut section = String::new();
    for (idx, raw) in text.lines().enumerate() {
        let loc = Loc {
            file: file.clone(),
            line: u32::try_from(idx + 1).unwrap_or(u32::MAX),
        };
        let lookup = |name: &str| match name {
            ".FILE" => Some(file.to_string()),
            ".LINE" => Some(loc.line.to_string()),
            ".SECTION" => Some(section.clone()),
            _ => env(name),
        };
        let words = match lex_line(raw, &lookup) {
            Ok(w) => w,
            Err(msg) => {
                if levels.last().is_none_or(|l| l.active) {
                    diags.push(Diagnostic::alert(&loc, "", msg));
                }
                continue;
            }
        };
        let Some(first) = words.first() else { continue };
        if first.text.starts_with('.') && !first.quoted {
            directive(&loc, &words, &mut levels, &lookup, diags);
            continue;
        }
        if levels.last().is_some_and(|l| !l.active) {
            continue;
        }
        if SECTION_NAMES.contains(&first.text.as_str()) {
            section = words
                .get(1)
                .map(|w| w.text.clone())
                .unwrap_or_else(|| first.text.clone());
        }
        out.push(Line { loc, words });
    }
    if let Some(l) = levels.last() {
        let _ = l;
        let loc = Loc {
            file: file.clone(),
            line: u32::try_from(text.lines().count()).unwrap_or(0),
        };
        diags.push(Diagnostic::alert(
            &loc,
            ".if",
            "non-terminated '.if' block.",
        ));
    }
    out
}

fn directive(
    loc: &Loc,
    words: &[Word],
    levels: &mut Vec<IfLevel>,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut Vec<Diagnostic>,
) {
    let name = words.first().map(|w| w.text.as_str()).unwrap_or("");
    let args: Vec<String> = words.iter().skip(1).map(|w| w.text.clone()).collect();
    let active = levels.last().is_none_or(|l| l.active);
    let eval = |diags: &mut Vec<Diagnostic>| match cond::eval(&args, &env) {
        Ok(v) => v,
        Err(m) => {
            diags.push(Diagnostic::alert(loc, name, m));
            false
        }
    };
    match name {
        ".if" => {
            let v = active && eval(diags);
            levels.push(IfLevel { active: v, taken: v, in_else: false, parent_active: active });
        }
        ".elif" | ".else" => match levels.last_mut() {
            Some(l) if !l.in_else => {
                let want = l.parent_active && !l.taken;
                let v = if name == ".else" { want } else { want && eval(diags) };
                l.in_else = name == ".else";
                l.active = v;
                l.taken |= v;
            }
            Some(_) => diags.push(Diagnostic::alert(loc, name, format!("'{name}' after '.else' is not allowed."))),
            None => diags.push(Diagnostic::alert(loc, name, format!("lone '{name}' with no matching '.if'."))),
        },
        ".endif" if levels.pop().is_none() => {
            diags.push(Diagnostic::alert(loc, name, "lone '.endif' with no matching '.if'."));
        }
        ".endif" => {}
        ".diag" | ".notice" | ".warning" | ".alert" if active => {
            let level = match name {
                ".diag" => Level::Diag,
                ".notice" => Level::Notice,
                ".warning" => Level::Warning,
                _ => Level::Alert,
            };
            diags.push(Diagnostic::at(level, loc, "", format!("'{}'.", args.join(" "))));
        }
        ".diag" | ".notice" | ".warning" | ".alert" => {}
        _ if active => diags.push(Diagnostic::alert(
            loc,
            name,
            format!("unknown directive '{name}' (expected .if, .elif, .else, .endif, .diag, .notice, .warning or .alert)"),
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Vec<String>, Vec<Diagnostic>) {
        let mut d = Vec::new();
        let env = |k: &str| (k == "SET").then(|| "yes".to_string());
        let lines = preprocess(&Arc::from("t.cfg"), text, &env, &mut d);
        (lines.iter().map(|l| l.rest(0).join(" ")).collect(), d)
    }

    #[test]
    fn conditional_blocks() {
        let (l, d) = run(".if defined(SET)\na\n.elif 1\nb\n.else\nc\n.endif\n.if 0\nd\n.elif 1\ne\n.else\nf\n.endif\n");
        assert_eq!(l, ["a", "e"]);
        assert!(d.is_empty());
        let (l, _) = run(".if 0\n.if 1\nx\n.endif\n.else\ny\n.endif\n");
        assert_eq!(l, ["y"]);
    }

    #[test]
    fn messages_and_errors() {
        let (_, d) = run(".warning \"hello\"\n.if 0\n.alert \"no\"\n.endif\n");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].level, Level::Warning);
        assert_eq!(d[0].line, 1);
        let (_, d) = run(".endif\n");
        assert!(d[0].message.contains("lone '.endif'"));
        let (_, d) = run(".if 1\n");
        assert!(d[0].message.contains("non-terminated"));
        let (_, d) = run(".if 1\n.else\n.elif 1\n.endif\n");
        assert!(d[0].message.contains("after '.else'"));
        let (_, d) = run(".foo\n");
        assert!(d[0].message.contains("unknown directive"));
    }

    #[test]
    fn pseudo_variables() {
        let (l, _) = run("frontend fe\n  x \"${.SECTION}:${.LINE}:$.FILE\"\n");
        assert_eq!(l[1], "x fe:2:t.cfg");
    }
}
