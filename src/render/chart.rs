//! The relative-effects chart: one row per metric and variant, the estimate of the test the
//! recommendation reads (the comparison's `inference`) with its interval at the test's level,
//! coloured by the test's direction, and a zero line. Plain SVG text built here, so the HTML
//! report carries it inline and the mail can rasterize the very same source.
//!
//! Comparisons tested on the absolute scale (the control mean is 0) are left out, with a line
//! saying so: an absolute difference has no place on a percentage axis.

use std::fmt::Write;

use super::escape::escape_html;
use super::test_method::Test;
use crate::numbers::signed_percent;
use crate::results::{Direction, ExperimentResult, InferenceScale};

const WIDTH: f64 = 640.0;
const LABEL_WIDTH: f64 = 210.0;
const ROW_HEIGHT: f64 = 30.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 36.0;
const RIGHT_PAD: f64 = 24.0;
/// Room for the line naming comparisons left out.
const FOOTNOTE: f64 = 20.0;

/// Colours with enough contrast on white, also for colour-blind readers (blue/orange pair).
fn colour(direction: Direction) -> &'static str {
    match direction {
        Direction::Better => "#0a6ebd",
        Direction::Worse => "#c2410c",
        Direction::Neutral => "#57606a",
    }
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

/// The chart as an SVG document, or `None` when no comparison has a test on the relative
/// scale.
pub fn relative_effects_svg(result: &ExperimentResult) -> Option<String> {
    let mut rows: Vec<Row> = Vec::new();
    let mut absolute: Vec<String> = Vec::new();
    for m in &result.metrics {
        let many = m.comparisons.len() > 1;
        for c in &m.comparisons {
            let Some(i) = &c.inference else { continue };
            let label = if many { format!("{} · {}", m.name, c.variant) } else { m.name.clone() };
            match i.scale {
                InferenceScale::Relative => {
                    rows.push(Row { label, estimate: i.estimate, ci: i.ci, direction: i.direction });
                }
                InferenceScale::Absolute => absolute.push(label),
            }
        }
    }
    if rows.is_empty() {
        return None;
    }
    let test = Test::of(result);
    let extent = rows.iter().flat_map(|r| [r.ci[0].abs(), r.ci[1].abs()]).fold(0.0f64, f64::max).max(0.005) * 1.1;
    let step = tick_step(2.0 * extent, 6.0);
    let extent = (extent / step).ceil() * step;
    let plot_left = LABEL_WIDTH;
    let plot_width = WIDTH - LABEL_WIDTH - RIGHT_PAD;
    let x = |v: f64| plot_left + (v + extent) / (2.0 * extent) * plot_width;
    let footnote = (!absolute.is_empty()).then(|| {
        let text = format!("Not drawn (absolute scale, the control mean is 0): {}", absolute.join(", "));
        if text.chars().count() > 95 { format!("{}…", text.chars().take(94).collect::<String>()) } else { text }
    });
    let height = TOP + ROW_HEIGHT * rows.len() as f64 + BOTTOM + if footnote.is_some() { FOOTNOTE } else { 0.0 };

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12" role="img" aria-label="Relative effect of each variant against the control, with {}s">"#,
        escape_html(&test.interval_label())
    );
    let _ = write!(svg, r##"<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>"##);
    let _ = write!(
        svg,
        r##"<text x="{plot_left}" y="18" font-size="13" font-weight="bold" fill="#1f2328">Relative effect vs control ({})</text>"##,
        escape_html(&test.interval_label())
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
            escape_html(&signed_percent(
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
            escape_html(&label)
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
            escape_html(&row.label),
            escape_html(&signed_percent(row.estimate, 2)),
            escape_html(&signed_percent(row.ci[0], 2)),
            escape_html(&signed_percent(row.ci[1], 2))
        );
    }
    if let Some(footnote) = footnote {
        let _ = write!(
            svg,
            r##"<text x="10" y="{:.1}" fill="#57606a">{}</text>"##,
            axis_y + 16.0 + FOOTNOTE,
            escape_html(&footnote)
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
    fn the_chart_draws_the_test_the_decision_reads() {
        let mut result = crate::results::sample_result();
        // The fixed-horizon fields say "not significant" and hold another interval.
        let c = &mut result.metrics[0].comparisons[0];
        (c.significant, c.direction, c.ci_relative) = (false, Direction::Neutral, Some([-0.5, 0.5]));
        let svg = relative_effects_svg(&result).expect("a chart");
        assert!(svg.contains("Relative effect vs control (always-valid 95% CI)"), "{svg}");
        assert!(svg.contains("<title>conversion: +4.10% [+1.10%, +7.10%]</title>"), "the test's interval: {svg}");
        assert!(svg.contains(r##"stroke="#0a6ebd""##), "coloured as the test's `better`");
        assert!(!svg.contains("−50"), "the axis is not stretched to the fixed-horizon interval");
    }

    #[test]
    fn absolute_tests_are_left_out_and_named() {
        let mut result = crate::results::sample_result();
        let i = result.metrics[1].comparisons[0].inference.as_mut().expect("a test");
        i.scale = InferenceScale::Absolute;
        let svg = relative_effects_svg(&result).expect("a chart");
        assert!(!svg.contains("<title>revenue"), "{svg}");
        assert!(svg.contains("Not drawn (absolute scale, the control mean is 0): revenue"));
        for metric in &mut result.metrics {
            metric.comparisons[0].inference = None;
        }
        assert!(relative_effects_svg(&result).is_none(), "nothing tested, nothing drawn");
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_html("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
    }
}
