//! A strict parser of the Prometheus text exposition format 0.0.4, for tests and tools (the
//! end-to-end test that scrapes haproxy and ringlb side by side uses it too): it rejects what
//! Prometheus would reject (bad names, labels or values, a TYPE after samples, a family split
//! in two, duplicate series, histograms without a consistent `+Inf` bucket).

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Family {
    pub help: Option<String>,
    pub kind: Option<String>,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Default)]
pub struct Exposition {
    /// Families in order of appearance.
    pub order: Vec<String>,
    pub families: BTreeMap<String, Family>,
}

fn valid_metric_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphabetic() || x == '_' || x == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn valid_label_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphabetic() || x == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        && !n.starts_with("__")
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse::<f64>().map_err(|_| format!("bad value {s:?}")),
    }
}

fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    // s starts after '{'
    let mut labels = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        if b.get(i) == Some(&b'}') {
            return Ok((labels, &s[i + 1..]));
        }
        let eq = s[i..].find('=').ok_or("label without '='")? + i;
        let name = &s[i..eq];
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        if b.get(eq + 1) != Some(&b'"') {
            return Err("label value not quoted".into());
        }
        let mut j = eq + 2;
        let mut val = String::new();
        loop {
            match b.get(j) {
                None => return Err("unterminated label value".into()),
                Some(b'"') => break,
                Some(b'\\') => {
                    match b.get(j + 1) {
                        Some(b'\\') => val.push('\\'),
                        Some(b'"') => val.push('"'),
                        Some(b'n') => val.push('\n'),
                        _ => return Err("bad escape in label value".into()),
                    }
                    j += 2;
                }
                Some(_) => {
                    let ch = s[j..].chars().next().ok_or("utf8")?;
                    val.push(ch);
                    j += ch.len_utf8();
                }
            }
        }
        if labels.insert(name.to_string(), val).is_some() {
            return Err(format!("duplicate label {name}"));
        }
        i = j + 1;
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {}
            _ => return Err("expected ',' or '}' after a label".into()),
        }
    }
}

/// The family a sample belongs to (histogram/summary suffixes stripped when declared so).
fn family_of(name: &str, families: &BTreeMap<String, Family>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if families.get(base).and_then(|f| f.kind.as_deref()) == Some("histogram") {
                return base.to_string();
            }
        }
    }
    name.to_string()
}

/// Parses a whole exposition.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut e = Exposition::default();
    let mut current: Option<String> = None;
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut series: BTreeSet<String> = BTreeSet::new();
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("exposition must end with a newline".into());
    }
    for (no, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line}", no + 1);
        if line.is_empty() {
            return Err(err("empty line".into()));
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kw = parts.next().unwrap_or("");
            let name = parts
                .next()
                .ok_or_else(|| err("no metric name".into()))?
                .to_string();
            let arg = parts.next().unwrap_or("").to_string();
            if !valid_metric_name(&name) {
                return Err(err("bad metric name".into()));
            }
            if closed.contains(&name) {
                return Err(err("family appears twice".into()));
            }
            if current.as_deref() != Some(&name) {
                if let Some(c) = current.take() {
                    closed.insert(c);
                }
                current = Some(name.clone());
                e.order.push(name.clone());
            }
            let f = e.families.entry(name).or_default();
            match kw {
                "HELP" if f.help.is_some() => return Err(err("second HELP".into())),
                "HELP" => f.help = Some(arg),
                "TYPE" => {
                    if !f.samples.is_empty() {
                        return Err(err("TYPE after samples".into()));
                    }
                    if !matches!(
                        arg.as_str(),
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    ) {
                        return Err(err("bad type".into()));
                    }
                    if f.kind.replace(arg).is_some() {
                        return Err(err("second TYPE".into()));
                    }
                }
                _ => {}
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(err("bad metric name".into()));
        }
        let (labels, rest) = if line.as_bytes()[name_end] == b'{' {
            parse_labels(&line[name_end + 1..]).map_err(err)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before value".into()))?;
        let mut vt = rest.split(' ');
        let value = parse_value(vt.next().unwrap_or("")).map_err(err)?;
        if let Some(ts) = vt.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp".into()))?;
        }
        let fam = family_of(name, &e.families);
        if closed.contains(&fam) {
            return Err(err(format!("family {fam} split in two")));
        }
        if current.as_deref() != Some(&fam) {
            if let Some(c) = current.take() {
                closed.insert(c);
            }
            current = Some(fam.clone());
            e.order.push(fam.clone());
        }
        let key = format!("{name}{labels:?}");
        if !series.insert(key) {
            return Err(err("duplicate series".into()));
        }
        e.families.entry(fam).or_default().samples.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    check_histograms(&e)?;
    Ok(e)
}

/// A histogram series: (le, count) buckets, `_count`, whether `_sum` was seen.
type SeriesParts = (Vec<(f64, f64)>, Option<f64>, bool);

fn check_histograms(e: &Exposition) -> Result<(), String> {
    for (name, f) in &e.families {
        if f.kind.as_deref() != Some("histogram") {
            continue;
        }
        let mut by_series: BTreeMap<String, SeriesParts> = BTreeMap::new();
        for s in &f.samples {
            let mut l = s.labels.clone();
            let le = l.remove("le");
            let entry = by_series.entry(format!("{l:?}")).or_default();
            if s.name.ends_with("_bucket") {
                let le = le.ok_or(format!("{name}: bucket without le"))?;
                entry.0.push((parse_value(&le)?, s.value));
            } else if s.name.ends_with("_count") {
                entry.1 = Some(s.value);
            } else if s.name.ends_with("_sum") {
                entry.2 = true;
            } else {
                return Err(format!("{name}: unexpected sample {}", s.name));
            }
        }
        for (series, (buckets, count, sum)) in by_series {
            let last = buckets.last().ok_or(format!("{name}{series}: no bucket"))?;
            if last.0 != f64::INFINITY {
                return Err(format!("{name}{series}: no +Inf bucket"));
            }
            if Some(last.1) != count || !sum {
                return Err(format!("{name}{series}: +Inf bucket != _count or no _sum"));
            }
            for w in buckets.windows(2) {
                if w[1].0 <= w[0].0 || w[1].1 < w[0].1 {
                    return Err(format!("{name}{series}: buckets not increasing"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_rejects_bad_input() {
        assert!(parse("a 1\n").is_ok());
        assert!(parse("a{b=\"x\"} NaN\n").is_ok());
        assert!(parse("1a 1\n").is_err());
        assert!(parse("a{b=x} 1\n").is_err());
        assert!(parse("a 1\nb 1\na 2\n").is_err());
        assert!(parse("a 1\n# TYPE a gauge\n").is_err());
        assert!(parse("a 1\na 1\n").is_err());
        assert!(parse("a one\n").is_err());
        assert!(parse(
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"
        )
        .is_err());
    }
}
