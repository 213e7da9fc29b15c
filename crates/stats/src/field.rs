//! One stats value with HAProxy's typing (`struct field`), and its CSV, typed and JSON forms.

use std::borrow::Cow;
use std::fmt::Write;

/// A value of a `show stat`/`show info` field. `Empty` fields print nothing in CSV and are
/// left out of the typed and JSON outputs, as in HAProxy.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Val<'a> {
    #[default]
    Empty,
    U32(u32),
    S32(i32),
    U64(u64),
    /// Seconds with a fraction (Prometheus exporter only).
    Flt(f64),
    Str(Cow<'a, str>),
}

impl Val<'_> {
    pub fn is_empty(&self) -> bool {
        matches!(self, Val::Empty)
    }

    /// The type name in typed/JSON output.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Empty => "empty",
            Val::U32(_) => "u32",
            Val::S32(_) => "s32",
            Val::U64(_) => "u64",
            Val::Flt(_) => "flt",
            Val::Str(_) => "str",
        }
    }

    /// Numeric value for Prometheus; `None` for strings and empty fields (HAProxy prints NaN).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::U32(v) => Some(f64::from(*v)),
            Val::S32(v) => Some(f64::from(*v)),
            // Counters beyond 2^53 lose precision in Prometheus anyway.
            #[allow(clippy::cast_precision_loss)]
            Val::U64(v) => Some(*v as f64),
            Val::Flt(v) => Some(*v),
            Val::Empty | Val::Str(_) => None,
        }
    }

    /// Writes the bare value (no quoting).
    pub fn write_plain(&self, out: &mut String) {
        match self {
            Val::Empty => {}
            Val::U32(v) => {
                let _ = write!(out, "{v}");
            }
            Val::S32(v) => {
                let _ = write!(out, "{v}");
            }
            Val::U64(v) => {
                let _ = write!(out, "{v}");
            }
            Val::Flt(v) => {
                let _ = write!(out, "{v:.6}");
            }
            Val::Str(s) => out.push_str(s),
        }
    }

    /// Writes the value as a CSV cell: quoted (quotes doubled) only when it holds a comma,
    /// a quote or a line break (HAProxy's `csv_enc`).
    pub fn write_csv(&self, out: &mut String) {
        match self {
            Val::Str(s) if s.contains([',', '"', '\r', '\n']) => {
                out.push('"');
                for c in s.chars() {
                    if c == '"' {
                        out.push('"');
                    }
                    out.push(c);
                }
                out.push('"');
            }
            _ => self.write_plain(out),
        }
    }

    /// Writes the value as a JSON `{"type":..,"value":..}` object.
    pub fn write_json(&self, out: &mut String) {
        out.push_str("{\"type\":\"");
        out.push_str(self.type_name());
        out.push_str("\",\"value\":");
        match self {
            Val::Str(s) => write_json_str(out, s),
            Val::Empty => out.push_str("\"\""),
            _ => self.write_plain(out),
        }
        out.push('}');
    }
}

/// A JSON string literal (HAProxy escapes quotes, backslashes and control characters).
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The words of the three tag letters, for JSON output.
pub fn tag_words(tags: &str) -> (&'static str, &'static str, &'static str) {
    let mut it = tags.chars();
    let origin = match it.next() {
        Some('M') => "Metric",
        Some('S') => "Status",
        Some('K') => "Key",
        Some('C') => "Config",
        Some('P') => "Product",
        _ => "Unknown",
    };
    let nature = match it.next() {
        Some('G') => "Gauge",
        Some('L') => "Limit",
        Some('m') => "Min",
        Some('M') => "Max",
        Some('R') => "Rate",
        Some('C') => "Counter",
        Some('D') => "Duration",
        Some('A') => "Age",
        Some('T') => "Time",
        Some('N') => "Name",
        Some('O') => "Output",
        Some('a') => "Avg",
        _ => "Unknown",
    };
    let scope = match it.next() {
        Some('C') => "Cluster",
        Some('P') => "Process",
        Some('S') => "Service",
        Some('s') => "System",
        _ => "Unknown",
    };
    (origin, nature, scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_when_ambiguous() {
        let mut s = String::new();
        Val::Str("Layer7 check passed".into()).write_csv(&mut s);
        s.push(',');
        Val::Str("a,\"b\"".into()).write_csv(&mut s);
        assert_eq!(s, "Layer7 check passed,\"a,\"\"b\"\"\"");
    }

    #[test]
    fn json_values() {
        let mut s = String::new();
        Val::S32(-1).write_json(&mut s);
        Val::Str("x\"y".into()).write_json(&mut s);
        assert_eq!(
            s,
            r#"{"type":"s32","value":-1}{"type":"str","value":"x\"y"}"#
        );
        assert_eq!(tag_words("MaP"), ("Metric", "Avg", "Process"));
    }
}
