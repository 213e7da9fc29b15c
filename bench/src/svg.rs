//! A small SVG writer for the three charts: grouped bars (throughput, CPU per request) and
//! latency percentile curves. No plotting dependency; the output is plain, valid XML.

use crate::results::{metric_info, ScenarioResult, PERCENTILES};
use std::fmt::Write as _;

const W: f64 = 720.0;
const H: f64 = 360.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 70.0;
const COLORS: &[&str] = &[
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#9c755f",
];

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn header(title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    s
}

fn legend(s: &mut String, names: &[String]) {
    for (i, n) in names.iter().enumerate() {
        let x = LEFT + 10.0 + i as f64 * 130.0;
        let y = H - 18.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/>"#,
            y - 10.0,
            COLORS[i % COLORS.len()]
        );
        let _ = writeln!(s, r#"<text x="{}" y="{y}">{}</text>"#, x + 16.0, escape(n));
    }
}

/// A "nice" axis maximum ≥ `v` (1, 2, 2.5, 5 × 10ⁿ).
pub fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        let k = v / 1e3;
        if (k - k.round()).abs() < 0.05 {
            format!("{k:.0}k")
        } else {
            format!("{k:.1}k")
        }
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else if v == 0.0 {
        "0".into()
    } else {
        format!("{v:.3}")
    }
}

/// Grouped bars: one group per variant, one bar (class "bar") per subject with a median.
pub fn bars(
    r: &ScenarioResult,
    metric_of: impl Fn(&crate::results::VariantResult) -> String,
    title: &str,
) -> String {
    let groups: Vec<(&str, String, Vec<Option<f64>>)> = r
        .variants
        .iter()
        .map(|v| {
            let m = metric_of(v);
            let vals = r
                .subjects
                .iter()
                .map(|s| v.medians.get(s).and_then(|x| x.get(&m)).copied())
                .collect();
            (v.id.as_str(), m, vals)
        })
        .collect();
    let unit_metric = groups.first().map(|g| g.1.clone()).unwrap_or_default();
    let (label, unit, _) = metric_info(&unit_metric);
    let max = groups
        .iter()
        .flat_map(|g| g.2.iter().flatten())
        .copied()
        .fold(0.0, f64::max);
    let ymax = nice_max(max);
    let mut s = header(title);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    axis(&mut s, ymax, &format!("{label} ({unit})"));
    let ng = groups.len().max(1) as f64;
    let gw = plot_w / ng;
    let nb = r.subjects.len().max(1) as f64;
    let bw = (gw * 0.8 / nb).min(60.0);
    for (gi, (id, _, vals)) in groups.iter().enumerate() {
        let gx = LEFT + gi as f64 * gw + (gw - bw * nb) / 2.0;
        for (bi, v) in vals.iter().enumerate() {
            let Some(v) = v else { continue };
            let h = plot_h * v / ymax;
            let x = gx + bi as f64 * bw;
            let y = TOP + plot_h - h;
            let _ = writeln!(
                s,
                r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                bw - 2.0,
                COLORS[bi % COLORS.len()],
                escape(&r.subjects[bi]),
                escape(id),
                fmt_num(*v)
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                x + bw / 2.0 - 1.0,
                y - 3.0,
                fmt_num(*v)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + (gi as f64 + 0.5) * gw,
            TOP + plot_h + 16.0,
            escape(id)
        );
    }
    legend(&mut s, &r.subjects);
    s.push_str("</svg>\n");
    s
}

fn axis(s: &mut String, ymax: f64, ylabel: &str) {
    let plot_h = H - TOP - BOTTOM;
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="#333"/>"##,
        TOP + plot_h
    );
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h
    );
    for i in 0..=4 {
        let v = ymax * i as f64 / 4.0;
        let y = TOP + plot_h - plot_h * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/>"##,
            LEFT,
            W - RIGHT
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            fmt_num(v)
        );
    }
    let _ = writeln!(
        s,
        r#"<text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        escape(ylabel)
    );
}

/// (subject index, label, (percentile, µs) points).
type Curve = (usize, String, Vec<(f64, f64)>);

/// Latency percentile curves: x = percentile on a "nines" scale, y = latency (log scale); one
/// polyline (class "curve") per subject and variant with percentiles.
pub fn latency(r: &ScenarioResult, title: &str) -> String {
    let mut lines: Vec<Curve> = Vec::new();
    for v in &r.variants {
        for (si, subj) in r.subjects.iter().enumerate() {
            let Some(m) = v.medians.get(subj) else {
                continue;
            };
            let pts: Vec<(f64, f64)> = PERCENTILES
                .iter()
                .filter_map(|(k, p)| m.get(*k).filter(|x| **x > 0.0).map(|x| (*p, *x)))
                .collect();
            if pts.len() >= 2 {
                lines.push((si, format!("{subj} {}", v.id), pts));
            }
        }
    }
    let mut s = header(title);
    if lines.is_empty() {
        // h2load (scenario 6) and bulk scenarios may have no percentiles to draw.
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">no latency percentiles recorded</text>"#,
            W / 2.0,
            H / 2.0
        );
        s.push_str("</svg>\n");
        return s;
    }
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let all: Vec<f64> = lines.iter().flat_map(|l| l.2.iter().map(|p| p.1)).collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min).max(1.0);
    let hi = all.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
    // Decades on the axis, at most 9 (1 µs .. 1000 s): the loop below is bounded.
    let l0 = lo.log10().floor().clamp(0.0, 9.0);
    let l1 = hi.log10().ceil().clamp(l0 + 1.0, 9.0);
    let y_of = |v: f64| TOP + plot_h - plot_h * (v.max(1.0).log10() - l0) / (l1 - l0).max(1.0);
    // Nines scale: 50 → 0.3, 90 → 1, 99 → 2, 99.9 → 3.
    let nines = |p: f64| -(1.0 - p / 100.0).log10();
    let (x0, x1) = (nines(50.0), nines(99.9));
    let x_of = |p: f64| LEFT + plot_w * (nines(p) - x0) / (x1 - x0);
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h
    );
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="#333"/>"##,
        TOP + plot_h
    );
    let mut e = l0;
    while e <= l1 {
        let v = 10f64.powf(e);
        let y = y_of(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/>"##,
            W - RIGHT
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            fmt_num(v)
        );
        e += 1.0;
    }
    for (_, p) in PERCENTILES {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">p{p}</text>"#,
            x_of(*p),
            TOP + plot_h + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">latency (µs, log)</text>"#,
        TOP + plot_h / 2.0
    );
    let dashes = ["", "6,3", "2,3", "8,3,2,3", "1,2"];
    let mut variant_of_line = 0usize;
    let mut last_label = String::new();
    for (i, (si, label, pts)) in lines.iter().enumerate() {
        let vlabel = label.split(' ').nth(1).unwrap_or("").to_string();
        if i > 0 && vlabel != last_label {
            variant_of_line += 1;
        }
        last_label = vlabel;
        let path: Vec<String> = pts
            .iter()
            .map(|(p, v)| format!("{:.1},{:.1}", x_of(*p), y_of(*v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline class="curve" fill="none" stroke="{}" stroke-width="2" stroke-dasharray="{}" points="{}"><title>{}</title></polyline>"#,
            COLORS[si % COLORS.len()],
            dashes[variant_of_line % dashes.len()],
            path.join(" "),
            escape(label)
        );
        if let Some((p, v)) = pts.last() {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"#,
                x_of(*p) - 4.0,
                y_of(*v) - 4.0,
                escape(label)
            );
        }
    }
    legend(&mut s, &r.subjects);
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn nice_axis() {
        assert_eq!(super::nice_max(73_000.0), 100_000.0);
        assert_eq!(super::nice_max(18.0), 20.0);
        assert_eq!(super::nice_max(2.2), 2.5);
        assert_eq!(super::nice_max(0.0), 1.0);
        assert_eq!(super::escape("a<b&\"c\">"), "a&lt;b&amp;&quot;c&quot;&gt;");
    }
}
