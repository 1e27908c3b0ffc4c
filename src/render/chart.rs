//! The relative-effects chart: one row per metric and variant, the estimate of the test the
//! recommendation reads (the comparison's `inference`) with its interval at the test's level,
//! coloured by the test's direction. Plain SVG text built here, so the HTML report carries it
//! inline and the mail can rasterize the very same source.
//!
//! Each row has its own scale: one axis shared by a +72% guardrail and a −6.8% primary would
//! squash the primary to a dot. So that rows of different scales are not misread, every row
//! labels its own ends and 0, and states its effect and interval in figures. The primary is
//! named in bold with a filled tag, a guardrail with an outlined tag and its non-inferiority
//! margin drawn as a dashed line on its worse side. A legend names the colours and the test.
//!
//! Sized for a phone: the layout is one column (name and figures above the track, the scale
//! below), the viewBox 400 units wide and every text at least 13 units, so at 390 px (about
//! 358 px of chart) no label is under 11 px; the SVG is `width="100%"` up to `MAX_CSS_WIDTH`.
//!
//! Comparisons tested on the absolute scale (the control mean is 0) are left out, with a line
//! saying so: an absolute difference has no place on a percentage scale. So are comparisons
//! without a finite interval, which no track can hold.

use std::fmt::Write;

use super::escape::escape_html;
use super::test_method::Test;
use crate::numbers::signed_percent;
use crate::results::{Direction, ExperimentResult, InferenceScale, Role};

/// The viewBox width: about the chart's width in CSS px on a 390 px phone.
const WIDTH: f64 = 400.0;
/// The widest the chart is drawn in the report (CSS px): wide enough to read, no wider.
const MAX_CSS_WIDTH: u32 = 480;
const PAD: f64 = 8.0;
/// The smallest text: 13 units are 11.6 px at the 358 px a 390 px phone gives the chart.
const FONT: f64 = 13.0;
const TITLE_FONT: f64 = 15.0;
/// The title, two lines of legend text and the colour key.
const HEADER: f64 = 92.0;
const ROW_HEIGHT: f64 = 68.0;
/// Offsets inside a row: the name line's baseline, the track's top and height, the scale's
/// baseline.
const NAME_BASELINE: f64 = 16.0;
const TRACK_TOP: f64 = 24.0;
const TRACK_HEIGHT: f64 = 20.0;
const SCALE_BASELINE: f64 = 59.0;
const LINE_HEIGHT: f64 = 18.0;

pub(super) const INK: &str = "#1f2328";
pub(super) const MUTED: &str = "#57606a";
const TRACK: &str = "#f6f8fa";
const GRID: &str = "#d0d7de";
/// The margin line: the amber of the report's PAUSE, apart from the "worse" colour.
const MARGIN: &str = "#9a6700";

/// Colours with enough contrast on white, also for colour-blind readers (blue/orange pair).
fn colour(direction: Direction) -> &'static str {
    match direction {
        Direction::Better => "#0a6ebd",
        Direction::Worse => "#c2410c",
        Direction::Neutral => MUTED,
    }
}

fn direction_words(direction: Direction) -> &'static str {
    match direction {
        Direction::Better => "better",
        Direction::Worse => "worse",
        Direction::Neutral => "not significant",
    }
}

/// One drawn comparison.
struct Row {
    metric: String,
    /// The variant and its baseline, when the metric has more than one comparison: on a line
    /// of their own, so a long name never cuts them.
    variant: Option<(String, String)>,
    role: Role,
    estimate: f64,
    ci: [f64; 2],
    direction: Direction,
    /// A guardrail's margin as the relative effect it must not pass (negative when higher is
    /// better).
    margin_at: Option<f64>,
}

impl Row {
    /// The row's height: one line more when it names its variant.
    fn height(&self) -> f64 {
        ROW_HEIGHT + if self.variant.is_some() { LINE_HEIGHT } else { 0.0 }
    }

    /// The interval's figures at a precision that tells its ends apart.
    fn figures(&self) -> String {
        let decimals = if (self.ci[1] - self.ci[0]).abs() < 0.01 { 2 } else { 1 };
        format!(
            "{} [{}, {}]",
            signed_percent(self.estimate, decimals),
            signed_percent(self.ci[0], decimals),
            signed_percent(self.ci[1], decimals)
        )
    }

    /// The row in words, for its hover text and the chart's description.
    fn description(&self, test: Test) -> String {
        let role = match self.role {
            Role::Primary => " (primary metric)",
            Role::Guardrail => " (guardrail)",
            Role::Secondary => "",
        };
        let variant = self.variant.as_ref().map(|(v, b)| format!(", {v} vs {b}")).unwrap_or_default();
        let margin =
            self.margin_at.map(|m| format!("; non-inferiority margin {}", signed_percent(m, 1))).unwrap_or_default();
        format!(
            "{}{role}{variant}: {}, {}; {}{margin}",
            self.metric,
            self.figures(),
            test.interval_label(),
            direction_words(self.direction)
        )
    }
}

/// Where a scale label sits against the value it labels.
#[derive(Debug, Clone, Copy)]
enum Side {
    Centre,
    Left,
    Right,
}

/// A row's scale: the range its track spans, with 0, the interval and the margin inside.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scale {
    lo: f64,
    hi: f64,
    step: f64,
}

impl Scale {
    fn of(row: &Row) -> Scale {
        let values = [0.0, row.estimate, row.ci[0], row.ci[1]].into_iter().chain(row.margin_at);
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let span = (hi - lo).max(0.002);
        let (lo, hi) = (lo - 0.05 * span, hi + 0.05 * span);
        let step = tick_step(hi - lo, 6.0);
        Scale { lo: (lo / step).floor() * step, hi: (hi / step).ceil() * step, step }
    }

    /// Position of `v` on a track from `left` to `right`.
    fn x(&self, v: f64, left: f64, right: f64) -> f64 {
        left + (v - self.lo) / (self.hi - self.lo) * (right - left)
    }

    /// A tick's label, with as many decimals as the step needs.
    fn label(&self, v: f64) -> String {
        if v.abs() < self.step * 1e-6 {
            return "0%".into();
        }
        let decimals = if self.step >= 0.01 {
            0
        } else if self.step >= 0.001 {
            1
        } else {
            2
        };
        signed_percent(v, decimals)
    }

    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let n = ((self.hi - self.lo) / self.step).round() as i64;
        (0..=n).map(move |i| self.lo + i as f64 * self.step)
    }
}

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `target` ticks over `span`
/// (the effects chart's and the story's axes); a zero span gets the smallest step, not NaN.
pub(super) fn tick_step(span: f64, target: f64) -> f64 {
    let raw = (span / target).max(f64::MIN_POSITIVE);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(10.0 * power)
}

/// The width of `text` in DejaVu Sans at `size` units, from its characters' advance widths
/// (rounded up a little): enough to truncate names and keep labels from overlapping.
fn text_width(text: &str, size: f64, bold: bool) -> f64 {
    let em: f64 = text
        .chars()
        .map(|c| match c {
            ' ' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | 'i' | 'l' | 'j' => 0.32,
            'f' | 't' | 'r' | '[' | ']' | '(' | ')' | '-' => 0.42,
            'm' | 'w' | 'M' | 'W' | '%' => 0.96,
            '−' | '+' | '=' | '·' => 0.84,
            c if c.is_ascii_digit() => 0.64,
            c if c.is_ascii_uppercase() => 0.72,
            c if c.is_ascii_lowercase() => 0.62,
            _ => 0.8,
        })
        .sum();
    em * size * if bold { 1.1 } else { 1.0 }
}

/// `text` cut with an ellipsis to fit `width` units.
fn fit(text: &str, size: f64, bold: bool, width: f64) -> String {
    if text_width(text, size, bold) <= width {
        return text.to_string();
    }
    let mut cut: String = text.to_string();
    while !cut.is_empty() && text_width(&format!("{cut}…"), size, bold) > width {
        cut.pop();
    }
    format!("{cut}…")
}

/// `text` broken into lines that fit `width` units at `size`.
fn wrap(text: &str, size: f64, width: f64) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
        if !line.is_empty() && text_width(&candidate, size, false) > width {
            lines.push(std::mem::replace(&mut line, word.to_string()));
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines.into_iter().map(|l| fit(&l, size, false, width)).collect()
}

/// Every comparison with a test: the drawn rows (relative scale, finite interval), and the
/// names of the rest, each with why it is not drawn.
struct Rows {
    drawn: Vec<Row>,
    /// Tested on the absolute scale (the control mean is 0).
    absolute: Vec<String>,
    /// An estimate or interval end that is not a finite number: nothing to place on a track.
    unbounded: Vec<String>,
}

fn rows(result: &ExperimentResult) -> Rows {
    let mut rows = Rows { drawn: Vec::new(), absolute: Vec::new(), unbounded: Vec::new() };
    for m in &result.metrics {
        let many = m.comparisons.len() > 1;
        for c in &m.comparisons {
            let Some(i) = &c.inference else { continue };
            let variant = many.then(|| (c.variant.clone(), c.baseline.clone()));
            let name = || variant.as_ref().map_or_else(|| m.name.clone(), |(v, _)| format!("{} · {v}", m.name));
            if i.scale == InferenceScale::Absolute {
                rows.absolute.push(name());
                continue;
            }
            if ![i.estimate, i.ci[0], i.ci[1]].iter().all(|v| v.is_finite()) {
                rows.unbounded.push(name());
                continue;
            }
            let margin = c.non_inferiority.as_ref().map(|n| n.margin).or(m.margin);
            let margin_at = margin
                .filter(|m| m.is_finite())
                .filter(|_| m.role == Role::Guardrail)
                .map(|margin| if m.higher_is_better { -margin.abs() } else { margin.abs() });
            rows.drawn.push(Row {
                metric: m.name.clone(),
                variant,
                role: m.role,
                estimate: i.estimate,
                ci: i.ci,
                direction: i.direction,
                margin_at,
            });
        }
    }
    rows
}

/// The chart in words: its `aria-label`, for screen readers and the mail's alt text.
pub fn relative_effects_description(result: &ExperimentResult) -> Option<String> {
    let rows = rows(result).drawn;
    if rows.is_empty() {
        return None;
    }
    let test = Test::of(result);
    let each: Vec<String> = rows.iter().map(|r| r.description(test)).collect();
    Some(format!(
        "Relative effect vs control ({}), each row on its own scale. {}.",
        test.interval_label(),
        each.join(". ")
    ))
}

/// The chart as an SVG document, or `None` when no comparison has a test on the relative
/// scale.
pub fn relative_effects_svg(result: &ExperimentResult) -> Option<String> {
    let Rows { drawn: rows, absolute, unbounded } = rows(result);
    let description = relative_effects_description(result)?;
    let test = Test::of(result);
    let mut footnote: Vec<String> = Vec::new();
    for (names, why) in [(absolute, "control mean 0, absolute scale"), (unbounded, "no finite interval")] {
        if !names.is_empty() {
            footnote.extend(wrap(&format!("Not drawn ({why}): {}", names.join(", ")), FONT, WIDTH - 2.0 * PAD));
        }
    }
    let rows_bottom = HEADER + rows.iter().map(Row::height).sum::<f64>();
    let height = rows_bottom + 4.0 + LINE_HEIGHT * footnote.len() as f64;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" style="max-width:{MAX_CSS_WIDTH}px;height:auto;display:block" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="{FONT}" role="img" aria-label="{}">"#,
        escape_html(&description)
    );
    let _ = write!(svg, r##"<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>"##);
    header(&mut svg, test);
    let mut top = HEADER;
    for row in &rows {
        draw_row(&mut svg, row, top, test);
        top += row.height();
    }
    for (i, line) in footnote.iter().enumerate() {
        let _ = write!(
            svg,
            r##"<text x="{PAD}" y="{:.1}" fill="{MUTED}">{}</text>"##,
            rows_bottom + 14.0 + LINE_HEIGHT * i as f64,
            escape_html(line)
        );
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// The title, what the marks are, and the colour key.
fn header(svg: &mut String, test: Test) {
    let _ = write!(
        svg,
        r##"<text x="{PAD}" y="18" font-size="{TITLE_FONT}" font-weight="bold" fill="{INK}">Relative effect vs control</text>"##
    );
    let _ = write!(
        svg,
        r##"<text x="{PAD}" y="38" fill="{MUTED}">Dot: estimate · bar: {}</text>"##,
        escape_html(&test.interval_label())
    );
    let _ = write!(svg, r##"<text x="{PAD}" y="56" fill="{MUTED}">Each row has its own scale: read its ends.</text>"##);
    let y = 78.0;
    let mut x = PAD;
    for direction in [Direction::Better, Direction::Worse, Direction::Neutral] {
        let words = direction_words(direction);
        let _ = write!(
            svg,
            r##"<g><title>{words}</title><circle cx="{:.1}" cy="{:.1}" r="5" fill="{}"/><text x="{:.1}" y="{y}" fill="{INK}">{words}</text></g>"##,
            x + 5.0,
            y - 4.5,
            colour(direction),
            x + 14.0
        );
        x += 14.0 + text_width(words, FONT, false) + 12.0;
    }
    let _ = write!(
        svg,
        r##"<g><title>a guardrail's non-inferiority margin</title><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{MARGIN}" stroke-width="2" stroke-dasharray="3 2"/><text x="{:.1}" y="{y}" fill="{INK}">margin</text></g>"##,
        x + 4.0,
        y - 12.0,
        x + 4.0,
        y + 2.0,
        x + 12.0
    );
}

/// One comparison: its name, tag and figures, its track with its own scale, and that scale's
/// ends, 0 and margin labelled.
fn draw_row(svg: &mut String, row: &Row, top: f64, test: Test) {
    let (left, right) = (PAD, WIDTH - PAD);
    let scale = Scale::of(row);
    let x = |v: f64| scale.x(v, left, right);
    let colour = colour(row.direction);
    let _ = write!(svg, r#"<g><title>{}</title>"#, escape_html(&row.description(test)));

    // The name line: name (bold for the primary), its role's tag, the figures on the right.
    let name_y = top + NAME_BASELINE;
    let figures = row.figures();
    let figures_bold = row.direction != Direction::Neutral;
    let figures_width = text_width(&figures, FONT, figures_bold);
    let (tag, tag_filled) = match row.role {
        Role::Primary => (Some("primary"), true),
        Role::Guardrail => (Some("guardrail"), false),
        Role::Secondary => (None, false),
    };
    let tag_width = tag.map_or(0.0, |t| text_width(t, FONT, false) + 12.0);
    let primary = row.role == Role::Primary;
    let name_room = right - left - figures_width - tag_width - 16.0;
    let name = fit(&row.metric, FONT, primary, name_room.max(40.0));
    let _ = write!(
        svg,
        r##"<text x="{left}" y="{name_y:.1}" fill="{INK}"{}>{}</text>"##,
        if primary { r#" font-weight="bold""# } else { "" },
        escape_html(&name)
    );
    if let Some(tag) = tag {
        let tag_x = left + text_width(&name, FONT, primary) + 6.0;
        let (fill, stroke, ink) = if tag_filled { (INK, INK, "#ffffff") } else { ("#ffffff", MUTED, MUTED) };
        let _ = write!(
            svg,
            r#"<rect x="{tag_x:.1}" y="{:.1}" width="{:.1}" height="17" rx="8" fill="{fill}" stroke="{stroke}"/><text x="{:.1}" y="{:.1}" fill="{ink}">{tag}</text>"#,
            name_y - 13.0,
            tag_width - 4.0,
            tag_x + 4.0,
            name_y - 0.5
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{right}" y="{name_y:.1}" text-anchor="end" fill="{colour}"{}>{}</text>"#,
        if figures_bold { r#" font-weight="bold""# } else { "" },
        escape_html(&figures)
    );

    // The variant's line, when the metric compares several.
    let top = match &row.variant {
        Some((variant, control)) => {
            let _ = write!(
                svg,
                r#"<text x="{left}" y="{:.1}" fill="{MUTED}">{}</text>"#,
                name_y + LINE_HEIGHT,
                escape_html(&fit(&format!("{variant} vs {control}"), FONT, false, right - left))
            );
            top + LINE_HEIGHT
        }
        None => top,
    };

    // The track: its ticks, 0, the margin, then the interval and the estimate on top.
    let (track_top, track_bottom) = (top + TRACK_TOP, top + TRACK_TOP + TRACK_HEIGHT);
    let cy = track_top + TRACK_HEIGHT / 2.0;
    let _ = write!(
        svg,
        r#"<rect x="{left}" y="{track_top:.1}" width="{:.1}" height="{TRACK_HEIGHT}" fill="{TRACK}"/>"#,
        right - left
    );
    for tick in scale.ticks() {
        let tx = x(tick);
        let _ = write!(
            svg,
            r#"<line x1="{tx:.1}" y1="{track_top:.1}" x2="{tx:.1}" y2="{track_bottom:.1}" stroke="{GRID}" stroke-width="1"/>"#
        );
    }
    let zero = x(0.0);
    let _ = write!(
        svg,
        r#"<line x1="{zero:.1}" y1="{:.1}" x2="{zero:.1}" y2="{:.1}" stroke="{INK}" stroke-width="1.5"><title>no effect (0%)</title></line>"#,
        track_top - 2.0,
        track_bottom + 2.0
    );
    if let Some(m) = row.margin_at {
        let mx = x(m);
        let _ = write!(
            svg,
            r#"<line x1="{mx:.1}" y1="{:.1}" x2="{mx:.1}" y2="{:.1}" stroke="{MARGIN}" stroke-width="2" stroke-dasharray="3 2"><title>non-inferiority margin {}: the interval must stay on the better side of it</title></line>"#,
            track_top - 2.0,
            track_bottom + 2.0,
            escape_html(&signed_percent(m, 1))
        );
    }
    let (lo, hi) = (x(row.ci[0]), x(row.ci[1]));
    let _ = write!(
        svg,
        r#"<line x1="{lo:.1}" y1="{cy:.1}" x2="{hi:.1}" y2="{cy:.1}" stroke="{colour}" stroke-width="5" stroke-linecap="round"/>"#
    );
    let _ = write!(
        svg,
        r##"<circle cx="{:.1}" cy="{cy:.1}" r="6" fill="{colour}" stroke="#ffffff" stroke-width="1.5"/>"##,
        x(row.estimate)
    );

    // The scale's labels, most telling first; one that would overlap a placed one is left out.
    // A margin's label goes on the line's worse side and 0's on its better side, so the two
    // stay apart however close they are.
    let scale_y = top + SCALE_BASELINE;
    let mut labels: Vec<(f64, String, Side)> = Vec::new();
    match row.margin_at {
        Some(m) => {
            let (worse, better) = if m > 0.0 { (Side::Right, Side::Left) } else { (Side::Left, Side::Right) };
            labels.push((m, format!("margin {}", signed_percent(m, 1)), worse));
            labels.push((0.0, "0%".to_string(), better));
        }
        None => labels.push((0.0, "0%".to_string(), Side::Centre)),
    }
    labels.push((scale.lo, scale.label(scale.lo), Side::Centre));
    labels.push((scale.hi, scale.label(scale.hi), Side::Centre));
    let mut placed: Vec<(f64, f64)> = Vec::new();
    for (value, text, side) in labels {
        let width = text_width(&text, FONT, false);
        let at = x(value);
        let wanted = match side {
            Side::Centre => at - width / 2.0,
            Side::Right => at + 4.0,
            Side::Left => at - 4.0 - width,
        };
        let start = wanted.clamp(left, right - width);
        let end = start + width;
        if placed.iter().any(|&(s, e)| start < e + 6.0 && s < end + 6.0) {
            continue;
        }
        placed.push((start, end));
        // Anchored where the text's position is exact: at an edge, or at its value.
        let (tx, anchor) = if start >= right - width {
            (right, "end")
        } else if start <= left {
            (left, "start")
        } else {
            match side {
                Side::Centre => (at, "middle"),
                Side::Right => (at + 4.0, "start"),
                Side::Left => (at - 4.0, "end"),
            }
        };
        let fill = if text.starts_with("margin") { MARGIN } else { MUTED };
        let _ = write!(
            svg,
            r#"<text x="{tx:.1}" y="{scale_y:.1}" text-anchor="{anchor}" fill="{fill}">{}</text>"#,
            escape_html(&text)
        );
    }
    svg.push_str("</g>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::NonInferiorityResult;

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
        assert!(svg.contains("Dot: estimate · bar: always-valid 95% CI"), "the legend names the test");
        assert!(
            svg.contains(
                "<title>conversion (primary metric): +4.1% [+1.1%, +7.1%], always-valid 95% CI; better</title>"
            ),
            "the test's interval: {svg}"
        );
        assert!(svg.contains(r##"stroke="#0a6ebd""##), "coloured as the test's `better`");
        assert!(!svg.contains("−50"), "the scale is not stretched to the fixed-horizon interval");
    }

    /// An issue's case: a −6.8% primary beside a +72% guardrail.
    fn primary_and_large_guardrail() -> ExperimentResult {
        let mut result = crate::results::sample_result();
        let primary = result.metrics[0].comparisons[0].inference.as_mut().expect("a test");
        (primary.estimate, primary.ci, primary.direction) = (-0.068, [-0.091, -0.045], Direction::Worse);
        let guardrail = &mut result.metrics[1];
        (guardrail.role, guardrail.margin, guardrail.higher_is_better) = (Role::Guardrail, Some(0.02), false);
        let i = guardrail.comparisons[0].inference.as_mut().expect("a test");
        (i.estimate, i.ci, i.direction) = (0.72, [0.41, 1.03], Direction::Worse);
        guardrail.comparisons[0].non_inferiority =
            Some(NonInferiorityResult { margin: 0.02, p_value: Some(0.9), bound: Some(1.03), non_inferior: false });
        result
    }

    /// The drawn interval bars (`stroke-width="5"`), as (x1, x2).
    fn bars(svg: &str) -> Vec<(f64, f64)> {
        let attr = |tag: &str, name: &str| -> f64 {
            let start = tag.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
            tag[start..].split('"').next().expect("value").parse().expect("a number")
        };
        svg.split("<line ")
            .skip(1)
            .filter(|tag| tag.contains(r#"stroke-width="5""#))
            .map(|tag| (attr(tag, "x1"), attr(tag, "x2")))
            .collect()
    }

    #[test]
    fn each_row_has_its_own_scale_so_a_large_guardrail_squashes_nothing() {
        let svg = relative_effects_svg(&primary_and_large_guardrail()).expect("a chart");
        let track = WIDTH - 2.0 * PAD;
        let drawn = bars(&svg);
        assert_eq!(drawn.len(), 2, "{svg}");
        for (x1, x2) in drawn {
            assert!(x2 - x1 > track / 4.0, "an interval spans {:.0} of a {track} track: {svg}", x2 - x1);
        }
        // Each row labels its own ends: the primary's reach −10%, the guardrail's +120%.
        assert!(svg.contains(">−10%</text>") && svg.contains(">+120%</text>"), "{svg}");
        assert!(svg.contains("−6.8% [−9.1%, −4.5%]") && svg.contains("+72.0% [+41.0%, +103.0%]"), "value labels");
    }

    #[test]
    fn the_primary_and_the_guardrails_are_marked_and_margins_drawn() {
        let svg = relative_effects_svg(&primary_and_large_guardrail()).expect("a chart");
        assert!(svg.contains(r#"font-weight="bold">conversion</text>"#), "the primary's name in bold: {svg}");
        assert!(svg.contains(">primary</text>") && svg.contains(">guardrail</text>"), "tags");
        // Lower is better for this guardrail: its margin is +2%, on the worse (upper) side.
        assert!(svg.contains("<title>non-inferiority margin +2.0%"), "{svg}");
        assert!(svg.contains(">margin +2.0%</text>"), "labelled on the scale: {svg}");
        let margins = svg.matches(r#"stroke-dasharray="3 2"><title>non-inferiority"#).count();
        assert_eq!(margins, 1, "one margin line, on the guardrail's row only");
        // Higher is better: the margin sits below zero.
        let mut result = primary_and_large_guardrail();
        result.metrics[1].higher_is_better = true;
        let svg = relative_effects_svg(&result).expect("a chart");
        assert!(svg.contains(">margin −2.0%</text>"), "{svg}");
    }

    #[test]
    fn every_title_is_a_child_of_the_mark_it_describes() {
        let svg = relative_effects_svg(&primary_and_large_guardrail()).expect("a chart");
        let mut seen = 0;
        for (at, _) in svg.match_indices("<title>") {
            let open = svg[..at].rfind('<').expect("a tag before");
            let tag = &svg[open..at];
            assert!(!tag.ends_with("/>") && !tag.starts_with("</"), "a <title> after `{tag}` describes nothing");
            seen += 1;
        }
        // Two rows, their two zero lines and one margin line, the legend's four keys.
        assert_eq!(seen, 2 + 2 + 1 + 4, "every mark has hover text");
        assert!(svg.contains(r#"role="img" aria-label="Relative effect vs control"#));
    }

    #[test]
    fn the_svg_fits_the_width_it_is_shown_at() {
        let svg = relative_effects_svg(&crate::results::sample_result()).expect("a chart");
        assert!(svg.contains(r#"viewBox="0 0 400 "#) && svg.contains(r#"width="100%""#), "{svg}");
        for size in svg.split("font-size=\"").skip(1).map(|s| s.split('"').next().expect("a size")) {
            let size: f64 = size.parse().expect("a number");
            assert!(size * 358.0 / WIDTH >= 11.0, "{size} units are under 11 px at 390 px");
        }
    }

    #[test]
    fn user_text_is_escaped() {
        let mut result = primary_and_large_guardrail();
        result.metrics[0].name = "<script>alert(1)</script>&\"'".into();
        let svg = relative_effects_svg(&result).expect("a chart");
        assert!(!svg.contains("<script"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39; (primary metric)"), "{svg}");
        assert!(
            relative_effects_description(&result).expect("words").contains("<script>"),
            "the description is text: escaped where it is written"
        );
    }

    #[test]
    fn a_metric_with_several_variants_names_each_on_its_own_line() {
        let mut result = primary_and_large_guardrail();
        let mut second = result.metrics[0].comparisons[0].clone();
        second.variant = "treatment-with-a-long-name".into();
        result.metrics[0].comparisons.push(second);
        let svg = relative_effects_svg(&result).expect("a chart");
        assert_eq!(svg.matches(r#"font-weight="bold">conversion</text>"#).count(), 2, "{svg}");
        assert!(svg.contains(">treatment vs control</text>"), "{svg}");
        assert!(svg.contains(">treatment-with-a-long-name vs control</text>"), "{svg}");
        assert!(svg.contains("<title>conversion (primary metric), treatment-with-a-long-name vs control: −6.8%"));
        assert_eq!(bars(&svg).len(), 3);
        let height = |svg: &str| -> f64 {
            svg.split("viewBox=\"0 0 400 ")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .expect("a viewBox")
                .parse()
                .expect("a number")
        };
        let one = relative_effects_svg(&primary_and_large_guardrail()).expect("a chart");
        assert_eq!(height(&svg) - height(&one), ROW_HEIGHT + 2.0 * LINE_HEIGHT, "a row more, two variant lines");
    }

    #[test]
    fn long_names_are_cut_to_fit_beside_their_figures() {
        let mut result = primary_and_large_guardrail();
        result.metrics[0].name = "a_very_long_metric_name_that_would_run_into_the_figures".into();
        let svg = relative_effects_svg(&result).expect("a chart");
        assert!(svg.contains("a_very_long_metric_name"), "{svg}");
        assert!(svg.contains("…</text>"), "cut with an ellipsis");
        assert!(svg.contains("<title>a_very_long_metric_name_that_would_run_into_the_figures"), "whole in the title");
    }

    #[test]
    fn absolute_and_unbounded_tests_are_left_out_and_named() {
        let mut result = crate::results::sample_result();
        let i = result.metrics[1].comparisons[0].inference.as_mut().expect("a test");
        i.scale = InferenceScale::Absolute;
        let svg = relative_effects_svg(&result).expect("a chart");
        assert!(!svg.contains("<title>revenue"), "{svg}");
        assert!(svg.contains(">Not drawn (control mean 0, absolute scale): revenue</text>"), "{svg}");
        let i = result.metrics[0].comparisons[0].inference.as_mut().expect("a test");
        i.ci[1] = f64::INFINITY;
        assert!(relative_effects_description(&result).is_none(), "nothing drawn, nothing described");
        assert!(relative_effects_svg(&result).is_none());
        let mut result = crate::results::sample_result();
        result.metrics[1].comparisons[0].inference.as_mut().expect("a test").estimate = f64::NAN;
        let svg = relative_effects_svg(&result).expect("a chart");
        assert!(svg.contains(">Not drawn (no finite interval): revenue</text>"), "{svg}");
        for attribute in svg.split("=\"").skip(1).map(|rest| rest.split('"').next().expect("a value")) {
            assert!(!["NaN", "inf", "-inf"].contains(&attribute), "only numbers in the SVG: {svg}");
        }
        crate::render::png::svg_to_png(&svg, 1.0).expect("it rasterizes");
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
