//! The story over time: pure functions from an experiment's result (its `trend`, what abreport
//! reported on each report date, and its allocation by day of first exposure) to SVG charts:
//!
//! - [`effect_svg`]: one metric's cumulative effect by report date, a line and an interval band
//!   per variant against the control, a zero line, percent axis, date labels and a legend;
//! - [`units_svg`]: new units per variant by day of first exposure;
//! - [`progress`]: the share of the planned sample in and the date a decision is expected (the
//!   templates draw it as a bar in HTML).
//!
//! Every chart is sized by its `viewBox` with `width="100%"`, so it fits a 390 px phone with
//! labels of at least 11 px there; it has `role="img"`, a `<title>` and a specific alt text
//! (the `*_alt` functions, which the mail's `<img>` reuses), and all user text is escaped.
//! Only tests on the relative scale are drawn on the percent axis. No IO, not async.

use std::fmt::Write;

use chrono::NaiveDate;

use super::chart::{INK, MUTED, tick_step};
use super::escape::escape_html;
use super::test_method::Test;
use crate::numbers::{compact, count, percent, signed_percent};
use crate::results::{ExperimentResult, InferenceScale, Recommendation, Role, TrendPoint};

/// The viewBox width: at 358 px (a 390 px phone less the page's padding) a 14-unit label is
/// 11.9 px; the page caps the chart's width so it does not grow huge on a desktop.
const WIDTH: f64 = 420.0;
const FONT: f64 = 14.0;
const LEFT: f64 = 58.0;
/// Room for half of the last date label, centred on the last day.
const RIGHT: f64 = 26.0;
const PLOT_HEIGHT: f64 = 170.0;
/// At most this many date labels, so they never overlap (a label is ~45 units wide).
const MAX_LABELS: usize = 7;
/// Colours per variant against the control, with contrast on white.
const PALETTE: [&str; 5] = ["#0a6ebd", "#c2410c", "#6f42c1", "#1a7f37", "#9a6700"];
/// The control's colour where it has a line (units): grey, so each treatment variant keeps its
/// palette colour in every chart.
const CONTROL: &str = "#57606a";

/// `variant`'s colour in every chart: grey for the control (the first configured variant),
/// else the palette by its place among the treatment variants (by first appearance when it is
/// not configured).
fn colour_of(result: &ExperimentResult, variant: &str, fallback: usize) -> &'static str {
    match result.variants.iter().position(|v| v.name == variant) {
        Some(0) => CONTROL,
        Some(i) => PALETTE[(i - 1) % PALETTE.len()],
        None => PALETTE[fallback % PALETTE.len()],
    }
}

/// The metric whose story the report tells first: the primary, else the first metric.
pub fn story_metric(result: &ExperimentResult) -> Option<&str> {
    let primary = result.metrics.iter().find(|m| m.role == Role::Primary).or(result.metrics.first());
    primary.map(|m| m.name.as_str())
}

/// One variant's line: (report date, estimate, interval, significant) per point.
struct Series {
    variant: String,
    points: Vec<(NaiveDate, f64, [f64; 2], bool)>,
}

/// The relative-scale points of `metric`, per variant against the control, in date order.
fn series(trend: &[TrendPoint], metric: &str) -> Vec<Series> {
    let mut all: Vec<Series> = Vec::new();
    for point in trend {
        for e in point.effects.iter().filter(|e| e.metric == metric && e.scale == InferenceScale::Relative) {
            let at = match all.iter().position(|s| s.variant == e.variant) {
                Some(at) => at,
                None => {
                    all.push(Series { variant: e.variant.clone(), points: Vec::new() });
                    all.len() - 1
                }
            };
            all[at].points.push((point.report_date, e.estimate, e.ci, e.significant));
        }
    }
    all
}

/// Text cut to `max` characters with an ellipsis.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    } else {
        text.into()
    }
}

/// The indices of `n` dated points that get a label: the last (today) and every `step`-th
/// before it, at most [`MAX_LABELS`].
fn labelled(n: usize) -> Vec<usize> {
    let step = n.div_ceil(MAX_LABELS).max(1);
    (0..n).filter(|i| (n - 1 - i).is_multiple_of(step)).collect()
}

/// `11-23`: a date label that cannot wrap (the year is in the alt text and the caption).
fn short_date(date: NaiveDate) -> String {
    date.format("%m-%d").to_string()
}

/// The x of `date` in a plot from `first` to `last` (one point: the middle).
fn x_of(date: NaiveDate, first: NaiveDate, last: NaiveDate) -> f64 {
    let plot_width = WIDTH - LEFT - RIGHT;
    let days = (last - first).num_days();
    if days == 0 {
        return LEFT + plot_width / 2.0;
    }
    LEFT + plot_width * (date - first).num_days() as f64 / days as f64
}

/// The document's opening: size, role, title (the alt text) and a white ground.
fn open(svg: &mut String, height: f64, alt: &str) {
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="{FONT}" role="img" aria-label="{alt}"><title>{alt}</title><rect width="{WIDTH}" height="{height}" fill="#ffffff"/>"##,
        alt = escape_html(alt)
    );
}

/// The chart's heading and, below it, a legend of the variants; returns the y the plot starts
/// at. Legend items flow onto as many lines as they need.
fn heading_and_legend(svg: &mut String, heading: &str, variants: &[(&str, &str)], key: Option<&str>) -> f64 {
    let _ = write!(
        svg,
        r#"<text x="8" y="20" font-size="15" font-weight="bold" fill="{INK}">{}</text>"#,
        escape_html(&cut(heading, 44))
    );
    let (mut x, mut y) = (8.0, 42.0);
    let mut items: Vec<(String, Option<&str>)> =
        variants.iter().map(|(name, colour)| (cut(name, 22), Some(*colour))).collect();
    if let Some(key) = key {
        items.push((key.to_string(), None));
    }
    for (label, colour) in items {
        // ~0.6 em per character in DejaVu Sans at this size.
        let width = label.chars().count() as f64 * FONT * 0.6 + if colour.is_some() { 22.0 } else { 0.0 };
        if x > 8.0 && x + width > WIDTH - RIGHT {
            (x, y) = (8.0, y + 20.0);
        }
        let text_x = match colour {
            Some(colour) => {
                let _ = write!(svg, r#"<rect x="{x:.1}" y="{:.1}" width="14" height="4" fill="{colour}"/>"#, y - 6.0);
                x + 18.0
            }
            None => x,
        };
        let _ = write!(svg, r#"<text x="{text_x:.1}" y="{y:.1}" fill="{MUTED}">{}</text>"#, escape_html(&label));
        x += width + 14.0;
    }
    y + 16.0
}

/// Date labels under the plot at `axis_y` for `dates` (sorted), at most [`MAX_LABELS`].
fn date_labels(svg: &mut String, dates: &[NaiveDate], axis_y: f64) {
    let (Some(&first), Some(&last)) = (dates.first(), dates.last()) else { return };
    for i in labelled(dates.len()) {
        let x = x_of(dates[i], first, last);
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="{MUTED}">{}</text>"#,
            axis_y + 22.0,
            short_date(dates[i])
        );
    }
}

/// The alt text of [`effect_svg`]: what the chart shows and where each line ends.
pub fn effect_alt(result: &ExperimentResult, metric: &str) -> Option<String> {
    let all = series(&result.trend, metric);
    let last_date = all.iter().filter_map(|s| s.points.last()).map(|p| p.0).max()?;
    let first_date = all.iter().filter_map(|s| s.points.first()).map(|p| p.0).min()?;
    let ends: Vec<String> = all
        .iter()
        .filter_map(|s| {
            let (date, estimate, ci, _) = s.points.last()?;
            Some(format!(
                "{} {} [{}, {}] on {date}",
                s.variant,
                signed_percent(*estimate, 1),
                signed_percent(ci[0], 1),
                signed_percent(ci[1], 1)
            ))
        })
        .collect();
    let span = if first_date == last_date {
        format!("on {last_date} (the first report)")
    } else {
        format!("from {first_date} to {last_date}")
    };
    Some(format!(
        "Cumulative relative effect on {metric} against the control by report date {span}, with {}s: {}",
        Test::of(result).interval_label(),
        ends.join("; ")
    ))
}

/// `metric`'s cumulative relative effect by report date: per variant against the control a
/// line through the estimates, a band for the interval (a bar when there is one point), filled
/// dots where the test was significant; `None` when no point has a relative-scale test.
pub fn effect_svg(result: &ExperimentResult, metric: &str) -> Option<String> {
    let all = series(&result.trend, metric);
    let alt = effect_alt(result, metric)?;
    let mut dates: Vec<NaiveDate> = all.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
    dates.sort();
    dates.dedup();
    let (first, last) = (*dates.first()?, *dates.last()?);

    // The axis holds the estimates, today's intervals and zero; earlier (wider) intervals
    // extend it by at most its span again, and are cut there: a wide first day must not
    // flatten the rest of the story.
    let today: Vec<f64> =
        all.iter().filter_map(|s| s.points.last().filter(|p| p.0 == last)).flat_map(|p| [p.2[0], p.2[1]]).collect();
    let core = all.iter().flat_map(|s| s.points.iter().map(|p| p.1)).chain(today).chain([0.0]);
    let (core_lo, core_hi) = core.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let span = (core_hi - core_lo).max(0.01);
    let (ci_lo, ci_hi) = all
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.2))
        .fold((core_lo, core_hi), |(lo, hi), ci| (lo.min(ci[0]), hi.max(ci[1])));
    let (lo, hi) = (ci_lo.max(core_lo - span), ci_hi.min(core_hi + span));
    let pad = (hi - lo).max(0.01) * 0.08;
    let step = tick_step(hi - lo + 2.0 * pad, 4.0);
    let (lo, hi) = (((lo - pad) / step).floor() * step, ((hi + pad) / step).ceil() * step);
    let decimals = if step < 0.001 {
        2
    } else if step < 0.01 {
        1
    } else {
        0
    };

    let variants: Vec<(&str, &str)> =
        all.iter().enumerate().map(|(k, s)| (s.variant.as_str(), colour_of(result, &s.variant, k))).collect();
    let one_point = dates.len() == 1;
    let mut svg = String::new();
    let footnote = if one_point { 22.0 } else { 0.0 };
    // The legend's height is known once drawn: draw it into its own buffer first.
    let mut body = String::new();
    let role = result.metrics.iter().find(|m| m.name == metric).map(|m| format!(" ({})", m.role.name()));
    let heading = format!("{metric}{}: effect by day", role.unwrap_or_default());
    let top = heading_and_legend(&mut body, &heading, &variants, Some("● significant"));
    let axis_y = top + PLOT_HEIGHT;
    let height = axis_y + 32.0 + footnote;
    open(&mut svg, height, &alt);
    svg.push_str(&body);
    let y = |v: f64| top + (hi - v.clamp(lo, hi)) / (hi - lo) * PLOT_HEIGHT;

    let mut tick = lo;
    while tick <= hi + step * 1e-9 {
        let ty = y(tick);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#eaeef2" stroke-width="1"/>"##,
            WIDTH - RIGHT
        );
        let label = if tick.abs() < step * 1e-9 { "0%".to_string() } else { signed_percent(tick, decimals) };
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{MUTED}">{}</text>"#,
            LEFT - 6.0,
            ty + 5.0,
            escape_html(&label)
        );
        tick += step;
    }
    let zero = y(0.0);
    let _ = write!(
        svg,
        r#"<line x1="{LEFT}" y1="{zero:.1}" x2="{:.1}" y2="{zero:.1}" stroke="{INK}" stroke-width="1.2"/>"#,
        WIDTH - RIGHT
    );
    for (k, s) in all.iter().enumerate() {
        let colour = colour_of(result, &s.variant, k);
        let x = |d: NaiveDate| x_of(d, first, last);
        if s.points.len() > 1 {
            let upper = s.points.iter().map(|p| format!("{:.1},{:.1}", x(p.0), y(p.2[1])));
            let lower = s.points.iter().rev().map(|p| format!("{:.1},{:.1}", x(p.0), y(p.2[0])));
            let band: Vec<String> = upper.chain(lower).collect();
            let _ = write!(svg, r#"<polygon points="{}" fill="{colour}" fill-opacity="0.14"/>"#, band.join(" "));
            let line: Vec<String> = s.points.iter().map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1))).collect();
            let _ = write!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2.5" stroke-linejoin="round"/>"#,
                line.join(" ")
            );
        }
        for (date, estimate, ci, significant) in &s.points {
            let cx = x(*date);
            if one_point {
                let _ = write!(
                    svg,
                    r#"<line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="{colour}" stroke-width="3" stroke-linecap="round"/>"#,
                    y(ci[0]),
                    y(ci[1])
                );
            }
            let fill = if *significant { colour } else { "#ffffff" };
            let _ = write!(
                svg,
                r#"<circle cx="{cx:.1}" cy="{:.1}" r="4" fill="{fill}" stroke="{colour}" stroke-width="2"><title>{}</title></circle>"#,
                y(*estimate),
                escape_html(&format!(
                    "{date} · {}: {} [{}, {}]{}",
                    s.variant,
                    signed_percent(*estimate, 2),
                    signed_percent(ci[0], 2),
                    signed_percent(ci[1], 2),
                    if *significant { ", significant" } else { "" }
                ))
            );
        }
    }
    date_labels(&mut svg, &dates, axis_y);
    if one_point {
        let _ = write!(
            svg,
            r#"<text x="8" y="{:.1}" fill="{MUTED}">The story starts today; each daily run adds a point.</text>"#,
            axis_y + 46.0
        );
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// New units per variant by day of first exposure, every day of the window (0 when none).
fn units_by_day(result: &ExperimentResult) -> Vec<(NaiveDate, Vec<u64>)> {
    let n_variants = result.variants.len();
    let mut days: Vec<(NaiveDate, Vec<u64>)> = result
        .window
        .start
        .iter_days()
        .take_while(|d| *d <= result.window.end)
        .map(|d| (d, vec![0; n_variants]))
        .collect();
    for slice in &result.srm.by_day {
        let Ok(date) = slice.slice.parse::<NaiveDate>() else { continue };
        if let Some((_, units)) = days.iter_mut().find(|(d, _)| *d == date) {
            for (to, from) in units.iter_mut().zip(&slice.units) {
                *to = *from;
            }
        }
    }
    days
}

/// The alt text of [`units_svg`].
pub fn units_alt(result: &ExperimentResult) -> Option<String> {
    let days = units_by_day(result);
    let (first, last) = (days.first()?.0, days.last()?.0);
    let totals: Vec<String> = result
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let total: u64 = days.iter().map(|(_, units)| units[i]).sum();
            let today = days.last().map_or(0, |(_, units)| units[i]);
            format!("{} {} in all, {} on {last}", v.name, count(total), count(today))
        })
        .collect();
    Some(format!("New units per variant by day of first exposure from {first} to {last}: {}", totals.join("; ")))
}

/// New units per variant by day of first exposure over the window, a line per variant (the
/// control first); `None` for an experiment without variants or units.
pub fn units_svg(result: &ExperimentResult) -> Option<String> {
    let days = units_by_day(result);
    if result.variants.is_empty() || days.iter().all(|(_, units)| units.iter().all(|&n| n == 0)) {
        return None;
    }
    let alt = units_alt(result)?;
    let dates: Vec<NaiveDate> = days.iter().map(|(d, _)| *d).collect();
    let (first, last) = (dates[0], dates[dates.len() - 1]);
    let max = days.iter().flat_map(|(_, units)| units.iter().copied()).max().unwrap_or(0).max(1) as f64;
    let step = tick_step(max, 4.0).max(1.0);
    let hi = (max / step).ceil() * step;

    let names: Vec<&str> = result.variants.iter().map(|v| v.name.as_str()).collect();
    let mut body = String::new();
    let legend: Vec<(&str, &str)> =
        names.iter().enumerate().map(|(i, name)| (*name, colour_of(result, name, i))).collect();
    let top = heading_and_legend(&mut body, "New units per variant per day", &legend, None);
    let axis_y = top + PLOT_HEIGHT;
    let height = axis_y + 32.0;
    let mut svg = String::new();
    open(&mut svg, height, &alt);
    svg.push_str(&body);
    let y = |v: f64| top + (hi - v) / hi * PLOT_HEIGHT;
    let mut tick = 0.0;
    while tick <= hi + step * 1e-9 {
        let ty = y(tick);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="{}" stroke-width="1"/>"##,
            WIDTH - RIGHT,
            if tick == 0.0 { INK } else { "#eaeef2" }
        );
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{MUTED}">{}</text>"#,
            LEFT - 6.0,
            ty + 5.0,
            compact(tick)
        );
        tick += step;
    }
    for (i, name) in names.iter().enumerate() {
        let colour = colour_of(result, name, i);
        let x = |d: NaiveDate| x_of(d, first, last);
        let line: Vec<String> =
            days.iter().map(|(d, units)| format!("{:.1},{:.1}", x(*d), y(units[i] as f64))).collect();
        if days.len() > 1 {
            let _ = write!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2.5" stroke-linejoin="round"/>"#,
                line.join(" ")
            );
        }
        for (d, units) in &days {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{}</title></circle>"#,
                x(*d),
                y(units[i] as f64),
                escape_html(&format!("{d} · {name}: {} new units", count(units[i])))
            );
        }
    }
    date_labels(&mut svg, &dates, axis_y);
    svg.push_str("</svg>");
    Some(svg)
}

/// Progress to the planned sample on the report date, for a bar.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Progress {
    /// 0 to 100, the bar's width.
    pub percent: f64,
    /// `62% of the planned 48,000 units; decision expected 2026-12-14`.
    pub text: String,
}

/// Where the experiment stands against its planned sample today; `None` without a plan or
/// while its tests cannot be sized.
pub fn progress(result: &ExperimentResult) -> Option<Progress> {
    let today = result.trend.last()?.progress.as_ref()?;
    let fraction = today.fraction()?;
    let planned = today.units_needed.map(|n| format!(" of the planned {} units", count(n))).unwrap_or_default();
    let share = percent(fraction, 0);
    let text = match (result.decision.recommendation, today.sample_reached, today.expected_verdict_date) {
        // A verdict ends the wait: no date is expected any more.
        (Recommendation::Promote | Recommendation::Rollback, ..) => format!("Verdict reached with {share}{planned}"),
        // Paused or inconclusive: the verdict says what to do, not a date.
        (Recommendation::Pause | Recommendation::Inconclusive, ..) => format!("{share}{planned}"),
        (Recommendation::Continue, true, _) => format!("{share}{planned}: the planned sample is in"),
        (Recommendation::Continue, false, Some(date)) => format!("{share}{planned}; decision expected {date}"),
        (Recommendation::Continue, false, None) => {
            format!("{share}{planned}; no decision date can be estimated yet")
        }
    };
    Some(Progress { percent: (fraction * 1000.0).round() / 10.0, text })
}

/// The story as the templates show it: the charts, their alt texts, the progress bar and the
/// story metric's points as table rows.
#[derive(Debug, serde::Serialize)]
pub(super) struct StoryModel {
    /// The metric whose story comes first (the primary).
    metric: String,
    effect_svg: Option<String>,
    effect_alt: Option<String>,
    /// Every other metric's chart, for a collapsed section: (metric, SVG).
    other_metrics: Vec<(String, String)>,
    units_svg: Option<String>,
    units_alt: Option<String>,
    progress: Option<Progress>,
    /// The story metric's points, oldest first.
    rows: Vec<StoryRow>,
    /// Only today's point: the story starts today.
    starts_today: bool,
}

#[derive(Debug, serde::Serialize)]
struct StoryRow {
    date: String,
    variant: String,
    effect: String,
    ci: String,
    /// Units per variant, control first: `1,000 / 1,012`.
    units: String,
}

/// The story of `result`, or `None` when it has no point (a failed experiment).
pub(super) fn story_model(result: &ExperimentResult) -> Option<StoryModel> {
    if result.trend.is_empty() {
        return None;
    }
    let metric = story_metric(result)?.to_string();
    let rows = result
        .trend
        .iter()
        .flat_map(|point| {
            let units = point.units.iter().map(|u| count(u.units)).collect::<Vec<_>>().join(" / ");
            point.effects.iter().filter(|e| e.metric == metric).map(move |e| {
                let (effect, ci) = match e.scale {
                    InferenceScale::Relative => {
                        (signed_percent(e.estimate, 2), crate::numbers::percent_interval(e.ci, 2))
                    }
                    InferenceScale::Absolute => (
                        format!("{} (absolute)", crate::numbers::value(e.estimate)),
                        format!("[{}, {}]", crate::numbers::value(e.ci[0]), crate::numbers::value(e.ci[1])),
                    ),
                };
                StoryRow {
                    date: point.report_date.to_string(),
                    variant: e.variant.clone(),
                    effect,
                    ci,
                    units: units.clone(),
                }
            })
        })
        .collect();
    let other_metrics = result
        .metrics
        .iter()
        .filter(|m| m.name != metric)
        .filter_map(|m| Some((m.name.clone(), effect_svg(result, &m.name)?)))
        .collect();
    Some(StoryModel {
        effect_svg: effect_svg(result, &metric),
        effect_alt: effect_alt(result, &metric),
        other_metrics,
        units_svg: units_svg(result),
        units_alt: units_alt(result),
        progress: progress(result),
        rows,
        starts_today: result.trend.len() == 1,
        metric,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{ExperimentHistory, SrmSlice, TrendProgress, sample_result};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).expect("a date")
    }

    /// The sample result with a story of `n` daily points ending 2026-11-20, the effect of
    /// `conversion` growing by a point a day.
    fn story(n: u32) -> ExperimentResult {
        let mut result = sample_result();
        let mut history = ExperimentHistory::new(&result.id);
        for k in 0..n {
            let mut earlier = sample_result();
            let i = earlier.metrics[0].comparisons[0].inference.as_mut().expect("a test");
            i.estimate = 0.01 * f64::from(k + 1);
            i.ci = [i.estimate - 0.05, i.estimate + 0.05];
            history.upsert(earlier.trend_point(day(21 - n + k)).expect("a point"));
        }
        result.trend = history.points;
        result
    }

    /// The numbers of an attribute in every element that has it.
    fn attribute(svg: &str, name: &str) -> Vec<f64> {
        svg.split(&format!(" {name}=\"")).skip(1).filter_map(|rest| rest.split('"').next()?.parse().ok()).collect()
    }

    #[test]
    fn each_point_is_placed_by_its_date_and_estimate() {
        let svg = effect_svg(&story(3), "conversion").expect("a chart");
        let xs = attribute(&svg, "cx");
        assert_eq!(xs.len(), 3, "one dot per day: {svg}");
        assert!((xs[0] - LEFT).abs() < 0.1 && (xs[2] - (WIDTH - RIGHT)).abs() < 0.1, "first and last day at the ends");
        assert!((xs[1] - (xs[0] + xs[2]) / 2.0).abs() < 0.1, "the middle day in the middle");
        let ys = attribute(&svg, "cy");
        assert!(ys[0] > ys[1] && ys[1] > ys[2], "a growing effect rises: {ys:?}");
        assert!(
            svg.contains("<title>2026-11-20 · treatment: +3.00% [−2.00%, +8.00%], significant</title></circle>"),
            "{svg}"
        );
        assert!(svg.contains(">0%</text>") && svg.contains(">+5%</text>"), "the percent axis");
        assert!(svg.contains(">conversion (primary): effect by day</text>"), "the heading names the metric's role");
        assert!(svg.contains("<polygon "), "the interval band");
        for label in ["11-18", "11-19", "11-20"] {
            assert!(svg.contains(&format!(">{label}</text>")), "{label}");
        }
        assert!(svg.contains(r#"role="img""#) && svg.contains(r#"width="100%""#) && svg.contains("viewBox="));
        assert!(!svg.contains("starts today"));
    }

    #[test]
    fn date_labels_are_few_and_end_today() {
        assert_eq!(labelled(1), vec![0]);
        assert_eq!(labelled(7), (0..7).collect::<Vec<_>>());
        assert_eq!(labelled(14), vec![1, 3, 5, 7, 9, 11, 13]);
        let many = labelled(60);
        assert!(many.len() <= MAX_LABELS && many.last() == Some(&59), "{many:?}");
        let svg = effect_svg(&story(14), "conversion").expect("a chart");
        let labels = svg.matches(r#"text-anchor="middle""#).count();
        assert_eq!(labels, 7, "at most seven date labels");
        // Neighbouring labels are at least a label's width (5 characters at 14 units) apart.
        let xs: Vec<f64> = labelled(14).iter().map(|&i| x_of(day(7 + i as u32), day(7), day(20))).collect();
        assert!(xs.windows(2).all(|w| w[1] - w[0] > 5.0 * FONT * 0.6), "{xs:?}");
    }

    #[test]
    fn one_point_is_a_dot_with_its_interval_and_says_the_story_starts() {
        let mut result = sample_result();
        result.trend = vec![result.trend_point(day(20)).expect("a point")];
        let svg = effect_svg(&result, "conversion").expect("a chart");
        assert_eq!(attribute(&svg, "cx").len(), 1);
        assert!(svg.contains("The story starts today; each daily run adds a point."));
        assert!(!svg.contains("<polygon"), "no band for one day");
        assert!(svg.contains(r#"stroke-linecap="round""#), "the interval as a bar");
        let alt = effect_alt(&result, "conversion").expect("alt");
        assert!(alt.contains("on 2026-11-20 (the first report)"), "{alt}");
        assert!(alt.contains("treatment +4.1% [+1.1%, +7.1%]"), "{alt}");
    }

    #[test]
    fn user_text_is_escaped() {
        let mut result = story(2);
        for point in &mut result.trend {
            point.effects[0].metric = "<b>conv</b>".into();
            point.effects[0].variant = "\"x&y\"".into();
        }
        result.variants[1].name = "<script>".into();
        result.srm.by_day =
            vec![SrmSlice { slice: "2026-11-20".into(), units: vec![5, 6], p_value: None, broken: false }];
        let svg = effect_svg(&result, "<b>conv</b>").expect("a chart");
        assert!(!svg.contains("<b>") && svg.contains("&lt;b&gt;conv&lt;/b&gt;"), "{svg}");
        assert!(svg.contains("&quot;x&amp;y&quot;"));
        let units = units_svg(&result).expect("a chart");
        assert!(!units.contains("<script>") && units.contains("&lt;script&gt;"));
    }

    #[test]
    fn no_relative_test_no_chart() {
        let mut result = story(2);
        for point in &mut result.trend {
            point.effects.iter_mut().for_each(|e| e.scale = InferenceScale::Absolute);
        }
        assert!(effect_svg(&result, "conversion").is_none());
        assert!(effect_svg(&story(2), "no such metric").is_none());
    }

    #[test]
    fn units_per_day_cover_the_window_and_the_alt_counts_them() {
        let mut result = sample_result();
        result.window = crate::results::Window { start: day(18), end: day(20), days: 3 };
        result.srm.by_day = vec![
            SrmSlice { slice: "2026-11-18".into(), units: vec![100, 98], p_value: None, broken: false },
            SrmSlice { slice: "2026-11-20".into(), units: vec![1200, 1190], p_value: None, broken: false },
        ];
        let svg = units_svg(&result).expect("a chart");
        assert_eq!(attribute(&svg, "cx").len(), 6, "three days of two variants, the empty day too");
        assert!(svg.contains("<title>2026-11-19 · control: 0 new units</title>"), "{svg}");
        assert!(svg.contains(">1.2k</text>") || svg.contains(">1.0k</text>"), "compact axis labels: {svg}");
        let alt = units_alt(&result).expect("alt");
        assert_eq!(
            alt,
            "New units per variant by day of first exposure from 2026-11-18 to 2026-11-20: control 1,300 in all, 1,200 on 2026-11-20; treatment 1,288 in all, 1,190 on 2026-11-20"
        );
    }

    #[test]
    fn a_variant_has_one_colour_in_every_chart_and_the_control_is_grey() {
        let mut result = story(2);
        result.srm.by_day =
            vec![SrmSlice { slice: "2026-11-20".into(), units: vec![5, 6], p_value: None, broken: false }];
        let effect = effect_svg(&result, "conversion").expect("a chart");
        let units = units_svg(&result).expect("a chart");
        let treatment = colour_of(&result, "treatment", 9);
        assert_eq!(treatment, PALETTE[0]);
        assert!(effect.contains(&format!(r#"stroke="{treatment}""#)));
        assert!(units.contains(&format!(r#"fill="{treatment}"><title>2026-11-20 · treatment"#)), "{units}");
        assert!(units.contains(&format!(r#"fill="{CONTROL}"><title>2026-11-20 · control"#)), "{units}");
    }

    #[test]
    fn progress_names_the_planned_sample_and_the_date() {
        let mut result = sample_result();
        result.decision.recommendation = Recommendation::Continue;
        let mut point = result.trend_point(day(20)).expect("a point");
        point.progress = Some(TrendProgress {
            units_needed: Some(48_000),
            units_toward_need: Some(29_760),
            units_now: 30_000,
            sample_reached: false,
            expected_verdict_date: Some(NaiveDate::from_ymd_opt(2026, 12, 14).expect("a date")),
        });
        result.trend = vec![point];
        let progress = progress(&result).expect("progress");
        assert_eq!(progress.text, "62% of the planned 48,000 units; decision expected 2026-12-14");
        assert_eq!(progress.percent, 62.0);
        result.decision.recommendation = Recommendation::Promote;
        assert_eq!(
            super::progress(&result).expect("progress").text,
            "Verdict reached with 62% of the planned 48,000 units"
        );
        result.decision.recommendation = Recommendation::Pause;
        assert_eq!(super::progress(&result).expect("progress").text, "62% of the planned 48,000 units", "no date");
        result.trend[0].progress = None;
        assert!(super::progress(&result).is_none());
    }

    #[test]
    fn the_png_of_a_trend_chart_has_its_text() {
        let svg = effect_svg(&story(5), "conversion").expect("a chart");
        let png = crate::render::png::svg_to_png(&svg, 2.0).expect("rasterizes");
        let pixmap = resvg::tiny_skia::Pixmap::decode_png(&png).expect("decodes");
        assert_eq!(pixmap.width(), (WIDTH * 2.0) as u32, "the viewBox's size, doubled");
    }
}
