//! `kind = "chat"`: a short summary per experiment, posted to a Slack-compatible incoming
//! webhook (`{"text": "…"}`; Mattermost, Rocket.Chat and Teams' Slack-compatible hooks take
//! the same body).
//!
//! The message is built from the run's files, like a mail, so a retry from the outbox posts
//! what the run would have: the verdict in the mail subject's words, the primary metric's
//! effect with its interval and test, the first reason, and a link to the full report. It is
//! Slack `mrkdwn`, in which only `&`, `<` and `>` need escaping; user text is escaped, so an
//! experiment named `<!channel>` mentions nobody.
//!
//! The webhook URL is a secret (whoever has it can post): it comes from the environment
//! variable the job names, and only that name and the URL's host appear in errors, logs, the
//! outbox and the ledger.

use std::time::Duration;

use chrono::NaiveDate;

use super::email::{output_link, upload_location};
use crate::config::Job;
use crate::export::{ExperimentOutputs, run_prefix};
use crate::render::{Test, comparison_effects};
use crate::results::{ExperimentResult, Recommendation, ResultsFile, Role, Status};

/// How long one attempt to post one message may take, connecting included, when
/// `ABREPORT_CHAT_TIMEOUT_SECONDS` is unset.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a refusal's body an error quotes: enough for Slack's `invalid_payload` or
/// `no_service`, not a page of HTML.
const REPLY_EXCERPT_CHARS: usize = 120;

/// A message ready to post, with the key under which the outbox records it as sent: the
/// experiment's folder name, as for a per-experiment mail.
pub struct Post {
    /// `dir_name` of the experiment.
    pub key: String,
    /// The message text (Slack mrkdwn).
    pub text: String,
    /// The JSON body: `{"text": …}`.
    pub body: String,
}

/// Why a chat delivery failed. Never holds the webhook URL.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The variable that should hold the webhook URL is unset or empty.
    #[error("chat webhook: the environment variable `{var}` is not set (it holds the incoming-webhook URL)")]
    NotSet { var: String },
    /// The variable holds something that is not a web URL (its value is not quoted: it is meant
    /// to be secret).
    #[error("chat webhook: the environment variable `{var}` does not hold an http:// or https:// URL")]
    NotAUrl { var: String },
    /// `ABREPORT_CHAT_TIMEOUT_SECONDS` is not a positive number.
    #[error("{} `{value}` is not a positive number", crate::env::CHAT_TIMEOUT_SECONDS)]
    Timeout { value: String },
    /// An output file the message needs is missing or unreadable.
    #[error("chat message for experiment `{experiment}`: {cause}")]
    Results { experiment: String, cause: String },
    /// The HTTP client could not be set up.
    #[error("chat webhook: cannot set up the HTTP client: {0}")]
    Client(String),
    /// The webhook, or the way to it, refused.
    #[error("chat webhook at {host} (from `{var}`): {cause}")]
    Send {
        /// The variable the URL came from.
        var: String,
        /// The URL's host (and port, when given): where, without the secret path.
        host: String,
        /// What happened: the HTTP status and a short reason, or the network failure.
        cause: String,
        /// Whether trying again later can help (network failures, timeouts, 429, 5xx).
        transient: bool,
    },
}

impl ChatError {
    /// Whether another attempt can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, ChatError::Send { transient: true, .. })
    }
}

/// Escapes text for Slack mrkdwn: `&`, `<` and `>` are the only characters Slack asks to be
/// escaped; left alone they would make links and mentions (`<!channel>`).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A URL inside `<url|label>`: `|` and `>` would end it early, so they and `<` are
/// percent-encoded; `&` is escaped as everywhere in mrkdwn.
fn escape_link(url: &str) -> String {
    url.replace('&', "&amp;").replace('<', "%3C").replace('>', "%3E").replace('|', "%7C")
}

/// The summary of one experiment, 3 to 5 lines:
///
/// ```text
/// *checkout-redesign* — PROMOTE treatment (+4.1% conversion)
/// Primary *conversion*: treatment +4.1% [+1.1%, +7.1%] (always-valid 95% CI)
/// `conversion` is up +4.1% for `treatment`.
/// <https://files.example.com/xp/daily/2026-11-20/checkout-redesign/report.html|Full report> · daily, 2026-11-20
/// ```
///
/// The effect line is left out when there is no primary comparison (a failed analysis), and
/// replaced by a warning for a PAUSE, whose figures come from a broken allocation. `place`
/// says where the full report is.
pub fn message(result: &ExperimentResult, job: &str, report_date: NaiveDate, place: &ReportPlace) -> String {
    let mut lines = vec![format!("*{}* — {}", escape(&result.id), escape(&super::email::verdict(result)))];
    if let Some(effect) = primary_effect(result) {
        lines.push(effect);
    }
    if let Some(reason) = result.decision.reasons.first() {
        lines.push(escape(reason));
    }
    let run = format!("{}, {report_date}", escape(job));
    lines.push(match place {
        ReportPlace::Link(url) => format!("<{}|Full report> · {run}", escape_link(url)),
        ReportPlace::Location(location) => format!("{run} · full report: {}", escape(location)),
        ReportPlace::Nowhere => format!("{run} · the full report is with the run's outputs"),
    });
    lines.join("\n")
}

/// Where the message says the full report is.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportPlace {
    /// `<link_base_url>/<job>/<date>/<experiment>/report.html`.
    Link(String),
    /// The uploaded copy's location (`s3://…/report.html`), when there is no web link.
    Location(String),
    /// Neither: the report is only where the run wrote it.
    Nowhere,
}

/// The primary metric's line: each comparison's effect and interval on the scale its test
/// reads, labelled with the test; `None` when there is nothing to show.
fn primary_effect(result: &ExperimentResult) -> Option<String> {
    if result.status == Status::Failed {
        return None;
    }
    let primary = result.metrics.iter().find(|m| m.role == Role::Primary)?;
    let name = escape(&primary.name);
    if result.decision.recommendation == Recommendation::Pause {
        return Some(format!("Primary *{name}*: figures not shown: the allocation is broken, so none can be trusted"));
    }
    if primary.comparisons.is_empty() {
        return None;
    }
    let effects = comparison_effects(primary, escape);
    Some(format!("Primary *{name}*: {} ({})", effects.join("; "), Test::of(result).interval_label()))
}

/// Where the full report of the experiment in `dir_name` is, for the message's last line.
fn report_place(job: &Job, prefix: &str, dir_name: &str, link_base_url: Option<&str>) -> ReportPlace {
    if let Some(base) = link_base_url {
        return ReportPlace::Link(output_link(base, prefix, dir_name, "report.html"));
    }
    match upload_location(job, prefix) {
        Some(run) => ReportPlace::Location(format!("{run}{dir_name}/report.html")),
        None => ReportPlace::Nowhere,
    }
}

/// The posts of one chat delivery: one per experiment of `outputs`, in order.
pub fn build(
    job: &Job,
    report_date: NaiveDate,
    outputs: &[ExperimentOutputs],
    link_base_url: Option<&str>,
) -> Result<Vec<Post>, ChatError> {
    let prefix = run_prefix(&job.name, report_date);
    outputs
        .iter()
        .map(|output| {
            let problem = |cause: String| ChatError::Results { experiment: output.experiment_id.clone(), cause };
            let file = output
                .files
                .iter()
                .find(|f| f.name == "results.json")
                .ok_or_else(|| problem("`results.json` is missing from the run's outputs".into()))?;
            let results: ResultsFile =
                serde_json::from_slice(&file.bytes).map_err(|e| problem(format!("cannot read `results.json`: {e}")))?;
            let result =
                results.experiments.first().ok_or_else(|| problem("`results.json` holds no experiment".into()))?;
            let place = report_place(job, &prefix, &output.dir_name, link_base_url);
            let text = message(result, &job.name, report_date, &place);
            let body = serde_json::json!({ "text": text }).to_string();
            Ok(Post { key: output.dir_name.clone(), text, body })
        })
        .collect()
}

/// An incoming webhook, ready to post to. Its `Debug` shows the variable and host only.
pub struct Webhook {
    url: reqwest::Url,
    var: String,
    host: String,
    timeout: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("var", &self.var).field("host", &self.host).finish_non_exhaustive()
    }
}

impl Webhook {
    /// The webhook whose URL the environment variable `var` holds, each attempt bounded by
    /// `ABREPORT_CHAT_TIMEOUT_SECONDS`.
    pub fn from_env(var: &str) -> Result<Self, ChatError> {
        let value = std::env::var(var).unwrap_or_default();
        let timeout = match std::env::var(crate::env::CHAT_TIMEOUT_SECONDS) {
            Err(_) => DEFAULT_TIMEOUT,
            Ok(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                .map(Duration::from_secs_f64)
                .ok_or(ChatError::Timeout { value: text })?,
        };
        Self::new(var, value.trim(), timeout)
    }

    fn new(var: &str, value: &str, timeout: Duration) -> Result<Self, ChatError> {
        if value.is_empty() {
            return Err(ChatError::NotSet { var: var.into() });
        }
        let url = reqwest::Url::parse(value).map_err(|_| ChatError::NotAUrl { var: var.into() })?;
        let Some(host) = url.host_str().filter(|_| matches!(url.scheme(), "http" | "https")) else {
            return Err(ChatError::NotAUrl { var: var.into() });
        };
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // A redirect would re-send the message somewhere the job did not name.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ChatError::Client(e.without_url().to_string()))?;
        Ok(Self { url, var: var.into(), host, timeout, client })
    }

    /// Posts one JSON body. 2xx is success; 429 and 5xx are worth retrying, other statuses not.
    pub async fn post(&self, body: &str) -> Result<(), ChatError> {
        let sent = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return Err(self.failed(network_failure(&e, self.timeout))),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let reply = response.text().await.unwrap_or_default();
        let transient = status.as_u16() == 429 || status.is_server_error();
        let mut cause = format!("HTTP {status}");
        let excerpt = self.scrub(&one_line(&reply));
        if !excerpt.is_empty() {
            cause.push_str(&format!(": {excerpt}"));
        }
        if status.is_redirection() {
            cause.push_str(" (redirects are not followed: set the webhook's final URL)");
        }
        Err(self.failed((cause, transient)))
    }

    fn failed(&self, (cause, transient): (String, bool)) -> ChatError {
        ChatError::Send { var: self.var.clone(), host: self.host.clone(), cause: self.scrub(&cause), transient }
    }

    /// `text` without the webhook URL or its path, should a server or library quote it.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.replace(self.url.as_str(), "<the webhook URL>");
        let path = self.url.path();
        if path.len() > 1 {
            text = text.replace(path, "/<secret path>");
        }
        text
    }
}

/// A failure before any HTTP status, in words, and whether it may pass: a timeout or a
/// network failure may; a TLS failure (an untrusted certificate) will not. Only the error's
/// causes are quoted: reqwest's own text names the URL.
fn network_failure(error: &reqwest::Error, timeout: Duration) -> (String, bool) {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    let root = causes.last().cloned().unwrap_or_else(|| "request failed".into());
    if crate::source::retry::is_tls_failure(error) {
        (format!("TLS failed: {root}"), false)
    } else if error.is_timeout() {
        (format!("timed out: no answer within {} s", timeout.as_secs_f64()), true)
    } else if error.is_connect() {
        (format!("cannot connect: {root}"), true)
    } else {
        (format!("request failed: {root}"), true)
    }
}

/// The start of a reply body on one line.
fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(REPLY_EXCERPT_CHARS) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{inference_effect, inference_interval};
    use crate::results::{ReasonCode, sample_result};

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 20).expect("date")
    }

    const LINK: &str = "https://files.example.com/xp/daily/2026-11-20/checkout-redesign/report.html";

    #[test]
    fn a_promote_reads_verdict_effect_reason_and_link() {
        let result = sample_result();
        let text = message(&result, "daily", date(), &ReportPlace::Link(LINK.into()));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        // The mail subject's words, from the same function.
        assert_eq!(lines[0], format!("*checkout-redesign* — {}", super::super::email::verdict(&result)));
        assert!(lines[0].starts_with("*checkout-redesign* — PROMOTE treatment"), "{}", lines[0]);
        let i = result.metrics[0].comparisons[0].inference.as_ref().expect("a test");
        assert_eq!(
            lines[1],
            format!(
                "Primary *conversion*: treatment {} {} (always-valid 95% CI)",
                inference_effect(i, 1),
                inference_interval(i, 1)
            )
        );
        assert_eq!(lines[2], "`conversion` is up +4.1% for `treatment`.");
        assert_eq!(lines[3], format!("<{LINK}|Full report> · daily, 2026-11-20"));
    }

    #[test]
    fn without_a_link_the_last_line_says_where_the_report_is() {
        let result = sample_result();
        let located = message(&result, "daily", date(), &ReportPlace::Location("s3://r/daily/x/report.html".into()));
        assert_eq!(located.lines().last(), Some("daily, 2026-11-20 · full report: s3://r/daily/x/report.html"));
        let nowhere = message(&result, "daily", date(), &ReportPlace::Nowhere);
        assert!(!nowhere.contains("<http") && !nowhere.contains("|Full report>"), "{nowhere}");
        assert_eq!(nowhere.lines().count(), 4);
    }

    #[test]
    fn user_text_is_escaped_so_it_makes_no_link_or_mention() {
        let mut result = sample_result();
        result.id = "<!channel> & <https://evil.example|click>".into();
        result.decision.reasons = vec!["x < y & y > z".into()];
        result.metrics[0].name = "a<b>".into();
        let link = "https://files.example.com/a|b>c&d";
        let text = message(&result, "j&<>", date(), &ReportPlace::Link(link.into()));
        assert!(text.starts_with("*&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;* — PROMOTE"), "{text}");
        assert!(text.contains("Primary *a&lt;b&gt;*:"), "{text}");
        assert!(text.contains("\nx &lt; y &amp; y &gt; z\n"), "{text}");
        assert!(text.contains("<https://files.example.com/a%7Cb%3Ec&amp;d|Full report> · j&amp;&lt;&gt;, 2026-11-20"));
        // The only `<` left opens the one link.
        assert_eq!(text.matches('<').count(), 1, "{text}");
    }

    #[test]
    fn a_pause_shows_no_figures_and_a_failure_no_effect_line() {
        let mut paused = sample_result();
        paused.decision.recommendation = Recommendation::Pause;
        paused.decision.variant = None;
        paused.decision.reasons = vec!["The srm check failed.".into()];
        paused.decision.reason_codes = vec![ReasonCode::TooEarly];
        let text = message(&paused, "daily", date(), &ReportPlace::Nowhere);
        assert!(text.starts_with("*checkout-redesign* — PAUSE\n"), "{text}");
        assert!(text.contains("figures not shown") && !text.contains('%'), "{text}");

        let mut failed = sample_result();
        failed.status = Status::Failed;
        failed.decision.reasons = vec!["No exposures.".into()];
        let text = message(&failed, "daily", date(), &ReportPlace::Nowhere);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], ["*checkout-redesign* — FAILED (no analyzable data)", "No exposures."], "{text}");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn an_untested_comparison_says_so() {
        let mut result = sample_result();
        result.decision.recommendation = Recommendation::Continue;
        result.metrics[0].comparisons[0].inference = None;
        let text = message(&result, "daily", date(), &ReportPlace::Nowhere);
        assert!(text.contains("Primary *conversion*: treatment not testable yet ("), "{text}");
    }

    #[test]
    fn the_webhook_needs_a_web_url_and_its_errors_never_quote_it() {
        let unset = Webhook::new("CHAT_HOOK", "", DEFAULT_TIMEOUT).expect_err("empty");
        assert_eq!(
            unset.to_string(),
            "chat webhook: the environment variable `CHAT_HOOK` is not set (it holds the incoming-webhook URL)"
        );
        for value in ["ftp://hooks.example.com/T0/B0/secret", "hooks.example.com/secret", "file:///secret"] {
            let error = Webhook::new("CHAT_HOOK", value, DEFAULT_TIMEOUT).expect_err(value).to_string();
            assert!(!error.contains("secret") && error.contains("`CHAT_HOOK`"), "{error}");
        }
        let hook = Webhook::new("CHAT_HOOK", "https://hooks.example.com:8443/services/T0/B0/s3cr3t", DEFAULT_TIMEOUT)
            .expect("valid");
        assert_eq!(hook.host, "hooks.example.com:8443");
        assert!(!format!("{hook:?}").contains("s3cr3t"));
        let error = hook.failed(("HTTP 404: no https://hooks.example.com:8443/services/T0/B0/s3cr3t".into(), false));
        let text = error.to_string();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.starts_with("chat webhook at hooks.example.com:8443 (from `CHAT_HOOK`): HTTP 404"), "{text}");
        assert!(!error.is_transient());
    }

    #[test]
    fn long_replies_are_cut_to_one_short_line() {
        assert_eq!(one_line("no_service\n"), "no_service");
        let long = "x ".repeat(200);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), REPLY_EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
