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
mod escape;
mod glossary;
mod plain;
pub mod png;
mod test_method;
pub mod trend;

use serde::Serialize;
use tera::{Context, Tera};

use crate::numbers::{
    chance, count, level, percent, percent_interval, pvalue, pvalue_short, signed_percent, signed_points, value,
};
use crate::results::*;
use crate::runlog::StageTiming;
pub use escape::escape_html;
pub use test_method::Test;

const HTML_TEMPLATE: &str = include_str!("../templates/report.html");
const MARKDOWN_TEMPLATE: &str = include_str!("../templates/report.md");
const EMAIL_TEMPLATE: &str = include_str!("../templates/email.html");
const EMAIL_TEXT_TEMPLATE: &str = include_str!("../templates/email.txt");

/// Facts about the run that the report shows beside the results.
#[derive(Debug, Clone, Serialize)]
pub struct RunFacts {
    pub job: String,
    pub report_date: String,
    pub generated_at: String,
    /// The source URL without credentials or query.
    pub source: String,
    /// What computed the statistics: this process, a Spark cluster, or a warehouse.
    pub engine: String,
    /// Where the per-unit values are, completing "the per-unit values …".
    pub per_unit: String,
    pub files_read: usize,
    pub bytes_read: u64,
    pub rows_read: u64,
    /// How the data was read when not all of it was (an incremental run from a checkpoint).
    pub read_note: Option<String>,
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
    email_text: Tera,
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
    /// Content-IDs of the story's inline PNGs (the story metric's effect by day, units by
    /// day), when the mail carries them.
    pub story_cids: StoryCids,
    /// The exports and where the reader finds each.
    pub files: Vec<EmailFile>,
    /// The `id` of the section's heading, which a digest's summary links to.
    pub anchor: String,
    /// The uploaded `report.html`, when the delivery has a `link_base_url`.
    pub report_link: Option<String>,
}

/// One experiment's line in a digest's summary table.
#[derive(Debug, Clone, Serialize)]
pub struct DigestRow {
    pub experiment: String,
    /// The section's anchor in this message.
    pub anchor: String,
    /// `PROMOTE treatment`, `PAUSE`, `FAILED`.
    pub verdict: String,
    /// The primary metric's effect per variant with its interval, as the report writes them.
    pub primary: String,
    /// The uploaded `report.html`, when known.
    pub report_link: Option<String>,
}

/// Content-IDs of the story charts' PNGs in a mail.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoryCids {
    pub effect: Option<String>,
    pub units: Option<String>,
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
    /// A digest's summary, one row per experiment in the sections' order; empty otherwise.
    pub summary: &'a [DigestRow],
    /// How much of each experiment the message shows.
    pub layout: EmailLayout,
}

/// How much of each experiment a mail shows: all of it, unless that would make the message
/// too long for mail clients (`deliver::email` decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailLayout {
    /// Every section in full: verdict, key figures, chart, metric tables, checks, exports.
    Full,
    /// Without the per-metric tables and the checks table: each section keeps its verdict,
    /// key metrics, chart, links, failing checks and exports.
    Compact,
    /// A digest's summary table alone, no sections.
    SummaryOnly,
}

#[derive(Serialize)]
struct EmailModel<'a> {
    title: &'a str,
    intro: Option<&'a str>,
    note: Option<&'a str>,
    upload_hint: Option<&'a str>,
    generated_at: &'a str,
    summary: &'a [DigestRow],
    compact: bool,
    summary_only: bool,
    sections: Vec<EmailSectionModel>,
}

#[derive(Serialize)]
struct EmailSectionModel {
    report: ReportModel,
    chart_cid: Option<String>,
    story_cids: StoryCids,
    /// The chart in words, its image's alt text.
    chart_alt: Option<String>,
    files: Vec<EmailFile>,
    anchor: String,
    report_link: Option<String>,
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
            email_text: compile("email.txt", EMAIL_TEXT_TEMPLATE, plain::escape_plain)?,
        })
    }

    /// The HTML part of a mail: one section per experiment, from the same report model as
    /// `report.html`.
    pub fn email_html(&self, frame: &EmailFrame<'_>, sections: &[EmailSection<'_>]) -> Result<String, RenderError> {
        let context = email_context(frame, sections, "email.html")?;
        self.email
            .render("email.html", &context)
            .map_err(|e| RenderError { template: "email.html", message: error_chain(&e) })
    }

    /// The plain-text part of a mail (`templates/email.txt`), from the same model as its HTML
    /// part, wrapped at [`plain::WIDTH`] characters.
    pub fn email_text(&self, frame: &EmailFrame<'_>, sections: &[EmailSection<'_>]) -> Result<String, RenderError> {
        let context = email_context(frame, sections, "email.txt")?;
        let text = self
            .email_text
            .render("email.txt", &context)
            .map_err(|e| RenderError { template: "email.txt", message: error_chain(&e) })?;
        Ok(plain::wrap(&text, plain::WIDTH))
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

/// What the mail's templates see: the frame, and per section the report model.
fn email_context(
    frame: &EmailFrame<'_>,
    sections: &[EmailSection<'_>],
    template: &'static str,
) -> Result<Context, RenderError> {
    let model = EmailModel {
        title: frame.title,
        intro: frame.intro,
        note: frame.note,
        upload_hint: frame.upload_hint,
        generated_at: frame.generated_at,
        summary: frame.summary,
        compact: frame.layout != EmailLayout::Full,
        summary_only: frame.layout == EmailLayout::SummaryOnly,
        sections: sections
            .iter()
            .filter(|_| frame.layout != EmailLayout::SummaryOnly)
            .map(|s| EmailSectionModel {
                report: ReportModel::new(s.result, s.facts),
                chart_cid: s.chart_cid.clone(),
                story_cids: s.story_cids.clone(),
                chart_alt: chart::relative_effects_description(s.result),
                files: s.files.clone(),
                anchor: s.anchor.clone(),
                report_link: s.report_link.clone(),
            })
            .collect(),
    };
    Context::from_serialize(&model).map_err(|e| RenderError { template, message: error_chain(&e) })
}

/// The checks whose failure broke the experiment's allocation (`srm`, `multi_variant_units`,
/// `missing_variant`), from the decision's reason codes: while any did, no effect can be
/// trusted, and every screen greys or leaves out its effects.
pub fn allocation_broken_by(result: &ExperimentResult) -> Vec<&'static str> {
    result
        .decision
        .reason_codes
        .iter()
        .filter_map(|code| match code {
            ReasonCode::DataQualityFailed(check) => Some(check.name()),
            ReasonCode::MissingVariant => Some("missing_variant"),
            _ => None,
        })
        .collect()
}

/// The primary metric's effect for each variant, with the interval of the test the
/// recommendation reads, as the report writes them: `conversion: treatment +4.1% [+1.1%,
/// +7.1%]`; `None` without a primary metric or any comparison.
pub fn primary_effect(result: &ExperimentResult) -> Option<String> {
    let primary = result.metrics.iter().find(|m| m.role == Role::Primary)?;
    let parts = comparison_effects(primary, str::to_string);
    (!parts.is_empty()).then(|| format!("{}: {}", primary.name, parts.join("; ")))
}

/// Each comparison of `metric` in short, as every summary writes it (report, mail, chat):
/// `treatment +4.1% [+1.1%, +7.1%]`, `(absolute)` after an absolute one, `not testable yet`
/// without a test. Variant names go through `name` (each channel's escaping).
pub fn comparison_effects(metric: &MetricResult, name: fn(&str) -> String) -> Vec<String> {
    metric
        .comparisons
        .iter()
        .map(|c| match &c.inference {
            Some(i) => {
                let scale = if i.scale == InferenceScale::Absolute { " (absolute)" } else { "" };
                format!("{} {} {}{scale}", name(&c.variant), inference_effect(i, 1), inference_interval(i, 1))
            }
            None => format!("{} not testable yet", name(&c.variant)),
        })
        .collect()
}

/// Escapes text, then turns `` `name` `` spans into `<code>` elements (HTML only), and keeps
/// each `YYYY-MM-DD` date on one line (a phone would break it after a hyphen). The input is
/// escaped first, so nothing in it can become markup.
pub fn code_spans(text: &str) -> String {
    unbroken_dates(&code_spans_only(text))
}

/// Wraps every `YYYY-MM-DD` in a span that does not break (an inline style, so mail keeps it).
fn unbroken_dates(html: &str) -> String {
    let bytes = html.as_bytes();
    let is_date = |at: usize| {
        bytes.len() >= at + 10
            && bytes[at..at + 10]
                .iter()
                .enumerate()
                .all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() })
            && (at == 0 || !bytes[at - 1].is_ascii_alphanumeric())
            && bytes.get(at + 10).is_none_or(|b| !b.is_ascii_alphanumeric())
    };
    let mut out = String::with_capacity(html.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if is_date(i) {
            out.push_str(&html[copied..i]);
            out.push_str("<span style=\"white-space:nowrap\">");
            out.push_str(&html[i..i + 10]);
            out.push_str("</span>");
            i += 10;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&html[copied..]);
    out
}

fn code_spans_only(text: &str) -> String {
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

/// A signed metric value: `+0.01230`, `−3.00`, `0`.
fn signed_value(x: f64) -> String {
    if x > 0.0 { format!("+{}", value(x)) } else { value(x) }
}

/// The effect a test reads: `+4.10%` on the relative scale, `+0.01230` on the absolute one
/// (when the control mean is 0).
pub fn inference_effect(i: &Inference, decimals: usize) -> String {
    match i.scale {
        InferenceScale::Relative => signed_percent(i.estimate, decimals),
        InferenceScale::Absolute => signed_value(i.estimate),
    }
}

/// The test's interval on its scale: `[−1.20%, +3.40%]` or `[−0.0100, +0.0300]`.
pub fn inference_interval(i: &Inference, decimals: usize) -> String {
    match i.scale {
        InferenceScale::Relative => percent_interval(i.ci, decimals),
        InferenceScale::Absolute => format!("[{}, {}]", signed_value(i.ci[0]), signed_value(i.ci[1])),
    }
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
    /// The decision's reasons, in full.
    reasons: Vec<String>,
    rule: String,
    reason_codes: String,
    /// `continue`: when the verdict is expected, and the advice to hold the rollout.
    expected_verdict: Option<String>,
    /// The guardrails that hold the verdict back (or caused a rollback), with why, from the
    /// decision's reason codes: one sentence.
    guardrails: Option<String>,
    /// One sentence on how to read the intervals (always-valid).
    inference_note: Option<String>,
    /// Fixed-horizon inference: the figures are valid for one look only.
    fixed_horizon_warning: Option<String>,
    /// `always-valid 95% CI`: the label of every main interval.
    test_label: String,
    /// `always-valid`: the label of every main p-value.
    test_method: &'static str,
    checks: Vec<CheckRow>,
    /// Every check passes: the report collapses them into one line.
    checks_all_pass: bool,
    /// `All 8 data-quality checks pass.` or which need attention.
    checks_summary: String,
    /// Why the effects cannot be trusted (a broken allocation): the metrics are greyed.
    untrustworthy: Option<String>,
    /// One plain-language line per metric, primary first.
    plain: Vec<PlainLine>,
    /// The terms and reason codes the report uses, explained.
    glossary: Vec<glossary::Entry>,
    variants: Vec<VariantRow>,
    metrics: Vec<MetricTable>,
    /// The fixed-horizon contract figures of every comparison.
    fixed_horizon: Vec<FixedHorizonRow>,
    fixed_horizon_intro: String,
    plan: Option<PlanModel>,
    /// The allocation by day, shown when the SRM check does not pass.
    srm_days: Vec<SrmRow>,
    breakdowns: Vec<BreakdownTable>,
    preliminary: bool,
    key_metrics: Vec<KeyMetric>,
    chart_svg: Option<String>,
    /// The story over time (`trend.rs`): effect and units by day, progress to the plan.
    story: Option<trend::StoryModel>,
    /// `95%`: the level of the fixed-horizon figures (Welch, exploratory breakdowns, Bayesian).
    fixed_level: String,
    settings: String,
    window: String,
    data: Vec<(String, String)>,
    /// The time-stamped part of a report (docs/exports.md, "Reproducible outputs"): the run's
    /// time against the SLA, the stage timings and `run.generated_at`, all in the last block:
    /// in HTML between `<!-- abreport:timestamped -->` and `<!-- /abreport:timestamped -->`,
    /// in Markdown from the line `- Run time: …` to the end.
    run_time: String,
    timings: Vec<TimingRow>,
    run: RunFacts,
}

#[derive(Debug, Serialize)]
struct CheckRow {
    name: &'static str,
    status: &'static str,
    p_value: String,
    detail: String,
}

/// A metric's result in one sentence a PM reads without the tables.
#[derive(Debug, Serialize)]
struct PlainLine {
    name: String,
    role: &'static str,
    text: String,
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
    /// The job file's description of the metric.
    description: Option<String>,
    role: &'static str,
    kind: &'static str,
    better: &'static str,
    /// Capping, CUPED and guardrail margin, in words.
    notes: Vec<String>,
    rows: Vec<MetricRow>,
    /// Each comparison's extra views (Bayesian, CUPED, non-inferiority, power) and notes, as
    /// a list under the table (named by variant when there are several).
    details: Vec<String>,
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

/// One variant of a metric as the recommendation's test reads it.
#[derive(Debug, Serialize)]
struct MetricRow {
    variant: String,
    is_control: bool,
    /// Mark the row as the control's (when its name does not already say so).
    control_tag: bool,
    units: String,
    /// A proportion as a percentage (`17.6%`), else the value.
    mean: String,
    /// The test's estimate: relative, or absolute when the control mean is 0.
    effect: String,
    /// The same estimate on the metric's own scale: `+2.96 pp` for a proportion, `+2.04` per
    /// unit for a mean, when the effect is relative.
    absolute: Option<String>,
    /// The test's interval at its level.
    ci: String,
    /// The test's p-value of "no effect".
    p_value: String,
    /// The test's interval excludes 0.
    significant: bool,
    /// `better`, `worse`, `neutral` by the test; `control` for the control row.
    direction: &'static str,
}

/// One comparison's fixed-horizon contract fields.
#[derive(Debug, Serialize)]
struct FixedHorizonRow {
    metric: String,
    variant: String,
    relative: String,
    ci_relative: String,
    absolute: String,
    ci_absolute: String,
    p_value: String,
    p_adjusted: String,
    /// `yes (better)`, `yes (worse)` or `no`: the contract's `significant` and `direction`.
    significant: String,
}

/// Where the experiment stands against the sample its recommendation needs.
#[derive(Debug, Serialize)]
struct PlanModel {
    /// Label and value, one line each.
    rows: Vec<(String, String)>,
    /// Every test the recommendation needs to pass, with the units it needs.
    tests: Vec<PlanTestRow>,
}

#[derive(Debug, Serialize)]
struct PlanTestRow {
    test: &'static str,
    metric: String,
    variant: String,
    effect: String,
    power: String,
    units: String,
    power_now: String,
}

#[derive(Debug, Serialize)]
struct KeyMetric {
    name: String,
    role: &'static str,
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
        let test = Test::of(result);
        let fixed_level = percent(1.0 - result.settings.alpha, 0);
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
                name: c.name.name(),
                status: match c.status {
                    CheckStatus::Pass => "pass",
                    CheckStatus::Warn => "warn",
                    CheckStatus::Fail => "fail",
                },
                p_value: c.p_value.map_or_else(dash, pvalue),
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
                observed: v.observed_share.map_or_else(dash, |s| percent(s, 1)),
            })
            .collect();
        let metrics: Vec<MetricTable> = result.metrics.iter().map(|m| metric_table(result, m, &fixed_level)).collect();
        let attention: Vec<String> = result
            .checks
            .iter()
            .filter(|c| c.status != CheckStatus::Pass)
            .map(|c| format!("{} ({})", c.name.name(), if c.status == CheckStatus::Fail { "fail" } else { "warn" }))
            .collect();
        let checks_summary = if attention.is_empty() {
            format!("All {} data-quality checks pass.", result.checks.len())
        } else {
            format!(
                "{} of {} data-quality checks need attention: {}.",
                attention.len(),
                result.checks.len(),
                attention.join(", ")
            )
        };
        let broken_by = allocation_broken_by(result);
        let untrustworthy = (!broken_by.is_empty()).then(|| {
            format!(
                "The allocation is broken ({}): every effect below is untrustworthy until it is fixed, and is greyed out, for reference only.",
                broken_by.join(", ")
            )
        });
        let srm_failed = result.check(CheckName::Srm).is_some_and(|c| c.status != CheckStatus::Pass);
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
                        p_value: d.p_value.map_or_else(dash, pvalue),
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
                                .map(|v| v.mean.map_or_else(dash, value))
                                .collect::<Vec<_>>()
                                .join(" / "),
                            relative: c.and_then(|c| c.relative_effect).map_or_else(dash, |r| signed_percent(r, 1)),
                            ci_relative: c.and_then(|c| c.ci_relative).map_or_else(dash, |ci| percent_interval(ci, 1)),
                            p_value: c.and_then(|c| c.p_value).map_or_else(dash, pvalue),
                        }
                    })
                    .collect(),
            })
            .collect();
        let (inference_note, fixed_horizon_warning) = match test.method {
            InferenceMethod::AlwaysValid => (
                Some(format!(
                    "Every interval, p-value, colour and bold figure in the summary, chart and metric tables comes from the test the recommendation reads ({}): a confidence sequence, safe to read daily.",
                    test.interval_label()
                )),
                None,
            ),
            InferenceMethod::FixedHorizon => (
                None,
                Some(
                    "This job uses fixed-horizon inference ([stats] sequential = false): its intervals and p-values are valid only when read once, at the planned sample — not daily. Acting on the first day a figure looks significant makes false verdicts far more likely than alpha says; turn on [stats] sequential to read the report every day."
                        .to_string(),
                ),
            ),
        };
        let any_significant = result
            .metrics
            .iter()
            .any(|m| m.comparisons.iter().any(|c| c.inference.as_ref().is_some_and(|i| i.significant)));
        let plain = result.metrics.iter().map(plain_line).collect();
        let key_metrics = result
            .metrics
            .iter()
            .take(4)
            .map(|m| KeyMetric {
                name: m.name.clone(),
                role: m.role.name(),
                summary: comparison_effects(m, str::to_string).join("; "),
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
            ("Computed by".to_string(), facts.engine.clone()),
            (
                "Files read".to_string(),
                match &facts.read_note {
                    None => format!("{} ({})", count(facts.files_read as u64), bytes(facts.bytes_read)),
                    Some(note) => format!("{} ({}); {note}", count(facts.files_read as u64), bytes(facts.bytes_read)),
                },
            ),
            ("Rows read".to_string(), count(facts.rows_read)),
            ("Exposure rows for this experiment".to_string(), count(result.traffic.exposure_rows)),
            ("Events counted toward metrics".to_string(), count(result.traffic.counted_events)),
            ("Units excluded (several or unknown variants)".to_string(), count(result.traffic.excluded_units)),
            (
                "New units per variant per day".to_string(),
                result.traffic.units_per_variant_per_day.map_or_else(dash, |d| count(d.round() as u64)),
            ),
        ];
        let run_time = format!(
            "{elapsed:.2} s of the {:.0} s SLA ({})",
            facts.sla_seconds,
            percent(elapsed / facts.sla_seconds, 1)
        );
        let treatments = result.variants.len().saturating_sub(1).max(1);
        ReportModel {
            title: format!("{}: {} — {}", result.id, verdict, facts.report_date),
            experiment: result.id.clone(),
            description: result.description.clone(),
            failed: result.status == Status::Failed,
            error: result.error.clone(),
            recommendation: rec.name().to_uppercase(),
            recommendation_class: rec.name(),
            verdict,
            reasons: result.decision.reasons.clone(),
            rule: result.decision.rule.clone(),
            reason_codes: result.decision.reason_codes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            expected_verdict: expected_verdict(result),
            guardrails: guardrails_text(&result.decision),
            inference_note,
            fixed_horizon_warning,
            test_label: test.interval_label(),
            test_method: test.method_name(),
            srm_days,
            breakdowns,
            checks_all_pass: result.checks.iter().all(|c| c.status == CheckStatus::Pass),
            checks,
            checks_summary,
            untrustworthy,
            plain,
            glossary: glossary::entries(&result.decision),
            variants,
            metrics,
            fixed_horizon: fixed_horizon_rows(result),
            fixed_horizon_intro: format!(
                "Welch t-tests (delta method for relative effects and ratio metrics) with {fixed_level} intervals, p-values adjusted over the experiment's comparisons with the {} correction, and `significant` means an adjusted p below {}. These are the contract fields of results.json and results.parquet, kept for audits and other readers; the recommendation does not read them, and reading them daily inflates false positives.",
                correction_name(result.settings.correction),
                result.settings.alpha
            ),
            plan: result.plan.as_ref().map(|p| plan_model(result, p)),
            preliminary: !any_significant && result.status == Status::Ok,
            key_metrics,
            chart_svg: chart::relative_effects_svg(result),
            story: trend::story_model(result),
            settings: format!(
                "alpha {} over {treatments} treatment variant{} (intervals at {}), power {}, minimum detectable effect {}",
                result.settings.alpha,
                if treatments == 1 { "" } else { "s" },
                level(test.level),
                percent(result.settings.power, 0),
                percent(result.settings.mde, 1)
            ),
            fixed_level,
            window: format!("{} to {} ({} days, UTC)", result.window.start, result.window.end, result.window.days),
            data,
            run_time,
            timings,
            run: facts.clone(),
        }
    }
}

fn correction_name(correction: Correction) -> &'static str {
    match correction {
        Correction::Holm => "Holm",
        Correction::BenjaminiHochberg => "Benjamini–Hochberg",
        Correction::None => "no",
    }
}

/// `continue`: when the verdict is expected (the decision's date) and the advice to hold the
/// rollout until then.
fn expected_verdict(result: &ExperimentResult) -> Option<String> {
    if result.decision.recommendation != Recommendation::Continue || result.status != Status::Ok {
        return None;
    }
    let when = match result.decision.expected_verdict_date {
        Some(date) => {
            let late = result
                .plan
                .as_ref()
                .filter(|p| date > p.last_day)
                .map(|p| format!(", after the experiment's last day ({})", p.last_day))
                .unwrap_or_default();
            let provisional = if result.plan.as_ref().is_some_and(|p| p.estimate_is_provisional) {
                " (a first estimate: it firms up after a week of data)"
            } else {
                ""
            };
            format!("Expected verdict by {date}{provisional}{late}. Hold the rollout at its current exposure (do not expand it) until then.")
        }
        None => "No verdict date can be estimated yet. Hold the rollout at its current exposure (do not expand it) until the verdict.".to_string(),
    };
    Some(when)
}

/// The guardrails the decision's reason codes name, with why: `` Guardrails holding the verdict
/// back: `error_rate` (not yet shown non-inferior). ``
fn guardrails_text(decision: &Decision) -> Option<String> {
    let mut named: Vec<String> = Vec::new();
    for code in &decision.reason_codes {
        let Some(guardrail) = code.guardrail() else { continue };
        let why = match code {
            // On a promotion, an untestable guardrail is one without events: it holds nothing.
            ReasonCode::GuardrailNotTestable(_) if decision.recommendation == Recommendation::Promote => continue,
            ReasonCode::GuardrailSignificantLoss(_) => "significantly harmed",
            ReasonCode::GuardrailNotYetNonInferior(_) => "not yet shown non-inferior",
            ReasonCode::GuardrailWorseNotYetHarmful(_) => "worse, not yet beyond the harm threshold",
            ReasonCode::GuardrailNotTestable(_) => "cannot be tested yet",
            ReasonCode::GuardrailWithinMarginLoss(_) => "significantly worse, though within its margin",
            _ => continue,
        };
        let text = format!("`{guardrail}` ({why})");
        if !named.contains(&text) {
            named.push(text);
        }
    }
    if named.is_empty() {
        return None;
    }
    let heading = match decision.recommendation {
        Recommendation::Rollback => "Guardrails behind the rollback",
        _ => "Guardrails holding the verdict back",
    };
    Some(format!("{heading}: {}.", named.join("; ")))
}

fn fixed_horizon_rows(result: &ExperimentResult) -> Vec<FixedHorizonRow> {
    let interval = |ci: [f64; 2]| format!("[{}, {}]", value(ci[0]), value(ci[1]));
    result
        .metrics
        .iter()
        .flat_map(|m| {
            m.comparisons.iter().map(|c| FixedHorizonRow {
                metric: m.name.clone(),
                variant: c.variant.clone(),
                relative: c.relative_effect.map_or_else(dash, |r| signed_percent(r, 2)),
                ci_relative: c.ci_relative.map_or_else(dash, |ci| percent_interval(ci, 2)),
                absolute: c.absolute_effect.map_or_else(dash, value),
                ci_absolute: c.ci_absolute.map_or_else(dash, interval),
                p_value: c.p_value.map_or_else(dash, pvalue),
                p_adjusted: c.p_value_adjusted.map_or_else(dash, pvalue),
                significant: if c.significant {
                    format!("yes ({})", direction_name(c.direction))
                } else {
                    "no".to_string()
                },
            })
        })
        .collect()
}

fn plan_model(result: &ExperimentResult, plan: &Plan) -> PlanModel {
    let per_variant = |f: &dyn Fn(usize) -> String| {
        result.variants.iter().enumerate().map(|(i, v)| format!("{} {}", v.name, f(i))).collect::<Vec<_>>().join(" · ")
    };
    let mut units = per_variant(&|i| {
        let have = count(result.variants[i].units);
        match plan.required_units.get(i).copied().flatten() {
            Some(needed) => format!("{have} of {}", count(needed)),
            None => format!("{have} of ?"),
        }
    });
    if plan.required_units.iter().all(Option::is_none) {
        units.push_str(" (the tests cannot be sized yet)");
    }
    let inflow = format!(
        "{} (average of the last {} days)",
        per_variant(&|i| plan.inflow_per_day.get(i).map_or_else(dash, |x| count(x.round() as u64))),
        plan.inflow_days
    );
    let expected = if plan.sample_reached {
        "now: every variant has its required units".to_string()
    } else {
        match (plan.expected_verdict_date, plan.days_to_decision) {
            (Some(date), Some(d)) => {
                let late = if date > plan.last_day { ", after the last day" } else { "" };
                let provisional = if plan.estimate_is_provisional { ", a first estimate" } else { "" };
                format!("{date} ({}{late}{provisional})", crate::numbers::days(d))
            }
            (Some(date), None) => date.to_string(),
            (None, _) => "not estimable yet".to_string(),
        }
    };
    let first = match (plan.first_expected_verdict_date, plan.designed_on) {
        (Some(date), Some(on)) => format!("{date} (design of {on})"),
        (None, _) if plan.estimate_is_provisional => "after a week of data".to_string(),
        (Some(date), None) => date.to_string(),
        (None, _) => dash(),
    };
    let mut last_day = format!("{} (max_days = {})", plan.last_day, result.settings.max_days);
    if let Some(mde) = plan.feasible_mde.filter(|&mde| mde > result.settings.mde) {
        last_day.push_str(&format!(
            "; the sample reachable by then detects a {} effect, not the {} MDE",
            percent(mde, 1),
            percent(result.settings.mde, 1)
        ));
    }
    let rows = vec![
        ("Units per variant (now of needed)".to_string(), units),
        ("New units a day".to_string(), inflow),
        ("Expected verdict date (needed sample in)".to_string(), expected),
        ("First verdict date quoted".to_string(), first),
        ("Last day".to_string(), last_day),
        ("Sequential tuning".to_string(), tuning_text(result, plan)),
    ];
    let tests = plan
        .tests
        .iter()
        .map(|t| PlanTestRow {
            test: match t.test {
                PlannedTestKind::Success => "effect",
                PlannedTestKind::NonInferiority => "non-inferiority",
            },
            metric: t.metric.clone(),
            variant: t.variant.clone(),
            effect: percent(t.effect, 1),
            power: level(t.power),
            units: format!("{} / {}", count(t.required_units[0]), count(t.required_units[1])),
            power_now: percent(t.power_at_current_n, 0),
        })
        .collect();
    PlanModel { rows, tests }
}

/// The always-valid tuning (total units of control and variant at which the interval is
/// narrowest) and where it comes from.
fn tuning_text(result: &ExperimentResult, plan: &Plan) -> String {
    let source = match plan.tuning_source {
        TuningSource::None => return "none: fixed-horizon inference (tuning_source none)".to_string(),
        TuningSource::PlannedUnits => "planned_units: the experiment's planned units".to_string(),
        TuningSource::Design => match plan.designed_on {
            Some(on) => format!("design: the planned sample, fixed on {on}"),
            None => "design: the planned sample".to_string(),
        },
        TuningSource::Default => "default: gbstats' default until the data can size the tests".to_string(),
    };
    let control = result.variants.first().map_or("control", |v| v.name.as_str());
    let primary = result.metrics.iter().find(|m| m.role == Role::Primary).or(result.metrics.first());
    let tunings: Vec<String> = primary
        .into_iter()
        .flat_map(|m| &m.comparisons)
        .filter_map(|c| {
            let tuning = c.inference.as_ref()?.tuning?;
            Some(format!("{} units of {control} + {}", count(tuning.round() as u64), c.variant))
        })
        .collect();
    if tunings.is_empty() {
        format!("always-valid (source {source})")
    } else {
        format!("always-valid, narrowest at {} (source {source})", tunings.join(", "))
    }
}

/// A metric's mean as a reader takes it: a proportion as a percentage, with two decimals when
/// any variant's is below 10% (so 4.49% and 4.12% do not read 4.5% and 4.1%), the same for
/// every variant of the metric so they line up.
fn metric_mean(m: &MetricResult, mean: f64) -> String {
    let small = m.variants.iter().filter_map(|v| v.mean).any(|x| x.abs() < 0.1);
    match m.kind {
        MetricKind::Proportion => percent(mean, if small { 2 } else { 1 }),
        _ => value(mean),
    }
}

/// A relative effect on the metric's own scale, from the control's mean: `+2.96 pp` for a
/// proportion, `+2.04` for a mean or ratio. The test's relative estimate times the control's
/// mean is its absolute difference (exactly so without CUPED).
fn absolute_effect(m: &MetricResult, i: &Inference) -> Option<String> {
    let control_mean = m.variants.first()?.mean?;
    if i.scale != InferenceScale::Relative || !(i.estimate * control_mean).is_finite() {
        return None;
    }
    let difference = i.estimate * control_mean;
    Some(if m.kind == MetricKind::Proportion { signed_points(difference, 2) } else { signed_value(difference) })
}

/// `conversion`'s result in one sentence: `treatment 17.6% vs 14.6% for control, +20.2%
/// (+2.96 pp): significantly better.`, for each variant.
fn plain_line(m: &MetricResult) -> PlainLine {
    let control = m.variants.first();
    let control_name = control.map_or("the control", |v| v.variant.as_str());
    let parts: Vec<String> = m
        .comparisons
        .iter()
        .map(|c| {
            let mean_of = |name: &str| m.variants.iter().find(|v| v.variant == name).and_then(|v| v.mean);
            let means = match (mean_of(&c.variant), control.and_then(|v| v.mean)) {
                (Some(v), Some(ctl)) => {
                    format!("{} {} vs {} for {control_name}", c.variant, metric_mean(m, v), metric_mean(m, ctl))
                }
                _ => c.variant.clone(),
            };
            let Some(i) = &c.inference else {
                return format!("{means}: cannot be tested yet");
            };
            let effect = match absolute_effect(m, i) {
                Some(absolute) if m.kind == MetricKind::Proportion => {
                    format!("{} ({absolute})", inference_effect(i, 1))
                }
                _ => inference_effect(i, 1),
            };
            let verdict = match (i.significant, i.direction) {
                (true, Direction::Better) => "significantly better".to_string(),
                (true, Direction::Worse) => "significantly worse".to_string(),
                _ => format!("no significant difference yet (the interval {} includes 0)", inference_interval(i, 1)),
            };
            let margin = match &c.non_inferiority {
                Some(n) if n.non_inferior => format!("; within its {} margin", percent(n.margin, 0)),
                Some(n) => format!("; not yet shown within its {} margin", percent(n.margin, 0)),
                None => String::new(),
            };
            format!("{means}, {effect}: {verdict}{margin}")
        })
        .collect();
    let text = if parts.is_empty() { "no comparison".to_string() } else { parts.join("; ") };
    PlainLine { name: m.name.clone(), role: m.role.name(), text: format!("{text}.") }
}

fn metric_table(result: &ExperimentResult, m: &MetricResult, fixed_level: &str) -> MetricTable {
    let control = m.variants.first().map(|v| v.variant.clone()).unwrap_or_default();
    let several = m.comparisons.len() > 1;
    let mut details = Vec::new();
    for c in &m.comparisons {
        let prefix = if several { format!("{}: ", c.variant) } else { String::new() };
        for d in comparison_details(result, c, fixed_level) {
            details.push(format!("{prefix}{d}"));
        }
        if !c.notes.is_empty() {
            details.push(format!("{prefix}{}", c.notes.join("; ")));
        }
    }
    let rows = m
        .variants
        .iter()
        .map(|v| {
            let comparison = m.comparisons.iter().find(|c| c.variant == v.variant);
            let inference = comparison.and_then(|c| c.inference.as_ref());
            let text = |f: &dyn Fn(&Inference) -> String| inference.map_or_else(dash, f);
            let is_control = v.variant == control;
            MetricRow {
                variant: v.variant.clone(),
                is_control,
                control_tag: is_control && !v.variant.eq_ignore_ascii_case("control"),
                units: count(v.units),
                mean: v.mean.map_or_else(dash, |mean| metric_mean(m, mean)),
                effect: text(&|i| inference_effect(i, 2)),
                absolute: inference.and_then(|i| absolute_effect(m, i)),
                ci: text(&|i| inference_interval(i, 2)),
                p_value: text(&|i| pvalue_short(i.p_value)),
                significant: inference.is_some_and(|i| i.significant),
                direction: match (comparison, inference) {
                    (None, _) => "control",
                    (Some(_), Some(i)) => direction_name(i.direction),
                    (Some(_), None) => "neutral",
                },
            }
        })
        .collect();
    let mut notes = Vec::new();
    if let Some(margin) = m.margin {
        notes.push(format!("guardrail: non-inferiority margin {} (relative)", percent(margin, 1)));
    }
    if let Some(cap) = &m.cap {
        let at = match cap.percentile {
            Some(q) => format!("the {}th percentile", value(q * 100.0).trim_end_matches('0').trim_end_matches('.')),
            None => "an absolute cap".into(),
        };
        notes.push(format!("values capped at {} ({at}; {} units capped)", value(cap.value), count(cap.capped_units)));
    }
    if let Some(cuped) = &m.cuped {
        let reduction = cuped.variance_reduction.map_or_else(dash, |r| percent(r, 1));
        notes.push(format!(
            "CUPED with the {}-day pre-exposure value: variance reduced by {reduction} (theta {})",
            cuped.lookback_days,
            value(cuped.theta)
        ));
    }
    MetricTable {
        name: m.name.clone(),
        description: m.description.clone(),
        role: m.role.name(),
        kind: m.kind.name(),
        better: if m.higher_is_better { "higher is better" } else { "lower is better" },
        notes,
        rows,
        details,
    }
}

/// A comparison's extra views, one short phrase each. The fixed-horizon figures are not among
/// them: they have their own section, so no second notion of significance sits beside the
/// test's. Power and "more units" advice appear only while the question is open: not on a
/// decided experiment or a comparison already significant, and as "not feasible" when the
/// units would come in only after the experiment's last day.
fn comparison_details(result: &ExperimentResult, c: &ComparisonResult, fixed_level: &str) -> Vec<String> {
    let mut details = Vec::new();
    if c.inference.as_ref().is_some_and(|i| i.scale == InferenceScale::Absolute) {
        details.push("absolute difference: the control mean is 0, so there is no relative effect".to_string());
    }
    if let Some(b) = &c.bayesian {
        details.push(format!(
            "Bayesian: chance to win {}, risk {} (keep) / {} (ship), {fixed_level} credible {}",
            chance(b.chance_to_win),
            signed_percent(b.risk[0], 2).trim_start_matches('+'),
            signed_percent(b.risk[1], 2).trim_start_matches('+'),
            percent_interval(b.ci_relative, 2)
        ));
    }
    if let Some(u) = &c.unadjusted {
        let relative = u.relative_effect.map_or_else(dash, |r| signed_percent(r, 2));
        details.push(format!("before CUPED {relative}"));
    }
    if let Some(n) = &c.non_inferiority {
        let bound = n.bound.map_or_else(dash, |b| signed_percent(b, 2));
        let verdict = if n.non_inferior { "non-inferior" } else { "not yet shown non-inferior" };
        details.push(format!("worst plausible change {bound} vs margin {}: {verdict}", percent(n.margin, 1)));
    }
    let decided = matches!(result.decision.recommendation, Recommendation::Promote | Recommendation::Rollback);
    let settled = c.inference.as_ref().is_some_and(|i| i.significant);
    if let Some(p) = c.power.as_ref().filter(|_| !decided && !settled) {
        let too_late = p.additional_days.is_some_and(|d| {
            result
                .plan
                .as_ref()
                .is_some_and(|plan| result.window.end + chrono::Duration::days(d.ceil() as i64) > plan.last_day)
        });
        let plan = if p.additional_units == 0 {
            "enough units".to_string()
        } else if too_late {
            let larger = result
                .plan
                .as_ref()
                .and_then(|plan| plan.feasible_mde)
                .filter(|&m| m > p.mde)
                .map(|m| format!(", or accept a larger MDE of {}", percent(m, 1)))
                .unwrap_or_default();
            format!("not feasible at this traffic by the last day: stop{larger}")
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
    use chrono::NaiveDate;

    use super::*;
    use crate::test_support::planned_success;

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
        assert_eq!(
            code_spans("by 2026-12-10 (v2026-12-100 stays)"),
            "by <span style=\"white-space:nowrap\">2026-12-10</span> (v2026-12-100 stays)"
        );
    }

    fn facts() -> RunFacts {
        RunFacts {
            job: "daily".into(),
            report_date: "2026-11-20".into(),
            generated_at: "2026-11-21T06:00:00Z".into(),
            source: "s3://data/xp".into(),
            engine: "abreport (embedded engine)".into(),
            per_unit: "are in units.parquet beside it".into(),
            files_read: 2,
            bytes_read: 1000,
            rows_read: 10,
            read_note: None,
            timings: vec![],
            elapsed_seconds: 0.5,
            sla_seconds: 60.0,
        }
    }

    #[test]
    fn the_email_html_has_inline_styles_a_cid_image_and_no_svg_or_script() {
        let mut result = sample_result();
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
        let section = EmailSection {
            result: &result,
            facts: &facts,
            chart_cid: Some("chart.x@abreport".into()),
            story_cids: StoryCids::default(),
            files,
            anchor: "xp-x".into(),
            report_link: None,
        };
        let frame = EmailFrame {
            title: "subject",
            intro: None,
            note: Some("One export is too large to attach."),
            upload_hint: None,
            generated_at: "2026-11-21T06:00:00Z",
            summary: &[],
            layout: EmailLayout::Full,
        };
        let html = renderer.email_html(&frame, &[section]).expect("renders");
        assert!(html.contains(r#"<img src="cid:chart.x@abreport""#), "{html}");
        assert!(
            html.contains(r#"alt="Relative effect vs control (always-valid 95% CI), each row on its own scale. conversion (primary metric): +4.1% [+1.1%, +7.1%]"#),
            "the chart's alt text says what it shows: {html}"
        );
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

    /// Both reports of `result`: `(html, markdown)`.
    fn render(result: &ExperimentResult) -> (String, String) {
        Renderer::new().expect("templates compile").report(result, &facts()).expect("renders")
    }

    /// The HTML verdict box: the summary area above everything else.
    fn verdict_box(html: &str) -> &str {
        let start = html.find(r#"<section class="verdict"#).expect("verdict box");
        let end = start + html[start..].find("</section>").expect("closed");
        &html[start..end]
    }

    /// The sample result with the primary's fixed-horizon contract fields saying "not
    /// significant" while its test (`inference`) says "significantly better".
    fn significant_only_by_the_test() -> ExperimentResult {
        let mut result = sample_result();
        let c = &mut result.metrics[0].comparisons[0];
        c.significant = false;
        c.direction = Direction::Neutral;
        c.p_value = Some(0.03);
        c.p_value_adjusted = Some(0.2);
        assert!(c.inference.as_ref().is_some_and(|i| i.significant && i.direction == Direction::Better));
        result
    }

    #[test]
    fn a_figure_significant_by_its_test_is_marked_though_the_fixed_horizon_field_says_no() {
        let (html, markdown) = render(&significant_only_by_the_test());
        assert!(html.contains(r#"<td class="num better"><strong>+4.10%</strong>"#), "{html}");
        assert!(html.contains("<td class=\"num wide-only\">[+1.10%, +7.10%]</td>"), "the test's interval: {html}");
        assert!(html.contains("<td class=\"num wide-only\">0.004</td>"), "the test's p-value");
        assert!(!html.contains("Nothing is significant yet"), "no 'nothing significant' banner beside a win");
        assert!(
            markdown.contains(
                "| treatment | 1,000 | 10.0% | **+4.10%** (better) (+0.41 pp) | \\[+1.10%, +7.10%\\] | 0.004 |"
            ),
            "{markdown}"
        );
        assert!(!markdown.contains("Nothing is significant yet"));
        // The contract figures are still there, in their own section, as results.json has them.
        let fixed =
            html.find("Fixed-horizon figures (results.json contract fields; valid for one look at a planned sample)");
        let row = html.find(
            "<th scope=\"row\">conversion</th><td>treatment</td><td class=\"num\">+4.10%</td><td class=\"num\">[+2.10%, +6.10%]</td>",
        );
        assert!(fixed.is_some_and(|f| row.is_some_and(|r| f < r)), "{html}");
        assert!(html.contains("<td class=\"num\">0.2000</td><td>no</td>"), "adjusted p and `significant`");
        assert!(markdown.contains(
            "## Fixed-horizon figures (results.json contract fields; valid for one look at a planned sample)"
        ));
        assert!(
            markdown.contains("| conversion | treatment | +4.10% | \\[+2.10%, +6.10%\\] | 0.004100 |"),
            "{markdown}"
        );
    }

    #[test]
    fn a_figure_significant_only_by_the_fixed_horizon_field_is_not_marked() {
        let mut result = sample_result();
        result.decision.recommendation = Recommendation::Continue;
        result.decision.variant = None;
        let i = result.metrics[0].comparisons[0].inference.as_mut().expect("a test");
        (i.significant, i.direction, i.p_value) = (false, Direction::Neutral, 0.3);
        assert!(result.metrics[0].comparisons[0].significant, "the contract field says significant");
        let (html, markdown) = render(&result);
        assert!(html.contains(r#"<td class="num neutral">+4.10%<span class="small">"#), "{html}");
        assert!(!html.contains("<strong>+4.10%</strong>"));
        assert!(html.contains("Nothing is significant yet by the always-valid 95% CI;"));
        assert!(
            markdown.contains("| treatment | 1,000 | 10.0% | +4.10% (+0.41 pp) | \\[+1.10%, +7.10%\\] | 0.300 |"),
            "{markdown}"
        );
        assert!(
            html.contains("<td class=\"num\">0.0060</td><td>yes (better)</td>"),
            "the contract row keeps its field"
        );
    }

    #[test]
    fn intervals_are_labelled_with_the_method_and_the_level_of_the_test() {
        let mut result = sample_result();
        for metric in &mut result.metrics {
            for c in &mut metric.comparisons {
                c.inference.as_mut().expect("a test").level = 0.975;
            }
        }
        let (html, markdown) = render(&result);
        assert!(
            html.contains(
                "<th scope=\"col\" class=\"num wide-only\">always-valid 97.5% CI</th><th scope=\"col\" class=\"num wide-only\">always-valid p</th>"
            ),
            "{html}"
        );
        assert!(markdown.contains("| Variant | Units | Mean | Effect | always-valid 97.5% CI | always-valid p |"));
        assert!(html.contains("Relative effect vs control (always-valid 97.5% CI)"), "the chart says it too");
        assert!(html.contains("safe to read daily"));
        assert!(!html.contains("class=\"warning\""), "always-valid figures need no warning");
    }

    #[test]
    fn fixed_horizon_inference_warns_that_the_figures_hold_for_one_look() {
        let mut result = sample_result();
        result.settings.sequential = false;
        for metric in &mut result.metrics {
            for c in &mut metric.comparisons {
                let i = c.inference.as_mut().expect("a test");
                (i.method, i.tuning) = (InferenceMethod::FixedHorizon, None);
            }
        }
        let (html, markdown) = render(&result);
        let warning = "valid only when read once, at the planned sample — not daily";
        assert!(html.contains("<p class=\"warning\">This job uses fixed-horizon inference"), "{html}");
        assert!(html.contains(warning));
        assert!(markdown.contains("> **Warning:** This job uses fixed-horizon inference"), "{markdown}");
        assert!(html.contains(
            "<th scope=\"col\" class=\"num wide-only\">fixed-horizon 95% CI</th><th scope=\"col\" class=\"num wide-only\">fixed-horizon p</th>"
        ));
        assert!(!html.contains("safe to read daily"));
        let renderer = Renderer::new().expect("templates compile");
        let facts = facts();
        let section = EmailSection {
            result: &result,
            facts: &facts,
            chart_cid: None,
            story_cids: StoryCids::default(),
            files: vec![],
            anchor: "xp".into(),
            report_link: None,
        };
        let frame = EmailFrame {
            title: "s",
            intro: None,
            note: None,
            upload_hint: None,
            generated_at: "now",
            summary: &[],
            layout: EmailLayout::Full,
        };
        assert!(renderer.email_html(&frame, &[section]).expect("renders").contains(warning), "the mail warns too");
    }

    #[test]
    fn an_absolute_test_shows_absolute_values() {
        let mut result = sample_result();
        let i = result.metrics[0].comparisons[0].inference.as_mut().expect("a test");
        (i.scale, i.estimate, i.ci) = (InferenceScale::Absolute, 0.0041, [0.001, 0.0072]);
        let (html, _) = render(&result);
        assert!(html.contains("<strong>+0.004100</strong>"), "{html}");
        assert!(html.contains("[+0.001000, +0.007200]"));
        assert!(html.contains("absolute difference: the control mean is 0"));
    }

    #[test]
    fn the_verdict_box_names_every_guardrail_in_the_way_and_when_a_continue_expects_its_verdict() {
        let mut result = sample_result();
        result.decision = Decision {
            recommendation: Recommendation::Continue,
            variant: None,
            reasons: vec![
                "`conversion` is +4.1% for `treatment`: not significant yet.".into(),
                "Guardrail `error_rate` is not yet shown non-inferior: worst plausible change +25.9%, margin 20.0%.".into(),
                "Hold the rollout at its current exposure (do not expand it) until the verdict, expected by 2026-12-10.".into(),
            ],
            reason_codes: vec![
                ReasonCode::PrimaryNotSignificant,
                ReasonCode::GuardrailNotYetNonInferior("error_rate".into()),
                ReasonCode::GuardrailWorseNotYetHarmful("latency".into()),
                ReasonCode::HoldRollout,
            ],
            rule: "no verdict yet".into(),
            expected_verdict_date: NaiveDate::from_ymd_opt(2026, 12, 10),
        };
        let (html, markdown) = render(&result);
        let html = html.replace(r#"<span style="white-space:nowrap">"#, "").replace("</span>", "");
        let summary = verdict_box(&html);
        for reason in &result.decision.reasons {
            assert!(summary.contains(&code_spans_only(reason)), "every reason, in full: {reason}");
        }
        assert!(
            summary.contains(
                "Guardrails holding the verdict back: <code>error_rate</code> (not yet shown non-inferior); \
                 <code>latency</code> (worse, not yet beyond the harm threshold)."
            ),
            "{summary}"
        );
        assert!(summary.contains(
            "Expected verdict by 2026-12-10. Hold the rollout at its current exposure (do not expand it) until then."
        ));
        assert!(markdown.contains("Guardrails holding the verdict back: `error_rate` (not yet shown"), "{markdown}");
        assert!(markdown.contains("**Expected verdict by 2026-12-10. Hold the rollout"));
        // A promotion has no such line.
        let (html, _) = render(&sample_result());
        assert!(!verdict_box(&html).contains("Expected verdict") && !html.contains("Guardrails holding"));
    }

    #[test]
    fn a_pm_reads_plain_lines_percentages_and_a_glossary_and_passing_checks_fold_into_one_line() {
        let mut result = sample_result();
        result.description = Some("A one-page checkout <b>".into());
        result.metrics[0].description = Some("Share of units that buy".into());
        result.decision.reason_codes = vec![ReasonCode::PrimarySignificantWin];
        let (html, markdown) = render(&result);
        // The description is shown, escaped; the verdict is a heading.
        assert!(html.contains("<p class=\"description\">A one-page checkout &lt;b&gt;</p>"), "{html}");
        assert!(html.contains("<h2 class=\"label\" id=\"verdict\">PROMOTE — Promote treatment</h2>"));
        assert!(html.contains("<p class=\"description\">Share of units that buy</p>"));
        // One plain line per metric: a proportion as percentages, its effect in pp too.
        assert!(
            html.contains("treatment 10.0% vs 10.0% for control, +4.1% (+0.41 pp): significantly better."),
            "{html}"
        );
        assert!(markdown.contains("- **conversion** (primary): treatment 10.0% vs 10.0% for control"), "{markdown}");
        // No "control control": the control row of a variant named control is not tagged again.
        assert!(
            html.contains("<th scope=\"row\">control</th>") && !html.contains("control <span class=\"role\">(control)")
        );
        // Every table has a caption, a head and scoped headers.
        assert_eq!(html.matches("<table>").count(), html.matches("<caption>").count(), "{html}");
        assert!(html.matches("<thead>").count() >= 4);
        // All checks pass: one line, folded.
        assert!(
            html.contains("<details class=\"checks all-pass\">\n<summary>All 6 data-quality checks pass.</summary>"),
            "{html}"
        );
        // The glossary explains the terms and the decision's codes; the reasons link to it.
        assert!(html.contains("<section id=\"glossary\""));
        assert!(html.contains(
            "<dt>PRIMARY_SIGNIFICANT_WIN</dt><dd>The primary metric is significantly better in the variant.</dd>"
        ));
        assert!(html.contains("href=\"#glossary\""));
        assert!(markdown.contains("## Glossary"));
        assert!(
            !html.contains("class=\"untrustworthy\"")
                && !html.contains(" untrustworthy\"")
                && !html.contains("untrustworthy until"),
            "a healthy experiment is not greyed"
        );
    }

    #[test]
    fn a_broken_allocation_greys_the_metrics_opens_the_checks_and_puts_the_days_first() {
        let mut result = sample_result();
        result.decision.recommendation = Recommendation::Pause;
        result.decision.variant = None;
        result.decision.reason_codes = vec![ReasonCode::DataQualityFailed(CheckName::Srm)];
        result.checks[0] = Check {
            name: CheckName::Srm,
            status: CheckStatus::Fail,
            p_value: Some(1e-9),
            detail: "mismatch; broken in all segments".into(),
        };
        result.srm.by_day =
            vec![SrmSlice { slice: "2026-11-20".into(), units: vec![500, 700], p_value: Some(1e-9), broken: true }];
        let (html, _) = render(&result);
        let verdict = html.find("id=\"verdict\"").expect("verdict");
        let days = html.find("<h2 id=\"allocation-by-day\">").expect("allocation by day");
        let metrics = html.find("<h2>Metrics</h2>").expect("metrics");
        assert!(verdict < days && days < metrics, "the split by day comes right after the verdict");
        assert!(html.contains("The allocation is broken (srm): every effect below is untrustworthy"), "{html}");
        assert!(html.contains("<div class=\"untrustworthy\">"));
        assert!(html.contains("<details class=\"checks\" open>\n<summary>1 of 6 data-quality checks need attention: srm (fail).</summary>"), "{html}");
    }

    #[test]
    fn power_advice_only_while_open_and_never_an_infeasible_number_of_days() {
        let power = |additional_days: f64| PowerResult {
            mde: 0.05,
            mde_absolute: 0.005,
            target_power: 0.8,
            power_at_current_n: 0.2,
            required_units: 90_000,
            additional_units: 89_000,
            additional_days: Some(additional_days),
        };
        let mut open = sample_result();
        open.decision.recommendation = Recommendation::Continue;
        open.decision.variant = None;
        let c = &mut open.metrics[1].comparisons[0];
        assert!(!c.inference.as_ref().expect("a test").significant, "the secondary is not significant");
        c.power = Some(power(10.0));
        let (html, _) = render(&open);
        assert!(
            html.contains("power 20% now for 5.0% (target 80%); 89,000 more units per variant, about 10 days"),
            "{html}"
        );
        // 600 days is past the last day: not advice, the way out instead.
        open.metrics[1].comparisons[0].power = Some(power(600.0));
        open.plan = Some(Plan {
            tuning_source: TuningSource::Default,
            designed_on: None,
            first_expected_verdict_date: None,
            estimate_is_provisional: false,
            tests: vec![],
            required_units: vec![None, None],
            inflow_per_day: vec![150.0, 150.0],
            inflow_days: 7,
            days_to_decision: None,
            expected_verdict_date: None,
            sample_reached: false,
            last_day: NaiveDate::from_ymd_opt(2026, 12, 31).expect("a date"),
            feasible_mde: Some(0.12),
            units_to_settle: vec![],
        });
        let (html, _) = render(&open);
        assert!(
            html.contains("not feasible at this traffic by the last day: stop, or accept a larger MDE of 12.0%"),
            "{html}"
        );
        assert!(!html.contains("about 600 days"));
        // A promoted experiment gets no "more units" advice at all.
        let mut won = sample_result();
        won.metrics[1].comparisons[0].power = Some(power(10.0));
        let (html, _) = render(&won);
        assert!(!html.contains("more units per variant") && !html.contains("power 20% now"), "{html}");
    }

    #[test]
    fn the_plan_shows_the_sample_needed_the_dates_and_the_tuning() {
        let mut result = sample_result();
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 12, d);
        result.plan = Some(Plan {
            tuning_source: TuningSource::Design,
            designed_on: day(1),
            first_expected_verdict_date: day(9),
            tests: vec![planned_success(8000, 0.21)],
            required_units: vec![Some(8000), Some(8000)],
            inflow_per_day: vec![700.4, 699.6],
            inflow_days: 7,
            days_to_decision: Some(10.0),
            expected_verdict_date: day(10),
            sample_reached: false,
            last_day: day(31).expect("a date"),
            feasible_mde: None,
            estimate_is_provisional: false,
            units_to_settle: vec![],
        });
        let (html, markdown) = render(&result);
        let html = html.replace(r#"<span style="white-space:nowrap">"#, "").replace("</span>", "");
        for line in [
            "<dt>Units per variant (now of needed)</dt><dd>control 1,000 of 8,000 · treatment 1,000 of 8,000</dd>",
            "<dt>New units a day</dt><dd>control 700 · treatment 700 (average of the last 7 days)</dd>",
            "<dt>Expected verdict date (needed sample in)</dt><dd>2026-12-10 (about 10 days)</dd>",
            "<dt>First verdict date quoted</dt><dd>2026-12-09 (design of 2026-12-01)</dd>",
            "<dt>Last day</dt><dd>2026-12-31 (max_days = 42)</dd>",
            "<dt>Sequential tuning</dt><dd>always-valid, narrowest at 4,000 units of control + treatment \
             (source design: the planned sample, fixed on 2026-12-01)</dd>",
            "<th scope=\"row\">effect</th><td>conversion</td><td>treatment</td><td class=\"num\">5.0%</td><td class=\"num\">80%</td>\
             <td class=\"num\">8,000 / 8,000</td><td class=\"num\">21%</td>",
        ] {
            assert!(html.contains(line), "{line}\n{html}");
        }
        assert!(
            markdown.contains("## Plan\n\n- Units per variant (now of needed): control 1,000 of 8,000"),
            "{markdown}"
        );
        assert!(markdown.contains("- Sequential tuning: always-valid, narrowest at 4,000 units"));
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_234_567), "1.2 MB");
    }
}
