//! Replays the configuration corpus through the public entry points:
//! every seed (examples, invalid configs, fuzz corpus, saved crashes) through `parse_str`
//! (must not panic), every example through `load` (must be valid, with only the documented
//! warnings) and every invalid config through `load` (must fail with its `# expect:` messages).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn files(dir: &str) -> Vec<PathBuf> {
    let d = repo().join(dir);
    let Ok(rd) = std::fs::read_dir(&d) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// Loads a config with paths relative to the repository root, as the examples expect.
fn load_rel(p: &Path) -> Result<ringlb_config::Loaded, ringlb_config::Diagnostics> {
    std::env::set_current_dir(repo()).unwrap();
    let rel = p.strip_prefix(repo()).unwrap().to_path_buf();
    ringlb_config::load(&[rel], &|_| None)
}

/// Warnings each example may produce (the documented guide decisions), by file.
fn allowed_warnings(name: &str) -> &'static [&'static str] {
    match name {
        "guide-08-httpchk-expect-body.cfg" => &["'http-check expect body' is a ringlb extension"],
        "guide-09-http-check-multistep.cfg" => &["a second 'http-check send' after an 'expect'"],
        "guide-12-acl-routing.cfg" => &[
            "'date_hour' is a ringlb extension",
            "'date_dow' is a ringlb extension",
            "content-type 'text/plain' ignored",
        ],
        "acl-routing-haproxy-compatible.cfg" => &["content-type 'text/plain' ignored"],
        "guide-14-ssl-tuning.cfg" => &["accepted and ignored by ringlb: rustls has no OpenSSL"],
        "guide-21-haproxy-tuning.cfg" => &[
            "accepted and ignored by ringlb: every shard accepts on its own SO_REUSEPORT listener",
            "accepted and ignored by ringlb: idle server connections are kept per shard",
        ],
        "own-realworld.cfg" => &[
            "hiding headers or body at the end of the version string is deprecated",
            "rustls has no finite-field DHE",
        ],
        "guide-01-global.cfg" | "guide-22-production.cfg" => &["rustls has no finite-field DHE"],
        _ => &[],
    }
}

#[test]
fn every_seed_parses_without_panic() {
    let mut n = 0;
    for dir in [
        "config/examples",
        "config/invalid",
        "fuzz/corpus/config_parse",
        "fuzz/artifacts/config_parse",
    ] {
        for f in files(dir) {
            let bytes = std::fs::read(&f).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            let _ = ringlb_config::parse_str(&f.display().to_string(), &text);
            n += 1;
        }
    }
    assert!(n >= 20, "corpus too small: {n}");
}

#[test]
fn examples_are_valid_with_only_documented_warnings() {
    let examples = files("config/examples");
    assert!(
        examples.len() >= 22,
        "every guide configuration must be in config/examples"
    );
    for f in examples
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "cfg"))
    {
        let name = f.file_name().unwrap().to_str().unwrap();
        let loaded = load_rel(f).unwrap_or_else(|d| panic!("{name} must be valid:\n{d}"));
        let allowed = allowed_warnings(name);
        let warnings: Vec<_> = loaded
            .warnings
            .iter()
            .filter(|w| w.level == ringlb_config::Level::Warning)
            .collect();
        for w in &warnings {
            assert!(
                allowed.iter().any(|a| w.message.contains(a)),
                "{name}: unexpected warning: {w}"
            );
        }
        for a in allowed {
            assert!(
                warnings.iter().any(|w| w.message.contains(a)),
                "{name}: expected warning '{a}'"
            );
        }
    }
}

#[test]
fn invalid_configs_fail_with_expected_messages() {
    let invalid = files("config/invalid");
    assert!(!invalid.is_empty());
    for f in invalid
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "cfg"))
    {
        let name = f.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(f).unwrap();
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("# expect: "))
            .collect();
        assert!(
            !expects.is_empty(),
            "{name} must carry '# expect: <message>' lines"
        );
        let diags = match load_rel(f) {
            Ok(_) => panic!("{name} must be rejected"),
            Err(d) => d,
        };
        let text = diags.to_string();
        for e in expects {
            assert!(text.contains(e), "{name}: expected '{e}' in:\n{text}");
        }
        for d in diags.alerts() {
            assert!(
                d.line > 0 || d.file.is_empty(),
                "{name}: alert without a line: {d}"
            );
        }
    }
}
