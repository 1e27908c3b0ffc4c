//! Report model -> HTML and Markdown, through the tera templates in `templates/`, and the
//! same model -> the HTML part of a mail (`templates/email.html`: inline styles, tables, the
//! chart as a `cid:` PNG, no SVG and no script, because mail clients show neither).
//!
//! Every number is formatted here (with [`crate::numbers`]) so the templates only lay out
//! text, and all reports say exactly the same. Autoescaping is on for every template, each
//! with its format's escaping, so an experiment named `<script>alert(1)</script>` stays text
//! everywhere.
//!
//! Pure: no IO, not async (templates and fonts are compiled into the binary).

pub mod chart;
pub mod png;

use serde::Serialize;
use tera::{Context, Tera};

use crate::numbers::{count, percent, percent_interval, pvalue, signed_percent, value};
use crate::results::*;
use crate::runlog::StageTiming;

const HTML_TEMPLATE: &str = include_str!("../templates/report.html");
const MARKDOWN_TEMPLATE: &str = include_str!("../templates/report.md");
const EMAIL_TEMPLATE: &str = include_str!("../templates/email.html");

/// Facts about the run that the report shows beside the results.
#[derive(Debug, Clone, Serialize)]
pub struct RunFacts {
    pub job: String,
    pub report_date: String,
    pub generated_at: String,
    /// The source URL without credentials or query.
    pub source: String,
    pub files_read: usize,
    pub bytes_read: u64,
    pub rows_read: u64,
    pub timings: Vec<StageTiming>,
    pub elapsed_seconds: f64,
    pub sla_seconds: f64,
}

/// Why a report could not be rendered (a template bug: the templates ship in the binary).
#[derive(Debug, thiserror::Error)]
#[error("cannot render `{template}`: {message}")]
pub struct RenderError {
    template: &'static str,
    message: String,
}

/// Compiled templates: one tera instance per output format, each with its own escaping.
pub struct Renderer {
    html: Tera,
    markdown: Tera,
    email: Tera,
}

/// One experiment's part of a mail: its result, the run facts, and what the mail carries
/// beside the text.
pub struct EmailSection<'a> {
    /// The experiment's results (as in `results.json`).
    pub result: &'a ExperimentResult,
    /// Facts about the run.
    pub facts: &'a RunFacts,
    /// Content-ID of the chart's inline PNG, when the mail carries one.
    pub chart_cid: Option<String>,
    /// The exports and where the reader finds each.
    pub files: Vec<EmailFile>,
}

/// An export as a mail lists it: attached, linked, or where to find it.
#[derive(Debug, Clone, Serialize)]
pub struct EmailFile {
    /// File name (`results.parquet`).
    pub name: String,
    /// Size in words (`1.2 MB`).
    pub size: String,
    /// Attached to this message.
    pub attached: bool,
    /// A link to the uploaded copy, when it was too large to attach and a base URL is known.
    pub link: Option<String>,
    /// Where the uploaded copy is, when it was too large to attach and there is no link.
    pub location: Option<String>,
}

/// The text around the sections of a mail.
pub struct EmailFrame<'a> {
    /// The `<title>`: the subject.
    pub title: &'a str,
    /// A sentence above the sections (digests).
    pub intro: Option<&'a str>,
    /// A sentence below them (why some exports are linked rather than attached).
    pub note: Option<&'a str>,
    /// Where the full outputs are (`s3://bucket/prefix/job/date/`), when they were uploaded.
    pub upload_hint: Option<&'a str>,
    /// When the run made the outputs.
    pub generated_at: &'a str,
}

#[derive(Serialize)]
struct EmailModel<'a> {
    title: &'a str,
    intro: Option<&'a str>,
    note: Option<&'a str>,
    upload_hint: Option<&'a str>,
    generated_at: &'a str,
    sections: Vec<EmailSectionModel>,
}

#[derive(Serialize)]
struct EmailSectionModel {
    report: ReportModel,
    chart_cid: Option<String>,
    files: Vec<EmailFile>,
}

/// HTML escaping: the five significant characters as entities.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
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

/// Markdown escaping that keeps `` `name` `` spans as code: outside them, the characters
/// Markdown gives meaning to are backslash-escaped and `& < >` become entities (so no raw HTML
/// survives); inside them, text is literal by CommonMark's rules, except `|`, which GFM
/// tables need escaped even there. Line breaks become spaces so a value cannot end a table row.
pub fn escape_markdown(text: &str) -> String {
    fn plain(out: &mut String, text: &str) {
        for c in text.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '\\' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
                    out.push('\\');
                    out.push(c);
                }
                '\n' | '\r' => out.push(' '),
                c => out.push(c),
            }
        }
    }
    let segments: Vec<&str> = text.split('`').collect();
    let paired = segments.len() % 2 == 1;
    let mut out = String::with_capacity(text.len() + 8);
    for (i, segment) in segments.iter().enumerate() {
        let inside = i % 2 == 1;
        if inside && (paired || i + 1 < segments.len()) && !segment.is_empty() {
            out.push('`');
            out.push_str(&segment.replace('|', "\\|").replace(['\n', '\r'], " "));
            out.push('`');
        } else {
            if inside {
                out.push_str("\\`");
            }
            plain(&mut out, segment);
        }
    }
    out
}

impl Renderer {
    pub fn new() -> Result<Self, RenderError> {
        let compile = |name: &'static str, source: &str, escape: fn(&str) -> String| {
            let mut tera = Tera::default();
            tera.add_raw_template(name, source)
                .map_err(|e| RenderError { template: name, message: error_chain(&e) })?;
            tera.autoescape_on(vec![name]);
            tera.set_escape_fn(escape);
            tera.register_filter("code_spans", code_spans_filter);
            Ok::<_, RenderError>(tera)
        };
        Ok(Self {
            html: compile("report.html", HTML_TEMPLATE, escape_html)?,
            markdown: compile("report.md", MARKDOWN_TEMPLATE, escape_markdown)?,
            email: compile("email.html", EMAIL_TEMPLATE, escape_html)?,
        })
    }

    /// The HTML part of a mail: one section per experiment, from the same report model as
    /// `report.html`.
    pub fn email_html(&self, frame: &EmailFrame<'_>, sections: &[EmailSection<'_>]) -> Result<String, RenderError> {
        let model = EmailModel {
            title: frame.title,
            intro: frame.intro,
            note: frame.note,
            upload_hint: frame.upload_hint,
            generated_at: frame.generated_at,
            sections: sections
                .iter()
                .map(|s| EmailSectionModel {
                    report: ReportModel::new(s.result, s.facts),
                    chart_cid: s.chart_cid.clone(),
                    files: s.files.clone(),
                })
                .collect(),
        };
        let context = Context::from_serialize(&model)
            .map_err(|e| RenderError { template: "email.html", message: error_chain(&e) })?;
        self.email
            .render("email.html", &context)
            .map_err(|e| RenderError { template: "email.html", message: error_chain(&e) })
    }

    /// Renders both reports of one experiment: `(html, markdown)`.
    pub fn report(&self, result: &ExperimentResult, facts: &RunFacts) -> Result<(String, String), RenderError> {
        let model = ReportModel::new(result, facts);
        let context = Context::from_serialize(&model)
            .map_err(|e| RenderError { template: "report", message: error_chain(&e) })?;
        let html = self
            .html
            .render("report.html", &context)
            .map_err(|e| RenderError { template: "report.html", message: error_chain(&e) })?;
        let markdown = self
            .markdown
            .render("report.md", &context)
            .map_err(|e| RenderError { template: "report.md", message: error_chain(&e) })?;
        Ok((html, markdown))
    }
}

/// Escapes text, then turns `` `name` `` spans into `<code>` elements (HTML only). The input
/// is escaped first, so nothing in it can become markup.
pub fn code_spans(text: &str) -> String {
    let escaped = escape_html(&text.replace('`', "\u{1}"));
    let mut out = String::with_capacity(escaped.len());
    let mut parts = escaped.split('\u{1}');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    let rest: Vec<&str> = parts.collect();
    let mut i = 0;
    while i < rest.len() {
        if i + 1 < rest.len() {
            out.push_str("<code>");
            out.push_str(rest[i]);
            out.push_str("</code>");
            out.push_str(rest[i + 1]);
            i += 2;
        } else {
            // An unpaired backtick stays a backtick.
            out.push('`');
            out.push_str(rest[i]);
            i += 1;
        }
    }
    out
}

fn code_spans_filter(
    value: &tera::Value,
    _: &std::collections::HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    let text = value.as_str().ok_or_else(|| tera::Error::msg("code_spans takes a string"))?;
    Ok(tera::Value::String(code_spans(text)))
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Everything the templates show, already formatted.
#[derive(Debug, Serialize)]
struct ReportModel {
    title: String,
    experiment: String,
    description: Option<String>,
    failed: bool,
    error: Option<String>,
    recommendation: String,
    recommendation_class: &'static str,
    verdict: String,
    reasons: Vec<String>,
    rule: String,
    reason_codes: String,
    /// One sentence on how to read the intervals (always-valid or fixed-horizon).
    inference_note: String,
    checks: Vec<CheckRow>,
    variants: Vec<VariantRow>,
    metrics: Vec<MetricTable>,
    /// The allocation by day, shown when the SRM check does not pass.
    srm_days: Vec<SrmRow>,
    breakdowns: Vec<BreakdownTable>,
    preliminary: bool,
    key_metrics: Vec<KeyMetric>,
    chart_svg: Option<String>,
    level: String,
    settings: String,
    window: String,
    data: Vec<(String, String)>,
    timings: Vec<TimingRow>,
    run: RunFacts,
}

#[derive(Debug, Serialize)]
struct CheckRow {
    name: String,
    status: &'static str,
    p_value: String,
    detail: String,
}

#[derive(Debug, Serialize)]
struct VariantRow {
    name: String,
    units: String,
    expected: String,
    observed: String,
}

#[derive(Debug, Serialize)]
struct MetricTable {
    name: String,
    role: String,
    kind: String,
    better: &'static str,
    /// Capping, CUPED and guardrail margin, in words.
    notes: Vec<String>,
    rows: Vec<MetricRow>,
}

#[derive(Debug, Serialize)]
struct SrmRow {
    day: String,
    units: String,
    shares: String,
    p_value: String,
    broken: bool,
}

#[derive(Debug, Serialize)]
struct BreakdownTable {
    dimension: String,
    metric: String,
    rows: Vec<BreakdownRow>,
}

#[derive(Debug, Serialize)]
struct BreakdownRow {
    value: String,
    units: String,
    means: String,
    relative: String,
    ci_relative: String,
    p_value: String,
}

#[derive(Debug, Serialize)]
struct MetricRow {
    variant: String,
    is_control: bool,
    units: String,
    mean: String,
    relative: String,
    ci_relative: String,
    absolute: String,
    ci_absolute: String,
    p_value: String,
    p_adjusted: String,
    significant: bool,
    direction: &'static str,
    notes: String,
    /// Always-valid interval, Bayesian view, CUPED, non-inferiority and power, in words.
    details: Vec<String>,
}

#[derive(Debug, Serialize)]
struct KeyMetric {
    name: String,
    role: String,
    summary: String,
}

#[derive(Debug, Serialize)]
struct TimingRow {
    stage: String,
    seconds: String,
    share: String,
}

fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Better => "better",
        Direction::Worse => "worse",
        Direction::Neutral => "neutral",
    }
}

fn dash() -> String {
    "–".into()
}

impl ReportModel {
    fn new(result: &ExperimentResult, facts: &RunFacts) -> Self {
        let level = percent(1.0 - result.settings.alpha, 0);
        let rec = result.decision.recommendation;
        let verdict = match (&result.decision.variant, rec) {
            (Some(v), Recommendation::Promote) => format!("Promote {v}"),
            (Some(v), Recommendation::Rollback) => format!("Roll back {v}"),
            (_, Recommendation::Continue) => "Keep running".into(),
            (_, Recommendation::Pause) => "Pause the rollout".into(),
            (_, _) if result.status == Status::Failed => "Failed: no report".into(),
            _ => "Inconclusive".into(),
        };
        let checks = result
            .checks
            .iter()
            .map(|c| CheckRow {
                name: c.name.clone(),
                status: match c.status {
                    CheckStatus::Pass => "pass",
                    CheckStatus::Warn => "warn",
                    CheckStatus::Fail => "fail",
                },
                p_value: c.p_value.map(pvalue).unwrap_or_else(dash),
                detail: c.detail.clone(),
            })
            .collect();
        let variants = result
            .variants
            .iter()
            .map(|v| VariantRow {
                name: v.name.clone(),
                units: count(v.units),
                expected: percent(v.expected_weight, 1),
                observed: v.observed_share.map(|s| percent(s, 1)).unwrap_or_else(dash),
            })
            .collect();
        let metrics: Vec<MetricTable> = result.metrics.iter().map(|m| metric_table(m, &level)).collect();
        let srm_failed = result.check("srm").is_some_and(|c| c.status != CheckStatus::Pass);
        let srm_days = if srm_failed {
            result
                .srm
                .by_day
                .iter()
                .map(|d| {
                    let total: u64 = d.units.iter().sum();
                    SrmRow {
                        day: d.slice.clone(),
                        units: d.units.iter().map(|&n| count(n)).collect::<Vec<_>>().join(" / "),
                        shares: d
                            .units
                            .iter()
                            .map(|&n| percent(n as f64 / total.max(1) as f64, 1))
                            .collect::<Vec<_>>()
                            .join(" / "),
                        p_value: d.p_value.map(pvalue).unwrap_or_else(dash),
                        broken: d.broken,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let breakdowns = result
            .breakdowns
            .iter()
            .map(|b| BreakdownTable {
                dimension: b.dimension.clone(),
                metric: b.metric.clone(),
                rows: b
                    .slices
                    .iter()
                    .map(|slice| {
                        let c = slice.comparisons.first();
                        BreakdownRow {
                            value: slice.value.clone(),
                            units: count(slice.units),
                            means: slice
                                .variants
                                .iter()
                                .map(|v| v.mean.map(value).unwrap_or_else(dash))
                                .collect::<Vec<_>>()
                                .join(" / "),
                            relative: c
                                .and_then(|c| c.relative_effect)
                                .map(|r| signed_percent(r, 1))
                                .unwrap_or_else(dash),
                            ci_relative: c
                                .and_then(|c| c.ci_relative)
                                .map(|ci| percent_interval(ci, 1))
                                .unwrap_or_else(dash),
                            p_value: c.and_then(|c| c.p_value).map(pvalue).unwrap_or_else(dash),
                        }
                    })
                    .collect(),
            })
            .collect();
        let inference_note = if result.settings.sequential {
            "Intervals and p-values marked always-valid are confidence sequences: safe to read daily, and the recommendation is made from them.".to_string()
        } else {
            "Intervals are fixed-horizon: read them once, at the planned end of the test (turn on [stats] sequential to read daily).".to_string()
        };
        let any_significant = result.metrics.iter().any(|m| m.comparisons.iter().any(|c| c.significant));
        let key_metrics = result
            .metrics
            .iter()
            .take(4)
            .map(|m| KeyMetric {
                name: m.name.clone(),
                role: m.role.clone(),
                summary: m
                    .comparisons
                    .iter()
                    .map(|c| match (c.relative_effect, c.ci_relative) {
                        (Some(r), Some(ci)) => {
                            format!("{} {} {}", c.variant, signed_percent(r, 1), percent_interval(ci, 1))
                        }
                        (Some(r), None) => format!("{} {}", c.variant, signed_percent(r, 1)),
                        _ => format!("{} not computable", c.variant),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            })
            .collect();
        let elapsed = facts.elapsed_seconds.max(1e-9);
        let timings = facts
            .timings
            .iter()
            .map(|t| TimingRow {
                stage: t.stage.clone(),
                seconds: format!("{:.2} s", t.seconds),
                share: percent(t.seconds / facts.sla_seconds, 1),
            })
            .collect();
        let data = vec![
            ("Files read".to_string(), format!("{} ({})", count(facts.files_read as u64), bytes(facts.bytes_read))),
            ("Rows read".to_string(), count(facts.rows_read)),
            ("Exposure rows for this experiment".to_string(), count(result.traffic.exposure_rows)),
            ("Events counted toward metrics".to_string(), count(result.traffic.counted_events)),
            ("Units excluded (several or unknown variants)".to_string(), count(result.traffic.excluded_units)),
            (
                "New units per variant per day".to_string(),
                result.traffic.units_per_variant_per_day.map(|d| count(d.round() as u64)).unwrap_or_else(dash),
            ),
            (
                "Run time".to_string(),
                format!(
                    "{elapsed:.2} s of the {:.0} s SLA ({})",
                    facts.sla_seconds,
                    percent(elapsed / facts.sla_seconds, 1)
                ),
            ),
        ];
        ReportModel {
            title: format!("{}: {} — {}", result.id, verdict, facts.report_date),
            experiment: result.id.clone(),
            description: None,
            failed: result.status == Status::Failed,
            error: result.error.clone(),
            recommendation: rec.name().to_uppercase(),
            recommendation_class: rec.name(),
            verdict,
            reasons: result.decision.reasons.clone(),
            rule: result.decision.rule.clone(),
            reason_codes: result.decision.reason_codes.join(", "),
            inference_note,
            srm_days,
            breakdowns,
            checks,
            variants,
            metrics,
            preliminary: !any_significant && result.status == Status::Ok,
            key_metrics,
            chart_svg: chart::relative_effects_svg(result),
            settings: format!(
                "alpha {} ({} correction), power {}, minimum detectable effect {}",
                result.settings.alpha,
                result.settings.correction,
                percent(result.settings.power, 0),
                percent(result.settings.mde, 1)
            ),
            level,
            window: format!("{} to {} ({} days, UTC)", result.window.start, result.window.end, result.window.days),
            data,
            timings,
            run: facts.clone(),
        }
    }
}

fn metric_table(m: &MetricResult, level: &str) -> MetricTable {
    let control = m.variants.first().map(|v| v.variant.clone()).unwrap_or_default();
    let rows = m
        .variants
        .iter()
        .map(|v| {
            let comparison = m.comparisons.iter().find(|c| c.variant == v.variant);
            let text = |f: &dyn Fn(&ComparisonResult) -> Option<String>| comparison.and_then(f).unwrap_or_else(dash);
            MetricRow {
                variant: v.variant.clone(),
                is_control: v.variant == control,
                units: count(v.units),
                mean: v.mean.map(value).unwrap_or_else(dash),
                relative: text(&|c| c.relative_effect.map(|r| signed_percent(r, 2))),
                ci_relative: text(&|c| c.ci_relative.map(|ci| percent_interval(ci, 2))),
                absolute: text(&|c| c.absolute_effect.map(value)),
                ci_absolute: text(&|c| c.ci_absolute.map(|ci| format!("[{}, {}]", value(ci[0]), value(ci[1])))),
                p_value: text(&|c| c.p_value.map(pvalue)),
                p_adjusted: text(&|c| c.p_value_adjusted.map(pvalue)),
                significant: comparison.is_some_and(|c| c.significant),
                direction: comparison.map(|c| direction_name(c.direction)).unwrap_or("control"),
                notes: comparison.map(|c| c.notes.join("; ")).unwrap_or_default(),
                details: comparison.map(|c| comparison_details(c, level)).unwrap_or_default(),
            }
        })
        .collect();
    let mut notes = Vec::new();
    if let Some(margin) = m.margin {
        notes.push(format!("guardrail: non-inferiority margin {} (relative)", percent(margin, 1)));
    }
    if let Some(cap) = &m.cap {
        let at = match cap.percentile {
            Some(q) => format!(
                "the {}th percentile",
                crate::numbers::value(q * 100.0).trim_end_matches('0').trim_end_matches('.')
            ),
            None => "an absolute cap".into(),
        };
        notes.push(format!("values capped at {} ({at}; {} units capped)", value(cap.value), count(cap.capped_units)));
    }
    if let Some(cuped) = &m.cuped {
        let reduction = cuped.variance_reduction.map(|r| percent(r, 1)).unwrap_or_else(dash);
        notes.push(format!(
            "CUPED with the {}-day pre-exposure value: variance reduced by {reduction} (theta {})",
            cuped.lookback_days,
            value(cuped.theta)
        ));
    }
    MetricTable {
        name: m.name.clone(),
        role: m.role.clone(),
        kind: m.kind.clone(),
        better: if m.higher_is_better { "higher is better" } else { "lower is better" },
        notes,
        rows,
    }
}

/// A comparison's extra views, one short phrase each.
fn comparison_details(c: &ComparisonResult, level: &str) -> Vec<String> {
    let mut details = Vec::new();
    if let Some(s) = &c.sequential {
        let ci = s.ci_relative.map(|ci| percent_interval(ci, 2)).unwrap_or_else(dash);
        let p = s.p_value.map(pvalue).unwrap_or_else(dash);
        details.push(format!("always-valid {level} CI {ci}, p = {p}"));
    }
    if let Some(b) = &c.bayesian {
        details.push(format!(
            "chance to win {}, risk {} (keep) / {} (ship), {level} credible {}",
            percent(b.chance_to_win, 1),
            signed_percent(b.risk[0], 2).trim_start_matches('+'),
            signed_percent(b.risk[1], 2).trim_start_matches('+'),
            percent_interval(b.ci_relative, 2)
        ));
    }
    if let Some(u) = &c.unadjusted {
        let relative = u.relative_effect.map(|r| signed_percent(r, 2)).unwrap_or_else(dash);
        let ci = u.ci_relative.map(|ci| percent_interval(ci, 2)).unwrap_or_else(dash);
        details.push(format!("before CUPED {relative} {ci}"));
    }
    if let Some(n) = &c.non_inferiority {
        let bound = n.bound.map(|b| signed_percent(b, 2)).unwrap_or_else(dash);
        let verdict = if n.non_inferior { "non-inferior" } else { "not yet shown non-inferior" };
        details.push(format!("worst plausible change {bound} vs margin {}: {verdict}", percent(n.margin, 1)));
    }
    if let Some(p) = &c.power {
        let plan = if p.additional_units == 0 {
            "enough units".to_string()
        } else {
            let days = p.additional_days.map(|d| format!(", {}", crate::numbers::days(d))).unwrap_or_default();
            format!("{} more units per variant{days}", count(p.additional_units))
        };
        details.push(format!(
            "power {} now for {} (target {}); {plan}",
            percent(p.power_at_current_n, 0),
            percent(p.mde, 1),
            percent(p.target_power, 0)
        ));
    }
    details
}

/// 1234567 -> `1.2 MB`.
pub fn bytes(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut size = n as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < units.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{size:.1} {}", units[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_neutralises_markup() {
        assert_eq!(escape_html("<script>alert(1)</script>"), "&lt;script&gt;alert(1)&lt;/script&gt;");
        assert_eq!(escape_html("a \"b\" & 'c'"), "a &quot;b&quot; &amp; &#39;c&#39;");
    }

    #[test]
    fn markdown_escaping_keeps_code_spans_and_neutralises_the_rest() {
        assert_eq!(escape_markdown("<script>alert(1)</script>"), "&lt;script&gt;alert(1)&lt;/script&gt;");
        assert_eq!(escape_markdown("order_value|x*"), r"order\_value\|x\*");
        assert_eq!(escape_markdown("`order_value` is up"), "`order_value` is up");
        assert_eq!(escape_markdown("`a|b` and `c"), r"`a\|b` and \`c");
        assert_eq!(escape_markdown("line\nbreak"), "line break");
    }

    #[test]
    fn code_spans_are_escaped_first() {
        assert_eq!(code_spans("`a<b>` is +1%"), "<code>a&lt;b&gt;</code> is +1%");
        assert_eq!(code_spans("odd ` tick"), "odd ` tick");
    }

    fn facts() -> RunFacts {
        RunFacts {
            job: "daily".into(),
            report_date: "2026-11-20".into(),
            generated_at: "2026-11-21T06:00:00Z".into(),
            source: "s3://data/xp".into(),
            files_read: 2,
            bytes_read: 1000,
            rows_read: 10,
            timings: vec![],
            elapsed_seconds: 0.5,
            sla_seconds: 60.0,
        }
    }

    #[test]
    fn the_email_html_has_inline_styles_a_cid_image_and_no_svg_or_script() {
        let mut result = crate::results::sample_result();
        result.id = "<script>alert(1)</script>".into();
        let renderer = Renderer::new().expect("templates compile");
        let facts = facts();
        let files = vec![
            EmailFile {
                name: "results.parquet".into(),
                size: "2.0 kB".into(),
                attached: true,
                link: None,
                location: None,
            },
            EmailFile {
                name: "allocation.parquet".into(),
                size: "12.0 MB".into(),
                attached: false,
                link: Some("https://files.example.com/daily/2026-11-20/x/allocation.parquet".into()),
                location: None,
            },
        ];
        let section =
            EmailSection { result: &result, facts: &facts, chart_cid: Some("chart.x@abreport".into()), files };
        let frame = EmailFrame {
            title: "subject",
            intro: None,
            note: Some("One export is too large to attach."),
            upload_hint: None,
            generated_at: "2026-11-21T06:00:00Z",
        };
        let html = renderer.email_html(&frame, &[section]).expect("renders");
        assert!(html.contains(r#"<img src="cid:chart.x@abreport""#), "{html}");
        assert!(!html.contains("<svg"), "mail clients do not show SVG");
        assert!(!html.contains("<script"), "no script, and the hostile id is escaped");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<style"), "styles are inline");
        assert!(html.contains("PROMOTE — Promote treatment"));
        assert!(html.contains("<code>conversion</code>"), "reasons keep their code spans");
        assert!(html.contains(r#"<a href="https://files.example.com/daily/2026-11-20/x/allocation.parquet""#));
        assert!(html.contains("One export is too large to attach."));
        assert!(html.contains("+4.10%"), "the same formatted numbers as the report");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_234_567), "1.2 MB");
    }
}
