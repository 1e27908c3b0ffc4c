//! The relative-effects chart: one row per metric and variant, the point estimate with its
//! confidence interval, a zero line. Plain SVG text built here, so the HTML report carries it
//! inline and the mail can rasterize the very same source.

use std::fmt::Write;

use crate::numbers::signed_percent;
use crate::results::{Direction, ExperimentResult};

const WIDTH: f64 = 640.0;
const LABEL_WIDTH: f64 = 210.0;
const ROW_HEIGHT: f64 = 30.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 36.0;
const RIGHT_PAD: f64 = 24.0;

/// Colours with enough contrast on white, also for colour-blind readers (blue/orange pair).
fn colour(direction: Direction) -> &'static str {
    match direction {
        Direction::Better => "#0a6ebd",
        Direction::Worse => "#c2410c",
        Direction::Neutral => "#57606a",
    }
}

/// Escapes text for SVG/XML.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

struct Row {
    label: String,
    estimate: f64,
    ci: [f64; 2],
    direction: Direction,
}

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `target` ticks over `span`.
fn tick_step(span: f64, target: f64) -> f64 {
    let raw = span / target;
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(10.0 * power)
}

/// The chart as an SVG document, or `None` when no relative effect has an interval.
pub fn relative_effects_svg(result: &ExperimentResult) -> Option<String> {
    let sequential = result.settings.sequential;
    let rows: Vec<Row> = result
        .metrics
        .iter()
        .flat_map(|m| {
            let many = m.comparisons.len() > 1;
            m.comparisons.iter().filter_map(move |c| {
                // Draw the interval the decision uses: always-valid when sequential is on.
                let ci = if sequential { c.sequential.as_ref().and_then(|s| s.ci_relative) } else { c.ci_relative };
                let (estimate, ci) = (c.relative_effect?, ci?);
                let label = if many { format!("{} · {}", m.name, c.variant) } else { m.name.clone() };
                Some(Row { label, estimate, ci, direction: c.direction })
            })
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let extent = rows.iter().flat_map(|r| [r.ci[0].abs(), r.ci[1].abs()]).fold(0.0f64, f64::max).max(0.005) * 1.1;
    let step = tick_step(2.0 * extent, 6.0);
    let extent = (extent / step).ceil() * step;
    let plot_left = LABEL_WIDTH;
    let plot_width = WIDTH - LABEL_WIDTH - RIGHT_PAD;
    let x = |v: f64| plot_left + (v + extent) / (2.0 * extent) * plot_width;
    let height = TOP + ROW_HEIGHT * rows.len() as f64 + BOTTOM;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12" role="img" aria-label="Relative effect of each variant against the control, with confidence intervals">"#
    );
    let _ = write!(svg, r##"<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>"##);
    let _ = write!(
        svg,
        r##"<text x="{plot_left}" y="18" font-size="13" font-weight="bold" fill="#1f2328">Relative effect vs control ({}{} CI)</text>"##,
        if sequential { "always-valid " } else { "" },
        xml_escape(&crate::numbers::percent(1.0 - result.settings.alpha, 0))
    );
    let axis_y = TOP + ROW_HEIGHT * rows.len() as f64;
    let mut tick = -extent;
    while tick <= extent + step * 1e-9 {
        let tx = x(tick);
        let _ = write!(
            svg,
            r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{axis_y}" stroke="#eaeef2" stroke-width="1"/>"##
        );
        let _ = write!(
            svg,
            r##"<text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#57606a">{}</text>"##,
            axis_y + 16.0,
            xml_escape(&signed_percent(
                if tick.abs() < step * 1e-9 { 0.0 } else { tick },
                if step < 0.01 { 1 } else { 0 }
            ))
        );
        tick += step;
    }
    let zero = x(0.0);
    let _ = write!(
        svg,
        r##"<line x1="{zero:.1}" y1="{TOP}" x2="{zero:.1}" y2="{axis_y}" stroke="#1f2328" stroke-width="1.2"/>"##
    );
    for (i, row) in rows.iter().enumerate() {
        let cy = TOP + ROW_HEIGHT * (i as f64 + 0.5);
        let colour = colour(row.direction);
        let label = if row.label.chars().count() > 30 {
            format!("{}…", row.label.chars().take(29).collect::<String>())
        } else {
            row.label.clone()
        };
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#1f2328">{}</text>"##,
            plot_left - 10.0,
            cy + 4.0,
            xml_escape(&label)
        );
        let (lo, hi) = (x(row.ci[0].max(-extent)), x(row.ci[1].min(extent)));
        let _ = write!(
            svg,
            r#"<line x1="{lo:.1}" y1="{cy:.1}" x2="{hi:.1}" y2="{cy:.1}" stroke="{colour}" stroke-width="3" stroke-linecap="round"/>"#
        );
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{cy:.1}" r="5" fill="{colour}" stroke="#ffffff" stroke-width="1.5"/>"##,
            x(row.estimate.clamp(-extent, extent))
        );
        let _ = write!(
            svg,
            r#"<title>{}: {} [{}, {}]</title>"#,
            xml_escape(&row.label),
            xml_escape(&signed_percent(row.estimate, 2)),
            xml_escape(&signed_percent(row.ci[0], 2)),
            xml_escape(&signed_percent(row.ci[1], 2))
        );
    }
    svg.push_str("</svg>");
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_steps_are_nice() {
        assert_eq!(tick_step(0.2, 6.0), 0.05);
        assert_eq!(tick_step(0.02, 6.0), 0.005);
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(xml_escape("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
    }
}
