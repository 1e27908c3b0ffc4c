//! Checking a [`RawJob`] into a [`Job`]: every problem is collected with its line.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::raw::{RawDelivery, RawEventAggregate, RawExperiment, RawJob, RawMetric, RawStats};
use super::*;

/// Parses and checks the text of a job file. `file` is used for messages and to resolve
/// relative paths.
pub fn check(text: &str, file: &Path) -> Result<Job, ConfigError> {
    let mut checker = Checker { text, problems: Vec::new() };
    let raw: RawJob = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(err) => {
            // toml's own message already quotes the line; keep its first line only and
            // give the line number in our format.
            let line = err.span().map(|span| checker.line(&span));
            let message = err.message().trim().to_string();
            return Err(ConfigError::Invalid { file: file.to_path_buf(), problems: vec![Problem { line, message }] });
        }
    };
    let job = checker.job(raw, file);
    match job {
        Some(job) if checker.problems.is_empty() => Ok(job),
        _ => Err(ConfigError::Invalid { file: file.to_path_buf(), problems: checker.problems }),
    }
}

struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    fn problem<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.problem_at(at.span(), message);
    }

    fn problem_at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let line = Some(self.line(&span));
        self.problems.push(Problem { line, message: message.into() });
    }

    fn job(&mut self, raw: RawJob, file: &Path) -> Option<Job> {
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() {
            self.problem(&raw.name, "`name` must not be empty");
        }
        let timezone = match &raw.timezone {
            None => chrono_tz::UTC,
            Some(tz) => match tz.get_ref().parse::<chrono_tz::Tz>() {
                Ok(tz) => tz,
                Err(_) => {
                    self.problem(
                        tz,
                        format!("unknown time zone `{}` (use an IANA name such as `Europe/Berlin`)", tz.get_ref()),
                    );
                    chrono_tz::UTC
                }
            },
        };
        if let Some(schedule) = &raw.schedule {
            let fields = schedule.get_ref().split_whitespace().count();
            if !(6..=7).contains(&fields) {
                self.problem(
                    schedule,
                    format!(
                        "schedule `{}` has {fields} fields; abreport takes cron with seconds: `sec min hour day month weekday [year]`, e.g. `0 0 6 * * *`",
                        schedule.get_ref()
                    ),
                );
            } else if let Err(e) = crate::schedule::cron::Schedule::parse(schedule.get_ref(), timezone) {
                // The parser the scheduler uses, so a job that passes here also schedules.
                self.problem(schedule, e.to_string());
            }
        }
        let sla = match &raw.sla_seconds {
            None => Duration::from_secs(60),
            Some(s) if s.get_ref().is_finite() && *s.get_ref() > 0.0 => Duration::from_secs_f64(*s.get_ref()),
            Some(s) => {
                self.problem(s, "`sla_seconds` must be a positive number");
                Duration::from_secs(60)
            }
        };
        let base_dir = file.parent().unwrap_or(Path::new("."));
        let url = self.source_url(&raw.source.url, base_dir);
        let c = raw.source.columns;
        let defaults = ColumnNames::default();
        let columns = ColumnNames {
            experiment_id: c.experiment_id.unwrap_or(defaults.experiment_id),
            variant: c.variant.unwrap_or(defaults.variant),
            unit_id: c.unit_id.unwrap_or(defaults.unit_id),
            exposure_ts: c.exposure_ts.unwrap_or(defaults.exposure_ts),
            event: c.event.unwrap_or(defaults.event),
            value: c.value.unwrap_or(defaults.value),
            event_ts: c.event_ts.unwrap_or(defaults.event_ts),
        };
        let job_stats = self.stats(&raw.stats, StatsSettings::default());

        let mut metrics = Vec::new();
        let mut metric_spans = Vec::new();
        for raw_metric in &raw.metrics {
            if let Some(metric) = self.metric(raw_metric.get_ref()) {
                if metrics.iter().any(|m: &Metric| m.name == metric.name) {
                    self.problem(&raw_metric.get_ref().name, format!("metric `{}` is defined twice", metric.name));
                }
                metrics.push(metric);
                metric_spans.push(raw_metric.span());
            }
        }

        let mut experiments: Vec<Experiment> = Vec::new();
        for raw_experiment in &raw.experiments {
            if let Some(experiment) = self.experiment(raw_experiment.get_ref(), &metrics, job_stats) {
                if experiments.iter().any(|e| e.id == experiment.id) {
                    self.problem(
                        &raw_experiment.get_ref().id,
                        format!("experiment `{}` is defined twice", experiment.id),
                    );
                }
                experiments.push(experiment);
            }
        }
        if raw.experiments.is_empty() {
            self.problems.push(Problem { line: None, message: "the job has no [[experiments]]".into() });
        }

        let deliveries = raw.deliver.iter().filter_map(|d| self.delivery(d.get_ref(), base_dir)).collect();
        let admin = raw.admin.as_ref().and_then(|admin| {
            let text = admin.get_ref().trim();
            if text.parse::<lettre::Address>().is_ok() {
                Some(text.to_string())
            } else {
                self.problem(admin, format!("`admin` `{text}` is not an email address"));
                None
            }
        });
        let secrets_file = raw.secrets_file.as_ref().and_then(|f| {
            if f.get_ref().trim().is_empty() {
                self.problem(f, "`secrets_file` must not be empty");
                None
            } else {
                Some(base_dir.join(f.get_ref().trim()))
            }
        });
        let outbox = match &raw.outbox {
            Some(o) if o.get_ref().trim().is_empty() => {
                self.problem(o, "`outbox` must not be empty");
                base_dir.join("outbox")
            }
            Some(o) => base_dir.join(o.get_ref().trim()),
            None => base_dir.join("outbox"),
        };

        let dimensions = raw
            .dimensions
            .iter()
            .filter_map(|d| {
                let name = d.get_ref().trim();
                if name.is_empty() {
                    self.problem(d, "a dimension must name a column of the exposure log");
                    return None;
                }
                Some(name.to_string())
            })
            .collect();
        Some(Job {
            name,
            dimensions,
            file: file.to_path_buf(),
            schedule: raw.schedule.map(Spanned::into_inner),
            timezone,
            sla,
            source: SourceConfig { url: url?, columns },
            metrics,
            experiments,
            deliveries,
            admin,
            secrets_file,
            outbox,
        })
    }

    /// One `[[deliver]]` entry; keys that do not belong to its kind are problems too, so a
    /// misplaced `digest` or `url` is not silently ignored.
    fn delivery(&mut self, d: &RawDelivery, base_dir: &Path) -> Option<Delivery> {
        let kind = d.kind.get_ref().as_str();
        let mut stray = Vec::new();
        if kind != "email" {
            if !d.to.is_empty() {
                stray.push("to");
            }
            if d.digest.is_some() {
                stray.push("digest");
            }
            if d.attach_max_bytes.is_some() {
                stray.push("attach_max_bytes");
            }
            if d.link_base_url.is_some() {
                stray.push("link_base_url");
            }
        }
        if kind != "upload" && d.url.is_some() {
            stray.push("url");
        }
        if kind != "dir" && d.path.is_some() {
            stray.push("path");
        }
        if matches!(kind, "email" | "upload" | "dir") && !stray.is_empty() {
            let keys = stray.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
            let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
            self.problem(&d.kind, format!("{article} {kind} delivery does not take {keys}"));
        }
        match kind {
            "email" => {
                if d.to.is_empty() {
                    self.problem(&d.kind, "an email delivery needs `to = [\"someone@example.com\"]`");
                }
                for to in &d.to {
                    if to.trim().parse::<lettre::Address>().is_err() {
                        self.problem(&d.kind, format!("`{to}` in `to` is not an email address"));
                    }
                }
                let attach_max_bytes = match &d.attach_max_bytes {
                    None => DEFAULT_ATTACH_MAX_BYTES,
                    Some(n) => match u64::try_from(*n.get_ref()) {
                        Ok(n) => n,
                        Err(_) => {
                            self.problem(n, "`attach_max_bytes` must be 0 or more");
                            DEFAULT_ATTACH_MAX_BYTES
                        }
                    },
                };
                // Only web links: the URL becomes an `href` in the mail.
                let link_base_url = d.link_base_url.as_ref().and_then(|u| match url::Url::parse(u.get_ref().trim()) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") => {
                        Some(u.get_ref().trim().trim_end_matches('/').to_string())
                    }
                    Ok(_) => {
                        self.problem(
                            u,
                            format!("`link_base_url` `{}` must be an http:// or https:// URL", u.get_ref()),
                        );
                        None
                    }
                    Err(e) => {
                        self.problem(u, format!("`link_base_url` `{}` is not a valid URL: {e}", u.get_ref()));
                        None
                    }
                });
                Some(Delivery::Email {
                    to: d.to.iter().map(|t| t.trim().to_string()).collect(),
                    digest: d.digest.as_ref().is_some_and(|b| *b.get_ref()),
                    attach_max_bytes,
                    link_base_url,
                })
            }
            "upload" => match &d.url {
                Some(url) => Some(Delivery::Upload { url: url.get_ref().clone() }),
                None => {
                    self.problem(&d.kind, "an upload delivery needs `url = \"s3://bucket/prefix\"`");
                    None
                }
            },
            "dir" => match &d.path {
                Some(path) => Some(Delivery::Dir { path: base_dir.join(path.get_ref()) }),
                None => {
                    self.problem(&d.kind, "a dir delivery needs `path = \"…\"`");
                    None
                }
            },
            other => {
                self.problem(&d.kind, format!("unknown delivery kind `{other}` (expected `email`, `upload` or `dir`)"));
                None
            }
        }
    }

    fn source_url(&mut self, raw_url: &Spanned<String>, base_dir: &Path) -> Option<String> {
        let text = raw_url.get_ref().trim();
        if text.is_empty() {
            self.problem(raw_url, "`source.url` must not be empty");
            return None;
        }
        if text.contains("://") {
            return match url::Url::parse(text) {
                Ok(url) => Some(url.to_string()),
                Err(err) => {
                    self.problem(raw_url, format!("`source.url` `{text}` is not a valid URL: {err}"));
                    None
                }
            };
        }
        let path = base_dir.join(text);
        let absolute =
            if path.is_absolute() { path } else { std::env::current_dir().map(|cwd| cwd.join(&path)).unwrap_or(path) };
        match url::Url::from_directory_path(normalize(&absolute)) {
            Ok(url) => Some(url.to_string()),
            Err(()) => {
                self.problem(raw_url, format!("`source.url` `{text}` is not a usable path"));
                None
            }
        }
    }

    fn stats(&mut self, raw: &RawStats, defaults: StatsSettings) -> StatsSettings {
        let mut stats = defaults;
        let unit_interval = |this: &mut Self, value: &Option<Spanned<f64>>, name: &str, target: &mut f64| {
            if let Some(v) = value {
                let x = *v.get_ref();
                if x > 0.0 && x < 1.0 {
                    *target = x;
                } else {
                    this.problem(v, format!("`{name}` must be between 0 and 1 (exclusive), got {x}"));
                }
            }
        };
        unit_interval(self, &raw.alpha, "alpha", &mut stats.alpha);
        unit_interval(self, &raw.power, "power", &mut stats.power);
        unit_interval(self, &raw.srm_p_value, "srm_p_value", &mut stats.srm_p_value);
        if let Some(mde) = &raw.mde {
            let x = *mde.get_ref();
            if x > 0.0 && x.is_finite() {
                stats.mde = x;
            } else {
                self.problem(mde, format!("`mde` must be a positive relative effect such as 0.05, got {x}"));
            }
        }
        if let Some(sequential) = &raw.sequential {
            stats.sequential = *sequential.get_ref();
        }
        if let Some(days) = &raw.cuped_lookback_days {
            match u32::try_from(*days.get_ref()) {
                Ok(d) if (1..=366).contains(&d) => stats.cuped_lookback_days = d,
                _ => self.problem(days, format!("`cuped_lookback_days` must be 1 to 366, got {}", days.get_ref())),
            }
        }
        if let Some(sd) = &raw.prior_stddev {
            let x = *sd.get_ref();
            if x > 0.0 && x.is_finite() {
                stats.prior_stddev = Some(x);
            } else {
                self.problem(sd, format!("`prior_stddev` must be positive (e.g. 0.3 for ±30% lifts), got {x}"));
            }
        }
        let mut relative_amount = |value: &Option<Spanned<f64>>, name: &str| {
            let v = value.as_ref()?;
            let x = *v.get_ref();
            if (0.0..1.0).contains(&x) {
                Some(x)
            } else {
                self.problem(v, format!("`{name}` must be a relative amount from 0 to 1, got {x}"));
                None
            }
        };
        if let Some(x) = relative_amount(&raw.srm_min_deviation, "srm_min_deviation") {
            stats.srm_min_deviation = x;
        }
        if let Some(x) = relative_amount(&raw.guardrail_margin, "guardrail_margin") {
            stats.guardrail_margin = Some(x);
        }
        if let Some(days) = &raw.max_days {
            match u32::try_from(*days.get_ref()) {
                Ok(d) if (1..=3660).contains(&d) => stats.max_days = d,
                _ => self.problem(days, format!("`max_days` must be 1 to 3660, got {}", days.get_ref())),
            }
        }
        if let Some(correction) = &raw.correction {
            match correction.get_ref().as_str() {
                "holm" => stats.correction = Correction::Holm,
                "bh" => stats.correction = Correction::BenjaminiHochberg,
                "none" => stats.correction = Correction::None,
                other => {
                    self.problem(correction, format!("unknown correction `{other}` (expected `holm`, `bh` or `none`)"))
                }
            }
        }
        stats
    }

    fn aggregate(&mut self, raw: &Option<Spanned<String>>) -> Aggregate {
        match raw {
            None => Aggregate::Sum,
            Some(a) => match a.get_ref().as_str() {
                "sum" => Aggregate::Sum,
                "count" => Aggregate::Count,
                "max" => Aggregate::Max,
                other => {
                    self.problem(a, format!("unknown aggregate `{other}` (expected `sum`, `count` or `max`)"));
                    Aggregate::Sum
                }
            },
        }
    }

    fn event_aggregate(&mut self, raw: &RawEventAggregate) -> EventAggregate {
        let aggregate = self.aggregate(&raw.aggregate);
        let event = raw.event.get_ref().clone();
        if event.is_empty() {
            self.problem(&raw.event, "`event` must not be empty");
        }
        EventAggregate { event, aggregate }
    }

    fn metric(&mut self, raw: &RawMetric) -> Option<Metric> {
        let name = raw.name.get_ref().clone();
        if name.trim().is_empty() {
            self.problem(&raw.name, "metric `name` must not be empty");
        }
        let event = |this: &mut Self| match &raw.event {
            Some(e) if !e.get_ref().is_empty() => Some(e.get_ref().clone()),
            _ => {
                this.problem(
                    &raw.kind,
                    format!("metric `{name}` of kind `{}` needs `event = \"…\"`", raw.kind.get_ref()),
                );
                None
            }
        };
        let kind = match raw.kind.get_ref().as_str() {
            "proportion" => MetricKind::Proportion { event: event(self)? },
            "mean" => {
                let aggregate = self.aggregate(&raw.aggregate);
                MetricKind::Mean(EventAggregate { event: event(self)?, aggregate })
            }
            "ratio" => match (&raw.numerator, &raw.denominator) {
                (Some(n), Some(d)) => MetricKind::Ratio {
                    numerator: self.event_aggregate(n.get_ref()),
                    denominator: self.event_aggregate(d.get_ref()),
                },
                _ => {
                    self.problem(&raw.kind, format!("ratio metric `{name}` needs both `numerator` and `denominator`"));
                    return None;
                }
            },
            other => {
                self.problem(
                    &raw.kind,
                    format!("metric `{name}` has unknown kind `{other}` (expected `proportion`, `mean` or `ratio`)"),
                );
                return None;
            }
        };
        let cuped = raw.cuped.unwrap_or(false);
        if cuped && matches!(kind, MetricKind::Ratio { .. }) {
            self.problem(&raw.kind, format!("metric `{name}`: `cuped` is supported for proportion and mean metrics"));
        }
        let cap = raw.cap.as_ref().and_then(|cap| {
            let c = cap.get_ref();
            match (c.absolute, c.percentile, &kind) {
                (_, _, MetricKind::Proportion { .. } | MetricKind::Ratio { .. }) => {
                    self.problem(cap, format!("metric `{name}`: `cap` applies to mean metrics only"));
                    None
                }
                (Some(x), None, _) if x.is_finite() => Some(Cap::Absolute(x)),
                (None, Some(p), _) if p > 0.0 && p < 1.0 => Some(Cap::Percentile(p)),
                _ => {
                    self.problem(cap, format!(
                        "metric `{name}`: `cap` takes one of `absolute = <number>` or `percentile = <between 0 and 1>`"
                    ));
                    None
                }
            }
        });
        Some(Metric {
            name,
            kind,
            higher_is_better: raw.higher_is_better.unwrap_or(true),
            description: raw.description.clone(),
            cuped,
            cap,
        })
    }

    fn experiment(&mut self, raw: &RawExperiment, metrics: &[Metric], job_stats: StatsSettings) -> Option<Experiment> {
        let id = raw.id.get_ref().clone();
        if id.trim().is_empty() {
            self.problem(&raw.id, "experiment `id` must not be empty");
        }
        let mut variants = Vec::new();
        for (name, weight) in raw.variants.get_ref() {
            let weight = match weight {
                toml::Value::Float(w) => *w,
                toml::Value::Integer(w) => *w as f64,
                _ => f64::NAN,
            };
            if !(weight.is_finite() && weight > 0.0) {
                self.problem(
                    &raw.variants,
                    format!("experiment `{id}`: variant `{name}` needs a positive expected weight"),
                );
            }
            variants.push(VariantSpec { name: name.clone(), weight });
        }
        let control = raw.control.get_ref();
        match variants.iter().position(|v| &v.name == control) {
            Some(pos) => {
                let c = variants.remove(pos);
                variants.insert(0, c);
            }
            None => {
                self.problem(&raw.control, format!("experiment `{id}`: control `{control}` is not one of its variants"))
            }
        }
        if variants.len() < 2 {
            self.problem(&raw.variants, format!("experiment `{id}` needs at least two variants"));
        }
        let start = match raw.start.get_ref() {
            toml::Value::Datetime(dt) => {
                dt.date.and_then(|d| NaiveDate::from_ymd_opt(d.year as i32, d.month as u32, d.day as u32))
            }
            toml::Value::String(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
            _ => None,
        };
        if start.is_none() {
            self.problem(&raw.start, format!("experiment `{id}`: `start` must be a date such as 2026-11-01"));
        }

        let stats = self.stats(&raw.stats_overrides(), job_stats);
        // (where, metric name, role, non-inferiority margin)
        let mut roles: Vec<(Range<usize>, String, Role, Option<f64>)> =
            vec![(raw.primary.span(), raw.primary.get_ref().clone(), Role::Primary, None)];
        roles.extend(raw.secondary.iter().map(|m| (m.span(), m.get_ref().clone(), Role::Secondary, None)));
        for guardrail in &raw.guardrails {
            match guardrail.get_ref() {
                toml::Value::String(name) => {
                    roles.push((guardrail.span(), name.clone(), Role::Guardrail, stats.guardrail_margin));
                }
                toml::Value::Table(table) => {
                    let metric = table.get("metric").and_then(toml::Value::as_str);
                    // Outer `None`: a malformed margin; inner: no margin (harm-only guardrail).
                    let margin = match table.get("margin") {
                        None => Some(stats.guardrail_margin),
                        Some(toml::Value::Float(x)) if (0.0..1.0).contains(x) => Some(Some(*x)),
                        Some(toml::Value::Integer(0)) => Some(Some(0.0)),
                        Some(_) => None,
                    };
                    let unknown: Vec<&String> = table.keys().filter(|k| *k != "metric" && *k != "margin").collect();
                    match (metric, margin) {
                        (Some(metric), Some(margin)) if unknown.is_empty() => {
                            roles.push((guardrail.span(), metric.to_string(), Role::Guardrail, margin));
                        }
                        _ => self.problem(
                            guardrail,
                            format!("experiment `{id}`: a guardrail is a metric name or `{{ metric = \"name\", margin = 0.02 }}` (margin: relative, 0 to 1)"),
                        ),
                    }
                }
                _ => self.problem(guardrail, format!("experiment `{id}`: a guardrail is a metric name or a table")),
            }
        }
        let mut used = Vec::new();
        let mut seen = HashSet::new();
        for (span, name, role, margin) in roles {
            match metrics.iter().position(|m| m.name == name) {
                Some(metric) if seen.insert(metric) => used.push(ExperimentMetric { metric, role, margin }),
                Some(_) => self.problem_at(span, format!("experiment `{id}` uses metric `{name}` twice")),
                None => {
                    let known: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
                    self.problem_at(
                        span,
                        format!(
                            "experiment `{id}` uses unknown metric `{name}` (defined metrics: {})",
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ),
                    );
                }
            }
        }
        let planned_units = raw.planned_units.as_ref().and_then(|p| match u64::try_from(*p.get_ref()) {
            Ok(n) if n >= 2 => Some(n),
            _ => {
                self.problem(p, format!("experiment `{id}`: `planned_units` must be at least 2"));
                None
            }
        });
        Some(Experiment {
            output_dir: safe_path_component(&id),
            id,
            description: raw.description.clone(),
            variants,
            start: start?,
            metrics: used,
            stats,
            planned_units,
        })
    }
}

/// Turns an identifier into one safe path component (and object-store key segment):
/// ASCII letters, digits, `.`, `-`, `_`; no leading dot; at most 80 characters. When anything
/// had to change, a short hash of the original is appended so that two ids never share a folder.
pub fn safe_path_component(id: &str) -> String {
    let mut safe: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    while safe.starts_with('.') {
        safe.replace_range(0..1, "_");
    }
    safe.truncate(80);
    if safe != id || safe.is_empty() {
        let digest = Sha256::digest(id.as_bytes());
        let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        safe = format!("{safe}-{hash}");
    }
    safe
}

/// Removes `.` and `..` components without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "daily"
schedule = "0 0 6 * * *"
timezone = "Asia/Bangkok"

[source]
url = "file:///data/xp"

[[metrics]]
name = "conversion"
kind = "proportion"
event = "purchase"

[[metrics]]
name = "order_value"
kind = "ratio"
numerator = { event = "purchase", aggregate = "sum" }
denominator = { event = "purchase", aggregate = "count" }

[[experiments]]
id = "checkout"
control = "control"
variants = { treatment = 0.5, control = 0.5 }
start = 2026-11-01
primary = "conversion"
secondary = ["order_value"]
alpha = 0.01
"#;

    fn problems(text: &str) -> Vec<String> {
        match check(text, Path::new("jobs/t.toml")) {
            Ok(_) => vec![],
            Err(ConfigError::Invalid { problems, .. }) => problems
                .into_iter()
                .map(|p| format!("{}: {}", p.line.map_or("-".into(), |l| l.to_string()), p.message))
                .collect(),
            Err(other) => vec![other.to_string()],
        }
    }

    #[test]
    fn good_job_is_checked_with_control_first_and_overrides() {
        let job = check(GOOD, Path::new("jobs/t.toml")).expect("valid");
        let experiment = &job.experiments[0];
        assert_eq!(experiment.control().name, "control");
        assert_eq!(experiment.variants[1].name, "treatment");
        assert_eq!(experiment.stats.alpha, 0.01);
        assert_eq!(experiment.stats.power, 0.8);
        assert_eq!(experiment.metrics[1].role, Role::Secondary);
        assert_eq!(job.timezone, chrono_tz::Asia::Bangkok);
        assert_eq!(job.source.url, "file:///data/xp");
    }

    #[test]
    fn unknown_metric_names_the_experiment_and_line() {
        let text = GOOD.replace("secondary = [\"order_value\"]", "secondary = [\"revenue\"]");
        assert_eq!(
            problems(&text),
            vec!["26: experiment `checkout` uses unknown metric `revenue` (defined metrics: conversion, order_value)"]
        );
    }

    #[test]
    fn all_problems_are_collected() {
        let text = GOOD
            .replace("alpha = 0.01", "alpha = 2.0")
            .replace("kind = \"proportion\"", "kind = \"median\"")
            .replace("Asia/Bangkok", "Mars/Olympus");
        let found = problems(&text);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].starts_with("4: unknown time zone `Mars/Olympus`"));
        assert!(found.iter().any(|p| p.contains("unknown kind `median`")));
        // the experiment's primary metric no longer exists, because its definition was rejected
        assert!(found.iter().any(|p| p.contains("unknown metric `conversion`")));
        assert!(found.iter().any(|p| p.starts_with("27: `alpha` must be between 0 and 1")));
    }

    #[test]
    fn a_schedule_the_scheduler_cannot_parse_names_its_line() {
        let found = problems(&GOOD.replace("0 0 6 * * *", "0 0 25 * * *"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("3: schedule `0 0 25 * * *` is not a cron expression with seconds"), "{found:?}");
        let found = problems(&GOOD.replace("0 0 6 * * *", "0 6 * * 1"));
        assert!(found[0].starts_with("3: schedule `0 6 * * 1` has 5 fields"), "{found:?}");
    }

    #[test]
    fn toml_syntax_error_has_a_line() {
        let found = problems("name = \"x\"\n[source\nurl = 1\n");
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("2: "), "{found:?}");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let found = problems(&GOOD.replace("primary = ", "primry = \"x\"\nprimary = "));
        assert!(found.iter().any(|p| p.contains("unknown field `primry`")), "{found:?}");
    }

    #[test]
    fn relative_source_path_is_resolved_against_the_job_folder() {
        let text = GOOD.replace("file:///data/xp", "../data/xp");
        let job = check(&text, Path::new("/srv/abreport/jobs/t.toml")).expect("valid");
        assert_eq!(job.source.url, "file:///srv/abreport/data/xp/");
    }

    #[test]
    fn the_example_jobs_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs");
        let jobs = crate::config::load_all(&dir).expect("jobs folder");
        assert!(!jobs.is_empty());
        for (file, job) in jobs {
            job.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
    }

    #[test]
    fn deliveries_admin_secrets_and_outbox_are_checked_and_resolved_against_the_job_folder() {
        let text = format!(
            "admin = \"ops@example.com\"\nsecrets_file = \"secrets/abreport.env\"\n{GOOD}\n\
             [[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]\ndigest = true\nattach_max_bytes = 500\n\
             link_base_url = \"https://files.example.com/xp/\"\n\n[[deliver]]\nkind = \"email\"\nto = [\"qa@example.com\"]\n"
        );
        let job = check(&text, Path::new("/srv/jobs/t.toml")).expect("valid");
        assert_eq!(job.admin.as_deref(), Some("ops@example.com"));
        assert_eq!(job.secrets_file.as_deref(), Some(Path::new("/srv/jobs/secrets/abreport.env")));
        assert_eq!(job.outbox, Path::new("/srv/jobs/outbox"));
        assert_eq!(
            job.deliveries,
            vec![
                Delivery::Email {
                    to: vec!["pm@example.com".into()],
                    digest: true,
                    attach_max_bytes: 500,
                    link_base_url: Some("https://files.example.com/xp".into()),
                },
                Delivery::Email {
                    to: vec!["qa@example.com".into()],
                    digest: false,
                    attach_max_bytes: crate::config::DEFAULT_ATTACH_MAX_BYTES,
                    link_base_url: None,
                },
            ]
        );
    }

    #[test]
    fn delivery_problems_name_the_key_and_line() {
        let text = format!(
            "admin = \"ops\"\n{GOOD}\n[[deliver]]\nkind = \"upload\"\nurl = \"s3://b/p\"\ndigest = true\n\n\
             [[deliver]]\nkind = \"email\"\nto = [\"not an address\"]\nlink_base_url = \"javascript:alert(1)\"\nattach_max_bytes = -1\n"
        );
        let found = problems(&text);
        assert!(found.contains(&"1: `admin` `ops` is not an email address".to_string()), "{found:?}");
        assert!(found.contains(&"31: an upload delivery does not take `digest`".to_string()), "{found:?}");
        assert!(found.contains(&"36: `not an address` in `to` is not an email address".to_string()), "{found:?}");
        assert!(found.iter().any(|p| p.starts_with("38: `link_base_url`") && p.contains("http")), "{found:?}");
        assert!(found.contains(&"39: `attach_max_bytes` must be 0 or more".to_string()), "{found:?}");
    }

    #[test]
    fn safe_path_component_keeps_plain_ids_and_hashes_changed_ones() {
        assert_eq!(safe_path_component("checkout-redesign_2"), "checkout-redesign_2");
        let script = safe_path_component("<script>alert(1)</script>");
        assert!(script.starts_with("_script_alert_1___script_-"), "{script}");
        assert_ne!(safe_path_component("a/b"), safe_path_component("a_b"));
        assert!(!safe_path_component("../etc").contains('/'));
        assert!(!safe_path_component("..").starts_with('.'));
    }
}
