//! `kind = "email"`: builds the messages of a run from its output files — pure, testable
//! without a server — for `deliver` to send through [`super::smtp::Mailer`].
//!
//! A message is `multipart/alternative` (plain text from `templates/email.txt`; the HTML of
//! `templates/email.html` in a `multipart/related` with the charts as inline PNGs referenced
//! by `cid:`, both from the report model), inside a `multipart/mixed` with the exports
//! attached while they fit under the delivery's `attach_max_bytes` (`results.csv` first); the
//! others are linked or located, and the mail says so. With a `link_base_url`, each
//! experiment links to its uploaded `report.html` under the verdict. A digest opens with a
//! summary, one row per experiment; a message whose HTML would pass [`HTML_BUDGET`] (Gmail
//! clips after 102 KB) is shortened to verdicts, key metrics and links.
//! Everything is built from the files (`results.json`, the exports), so a retry from the
//! outbox builds the same mail as the run did. Nothing here sends or touches disk.

use chrono::NaiveDate;
use lettre::Message;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Body, Mailbox, MultiPart, SinglePart};

use crate::config::{Delivery, Job};
use crate::export::{ExperimentOutputs, OutputFile};
use crate::render::png::{PngError, svg_to_png};
use crate::render::{
    DigestRow, EmailFile, EmailFrame, EmailLayout, EmailSection, RenderError, Renderer, RunFacts, StoryCids,
    allocation_broken_by, bytes, chart, inference_effect, primary_effect, trend,
};
use crate::results::{
    ExperimentResult, Inference, InferenceScale, MetricResult, ReasonCode, Recommendation, ResultsFile, Role, Status,
};
use crate::store::display_url;

/// The exports a mail attaches, in this order, while they fit: the small results table a PM
/// opens first.
pub const EXPORTS: [&str; 4] = ["results.csv", "results.parquet", "allocation.parquet", "run.log.jsonl"];

/// The most HTML a message carries in full: Gmail clips a message's HTML after 102 KB (and
/// hides the rest behind a link), so a message over this is shortened (see `compose`).
pub const HTML_BUDGET: usize = 100_000;

/// Scale of the chart PNG: twice the SVG's size, sharp on high-density screens.
const CHART_SCALE: f32 = 2.0;

/// What an email delivery asks for (the fields of [`Delivery::Email`]).
#[derive(Debug, Clone, Copy)]
pub struct EmailSpec<'a> {
    /// Recipients.
    pub to: &'a [String],
    /// One message for all experiments.
    pub digest: bool,
    /// Attachments stay within this many bytes (file sizes, before MIME encoding).
    pub attach_max_bytes: u64,
    /// Base URL of the uploaded copies.
    pub link_base_url: Option<&'a str>,
}

/// A message ready to send, with the key under which the outbox records it as sent: the
/// experiment's folder name, or `digest`.
pub struct Mail {
    /// `dir_name` of the experiment, or `digest`.
    pub key: String,
    /// The message.
    pub message: Message,
}

/// Why a mail could not be built. None of these is worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// An output file the mail needs is not in the set.
    #[error("`{file}` of experiment `{experiment}` is missing from the run's outputs")]
    MissingFile { experiment: String, file: &'static str },
    /// `results.json` did not parse.
    #[error("cannot read `results.json` of experiment `{experiment}`: {cause}")]
    Results { experiment: String, cause: String },
    /// The HTML part did not render.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The chart did not rasterize.
    #[error(transparent)]
    Png(#[from] PngError),
    /// lettre refused an address or the message.
    #[error("cannot build the message: {0}")]
    Build(String),
}

/// One experiment's files, read back.
struct Parsed<'a> {
    output: &'a ExperimentOutputs,
    results: ResultsFile,
}

fn file<'a>(output: &'a ExperimentOutputs, name: &'static str) -> Result<&'a OutputFile, EmailError> {
    output
        .files
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| EmailError::MissingFile { experiment: output.experiment_id.clone(), file: name })
}

fn parse(output: &ExperimentOutputs) -> Result<Parsed<'_>, EmailError> {
    let results: ResultsFile = serde_json::from_slice(&file(output, "results.json")?.bytes)
        .map_err(|e| EmailError::Results { experiment: output.experiment_id.clone(), cause: e.to_string() })?;
    if results.experiments.is_empty() {
        return Err(EmailError::Results {
            experiment: output.experiment_id.clone(),
            cause: "no experiment in it".into(),
        });
    }
    Ok(Parsed { output, results })
}

impl Parsed<'_> {
    fn result(&self) -> &ExperimentResult {
        &self.results.experiments[0]
    }
}

/// The verdict in a few words: `PROMOTE treatment (+4.1% conversion)`, `ROLLBACK treatment
/// (+31.0% error_rate)`, `CONTINUE`, `PAUSE`, `FAILED (no analyzable data)`.
///
/// Only PROMOTE and ROLLBACK quote an effect, and it is the estimate of the test the decision
/// read (`inference`): for any other verdict no figure is a finding — a PAUSE's figures come
/// from a broken allocation, a CONTINUE's are not significant yet — and a number in a subject
/// reads like one.
pub fn verdict(result: &ExperimentResult) -> String {
    if result.status == Status::Failed {
        return "FAILED (no analyzable data)".into();
    }
    let decision = &result.decision;
    let mut text = decision.recommendation.name().to_uppercase();
    if let Some(variant) = &decision.variant {
        text.push(' ');
        text.push_str(variant);
    }
    if let Some((metric, inference)) = subject_effect(result) {
        let scale = if inference.scale == InferenceScale::Absolute { " absolute" } else { "" };
        text.push_str(&format!(" ({}{scale} {})", inference_effect(inference, 1), metric.name));
    }
    text
}

/// The effect a PROMOTE or ROLLBACK subject quotes, for the variant the decision names: the
/// primary metric's; for a rollback the primary did not cause, the first harmed guardrail's
/// (the reason for the rollback, which the primary may not show).
fn subject_effect(result: &ExperimentResult) -> Option<(&MetricResult, &Inference)> {
    let decision = &result.decision;
    let variant = decision.variant.as_deref()?;
    let metric = match decision.recommendation {
        Recommendation::Promote => result.metrics.iter().find(|m| m.role == Role::Primary)?,
        Recommendation::Rollback => {
            let primary_harmed = decision.reason_codes.contains(&ReasonCode::PrimarySignificantLoss);
            let guardrail = decision
                .reason_codes
                .iter()
                .find_map(|c| match c {
                    ReasonCode::GuardrailSignificantLoss(guardrail) => Some(guardrail.as_str()),
                    _ => None,
                })
                .filter(|_| !primary_harmed);
            match guardrail {
                Some(name) => result.metrics.iter().find(|m| m.name == name)?,
                None => result.metrics.iter().find(|m| m.role == Role::Primary)?,
            }
        }
        _ => return None,
    };
    let inference = metric.comparisons.iter().find(|c| c.variant == variant)?.inference.as_ref()?;
    Some((metric, inference))
}

/// How urgently a digest's reader must act on an experiment; digests list the most urgent
/// first. PAUSE (the allocation is broken: no figure can be trusted), ROLLBACK (users are being
/// harmed now) and a failed analysis need someone today; an inconclusive one needs its owners'
/// call (stop, or weigh a trade-off); a CONTINUE needs nothing but patience; a PROMOTE is good
/// news that loses nothing by being read last.
fn severity(result: &ExperimentResult) -> u8 {
    if result.status == Status::Failed {
        return 0;
    }
    match result.decision.recommendation {
        Recommendation::Pause | Recommendation::Rollback => 0,
        Recommendation::Inconclusive => 1,
        Recommendation::Continue => 2,
        Recommendation::Promote => 3,
    }
}

/// `[abreport] checkout-redesign: PROMOTE treatment (+4.1% conversion)`.
pub fn subject(result: &ExperimentResult) -> String {
    format!("[abreport] {}: {}", result.id, verdict(result))
}

/// `[abreport] daily 2026-11-20: pricing PAUSE; checkout-redesign PROMOTE treatment`: the first
/// three experiments in the digest's order (most urgent first, see [`severity`]) are named.
pub fn digest_subject(job: &str, report_date: NaiveDate, results: &[&ExperimentResult]) -> String {
    let mut parts: Vec<String> = results.iter().take(3).map(|r| format!("{} {}", r.id, verdict_words(r))).collect();
    if results.len() > 3 {
        parts.push(format!("+{} more", results.len() - 3));
    }
    format!("[abreport] {job} {report_date}: {}", parts.join("; "))
}

/// The verdict without figures: `PROMOTE treatment`, `PAUSE`, `FAILED`.
fn verdict_words(result: &ExperimentResult) -> String {
    if result.status == Status::Failed {
        return "FAILED".into();
    }
    let words = result.decision.recommendation.name().to_uppercase();
    match &result.decision.variant {
        Some(variant) => format!("{words} {variant}"),
        None => words,
    }
}

/// Where a file of an experiment's outputs can be opened: `<base>/<job>/<date>/<experiment>/<file>`
/// under a `link_base_url`, as every destination lays them out.
pub(super) fn output_link(base: &str, prefix: &str, dir_name: &str, file: &str) -> String {
    format!("{base}/{prefix}/{dir_name}/{file}")
}

/// Where the uploaded copies of a run are, for mails and chat: the first upload destination.
pub(super) fn upload_location(job: &Job, prefix: &str) -> Option<String> {
    job.deliveries.iter().find_map(|d| match d {
        Delivery::Upload { url } => Some(format!("{}/{prefix}/", display_url(url).trim_end_matches('/'))),
        _ => None,
    })
}

/// Which exports a message attaches: in order, each while the running total stays within
/// `limit`; a file that does not fit is skipped, and a smaller one after it may still fit.
pub fn choose_attachments(sizes: &[u64], limit: u64) -> Vec<bool> {
    let mut used = 0u64;
    sizes
        .iter()
        .map(|&size| {
            let fits = used.saturating_add(size) <= limit;
            if fits {
                used += size;
            }
            fits
        })
        .collect()
}

/// The outbox key of a digest message (a per-experiment message's key is the experiment's
/// folder name).
pub const DIGEST_KEY: &str = "digest";

/// Builds the messages of one email delivery: one per experiment, or one digest.
pub fn build(
    job: &Job,
    report_date: NaiveDate,
    outputs: &[ExperimentOutputs],
    spec: &EmailSpec<'_>,
    from: &Mailbox,
) -> Result<Vec<Mail>, EmailError> {
    compose_all(job, report_date, outputs, spec)?
        .into_iter()
        .map(|(key, composed)| Ok(Mail { key, message: assemble(composed, from, spec.to)? }))
        .collect()
}

/// The contents of every message of one email delivery, each with its outbox key.
pub fn compose_all(
    job: &Job,
    report_date: NaiveDate,
    outputs: &[ExperimentOutputs],
    spec: &EmailSpec<'_>,
) -> Result<Vec<(String, Composed)>, EmailError> {
    let parsed: Vec<Parsed<'_>> = outputs.iter().map(parse).collect::<Result<_, _>>()?;
    if parsed.is_empty() {
        return Ok(Vec::new());
    }
    let renderer = Renderer::new()?;
    let groups: Vec<(String, Vec<&Parsed<'_>>)> = if spec.digest {
        let mut all: Vec<&Parsed<'_>> = parsed.iter().collect();
        // Stable: experiments of the same severity keep the job's order.
        all.sort_by_key(|p| severity(p.result()));
        vec![(DIGEST_KEY.to_string(), all)]
    } else {
        parsed.iter().map(|p| (p.output.dir_name.clone(), vec![p])).collect()
    };
    groups.into_iter().map(|(key, group)| Ok((key, compose(job, report_date, &group, spec, &renderer)?))).collect()
}

/// What one message says and carries, before it becomes MIME.
pub struct Composed {
    /// The subject line.
    pub subject: String,
    /// The plain-text part (`templates/email.txt`: verdicts, reasons, figures, checks, exports).
    pub text: String,
    /// The HTML part.
    pub html: String,
    /// Inline images: Content-ID and PNG bytes.
    pub images: Vec<(String, Vec<u8>)>,
    /// Attachments: file name, content type and bytes.
    pub attachments: Vec<(String, &'static str, Vec<u8>)>,
}

/// The contents of the message for `group` (one experiment, or all of a digest).
fn compose(
    job: &Job,
    report_date: NaiveDate,
    group: &[&Parsed<'_>],
    spec: &EmailSpec<'_>,
    renderer: &Renderer,
) -> Result<Composed, EmailError> {
    let prefix = crate::export::run_prefix(&job.name, report_date);
    let upload = upload_location(job, &prefix);
    let digest = group.len() > 1 || spec.digest;
    let results: Vec<&ExperimentResult> = group.iter().map(|p| p.result()).collect();
    let subject = if digest { digest_subject(&job.name, report_date, &results) } else { subject(results[0]) };

    // Attachments: every export of every experiment in the group, within the limit, taken
    // export by export (each experiment's results.csv first: a PM opens it, and it is small).
    let exports: Vec<(&Parsed<'_>, &OutputFile)> = EXPORTS
        .iter()
        .flat_map(|name| {
            group.iter().filter_map(move |p| p.output.files.iter().find(|f| f.name == *name).map(|f| (*p, f)))
        })
        .collect();
    let sizes: Vec<u64> = exports.iter().map(|(_, f)| f.bytes.len() as u64).collect();
    let attach = choose_attachments(&sizes, spec.attach_max_bytes);

    let facts: Vec<RunFacts> = group
        .iter()
        .map(|p| RunFacts {
            job: p.results.job.clone(),
            report_date: p.results.report_date.to_string(),
            generated_at: p.results.generated_at.clone(),
            source: display_url(&job.source.url),
            engine: String::new(),
            per_unit: String::new(),
            // The mail shows no run statistics (they are in report.html); results.json does
            // not carry them, and a retry from the outbox has only the files.
            files_read: 0,
            bytes_read: 0,
            rows_read: 0,
            read_note: None,
            timings: Vec::new(),
            elapsed_seconds: 0.0,
            sla_seconds: job.sla.as_secs_f64(),
        })
        .collect();
    let link = |p: &Parsed<'_>, file: &str| {
        spec.link_base_url.map(|base| output_link(base, &prefix, &p.output.dir_name, file))
    };
    // The charts as SVG, rasterized once the layout is known (a summary-only digest has none).
    let mut charts: Vec<(String, String)> = Vec::new();
    let mut sections = Vec::with_capacity(group.len());
    for (i, parsed) in group.iter().enumerate() {
        let result = parsed.result();
        let chart_cid = chart::relative_effects_svg(result).map(|svg| {
            let cid = format!("chart.{}@abreport", parsed.output.dir_name);
            charts.push((cid.clone(), svg));
            cid
        });
        let story_cids = story_svgs(result, &parsed.output.dir_name, &mut charts);
        let files: Vec<EmailFile> = exports
            .iter()
            .zip(&attach)
            .filter(|((p, _), _)| std::ptr::eq(*p, *parsed))
            .map(|((p, f), attached)| {
                let (link, location) = if *attached {
                    (None, None)
                } else if let Some(link) = link(p, &f.name) {
                    (Some(link), None)
                } else if let Some(upload) = &upload {
                    (None, Some(format!("in the upload destination `{upload}{}/`", p.output.dir_name)))
                } else {
                    (None, Some("this job has no upload destination; it is with the run's other outputs".to_string()))
                };
                EmailFile {
                    name: f.name.clone(),
                    size: bytes(f.bytes.len() as u64),
                    attached: *attached,
                    link,
                    location,
                }
            })
            .collect();
        sections.push(EmailSection {
            result,
            facts: &facts[i],
            chart_cid,
            story_cids,
            files,
            anchor: anchor(parsed),
            report_link: link(parsed, "report.html"),
        });
    }
    let summary: Vec<DigestRow> = if digest {
        group
            .iter()
            .map(|p| DigestRow {
                experiment: p.result().id.clone(),
                anchor: anchor(p),
                verdict: verdict_words(p.result()),
                primary: summary_effect(p.result()),
                report_link: link(p, "report.html"),
            })
            .collect()
    } else {
        Vec::new()
    };
    let linked = attach.iter().filter(|a| !**a).count();
    let note = (linked > 0).then(|| {
        format!(
            "{linked} export{} larger than this message's {} limit for attachments, so {} linked or located above instead of attached.",
            if linked == 1 { " is" } else { "s are" },
            bytes(spec.attach_max_bytes),
            if linked == 1 { "it is" } else { "they are" }
        )
    });
    let intro = digest.then(|| {
        let plural = if group.len() == 1 { "" } else { "s" };
        format!("{} experiment{plural} of job `{}` for {report_date}.", group.len(), job.name)
    });
    let upload_hint = upload.as_deref();
    let generated_at = group.first().map(|p| p.results.generated_at.clone()).unwrap_or_default();
    let mut frame = EmailFrame {
        title: &subject,
        intro: intro.as_deref(),
        note: note.as_deref(),
        upload_hint,
        generated_at: &generated_at,
        summary: &summary,
        layout: EmailLayout::Full,
    };
    let html = html_within_budget(renderer, &mut frame, &sections, digest)?;
    let text = renderer.email_text(&frame, &sections)?;
    let images = if frame.layout == EmailLayout::SummaryOnly {
        Vec::new()
    } else {
        charts
            .into_iter()
            .map(|(cid, svg)| Ok((cid, svg_to_png(&svg, CHART_SCALE)?)))
            .collect::<Result<_, EmailError>>()?
    };

    let mut attachments = Vec::new();
    for ((parsed, f), attached) in exports.iter().zip(&attach) {
        if *attached {
            // A digest carries several experiments' files of the same name.
            let name = if digest { format!("{}-{}", parsed.output.dir_name, f.name) } else { f.name.clone() };
            attachments.push((name, content_type(&f.name), f.bytes.to_vec()));
        }
    }
    Ok(Composed { subject, text, html, images, attachments })
}

/// The HTML part in the fullest layout that stays within [`HTML_BUDGET`], and that layout in
/// `frame`: Gmail clips a message's HTML after 102 KB, so a shortened message arrives whole,
/// and what it leaves out is in each report.html. A single experiment fits compact (its
/// verdict, key metrics and failing checks); a digest of very many keeps its summary table.
fn html_within_budget(
    renderer: &Renderer,
    frame: &mut EmailFrame<'_>,
    sections: &[EmailSection<'_>],
    digest: bool,
) -> Result<String, EmailError> {
    frame.layout = EmailLayout::Full;
    let mut html = renderer.email_html(frame, sections)?;
    for layout in [EmailLayout::Compact, EmailLayout::SummaryOnly] {
        if html.len() <= HTML_BUDGET || (layout == EmailLayout::SummaryOnly && !digest) {
            break;
        }
        frame.layout = layout;
        html = renderer.email_html(frame, sections)?;
    }
    Ok(html)
}

/// A digest summary's primary effect: none for a PAUSE (its figures come from a broken
/// allocation, as its subject says) or a failed analysis.
fn summary_effect(result: &ExperimentResult) -> String {
    if result.status == Status::Failed {
        return "no analyzable data".into();
    }
    if result.decision.recommendation == Recommendation::Pause {
        return "figures not shown: the allocation is broken".into();
    }
    primary_effect(result).unwrap_or_else(|| "no primary metric".into())
}

/// The `id` of an experiment's section in a message, which a digest's summary links to.
fn anchor(parsed: &Parsed<'_>) -> String {
    format!("xp-{}", parsed.output.dir_name)
}

/// An attachment's content type, by its name.
fn content_type(name: &str) -> &'static str {
    if name.ends_with(".parquet") {
        "application/vnd.apache.parquet"
    } else if name.ends_with(".csv") {
        // RFC 4180's type; the charset, because names may be any UTF-8.
        "text/csv; charset=utf-8"
    } else {
        "application/jsonl"
    }
}

/// The story charts of `result` (its story metric's effect by day, units by day) as SVGs added
/// to `charts` (rasterized with the effects chart once the layout is known), and their
/// Content-IDs.
fn story_svgs(result: &ExperimentResult, dir_name: &str, charts: &mut Vec<(String, String)>) -> StoryCids {
    let mut cids = StoryCids::default();
    // With the allocation broken no effect can be trusted: the mail leaves the effect by day
    // out (the report greys it) and keeps the units by day, which show the break.
    let effect = trend::story_metric(result)
        .filter(|_| allocation_broken_by(result).is_empty())
        .and_then(|metric| trend::effect_svg(result, metric));
    for (svg, kind, cid) in [(effect, "trend", &mut cids.effect), (trend::units_svg(result), "units", &mut cids.units)]
    {
        if let Some(svg) = svg {
            let id = format!("{kind}.{dir_name}@abreport");
            charts.push((id.clone(), svg));
            *cid = Some(id);
        }
    }
    cids
}

/// The MIME tree: `multipart/mixed` (only when something is attached) around
/// `multipart/alternative` of the plain text and the HTML, the HTML in a `multipart/related`
/// with its inline images.
pub fn assemble(composed: Composed, from: &Mailbox, to: &[String]) -> Result<Message, EmailError> {
    let build = |e: lettre::message::header::ContentTypeErr| EmailError::Build(e.to_string());
    let Composed { subject, text, html, images, attachments } = composed;
    let html_part = SinglePart::html(html);
    let plain_part = SinglePart::plain(text);
    let body = if images.is_empty() {
        MultiPart::alternative().singlepart(plain_part).singlepart(html_part)
    } else {
        let png = ContentType::parse("image/png").map_err(build)?;
        let related = images.into_iter().fold(MultiPart::related().singlepart(html_part), |related, (cid, bytes)| {
            related.singlepart(Attachment::new_inline(cid).body(bytes, png.clone()))
        });
        MultiPart::alternative().singlepart(plain_part).multipart(related)
    };
    let builder = recipients(Message::builder().from(from.clone()).subject(subject).message_id(None), to)?;
    let message = if attachments.is_empty() {
        builder.multipart(body)
    } else {
        let mut mixed = MultiPart::mixed().multipart(body);
        for (name, content_type, bytes) in attachments {
            // Base64 for every attachment, text too: a line-based encoding hands a text file
            // to the reader with the local line ends, and a CSV would not match its manifest.
            let body = Body::new_with_encoding(bytes, ContentTransferEncoding::Base64)
                .map_err(|_| EmailError::Build(format!("cannot encode `{name}`")))?;
            mixed =
                mixed.singlepart(Attachment::new(name).body(body, ContentType::parse(content_type).map_err(build)?));
        }
        builder.multipart(mixed)
    };
    message.map_err(|e| EmailError::Build(e.to_string()))
}

fn recipients(
    mut builder: lettre::message::MessageBuilder,
    to: &[String],
) -> Result<lettre::message::MessageBuilder, EmailError> {
    for address in to {
        let mailbox =
            address.parse::<Mailbox>().map_err(|e| EmailError::Build(format!("recipient `{address}`: {e}")))?;
        builder = builder.to(mailbox);
    }
    Ok(builder)
}

/// A short plain-text notice (to the job's admin).
pub fn notice(from: &Mailbox, to: &str, subject: &str, body: &str) -> Result<Message, EmailError> {
    let subject = if subject.starts_with("[abreport]") { subject.to_string() } else { format!("[abreport] {subject}") };
    recipients(Message::builder().from(from.clone()).subject(subject).message_id(None), &[to.to_string()])?
        .singlepart(SinglePart::plain(body.to_string()))
        .map_err(|e| EmailError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::export::{self, OutputFile};
    use crate::results::{CheckStatus, Recommendation, sample_result};
    use crate::test_support::{checked_job, experiment_text, job_text};

    fn job() -> Job {
        let deliver = "[[deliver]]\nkind = \"upload\"\nurl = \"s3://reports/abreport\"\n";
        let rest = experiment_text("checkout-redesign", "2026-11-20") + deliver;
        checked_job(&job_text("daily", "s3://data/xp", &rest), Path::new("jobs/daily.toml"))
    }

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 20).expect("date")
    }

    /// A run's outputs for `result`, with exports of the given sizes.
    fn outputs(result: &ExperimentResult, dir_name: &str, sizes: [usize; 3]) -> ExperimentOutputs {
        let results = ResultsFile {
            schema_version: 1,
            job: "daily".into(),
            report_date: date(),
            generated_at: "2026-11-21T06:00:00Z".into(),
            abreport_version: "test".into(),
            experiments: vec![result.clone()],
        };
        let bytes = |n: usize| OutputFile { name: String::new(), bytes: vec![7u8; n].into() };
        let named = |name: &str, f: OutputFile| OutputFile { name: name.into(), ..f };
        let files = vec![
            export::text_file("report.html", "<html></html>".into()),
            export::text_file("report.md", format!("# {}: report\n", result.id)),
            export::results_json(&results).expect("json"),
            named("results.parquet", bytes(sizes[0])),
            export::results_csv("2026-11-20", result),
            named("allocation.parquet", bytes(sizes[1])),
            named("units.parquet", bytes(10)),
            named("run.log.jsonl", bytes(sizes[2])),
        ];
        export::with_manifest(&results, result, dir_name, files, Vec::new()).expect("manifest")
    }

    fn spec(limit: u64, link_base_url: Option<&'static str>, digest: bool) -> EmailSpec<'static> {
        static TO: [String; 0] = [];
        EmailSpec { to: &TO, digest, attach_max_bytes: limit, link_base_url }
    }

    /// Text with every run of whitespace made one space: what a wrapped paragraph says.
    fn words(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The sample result with another recommendation, variant and id.
    fn decided(id: &str, recommendation: Recommendation, variant: Option<&str>) -> ExperimentResult {
        let mut result = sample_result();
        result.id = id.into();
        result.decision.recommendation = recommendation;
        result.decision.variant = variant.map(str::to_string);
        result
    }

    #[test]
    fn a_promote_subject_quotes_the_estimate_of_the_test_the_decision_read() {
        let mut result = sample_result();
        // The fixed-horizon field differs: the subject must not quote it.
        result.metrics[0].comparisons[0].relative_effect = Some(0.099);
        assert_eq!(subject(&result), "[abreport] checkout-redesign: PROMOTE treatment (+4.1% conversion)");
        let i = result.metrics[0].comparisons[0].inference.as_mut().expect("a test");
        (i.scale, i.estimate) = (InferenceScale::Absolute, 0.0041);
        assert_eq!(subject(&result), "[abreport] checkout-redesign: PROMOTE treatment (+0.004100 absolute conversion)");
        let mut failed = sample_result();
        failed.status = Status::Failed;
        assert_eq!(subject(&failed), "[abreport] checkout-redesign: FAILED (no analyzable data)");
    }

    #[test]
    fn a_pause_subject_quotes_no_effect() {
        // A PAUSE's figures come from a broken allocation; its report says not to trust them.
        let paused = decided("checkout-redesign", Recommendation::Pause, None);
        assert_eq!(subject(&paused), "[abreport] checkout-redesign: PAUSE");
        let continuing = decided("checkout-redesign", Recommendation::Continue, None);
        assert_eq!(subject(&continuing), "[abreport] checkout-redesign: CONTINUE");
        let trade_off = decided("checkout-redesign", Recommendation::Inconclusive, Some("treatment"));
        assert_eq!(subject(&trade_off), "[abreport] checkout-redesign: INCONCLUSIVE treatment");
    }

    #[test]
    fn a_rollback_subject_quotes_the_harmed_guardrail_when_the_primary_is_not_harmed() {
        let mut result = decided("checkout-redesign", Recommendation::Rollback, Some("treatment"));
        result.metrics[1].role = Role::Guardrail;
        result.metrics[1].comparisons[0].inference.as_mut().expect("a test").estimate = -0.31;
        result.decision.reason_codes = vec![ReasonCode::GuardrailSignificantLoss("revenue".into())];
        assert_eq!(subject(&result), "[abreport] checkout-redesign: ROLLBACK treatment (−31.0% revenue)");
        result.decision.reason_codes.insert(0, ReasonCode::PrimarySignificantLoss);
        assert_eq!(subject(&result), "[abreport] checkout-redesign: ROLLBACK treatment (+4.1% conversion)");
    }

    #[test]
    fn a_digest_lists_pause_and_rollback_first_and_promote_last() {
        let results = [
            decided("promoted", Recommendation::Promote, Some("treatment")),
            decided("running", Recommendation::Continue, None),
            decided("paused", Recommendation::Pause, None),
            decided("undecided", Recommendation::Inconclusive, None),
            decided("harmful", Recommendation::Rollback, Some("treatment")),
        ];
        let sets: Vec<ExperimentOutputs> = results.iter().map(|r| outputs(r, &r.id, [10, 10, 10])).collect();
        let (_, mail) = compose_all(&job(), date(), &sets, &spec(10_000_000, None, true)).expect("composed").remove(0);
        assert_eq!(
            mail.subject,
            "[abreport] daily 2026-11-20: paused PAUSE; harmful ROLLBACK treatment; undecided INCONCLUSIVE; +2 more"
        );
        let order = ["paused", "harmful", "undecided", "running", "promoted"];
        let at = |id: &str| mail.html.find(&format!(">{id}</h1>")).unwrap_or_else(|| panic!("{id} in the html"));
        assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "sections by severity");
        let text_at = |id: &str| mail.text.find(&format!(". {id}\ndaily · report for")).expect("in the text");
        assert!(order.windows(2).all(|w| text_at(w[0]) < text_at(w[1])), "the text part too");
        let mut failed = decided("failed", Recommendation::Inconclusive, None);
        failed.status = Status::Failed;
        assert_eq!(severity(&failed), severity(&results[2]), "a failed analysis is as urgent as a PAUSE");
    }

    #[test]
    fn a_digest_subject_names_at_most_three_experiments() {
        let result = sample_result();
        let all = [&result, &result, &result, &result];
        assert_eq!(
            digest_subject("daily", date(), &all),
            "[abreport] daily 2026-11-20: checkout-redesign PROMOTE treatment; checkout-redesign PROMOTE treatment; \
             checkout-redesign PROMOTE treatment; +1 more"
        );
    }

    #[test]
    fn attachments_are_taken_in_order_while_they_fit() {
        assert_eq!(choose_attachments(&[5, 10, 3], 9), vec![true, false, true]);
        assert_eq!(choose_attachments(&[5, 10, 3], 18), vec![true, true, true]);
        assert_eq!(choose_attachments(&[5, 10, 3], 2), vec![false, false, false]);
    }

    #[test]
    fn small_exports_are_attached_and_the_html_references_the_inline_chart() {
        let result = sample_result();
        let set = outputs(&result, "checkout-redesign", [100, 200, 300]);
        let mails = compose_all(&job(), date(), &[set], &spec(10_000_000, None, false)).expect("composed");
        assert_eq!(mails.len(), 1);
        let (key, mail) = &mails[0];
        assert_eq!(key, "checkout-redesign");
        let names: Vec<&str> = mail.attachments.iter().map(|a| a.0.as_str()).collect();
        assert_eq!(names, ["results.csv", "results.parquet", "allocation.parquet", "run.log.jsonl"]);
        assert_eq!(mail.attachments[0].1, "text/csv; charset=utf-8");
        assert_eq!(mail.images.len(), 1);
        assert_eq!(mail.images[0].0, "chart.checkout-redesign@abreport");
        assert_eq!(&mail.images[0].1[..4], b"\x89PNG");
        assert!(mail.html.contains(r#"src="cid:chart.checkout-redesign@abreport""#));
        assert!(!mail.html.contains("<svg") && !mail.html.contains("<script"));
        assert!(mail.text.starts_with("checkout-redesign\ndaily · report for 2026-11-20"), "{}", mail.text);
        assert!(mail.text.contains("- results.parquet (100 B): attached"), "{}", mail.text);
        assert!(!mail.text.contains("too large"));
    }

    #[test]
    fn the_story_charts_are_inline_pngs_with_specific_alt_text() {
        let mut result = sample_result();
        result.trend = vec![result.trend_point(date()).expect("a point")];
        result.srm.by_day = vec![crate::results::SrmSlice {
            slice: result.window.end.to_string(),
            units: vec![1000, 1000],
            p_value: None,
            broken: false,
        }];
        let set = outputs(&result, "checkout-redesign", [100, 200, 300]);
        let (_, mail) =
            compose_all(&job(), date(), &[set], &spec(10_000_000, None, false)).expect("composed").remove(0);
        let cids: Vec<&str> = mail.images.iter().map(|i| i.0.as_str()).collect();
        assert_eq!(
            cids,
            [
                "chart.checkout-redesign@abreport",
                "trend.checkout-redesign@abreport",
                "units.checkout-redesign@abreport"
            ]
        );
        assert!(mail.images.iter().all(|i| i.1.starts_with(b"\x89PNG")));
        assert!(mail.html.contains(r#"src="cid:trend.checkout-redesign@abreport""#));
        assert!(
            mail.html.contains(r#"alt="Cumulative relative effect on conversion against the control by report date on 2026-11-20 (the first report)"#),
            "{}",
            mail.html
        );
        assert!(mail.html.contains(r#"alt="New units per variant by day of first exposure"#));
        assert!(!mail.html.contains("<svg"));
        assert!(mail.html.len() < 100_000, "the mail's HTML stays well under Gmail's clip");

        // A broken allocation: the effect by day is left out and says why; the units stay.
        let mut broken = result;
        broken.decision.recommendation = Recommendation::Pause;
        broken.decision.variant = None;
        broken.decision.reason_codes = vec![ReasonCode::DataQualityFailed(crate::results::CheckName::Srm)];
        let set = outputs(&broken, "checkout-redesign", [100, 200, 300]);
        let (_, mail) =
            compose_all(&job(), date(), &[set], &spec(10_000_000, None, false)).expect("composed").remove(0);
        let cids: Vec<&str> = mail.images.iter().map(|i| i.0.as_str()).collect();
        assert!(!cids.contains(&"trend.checkout-redesign@abreport"), "{cids:?}");
        assert!(cids.contains(&"units.checkout-redesign@abreport"), "{cids:?}");
        assert!(mail.html.contains("The effect by day is left out: with the allocation broken"), "{}", mail.html);
    }

    #[test]
    fn exports_over_the_limit_are_linked_and_the_mail_says_so() {
        let result = sample_result();
        let set = outputs(&result, "checkout-redesign", [100, 5000, 300]);
        let csv = set.files.iter().find(|f| f.name == "results.csv").expect("results.csv").bytes.len() as u64;
        let spec = spec(csv + 1000, Some("https://files.example.com/xp"), false);
        let (_, mail) = compose_all(&job(), date(), &[set], &spec).expect("composed").remove(0);
        let names: Vec<&str> = mail.attachments.iter().map(|a| a.0.as_str()).collect();
        assert_eq!(names, ["results.csv", "results.parquet", "run.log.jsonl"]);
        let link = "https://files.example.com/xp/daily/2026-11-20/checkout-redesign/allocation.parquet";
        let text = words(&mail.text);
        assert!(
            text.contains(&format!("- allocation.parquet (5.0 kB): too large to attach, download: {link}")),
            "{text}"
        );
        assert!(mail.html.contains(&format!(r#"<a href="{link}""#)));
        assert!(
            text.contains(&format!(
                "1 export is larger than this message's {} limit for attachments",
                bytes(spec.attach_max_bytes)
            )),
            "{text}"
        );
    }

    #[test]
    fn without_a_link_base_the_mail_points_at_the_upload_destination() {
        let result = sample_result();
        let set = outputs(&result, "checkout-redesign", [100, 5000, 300]);
        let (_, mail) = compose_all(&job(), date(), &[set], &spec(1000, None, false)).expect("composed").remove(0);
        assert!(
            words(&mail.text).contains(
                "too large to attach: in the upload destination `s3://reports/abreport/daily/2026-11-20/checkout-redesign/`"
            ),
            "{}",
            mail.text
        );
    }

    #[test]
    fn a_digest_is_one_message_with_prefixed_attachments_and_a_chart_per_experiment() {
        let first = sample_result();
        let mut second = sample_result();
        second.id = "search".into();
        let sets = [outputs(&first, "checkout-redesign", [10, 10, 10]), outputs(&second, "search", [10, 10, 10])];
        let mails = compose_all(&job(), date(), &sets, &spec(10_000_000, None, true)).expect("composed");
        assert_eq!(mails.len(), 1);
        let (key, mail) = &mails[0];
        assert_eq!(key, "digest");
        assert!(mail.subject.starts_with("[abreport] daily 2026-11-20: checkout-redesign PROMOTE treatment; search"));
        assert_eq!(mail.images.len(), 2);
        assert!(mail.attachments.iter().any(|a| a.0 == "search-results.parquet"));
        assert!(mail.attachments.iter().any(|a| a.0 == "search-results.csv"));
        assert_eq!(mail.attachments.len(), 8);
    }

    #[test]
    fn the_text_part_is_plain_text_with_one_line_per_variant_and_no_markdown() {
        let mut result = sample_result();
        result.id = "checkout_redesign*v2".into();
        result.metrics[1].name = "revenue_per_user".into();
        result.description = Some("A one-page checkout\ninstead of three.".into());
        result.metrics[0].description = Some("Share of users who buy".into());
        result.checks[2].status = CheckStatus::Warn;
        result.checks[2].detail = "3 NaN values in `revenue_per_user`".into();
        let set = outputs(&result, "checkout_redesign_v2", [10, 10, 10]);
        let (_, mail) =
            compose_all(&job(), date(), &[set], &spec(10_000_000, None, false)).expect("composed").remove(0);
        let text = &mail.text;
        for markdown in ["\\_", "\\*", "|---", "| ", "# ", "**"] {
            assert!(!text.contains(markdown), "`{markdown}` in the text part:\n{text}");
        }
        assert!(text.starts_with("checkout_redesign*v2\n"), "names as they are: {text}");
        assert!(text.contains("\nA one-page checkout instead of three.\n"), "the description, on one line: {text}");
        assert!(text.contains("higher is better)\nShare of users who buy\n"), "the metric's: {text}");
        assert!(text.contains("\nPROMOTE — Promote treatment\n"), "{text}");
        assert!(text.contains("\n- `conversion` is up +4.1% for `treatment`.\n"), "the reasons: {text}");
        // One line per variant (wrapped), with the figures of the report's table.
        let line = words(text);
        assert!(
            line.contains(
                "- treatment: +4.10% (+0.41 pp), 10.0% vs 10.0%, always-valid 95% CI [+1.10%, +7.10%], p = 0.004, \
                 significant (better); 1,000 units"
            ),
            "{text}"
        );
        assert!(line.contains("- control: mean 10.0%, 1,000 units"), "{text}");
        assert!(text.contains("p\u{a0}=\u{a0}0.004"), "a p-value is not wrapped apart: {text}");
        assert!(line.contains("Data quality: 0 failing, 1 warning, 5 passing"), "{text}");
        assert!(line.contains("- invalid_values warns: 3 NaN values in `revenue_per_user`"), "{text}");
        assert!(line.contains("- results.csv ("), "the exports: {text}");
        for l in text.lines() {
            assert!(l.chars().count() <= 78 || !l.trim().contains(' '), "a line over 78 characters: `{l}`");
        }
    }

    #[test]
    fn the_mail_links_the_full_report_under_the_verdict_only_with_a_link_base() {
        let result = sample_result();
        let set = || outputs(&result, "checkout-redesign", [10, 10, 10]);
        let base = "https://reports.example.com/abreport";
        let (_, linked) =
            compose_all(&job(), date(), &[set()], &spec(10_000_000, Some(base), false)).expect("composed").remove(0);
        let report = format!("{base}/daily/2026-11-20/checkout-redesign/report.html");
        let button = format!(r#"<a href="{report}""#);
        let at = linked.html.find(&button).unwrap_or_else(|| panic!("the link in {}", linked.html));
        assert!(linked.html[at..].starts_with(&format!("{button} style=")), "{}", linked.html);
        assert!(linked.html[at..].contains(">Open the full report</a>"));
        let verdict = linked.html.find("PROMOTE — Promote treatment").expect("the verdict");
        let first_metric = linked.html.find(">conversion <span").expect("the first metric table");
        assert!(verdict < at && at < first_metric, "near the verdict, before the tables");
        let text = words(&linked.text);
        assert!(text.contains(&format!("PROMOTE — Promote treatment Open the full report: {report} - ")), "{text}");

        let (_, unlinked) =
            compose_all(&job(), date(), &[set()], &spec(10_000_000, None, false)).expect("composed").remove(0);
        assert!(!unlinked.html.contains("Open the full report") && !unlinked.html.contains("report.html\""));
        assert!(!unlinked.text.contains("Open the full report"), "{}", unlinked.text);
    }

    #[test]
    fn a_digest_opens_with_a_summary_row_per_experiment_in_the_sections_order() {
        let mut harmful = decided("harmful", Recommendation::Rollback, Some("treatment"));
        let harm = harmful.metrics[0].comparisons[0].inference.as_mut().expect("a test");
        (harm.estimate, harm.ci) = (-0.052, [-0.082, -0.022]);
        let results = [
            decided("promoted", Recommendation::Promote, Some("treatment")),
            decided("paused", Recommendation::Pause, None),
            harmful,
        ];
        let sets: Vec<ExperimentOutputs> = results.iter().map(|r| outputs(r, &r.id, [10, 10, 10])).collect();
        let base = "https://reports.example.com/abreport";
        let (_, mail) = compose_all(&job(), date(), &sets, &spec(10_000_000, Some(base), true)).expect("c").remove(0);
        let order = ["paused", "harmful", "promoted"];
        // HTML: a row per experiment linking to its section, all before the first section.
        let html = &mail.html;
        assert!(html.contains(">3 experiments of job <code>daily</code> for "), "{html}");
        assert!(mail.text.starts_with("3 experiments of job `daily` for 2026-11-20.\n"), "{}", mail.text);
        let first_section = html.find("<h1 id=").expect("a section");
        let rows: Vec<usize> = order
            .iter()
            .map(|id| html.find(&format!(r##"<a href="#xp-{id}""##)).unwrap_or_else(|| panic!("{id}'s row")))
            .collect();
        assert!(rows.windows(2).all(|w| w[0] < w[1]) && rows[2] < first_section, "{html}");
        for id in order {
            assert!(html.contains(&format!(r#"<h1 id="xp-{id}""#)), "{id}'s section is the anchor");
        }
        let row = |id: &str| {
            let start = html.find(&format!(r##"<a href="#xp-{id}""##)).expect("row");
            &html[start..start + html[start..].find("</tr>").expect("row end")]
        };
        assert!(row("harmful").contains(">ROLLBACK treatment</td>"), "{}", row("harmful"));
        assert!(
            row("harmful").contains(">conversion: treatment −5.2% [−8.2%, −2.2%]</td>"),
            "primary with its interval: {}",
            row("harmful")
        );
        assert!(row("harmful").contains(&format!(r#"<a href="{base}/daily/2026-11-20/harmful/report.html""#)));
        assert!(row("paused").contains(">figures not shown: the allocation is broken</td>"), "no figure for a PAUSE");
        // Text: the same rows, numbered, before the sections.
        let text = &mail.text;
        let lines: Vec<usize> = [
            "1. paused: PAUSE ·",
            "2. harmful: ROLLBACK treatment · conversion: treatment −5.2%",
            "3. promoted: PROMOTE treatment · conversion: treatment +4.1% [+1.1%, +7.1%]",
        ]
        .iter()
        .map(|l| text.find(l).unwrap_or_else(|| panic!("`{l}` in {text}")))
        .collect();
        let first_text_section = text.find(". paused\ndaily · report").expect("the first section");
        assert!(lines.windows(2).all(|w| w[0] < w[1]) && lines[2] < first_text_section, "{text}");
        assert!(text.contains(&format!("   {base}/daily/2026-11-20/harmful/report.html\n")), "{text}");
        // A single experiment's mail has no summary.
        let (_, single) = compose_all(&job(), date(), &sets[..1], &spec(10_000_000, None, false)).expect("c").remove(0);
        assert!(!single.html.contains(">Summary</caption>") && !single.text.contains("1. promoted"), "{}", single.text);
    }

    #[test]
    fn the_results_csv_is_attached_first_for_every_experiment_of_a_digest() {
        let results = [
            decided("one", Recommendation::Promote, Some("treatment")),
            decided("two", Recommendation::Continue, None),
        ];
        let sets: Vec<ExperimentOutputs> = results.iter().map(|r| outputs(r, &r.id, [900, 900, 900])).collect();
        let csv: u64 = sets
            .iter()
            .map(|s| s.files.iter().find(|f| f.name == "results.csv").expect("csv").bytes.len() as u64)
            .sum();
        // Room for both tables and one more export, not for every export of the first.
        let (_, mail) = compose_all(&job(), date(), &sets, &spec(csv + 1000, None, true)).expect("c").remove(0);
        let names: Vec<&str> = mail.attachments.iter().map(|a| a.0.as_str()).collect();
        // The digest's order: the CONTINUE before the PROMOTE.
        assert_eq!(names, ["two-results.csv", "one-results.csv", "two-results.parquet"]);
    }

    #[test]
    fn the_attached_csv_is_the_export_itself_with_hostile_names_quoted_and_guarded() {
        let mut result = sample_result();
        result.metrics[1].name = "=cmd|' /C calc'!A0, \"net\"".into();
        let set = outputs(&result, "checkout-redesign", [10, 10, 10]);
        let export = set.files.iter().find(|f| f.name == "results.csv").expect("the export").bytes.clone();
        let (_, mail) =
            compose_all(&job(), date(), &[set], &spec(10_000_000, None, false)).expect("composed").remove(0);
        let (_, content_type, bytes) = mail.attachments.iter().find(|a| a.0 == "results.csv").expect("attached");
        assert_eq!(*content_type, "text/csv; charset=utf-8");
        assert_eq!(bytes.as_slice(), &export[..], "attached as exported, byte for byte");
        let text = String::from_utf8(bytes.clone()).expect("UTF-8");
        assert!(
            text.contains("\r\ncheckout-redesign,2026-11-20,\"'=cmd|' /C calc'!A0, \"\"net\"\"\",secondary,"),
            "{text}"
        );
        // And the message carries it base64-encoded, so no relay changes its CRLF line ends.
        let from: Mailbox = "abreport <reports@example.com>".parse().expect("mailbox");
        let raw = String::from_utf8_lossy(
            &assemble(mail, &from, &["pm@example.com".to_string()]).expect("message").formatted(),
        )
        .into_owned();
        let part = &raw[raw.find("filename=\"results.csv\"").expect("the part")..];
        assert!(part[..part.find("\r\n\r\n").expect("headers end")].contains("Content-Transfer-Encoding: base64"));
    }

    /// The worst case a job file makes: many metrics, three treatments, every check failing
    /// with a long detail, long reasons.
    fn worst_case(id: &str, metrics: usize) -> ExperimentResult {
        let mut result = decided(id, Recommendation::Inconclusive, None);
        let template = result.metrics[0].clone();
        result.metrics = (0..metrics)
            .map(|i| {
                let mut m = template.clone();
                m.name = format!("metric_with_a_long_descriptive_name_{i:02}");
                m.role = if i == 0 {
                    Role::Primary
                } else if i % 3 == 0 {
                    Role::Guardrail
                } else {
                    Role::Secondary
                };
                for v in ["a", "b", "c"] {
                    let mut variant = m.variants[1].clone();
                    variant.variant = format!("treatment_{v}");
                    m.variants.push(variant);
                    let mut comparison = m.comparisons[0].clone();
                    comparison.variant = format!("treatment_{v}");
                    m.comparisons.push(comparison);
                }
                m
            })
            .collect();
        for check in &mut result.checks {
            check.status = CheckStatus::Fail;
            check.detail = "a detail as long as the longest that analyze writes, naming `variants`, days and dimension values at some length".into();
        }
        result.decision.reasons = (0..10).map(|i| format!("reason {i}: `metric_with_a_long_descriptive_name_{i:02}` moved in a way that a reader must know about before acting on it")).collect();
        result
    }

    /// One experiment's message, composed.
    fn single(result: &ExperimentResult, base: Option<&'static str>) -> Composed {
        let set = outputs(result, &result.id, [10, 10, 10]);
        compose_all(&job(), date(), &[set], &spec(10_000_000, base, false)).expect("composed").remove(0).1
    }

    const SHORTENED: &str = "This mail is shortened so that mail clients do not cut it short";

    #[test]
    fn a_demo_sized_experiment_is_mailed_in_full_well_under_the_clipping_size() {
        // The demo's widest experiment has 6 metrics and 3 variants; this one has 4 variants
        // and every check failing. (In full, about 20 such metrics fit in the budget.)
        let mail = single(&worst_case("wide", 6), None);
        assert!(mail.html.len() <= HTML_BUDGET / 2, "{} bytes of HTML for one experiment", mail.html.len());
        assert!(mail.html.contains(">metric_with_a_long_descriptive_name_05 <span"), "every metric's table");
        assert!(!mail.html.contains(SHORTENED) && !mail.text.contains(SHORTENED));
    }

    #[test]
    fn an_experiment_too_wide_for_a_mail_client_is_shortened_under_the_clipping_size() {
        let mail = single(&worst_case("wide", 40), Some("https://reports.example.com/abreport"));
        assert!(mail.html.len() <= HTML_BUDGET, "{} bytes of HTML for one experiment", mail.html.len());
        assert!(mail.html.contains(SHORTENED) && words(&mail.text).contains(SHORTENED));
        assert!(!mail.html.contains(">metric_with_a_long_descriptive_name_00 <span"), "no metric tables");
        assert!(mail.html.contains("<strong>metric_with_a_long_descriptive_name_00</strong> (primary)"), "key metrics");
        assert!(mail.html.contains("srm fail</strong>"), "failing checks stay");
        assert!(mail.html.contains(">Open the full report</a>"), "and the link to the rest");
        assert!(mail.html.contains(r#"src="cid:chart.wide@abreport""#), "and the chart");
    }

    #[test]
    fn a_digest_too_long_for_a_mail_client_is_shortened_to_verdicts_key_metrics_and_links() {
        let results: Vec<ExperimentResult> = (0..8).map(|i| worst_case(&format!("xp{i:02}"), 8)).collect();
        let sets: Vec<ExperimentOutputs> = results.iter().map(|r| outputs(r, &r.id, [10, 10, 10])).collect();
        let base = "https://reports.example.com/abreport";
        let (_, mail) = compose_all(&job(), date(), &sets, &spec(10_000_000, Some(base), true)).expect("c").remove(0);
        let html = &mail.html;
        assert!(html.len() <= HTML_BUDGET, "{} bytes of HTML", html.len());
        assert!(html.contains(SHORTENED) && words(&mail.text).contains(SHORTENED));
        for r in &results {
            let id = &r.id;
            assert!(html.contains(&format!(r#"<h1 id="xp-{id}""#)), "{id}'s section");
            assert!(html.contains(&format!(r#"<a href="{base}/daily/2026-11-20/{id}/report.html""#)), "{id}'s link");
        }
        assert!(!html.contains(">metric_with_a_long_descriptive_name_00 <span"), "no metric tables");
        assert_eq!(mail.images.len(), results.len(), "a chart per experiment");
    }

    #[test]
    fn a_digest_of_very_many_experiments_keeps_its_summary_table_alone() {
        // Untestable experiments draw no chart: the test stays fast.
        let results: Vec<ExperimentResult> = (0..80)
            .map(|i| {
                let mut result = worst_case(&format!("experiment-{i:03}"), 4);
                result.metrics.iter_mut().flat_map(|m| &mut m.comparisons).for_each(|c| c.inference = None);
                result
            })
            .collect();
        let sets: Vec<ExperimentOutputs> = results.iter().map(|r| outputs(r, &r.id, [10, 10, 10])).collect();
        let (_, mail) = compose_all(&job(), date(), &sets, &spec(10_000_000, None, true)).expect("c").remove(0);
        assert!(mail.html.len() <= HTML_BUDGET, "{} bytes of HTML", mail.html.len());
        assert!(mail.html.contains("These experiments are too many to show in one mail"), "it says so");
        assert!(!mail.html.contains("<h1 id="), "no sections");
        assert!(mail.images.is_empty(), "no section, no chart");
        assert!(!mail.html.contains("href=\"#xp-"), "no link to a section that is not there");
        for r in &results {
            assert!(mail.html.contains(&format!(">{}</th>", r.id)), "{}'s row", r.id);
            assert!(mail.text.contains(&format!(". {}: INCONCLUSIVE", r.id)), "{}'s line", r.id);
        }
    }

    #[test]
    fn the_assembled_message_nests_related_in_alternative_in_mixed() {
        let result = sample_result();
        let set = outputs(&result, "checkout-redesign", [10, 10, 10]);
        let (_, mail) =
            compose_all(&job(), date(), &[set], &spec(10_000_000, None, false)).expect("composed").remove(0);
        let from: Mailbox = "abreport <reports@example.com>".parse().expect("mailbox");
        let message = assemble(mail, &from, &["pm@example.com".to_string()]).expect("message");
        let raw = String::from_utf8_lossy(&message.formatted()).into_owned();
        let at = |needle: &str| raw.find(needle).unwrap_or_else(|| panic!("{needle} missing"));
        assert!(at("multipart/mixed") < at("multipart/alternative"));
        assert!(at("multipart/alternative") < at("text/plain"));
        assert!(at("text/plain") < at("multipart/related"));
        assert!(at("multipart/related") < at("text/html"));
        assert!(at("text/html") < at("Content-ID: <chart.checkout-redesign@abreport>"));
        assert!(raw.contains("Content-Disposition: attachment; filename=\"allocation.parquet\""));
        assert!(raw.contains("Subject: [abreport] checkout-redesign: PROMOTE treatment (+4.1% conversion)"));
        assert!(raw.contains("Message-ID: <"));
        assert_eq!(message.envelope().to().len(), 1);
    }
}
