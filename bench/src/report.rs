//! Reports from results files: the Markdown summary of one scenario, its SVG charts, and
//! docs/performance.md from the latest result of every scenario.

use crate::results::{file_stem, metric_info, ScenarioResult, VariantResult, BASELINE};
use crate::svg;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

fn fmt_value(metric: &str, v: f64) -> String {
    match metric {
        "gbit_s" | "idle_slowdown" | "cpu_s_per_gib" | "err_429_pct" => format!("{v:.2}"),
        "cpu_us_per_req" => format!("{v:.2}"),
        _ if v.abs() >= 100.0 => format!("{v:.0}"),
        _ => format!("{v:.1}"),
    }
}

/// `1.23× [1.10–1.31]`
fn fmt_ratio(r: &crate::stats::RatioStat) -> String {
    format!("{:.2}× [{:.2}–{:.2}]", r.median, r.min, r.max)
}

fn cell(v: &VariantResult, subject: &str, metric: &str) -> String {
    if v.not_yet.contains_key(subject) {
        return "not yet".into();
    }
    v.medians
        .get(subject)
        .and_then(|m| m.get(metric))
        .map(|x| fmt_value(metric, *x))
        .unwrap_or_else(|| "–".into())
}

/// The ratio table of one scenario: one row per variant × headline metric.
pub fn table(r: &ScenarioResult) -> String {
    let cands: Vec<&String> = r
        .subjects
        .iter()
        .filter(|s| s.as_str() != BASELINE)
        .collect();
    let mut t = String::from("| variant | metric | haproxy |");
    for c in &cands {
        let _ = write!(t, " {c} | {c} vs haproxy |");
    }
    t.push_str("\n|---|---|---:|");
    for _ in &cands {
        t.push_str("---:|---|");
    }
    t.push('\n');
    for v in &r.variants {
        for m in &v.headline {
            let (label, unit, _) = metric_info(m);
            let unit = if unit.is_empty() {
                String::new()
            } else {
                format!(" ({unit})")
            };
            let _ = write!(t, "| {} | {label}{unit} | {} |", v.id, cell(v, BASELINE, m));
            for c in &cands {
                let ratio = v
                    .ratios
                    .get(*c)
                    .and_then(|x| x.get(m))
                    .map(fmt_ratio)
                    .unwrap_or_default();
                let _ = write!(t, " {} | {ratio} |", cell(v, c, m));
            }
            t.push('\n');
        }
    }
    t
}

/// Markdown summary of one scenario run.
pub fn markdown(r: &ScenarioResult, stem: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Scenario {}: {}\n", r.scenario, r.title);
    let _ = writeln!(
        s,
        "{} · {} · {} pairs of {:.0} s rounds after {:.0} s warm-up{} · load average {} → {}\n",
        r.started_utc,
        r.machine.cpu_model,
        r.pairs,
        r.round_s,
        r.warmup_s,
        if r.quick { " (quick)" } else { "" },
        r.machine.load_before,
        r.machine.load_after
    );
    let _ = writeln!(
        s,
        "Rounds rejected when other processes used more than {:.0}% of a CPU. Ratios are medians of \
         per-pair ratios [min–max]; > 1 means the candidate is better than HAProxy.\n",
        r.max_other_pct
    );
    s.push_str(&table(r));
    s.push('\n');
    for v in &r.variants {
        for (subj, why) in &v.not_yet {
            let _ = writeln!(s, "- {}: {subj}: not yet ({why})", v.id);
        }
        let rejected = v.rounds.iter().filter(|x| !x.accepted).count();
        if rejected > 0 {
            let reasons: Vec<String> = v
                .rounds
                .iter()
                .filter_map(|x| {
                    x.reject_reason
                        .as_ref()
                        .map(|why| format!("{} pair {}: {why}", x.subject, x.pair))
                })
                .collect();
            let _ = writeln!(
                s,
                "- {}: {rejected} round(s) rejected and retried ({})",
                v.id,
                reasons.join("; ")
            );
        }
    }
    for n in &r.notes {
        let _ = writeln!(s, "- {n}");
    }
    let _ = writeln!(s, "\n![throughput]({stem}-throughput.svg) ![latency]({stem}-latency.svg) ![cpu]({stem}-cpu.svg)");
    s
}

/// The three charts of a scenario: (suffix, svg).
pub fn charts(r: &ScenarioResult) -> Vec<(&'static str, String)> {
    let t = format!("Scenario {}: throughput (median)", r.scenario);
    let c = format!("Scenario {}: proxy CPU (median)", r.scenario);
    let l = format!("Scenario {}: latency percentiles (median)", r.scenario);
    vec![
        ("throughput", svg::bars(r, |v| v.throughput.clone(), &t)),
        ("latency", svg::latency(r, &l)),
        ("cpu", svg::bars(r, |v| v.cpu.clone(), &c)),
    ]
}

/// Writes `<stem>.json`, `<stem>.md` and the SVGs into `dir`; returns the Markdown.
pub fn write(r: &ScenarioResult, dir: &Path) -> Result<String, String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let stem = file_stem(&r.started_utc, &r.scenario);
    let json = serde_json::to_string_pretty(r).map_err(|e| e.to_string())?;
    let put = |name: String, text: &str| {
        fs::write(dir.join(&name), text).map_err(|e| format!("{name}: {e}"))
    };
    put(format!("{stem}.json"), &json)?;
    let md = markdown(r, &stem);
    put(format!("{stem}.md"), &md)?;
    for (suffix, text) in charts(r) {
        put(format!("{stem}-{suffix}.svg"), &text)?;
    }
    Ok(md)
}

/// The latest result of each scenario in `dir` (file names sort by time).
pub fn latest(dir: &Path) -> Result<Vec<(String, ScenarioResult)>, String> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut by_scenario: std::collections::BTreeMap<String, (String, ScenarioResult)> =
        Default::default();
    for f in files {
        let text = fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let r: ScenarioResult =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        let stem = f
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        // A later run replaces an earlier one unless it is incomplete and the earlier one is not
        // (rounds rejected on a busy machine do not hide a complete measurement).
        let keep_earlier = by_scenario
            .get(&r.scenario)
            .is_some_and(|(_, old)| complete(old) && !complete(&r));
        if !keep_earlier {
            by_scenario.insert(r.scenario.clone(), (stem, r));
        }
    }
    let order = crate::cli::ALL_SCENARIOS;
    let mut v: Vec<(String, ScenarioResult)> = by_scenario.into_values().collect();
    v.sort_by_key(|(_, r)| {
        order
            .iter()
            .position(|s| *s == r.scenario)
            .unwrap_or(usize::MAX)
    });
    Ok(v)
}

/// Every variant has accepted HAProxy rounds, and a ratio for every candidate that ran.
pub fn complete(r: &ScenarioResult) -> bool {
    r.variants.iter().all(|v| {
        v.medians.contains_key(BASELINE)
            && r.subjects
                .iter()
                .filter(|s| s.as_str() != BASELINE && !v.not_yet.contains_key(*s))
                .all(|s| v.ratios.contains_key(s))
    })
}

/// HAProxy's median of `rps` in `variant` from the latest result that has it.
pub fn latest_haproxy_rps(dir: &Path, variant: &str) -> Option<f64> {
    let all = latest(dir).ok()?;
    all.iter()
        .flat_map(|(_, r)| r.variants.iter())
        .find(|v| v.id == variant)
        .and_then(|v| v.medians.get(BASELINE))
        .and_then(|m| m.get("rps"))
        .copied()
}

/// docs/performance.md. `results_rel` is the results directory relative to the doc.
pub fn performance_doc(all: &[(String, ScenarioResult)], results_rel: &str) -> String {
    let mut s = String::from("# Performance\n\n");
    s.push_str("<!-- Generated by `scripts/bench report` from bench/results; do not edit. -->\n\n");
    let Some((_, first)) = all.first() else {
        s.push_str("No results yet: run `scripts/bench --quick`.\n");
        return s;
    };
    let m = &first.machine;
    let dates: Vec<&str> = all.iter().map(|(_, r)| r.started_utc.as_str()).collect();
    let (d0, d1) = (
        dates.iter().min().copied().unwrap_or(""),
        dates.iter().max().copied().unwrap_or(""),
    );
    let mut revs: Vec<String> = Vec::new();
    for (_, r) in all {
        let built = if r.machine.ringlb_built.is_empty() {
            String::new()
        } else {
            format!(", binary built {}", r.machine.ringlb_built)
        };
        let rev = format!(
            "`{}`{built} (from scenario {})",
            r.machine.ringlb_rev, r.scenario
        );
        let same = revs
            .last()
            .is_some_and(|x: &String| x.starts_with(&format!("`{}`", r.machine.ringlb_rev)));
        if !same {
            revs.push(rev);
        }
    }
    let _ = writeln!(s, "Latest run: {d0} – {d1}; ringlb {}.\n", revs.join(", "));
    let _ = writeln!(s, "| machine | |\n|---|---|");
    let _ = writeln!(s, "| CPU | {} × {} |", m.cpus, m.cpu_model);
    let _ = writeln!(s, "| kernel | {} |", m.kernel);
    let _ = writeln!(s, "| HAProxy | {} |", m.haproxy);
    let _ = writeln!(s, "| HAProxy's OpenSSL | {} |", m.haproxy_openssl);
    let _ = writeln!(
        s,
        "| origin | {} |",
        m.nginx.trim_start_matches("nginx version: ")
    );
    let _ = writeln!(s, "| load generators | {}; {} |", m.wrk, m.h2load);
    let loads: Vec<String> = all
        .iter()
        .map(|(_, r)| {
            format!(
                "{}: {} → {}",
                r.scenario, r.machine.load_before, r.machine.load_after
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "| load average (1/5/15 min) before → after each scenario | {} |",
        loads.join("; ")
    );
    let quick = all.iter().any(|(_, r)| r.quick);
    let _ = writeln!(
        s,
        "\nMethod: docs/benchmarking.md.{} Ratios are medians of per-pair ratios [min–max]; > 1 means \
         ringlb (or the relay) is better than HAProxy: throughput is candidate/haproxy, latency, CPU \
         and memory are haproxy/candidate. \"not yet\" means ringlb could not run the scenario's \
         config (it says why in the scenario's section).\n",
        if quick { " Some of these results come from `--quick` runs (2 pairs of 2 s rounds): indicative only." } else { "" }
    );
    s.push_str("## Summary\n\n");
    s.push_str(&summary_table(all));
    for (stem, r) in all {
        let _ = writeln!(s, "\n## Scenario {}: {}\n", r.scenario, r.title);
        let _ = writeln!(
            s,
            "{} · {} pairs of {:.0} s rounds{} · rounds rejected above {:.0}% of a CPU used by other \
             processes · raw data: [{stem}.json]({results_rel}/{stem}.json)\n",
            r.started_utc,
            r.pairs,
            r.round_s,
            if r.quick { " (quick)" } else { "" },
            r.max_other_pct
        );
        s.push_str(&table(r));
        s.push('\n');
        for v in &r.variants {
            for (subj, why) in &v.not_yet {
                let _ = writeln!(s, "- {}: {subj}: not yet ({why})", v.id);
            }
        }
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
        s.push('\n');
        for (suffix, _) in [("throughput", ()), ("latency", ()), ("cpu", ())] {
            let _ = writeln!(s, "![{suffix}]({results_rel}/{stem}-{suffix}.svg)");
        }
    }
    s
}

/// One row per variant: the main value per subject and the four headline ratios.
fn summary_table(all: &[(String, ScenarioResult)]) -> String {
    let mut t = String::from(
        "| variant | haproxy | haproxy CPU | candidate | throughput | p99 latency | CPU | peak RSS |\n\
         |---|---:|---:|---:|---|---|---|---|\n",
    );
    for (_, r) in all {
        let cand = r.subjects.iter().find(|s| s.as_str() != BASELINE).cloned();
        for v in &r.variants {
            let (_, unit, _) = metric_info(&v.throughput);
            let (_, cpu_unit, _) = metric_info(&v.cpu);
            let h = cell(v, BASELINE, &v.throughput);
            let hc = cell(v, BASELINE, &v.cpu);
            let Some(cand) = cand.as_deref() else {
                let _ = writeln!(
                    t,
                    "| {} {} | {h} {unit} | {hc} {cpu_unit} | not run (HAProxy alone) | | | | |",
                    v.id, v.title
                );
                continue;
            };
            let c = cell(v, cand, &v.throughput);
            let ratio = |m: &str| {
                if v.not_yet.contains_key(cand) {
                    return "not yet".to_string();
                }
                v.ratios
                    .get(cand)
                    .and_then(|x| x.get(m))
                    .map(fmt_ratio)
                    .unwrap_or_else(|| "–".into())
            };
            let _ = writeln!(
                t,
                "| {} {} | {h} {unit} | {hc} {cpu_unit} | {cand}: {c} | {} | {} | {} | {} |",
                v.id,
                v.title,
                ratio(&v.throughput),
                ratio("p99_us"),
                ratio(&v.cpu),
                ratio("rss_peak_kib")
            );
        }
    }
    t
}

/// `ringlb-bench report`.
pub fn regenerate(results_dir: &Path, doc: &Path) -> Result<(), String> {
    let all = latest(results_dir)?;
    // Re-render each latest result's Markdown and charts too (the JSON is the source of truth).
    for (_, r) in &all {
        write(r, results_dir)?;
    }
    let rel = relative(doc.parent().unwrap_or(Path::new(".")), results_dir);
    let text = performance_doc(&all, &rel);
    fs::write(doc, text).map_err(|e| format!("{}: {e}", doc.display()))?;
    println!(
        "wrote {} from {} scenario result(s)",
        doc.display(),
        all.len()
    );
    Ok(())
}

/// `to` relative to directory `from` (both under the same root), e.g. docs → ../bench/results.
pub fn relative(from: &Path, to: &Path) -> String {
    let a: Vec<_> = from.components().collect();
    let b: Vec<_> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".into(); a.len() - common];
    parts.extend(
        b[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/results")
    }

    fn load(name: &str) -> ScenarioResult {
        let text = fs::read_to_string(fixtures().join(name)).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Tags open and close in order; attribute values have no raw `<` or `&`.
    fn assert_xmlish(svg: &str) {
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            let after = &rest[i + 1..];
            let j = after.find('>').expect("unclosed tag");
            let tag = &after[..j];
            assert!(!tag.contains('<'), "raw < inside {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap().to_string());
            }
            let text = &after[j + 1..];
            let next = text.find('<').unwrap_or(text.len());
            for (k, _) in text[..next].match_indices('&') {
                let ent = &text[k..next];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;"]
                        .iter()
                        .any(|e| ent.starts_with(e)),
                    "raw & in text: {ent}"
                );
            }
            rest = text;
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    #[test]
    fn relay_table_has_the_recorded_ratios() {
        let r = load("2026-11-23T2134Z-relay.json");
        let t = table(&r);
        assert!(
            t.starts_with("| variant | metric | haproxy | relay-epoll | relay-epoll vs haproxy |"),
            "{t}"
        );
        // 39334.66 / 36244.62 = 1.10; CPU 22.96 µs / 16.53 µs = 1.39 (haproxy/candidate).
        assert!(
            t.contains("| relay-c64 | throughput (req/s) | 36245 | 39335 | 1.10× [1.10–1.10] |"),
            "{t}"
        );
        assert!(
            t.contains(
                "| relay-c64 | proxy CPU per request (µs) | 22.96 | 16.53 | 1.38× [1.38–1.38] |"
            ),
            "{t}"
        );
        // Only pair 0 is complete (HAProxy's pairs 1 and 2 were rejected three times), so the
        // ratio is pair 0's, not the ratio of the medians (16488 / 2112 = 7.81).
        assert!(
            t.contains("| relay-c64 | peak RSS (KiB) | 16488 | 2112 | 7.85× [7.85–7.85] |"),
            "{t}"
        );
        // One row per headline metric plus two header lines.
        assert_eq!(t.lines().count(), 2 + r.variants[0].headline.len());
    }

    #[test]
    fn not_yet_is_shown_instead_of_numbers() {
        let r = load("2026-11-23T2138Z-2.json");
        let md = markdown(&r, "stem");
        assert!(
            md.contains("| 2-return | throughput (req/s) | 107255 | not yet |  |"),
            "{md}"
        );
        assert!(md.contains("- 2-return: ringlb: not yet ("), "{md}");
        assert!(md.contains("![cpu](stem-cpu.svg)"));
    }

    #[test]
    fn rejected_rounds_are_listed() {
        let md = markdown(&load("2026-11-23T2134Z-relay.json"), "s");
        assert!(
            md.contains("- relay-c64: 10 round(s) rejected and retried"),
            "{md}"
        );
        assert!(md.contains("other processes used"));
    }

    #[test]
    fn charts_have_one_bar_per_subject_and_variant() {
        let r = load("2026-11-23T2134Z-relay.json");
        let c = charts(&r);
        assert_eq!(
            c.iter().map(|x| x.0).collect::<Vec<_>>(),
            ["throughput", "latency", "cpu"]
        );
        for (_, svg) in &c {
            assert_xmlish(svg);
        }
        assert_eq!(c[0].1.matches("class=\"bar\"").count(), 2);
        assert!(
            c[0].1
                .contains("<title>relay-epoll relay-c64: 39.3k</title>"),
            "{}",
            c[0].1
        );
        assert_eq!(c[1].1.matches("class=\"curve\"").count(), 2);
        assert_eq!(c[2].1.matches("class=\"bar\"").count(), 2);
        // h2load records no percentiles: the latency chart says so (and terminates).
        let h2 = charts(&load("2026-11-23T2229Z-6.json"));
        assert!(h2[1].1.contains("no latency percentiles recorded"));
        assert_eq!(
            h2[0].1.matches("class=\"bar\"").count(),
            2,
            "6-h2c and 6-h2-tls, HAProxy alone"
        );
        assert_xmlish(&h2[1].1);
        // HAProxy alone (ringlb not yet): one bar.
        let one = charts(&load("2026-11-23T2138Z-2.json"));
        assert_eq!(one[0].1.matches("class=\"bar\"").count(), 1);
        assert_xmlish(&one[1].1);
    }

    #[test]
    fn performance_doc_uses_the_latest_result_of_each_scenario() {
        let all = latest(&fixtures()).unwrap();
        let ids: Vec<&str> = all.iter().map(|(_, r)| r.scenario.as_str()).collect();
        assert_eq!(
            ids,
            ["1", "2", "7", "6", "relay"],
            "catalog order, one per scenario"
        );
        // 2240Z-7 is later but HAProxy's rounds were all rejected: the complete 2221Z-7 stays.
        assert!(!complete(&load("2026-11-23T2240Z-7.json")));
        assert!(complete(&load("2026-11-23T2221Z-7.json")));
        assert_eq!(all[2].0, "2026-11-23T2221Z-7");
        assert_eq!(
            all[0].0, "2026-11-23T2139Z-1",
            "the later of two scenario-1 runs"
        );
        let doc = performance_doc(&all, "../bench/results");
        assert!(doc.contains("| CPU | 2 × AMD EPYC |"), "{doc}");
        assert!(doc.contains("HAProxy version 2.6.12"));
        assert!(doc.contains("![throughput](../bench/results/2026-11-23T2139Z-1-throughput.svg)"));
        assert!(doc.contains(
            "[2026-11-23T2134Z-relay.json](../bench/results/2026-11-23T2134Z-relay.json)"
        ));
        assert!(
            doc.contains("| relay-c64 0 B body, 64 conns | 36245 req/s | 22.96 µs | relay-epoll: 39335 | 1.10× [1.10–1.10] | 1.49× [1.49–1.49] | 1.38× [1.38–1.38] | 7.85× [7.85–7.85] |"),
            "{doc}"
        );
        assert!(
            doc.contains(
                "| 1-c64 0 B body, 64 conns | 37687 req/s | 23.51 µs | ringlb: not yet | not yet |"
            ),
            "{doc}"
        );
        assert!(
            !doc.contains("2026-11-23T2138Z-1-"),
            "older run must not be shown"
        );
    }

    #[test]
    fn empty_results_say_how_to_get_some() {
        assert!(performance_doc(&[], "x").contains("scripts/bench --quick"));
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/r/docs"), Path::new("/r/bench/results")),
            "../bench/results"
        );
        assert_eq!(
            relative(Path::new("/r"), Path::new("/r/bench/results")),
            "bench/results"
        );
        assert_eq!(relative(Path::new("/r/x"), Path::new("/r/x")), ".");
    }

    #[test]
    fn write_then_read_back() {
        let dir = crate::procs::TempDir::new("test-report").unwrap();
        let r = load("2026-11-23T2134Z-relay.json");
        write(&r, &dir.path).unwrap();
        for suffix in [
            ".json",
            ".md",
            "-throughput.svg",
            "-latency.svg",
            "-cpu.svg",
        ] {
            assert!(
                dir.path
                    .join(format!("2026-11-23T2134Z-relay{suffix}"))
                    .is_file(),
                "{suffix}"
            );
        }
        let back = latest(&dir.path).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].1, r);
        let doc = dir.path.join("perf.md");
        regenerate(&dir.path, &doc).unwrap();
        assert!(fs::read_to_string(doc).unwrap().contains("relay-epoll"));
    }
}
