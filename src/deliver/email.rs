//! `kind = "email"`: builds the messages of a run from its output files — pure, testable
//! without a server — for `deliver` to send through [`super::smtp::Mailer`].
//!
//! A message is `multipart/alternative` (the Markdown report as plain text; the HTML of
//! `templates/email.html` in a `multipart/related` with the charts as inline PNGs referenced
//! by `cid:`), inside a `multipart/mixed` with the exports attached while they fit under the
//! delivery's `attach_max_bytes`; the others are linked or located, and the mail says so.
//! Everything is built from the files (`results.json`, `report.md`, the exports), so a retry
//! from the outbox builds the same mail as the run did. Nothing here sends or touches disk.

use chrono::NaiveDate;
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

use crate::config::{Delivery, Job};
use crate::export::{ExperimentOutputs, OutputFile};
use crate::render::png::{PngError, svg_to_png};
use crate::render::{
    EmailFile, EmailFrame, EmailSection, RenderError, Renderer, RunFacts, StoryCids, bytes, chart, inference_effect,
    trend,
};
use crate::results::{
    ExperimentResult, Inference, InferenceScale, MetricResult, ReasonCode, Recommendation, ResultsFile, Role, Status,
};
use crate::store::display_url;

/// The exports a mail attaches, in this order, while they fit.
pub const EXPORTS: [&str; 3] = ["results.parquet", "allocation.parquet", "run.log.jsonl"];

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
    markdown: String,
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
    let markdown = String::from_utf8_lossy(&file(output, "report.md")?.bytes).into_owned();
    Ok(Parsed { output, results, markdown })
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
    let mut parts: Vec<String> = results
        .iter()
        .take(3)
        .map(|r| {
            let mut words = r.decision.recommendation.name().to_uppercase();
            if r.status == Status::Failed {
                words = "FAILED".into();
            } else if let Some(v) = &r.decision.variant {
                words = format!("{words} {v}");
            }
            format!("{} {words}", r.id)
        })
        .collect();
    if results.len() > 3 {
        parts.push(format!("+{} more", results.len() - 3));
    }
    format!("[abreport] {job} {report_date}: {}", parts.join("; "))
}

/// Where the uploaded copies of a run are, for mails: the first upload destination.
fn upload_location(job: &Job, prefix: &str) -> Option<String> {
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
    /// The plain-text part (the Markdown reports and the list of exports).
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

    // Attachments: every export of every experiment in the group, in order, within the limit.
    let exports: Vec<(&Parsed<'_>, &OutputFile)> = group
        .iter()
        .flat_map(|p| {
            EXPORTS.iter().filter_map(move |name| p.output.files.iter().find(|f| f.name == *name).map(|f| (*p, f)))
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
    let mut images: Vec<(String, Vec<u8>)> = Vec::new();
    let mut sections = Vec::with_capacity(group.len());
    let mut text = String::new();
    for (i, parsed) in group.iter().enumerate() {
        let result = parsed.result();
        let chart_cid = match chart::relative_effects_svg(result) {
            Some(svg) => {
                let cid = format!("chart.{}@abreport", parsed.output.dir_name);
                images.push((cid.clone(), svg_to_png(&svg, CHART_SCALE)?));
                Some(cid)
            }
            None => None,
        };
        let story_cids = story_pngs(result, &parsed.output.dir_name, &mut images)?;
        let files: Vec<EmailFile> = exports
            .iter()
            .zip(&attach)
            .filter(|((p, _), _)| std::ptr::eq(*p, *parsed))
            .map(|((p, f), attached)| {
                let (link, location) = if *attached {
                    (None, None)
                } else if let Some(base) = spec.link_base_url {
                    (Some(format!("{base}/{prefix}/{}/{}", p.output.dir_name, f.name)), None)
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
        if i > 0 {
            text.push_str("\n\n---\n\n");
        }
        text.push_str(parsed.markdown.trim_end());
        text.push_str("\n\n## Data exports\n\n");
        for f in &files {
            let place = match (&f.link, &f.location) {
                _ if f.attached => "attached".to_string(),
                (Some(link), _) => format!("too large to attach, download: {link}"),
                (None, Some(location)) => format!("too large to attach: {location}"),
                (None, None) => "not attached".to_string(),
            };
            text.push_str(&format!("- {} ({}): {place}\n", f.name, f.size));
        }
        sections.push(EmailSection { result, facts: &facts[i], chart_cid, story_cids, files });
    }
    let linked = attach.iter().filter(|a| !**a).count();
    let note = (linked > 0).then(|| {
        format!(
            "{linked} export{} larger than this message's {} limit for attachments, so {} linked or located above instead of attached.",
            if linked == 1 { " is" } else { "s are" },
            bytes(spec.attach_max_bytes),
            if linked == 1 { "it is" } else { "they are" }
        )
    });
    if let Some(note) = &note {
        text.push_str(&format!("\n{note}\n"));
    }
    let intro = digest.then(|| format!("{} experiment(s) of job `{}` for {report_date}.", group.len(), job.name));
    let upload_hint = upload.as_deref();
    let generated_at = group.first().map(|p| p.results.generated_at.clone()).unwrap_or_default();
    let html = renderer.email_html(
        &EmailFrame {
            title: &subject,
            intro: intro.as_deref(),
            note: note.as_deref(),
            upload_hint,
            generated_at: &generated_at,
        },
        &sections,
    )?;

    let mut attachments = Vec::new();
    for ((parsed, f), attached) in exports.iter().zip(&attach) {
        if *attached {
            // A digest carries several experiments' files of the same name.
            let name = if digest { format!("{}-{}", parsed.output.dir_name, f.name) } else { f.name.clone() };
            let content_type =
                if f.name.ends_with(".parquet") { "application/vnd.apache.parquet" } else { "application/jsonl" };
            attachments.push((name, content_type, f.bytes.to_vec()));
        }
    }
    Ok(Composed { subject, text, html, images, attachments })
}

/// The story charts of `result` (its story metric's effect by day, units by day) as inline
/// PNGs added to `images`, and their Content-IDs.
fn story_pngs(
    result: &ExperimentResult,
    dir_name: &str,
    images: &mut Vec<(String, Vec<u8>)>,
) -> Result<StoryCids, EmailError> {
    let mut cids = StoryCids::default();
    let effect = trend::story_metric(result).and_then(|metric| trend::effect_svg(result, metric));
    for (svg, kind, cid) in [(effect, "trend", &mut cids.effect), (trend::units_svg(result), "units", &mut cids.units)]
    {
        if let Some(svg) = svg {
            let id = format!("{kind}.{dir_name}@abreport");
            images.push((id.clone(), svg_to_png(&svg, CHART_SCALE)?));
            *cid = Some(id);
        }
    }
    Ok(cids)
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
            mixed =
                mixed.singlepart(Attachment::new(name).body(bytes, ContentType::parse(content_type).map_err(build)?));
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
    use crate::results::{Recommendation, sample_result};
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
        let text_at = |id: &str| mail.text.find(&format!("# {id}: report")).expect("in the text");
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
        assert_eq!(names, ["results.parquet", "allocation.parquet", "run.log.jsonl"]);
        assert_eq!(mail.images.len(), 1);
        assert_eq!(mail.images[0].0, "chart.checkout-redesign@abreport");
        assert_eq!(&mail.images[0].1[..4], b"\x89PNG");
        assert!(mail.html.contains(r#"src="cid:chart.checkout-redesign@abreport""#));
        assert!(!mail.html.contains("<svg") && !mail.html.contains("<script"));
        assert!(mail.text.starts_with("# checkout-redesign: report"), "the Markdown report is the text part");
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
    }

    #[test]
    fn exports_over_the_limit_are_linked_and_the_mail_says_so() {
        let result = sample_result();
        let set = outputs(&result, "checkout-redesign", [100, 5000, 300]);
        let spec = spec(1000, Some("https://files.example.com/xp"), false);
        let (_, mail) = compose_all(&job(), date(), &[set], &spec).expect("composed").remove(0);
        let names: Vec<&str> = mail.attachments.iter().map(|a| a.0.as_str()).collect();
        assert_eq!(names, ["results.parquet", "run.log.jsonl"]);
        let link = "https://files.example.com/xp/daily/2026-11-20/checkout-redesign/allocation.parquet";
        assert!(mail.text.contains(&format!("- allocation.parquet (5.0 kB): too large to attach, download: {link}")));
        assert!(mail.html.contains(&format!(r#"<a href="{link}""#)));
        assert!(
            mail.text.contains("1 export is larger than this message's 1.0 kB limit for attachments"),
            "{}",
            mail.text
        );
    }

    #[test]
    fn without_a_link_base_the_mail_points_at_the_upload_destination() {
        let result = sample_result();
        let set = outputs(&result, "checkout-redesign", [100, 5000, 300]);
        let (_, mail) = compose_all(&job(), date(), &[set], &spec(1000, None, false)).expect("composed").remove(0);
        assert!(
            mail.text.contains(
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
        assert_eq!(mail.attachments.len(), 6);
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
