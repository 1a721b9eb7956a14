//! Server-side SVG charts for the analytics page (pie, horizontal bars, daily timeline, time per
//! page of a document), so the
//! page shows its charts without JavaScript. The browser lays out the text, so no font is needed
//! on the server. Every label is escaped; every chart has a title and an accessible label.

use std::fmt::Write;

const PALETTE: [&str; 12] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    "#1f77b4", "#17becf",
];

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn open(w: u32, h: u32, title: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{t}" class="chart"><title>{t}</title>"#,
        t = esc(title)
    )
}

fn empty(w: u32, h: u32, title: &str) -> String {
    let mut s = open(w, h, title);
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#5d6470" font-size="14">No data yet</text></svg>"##,
        w / 2,
        h / 2
    );
    s
}

/// A pie of the top 7 values, the rest grouped as "Other", with a legend.
pub fn pie(title: &str, rows: &[(String, i64)]) -> String {
    let (w, h) = (420u32, 220u32);
    let total: i64 = rows.iter().map(|r| r.1.max(0)).sum();
    if total == 0 {
        return empty(w, h, title);
    }
    let mut slices: Vec<(String, i64)> = rows.iter().take(7).cloned().collect();
    let rest: i64 = rows.iter().skip(7).map(|r| r.1.max(0)).sum();
    if rest > 0 {
        slices.push(("Other".into(), rest));
    }
    let (cx, cy, r) = (110.0f64, 110.0f64, 95.0f64);
    let mut s = open(w, h, title);
    let mut angle = -std::f64::consts::FRAC_PI_2;
    for (i, (label, v)) in slices.iter().enumerate() {
        let frac = *v as f64 / total as f64;
        let color = if label == "Other" { "#bab0ac" } else { PALETTE[i % PALETTE.len()] };
        let tip = format!("{}: {} ({:.1}%)", esc(label), v, frac * 100.0);
        if frac >= 0.9999 {
            let _ = write!(s, r#"<circle cx="{cx}" cy="{cy}" r="{r}" fill="{color}"><title>{tip}</title></circle>"#);
        } else {
            let end = angle + frac * std::f64::consts::TAU;
            let (x1, y1) = (cx + r * angle.cos(), cy + r * angle.sin());
            let (x2, y2) = (cx + r * end.cos(), cy + r * end.sin());
            let large = i32::from(frac > 0.5);
            let _ = write!(
                s,
                r##"<path d="M{cx},{cy} L{x1:.2},{y1:.2} A{r},{r} 0 {large} 1 {x2:.2},{y2:.2} Z" fill="{color}" stroke="#fff" stroke-width="1"><title>{tip}</title></path>"##
            );
            angle = end;
        }
        let ly = 24 + i as u32 * 22;
        let _ = write!(
            s,
            r#"<rect x="235" y="{}" width="12" height="12" fill="{color}"/><text x="253" y="{}" font-size="13" fill="currentColor">{} · {}</text>"#,
            ly - 10,
            ly,
            esc(label),
            v
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars of the top 9 values.
pub fn bars(title: &str, rows: &[(String, i64)]) -> String {
    let rows: Vec<&(String, i64)> = rows.iter().take(9).collect();
    let (w, row_h) = (420u32, 24u32);
    let h = (rows.len() as u32 * row_h + 10).max(60);
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0);
    if max <= 0 {
        return empty(w, 60, title);
    }
    let mut s = open(w, h, title);
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = 5 + i as u32 * row_h;
        let bw = ((*v as f64 / max as f64) * 200.0).max(2.0);
        let short: String = label.chars().take(22).collect();
        let _ = write!(
            s,
            r#"<text x="130" y="{}" text-anchor="end" font-size="13" fill="currentColor">{}</text><rect x="138" y="{}" width="{bw:.1}" height="16" rx="3" fill="{}"><title>{}: {}</title></rect><text x="{:.1}" y="{}" font-size="12" fill="currentColor">{}</text>"#,
            y + 13,
            esc(&short),
            y + 1,
            PALETTE[i % PALETTE.len()],
            esc(label),
            v,
            138.0 + bw + 6.0,
            y + 13,
            v
        );
    }
    s.push_str("</svg>");
    s
}

/// Views and downloads per day (one point per day of the range, zeros included).
pub fn timeline(title: &str, days: &[(String, i64, i64)]) -> String {
    let (w, h) = (720u32, 240u32);
    let (left, right, top, bottom) = (44.0f64, 12.0f64, 14.0f64, 40.0f64);
    let max = days.iter().map(|d| d.1.max(d.2)).max().unwrap_or(0);
    if days.is_empty() || max == 0 {
        return empty(w, h, title);
    }
    let ymax = nice_max(max);
    let plot_w = w as f64 - left - right;
    let plot_h = h as f64 - top - bottom;
    let x = |i: usize| left + if days.len() == 1 { plot_w / 2.0 } else { plot_w * i as f64 / (days.len() - 1) as f64 };
    let y = |v: i64| top + plot_h - plot_h * v as f64 / ymax as f64;
    let mut s = open(w, h, title);
    for k in 0..=4 {
        let v = ymax * k / 4;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#e3e6ea"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11" fill="currentColor">{v}</text>"##,
            w as f64 - right,
            y(v),
            y(v),
            left - 6.0,
            y(v) + 4.0
        );
    }
    let step = (days.len() / 8).max(1);
    for (i, d) in days.iter().enumerate().filter(|(i, _)| i % step == 0 || *i == days.len() - 1) {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11" fill="currentColor">{}</text>"#,
            x(i),
            h - 22,
            esc(&d.0[5..])
        );
    }
    for (series, color, dash, pick) in
        [("views", PALETTE[0], "", 1usize), ("downloads", PALETTE[1], r#" stroke-dasharray="6 4""#, 2)]
    {
        let pts: Vec<String> = days
            .iter()
            .enumerate()
            .map(|(i, d)| format!("{:.1},{:.1}", x(i), y(if pick == 1 { d.1 } else { d.2 })))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"><title>{series}</title></polyline>"#,
            pts.join(" ")
        );
        for (i, d) in days.iter().enumerate() {
            let v = if pick == 1 { d.1 } else { d.2 };
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"><title>{} {series}: {v}</title></circle>"#,
                x(i),
                y(v),
                esc(&d.0)
            );
        }
    }
    let _ = write!(
        s,
        r#"<rect x="{left}" y="{}" width="12" height="3" fill="{}"/><text x="{}" y="{}" font-size="12" fill="currentColor">views</text><rect x="{}" y="{}" width="12" height="3" fill="{}"/><text x="{}" y="{}" font-size="12" fill="currentColor">downloads</text></svg>"#,
        h - 8,
        PALETTE[0],
        left + 16.0,
        h - 4,
        left + 70.0,
        h - 8,
        PALETTE[1],
        left + 86.0,
        h - 4
    );
    s
}

/// The document viewer's pages as vertical bars: one bar per page (the first 100), its height
/// the average seconds on the page, its tooltip the views. `rows`: (label, avg seconds, views).
pub fn pages(title: &str, rows: &[(String, f64, i64)]) -> String {
    let rows: Vec<&(String, f64, i64)> = rows.iter().take(100).collect();
    let (w, h) = (720u32, 240u32);
    let (left, right, top, bottom) = (44.0f64, 12.0f64, 14.0f64, 40.0f64);
    let max = rows.iter().map(|r| r.1).fold(0.0f64, f64::max);
    if rows.is_empty() || rows.iter().all(|r| r.2 == 0) {
        return empty(w, h, title);
    }
    // A round axis in tenths of a second, at least one second.
    let ymax = nice_max(((max * 10.0).ceil() as i64).max(10)) as f64 / 10.0;
    let plot_w = w as f64 - left - right;
    let plot_h = h as f64 - top - bottom;
    let slot = plot_w / rows.len() as f64;
    let bw = (slot * 0.7).clamp(1.0, 48.0);
    let mut s = open(w, h, title);
    for k in 0..=4 {
        let v = ymax * k as f64 / 4.0;
        let y = top + plot_h - plot_h * v / ymax;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e6ea"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11" fill="currentColor">{v:.1} s</text>"##,
            w as f64 - right,
            left - 6.0,
            y + 4.0
        );
    }
    let step = (rows.len() / 12).max(1);
    for (i, (label, secs, views)) in rows.iter().enumerate() {
        let bh = (plot_h * secs / ymax).max(if *views > 0 { 1.0 } else { 0.0 });
        let x = left + slot * i as f64 + (slot - bw) / 2.0;
        let _ = write!(
            s,
            r#"<rect class="page-bar" x="{x:.1}" y="{:.1}" width="{bw:.1}" height="{bh:.1}" fill="{}"><title>{}: {secs:.1} s on average, {views} view{}</title></rect>"#,
            top + plot_h - bh,
            PALETTE[0],
            esc(label),
            if *views == 1 { "" } else { "s" }
        );
        if i % step == 0 || i == rows.len() - 1 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11" fill="currentColor">{}</text>"#,
                x + bw / 2.0,
                h - 22,
                esc(label)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// A round axis maximum at or above `v` (1, 2, 5 x 10^n).
fn nice_max(v: i64) -> i64 {
    let mut base = 1i64;
    loop {
        for m in [1, 2, 5] {
            if m * base >= v {
                return m * base;
            }
        }
        base *= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_empty_data_says_so() {
        let svg = pie("Countries", &[("<script>".into(), 3), ("US".into(), 1)]);
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"));
        assert!(pie("x", &[]).contains("No data yet"));
        assert!(bars("x", &[("a".into(), 0)]).contains("No data yet"));
        assert!(timeline("x", &[("2024-01-01".into(), 0, 0)]).contains("No data yet"));
    }

    #[test]
    fn a_page_chart_has_a_bar_per_page() {
        let rows: Vec<(String, f64, i64)> = (1..=3).map(|p| (format!("p. {p}"), p as f64 * 1.5, 1)).collect();
        let svg = pages("Time per page", &rows);
        assert_eq!(svg.matches(r#"class="page-bar""#).count(), 3);
        assert!(svg.contains("p. 2: 3.0 s on average, 1 view"), "{svg}");
        assert!(pages("x", &[]).contains("No data yet"));
    }

    #[test]
    fn a_timeline_has_a_point_per_day() {
        let days: Vec<(String, i64, i64)> = (1..=7).map(|d| (format!("2024-01-0{d}"), d, d / 2)).collect();
        let svg = timeline("Daily", &days);
        assert_eq!(svg.matches("<circle").count(), 14);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(120), 200);
    }
}
