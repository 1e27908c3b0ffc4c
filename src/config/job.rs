//! Checking a [`RawJob`] into a [`Job`]: every problem is collected with its line.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::model::*;
use super::raw::{RawDelivery, RawEventAggregate, RawExperiment, RawJob, RawMetric, RawSource, RawStats};

/// Longest `sla_seconds`: a day, the period of a daily job.
pub(super) const MAX_SLA_SECONDS: f64 = 86_400.0;
/// Largest `attach_max_bytes`: 1 GB, more than any mail server takes.
pub(super) const MAX_ATTACH_BYTES: u64 = 1_000_000_000;
/// Largest relative `mde` and `prior_stddev`: 10 (+1000%).
pub(super) const MAX_RELATIVE_EFFECT: f64 = 10.0;
/// Smallest `prior_stddev`: 0.0001 (a prior of ±0.01%).
pub(super) const MIN_PRIOR_STDDEV: f64 = 1e-4;
/// Expected weights of variants: from a millionth to a million, so that any split of any
/// number of variants sums and divides without overflow or underflow.
pub(super) const MIN_WEIGHT: f64 = 1e-6;
pub(super) const MAX_WEIGHT: f64 = 1e6;
/// Largest `planned_units`: a trillion units.
pub(super) const MAX_PLANNED_UNITS: u64 = 1_000_000_000_000;
/// Largest absolute `cap` (either sign): 1e15, beyond any per-unit value worth capping.
pub(super) const MAX_CAP: f64 = 1e15;
/// Earliest and latest experiment `start`: timestamps of these years fit the microsecond
/// clock every stage uses.
pub(super) const START_YEARS: std::ops::RangeInclusive<i32> = 1970..=9999;

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
            } else if let Err(e) = crate::cron::Schedule::parse(schedule.get_ref(), timezone) {
                // The parser the scheduler uses, so a job that passes here also schedules.
                self.problem(schedule, e.to_string());
            }
        }
        let sla = match &raw.sla_seconds {
            None => Duration::from_secs(60),
            Some(s) => match Duration::try_from_secs_f64(*s.get_ref()) {
                Ok(sla) if *s.get_ref() > 0.0 && *s.get_ref() <= MAX_SLA_SECONDS => sla,
                _ => {
                    self.problem(
                        s,
                        format!(
                            "`sla_seconds` must be a positive number of seconds up to {MAX_SLA_SECONDS} (a day), got {:?}",
                            s.get_ref()
                        ),
                    );
                    Duration::from_secs(60)
                }
            },
        };
        let base_dir = file.parent().unwrap_or(Path::new("."));
        let url = self.source_url(&raw.source.url, base_dir);
        let (kind, engine) = self.source_engine(&raw.source, base_dir);
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
            source: SourceConfig { url: url?, columns, kind, engine },
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
        }
        if !matches!(kind, "email" | "chat") && d.link_base_url.is_some() {
            stray.push("link_base_url");
        }
        if kind != "chat" && d.webhook_env.is_some() {
            stray.push("webhook_env");
        }
        if kind != "upload" && d.url.is_some() {
            stray.push("url");
        }
        if kind != "dir" && d.path.is_some() {
            stray.push("path");
        }
        if matches!(kind, "email" | "upload" | "dir" | "chat") && !stray.is_empty() {
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
                        Ok(n) if n <= MAX_ATTACH_BYTES => n,
                        _ => {
                            self.problem(
                                n,
                                format!(
                                    "`attach_max_bytes` must be 0 to {MAX_ATTACH_BYTES} (1 GB), got {}",
                                    n.get_ref()
                                ),
                            );
                            DEFAULT_ATTACH_MAX_BYTES
                        }
                    },
                };
                let link_base_url = self.link_base_url(d);
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
            "chat" => {
                let webhook_env = match &d.webhook_env {
                    None => crate::env::CHAT_WEBHOOK.to_string(),
                    Some(name) if is_variable_name(name.get_ref()) => name.get_ref().clone(),
                    Some(name) => {
                        // Not quoted: a value that is not a name may be the webhook URL itself.
                        self.problem(
                            name,
                            "`webhook_env` must be the name of an environment variable (letters, digits, `_`), \
                             not the webhook URL: the URL is a secret and stays out of the job file",
                        );
                        return None;
                    }
                };
                Some(Delivery::Chat { webhook_env, link_base_url: self.link_base_url(d) })
            }
            other => {
                self.problem(
                    &d.kind,
                    format!("unknown delivery kind `{other}` (expected `email`, `upload`, `dir` or `chat`)"),
                );
                None
            }
        }
    }

    /// `link_base_url` of an email or chat delivery, without its trailing `/`. Only web links:
    /// the URL becomes an `href` in a mail and a link in a chat message.
    fn link_base_url(&mut self, d: &RawDelivery) -> Option<String> {
        let u = d.link_base_url.as_ref()?;
        match url::Url::parse(u.get_ref().trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {
                Some(u.get_ref().trim().trim_end_matches('/').to_string())
            }
            Ok(_) => {
                self.problem(u, format!("`link_base_url` `{}` must be an http:// or https:// URL", u.get_ref()));
                None
            }
            Err(e) => {
                self.problem(u, format!("`link_base_url` `{}` is not a valid URL: {e}", u.get_ref()));
                None
            }
        }
    }

    /// `[source] kind`, `engine` and `spark_remote`. The remote may also come from the command
    /// line or the environment (`app` applies those), so a Spark engine without one is only
    /// a problem when nothing provides it; here it stays empty.
    fn source_engine(&mut self, raw: &RawSource, base_dir: &Path) -> (SourceKind, Engine) {
        let kind = match raw.kind.as_ref().map(|k| (k, k.get_ref().as_str())) {
            None | Some((_, "parquet")) => SourceKind::Parquet,
            Some((_, "sufficient_stats")) => SourceKind::SufficientStats,
            Some((k, other)) => {
                self.problem(k, format!("`source.kind` must be `parquet` or `sufficient_stats`, got `{other}`"));
                SourceKind::Parquet
            }
        };
        let remote = raw.spark_remote.as_ref().map(|r| r.get_ref().trim().to_string());
        if let Some(r) = &raw.spark_remote
            && !r.get_ref().trim().starts_with("sc://")
        {
            self.problem(r, "`source.spark_remote` must be a Spark Connect URL, `sc://host:port`");
        }
        let output = raw.spark_output.as_ref().and_then(|o| self.location(o, "source.spark_output", base_dir));
        let engine = match raw.engine.as_ref().map(|e| (e, e.get_ref().as_str())) {
            None | Some((_, "embedded")) => Engine::Embedded,
            Some((e, "spark")) => {
                if kind == SourceKind::SufficientStats {
                    self.problem(e, "`source.engine = \"spark\"` computes statistics from Parquet data; a `sufficient_stats` source already holds them");
                }
                Engine::Spark { remote: remote.clone().unwrap_or_default(), output: output.clone() }
            }
            Some((e, other)) => {
                self.problem(e, format!("`source.engine` must be `embedded` or `spark`, got `{other}`"));
                Engine::Embedded
            }
        };
        if let (Some(r), Engine::Embedded) = (&raw.spark_remote, &engine) {
            self.problem(r, "`source.spark_remote` is only used with `engine = \"spark\"`");
        }
        if let (Some(o), Engine::Embedded) = (&raw.spark_output, &engine) {
            self.problem(o, "`source.spark_output` is only used with `engine = \"spark\"`");
        }
        (kind, engine)
    }

    fn source_url(&mut self, raw_url: &Spanned<String>, base_dir: &Path) -> Option<String> {
        self.location(raw_url, "source.url", base_dir)
    }

    /// A location setting (`key`) as an absolute URL: URLs as given, paths resolved against
    /// the job file's folder.
    fn location(&mut self, raw: &Spanned<String>, key: &str, base_dir: &Path) -> Option<String> {
        match absolute_url(raw.get_ref(), base_dir) {
            Ok(url) => Some(url),
            Err(problem) => {
                self.problem(raw, format!("`{key}` {problem}"));
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
                    this.problem(v, format!("`{name}` must be between 0 and 1 (exclusive), got {x:?}"));
                }
            }
        };
        unit_interval(self, &raw.alpha, "alpha", &mut stats.alpha);
        unit_interval(self, &raw.power, "power", &mut stats.power);
        unit_interval(self, &raw.srm_p_value, "srm_p_value", &mut stats.srm_p_value);
        if let Some(mde) = &raw.mde {
            let x = *mde.get_ref();
            if x > 0.0 && x <= MAX_RELATIVE_EFFECT {
                stats.mde = x;
            } else {
                self.problem(
                    mde,
                    format!(
                        "`mde` must be a positive relative effect such as 0.05, up to {MAX_RELATIVE_EFFECT} (+1000%), got {x:?}"
                    ),
                );
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
            if (MIN_PRIOR_STDDEV..=MAX_RELATIVE_EFFECT).contains(&x) {
                stats.prior_stddev = Some(x);
            } else {
                self.problem(
                    sd,
                    format!(
                        "`prior_stddev` must be from {MIN_PRIOR_STDDEV} to {MAX_RELATIVE_EFFECT} (e.g. 0.3 for ±30% lifts), got {x:?}"
                    ),
                );
            }
        }
        let mut relative_amount = |value: &Option<Spanned<f64>>, name: &str| {
            let v = value.as_ref()?;
            let x = *v.get_ref();
            if (0.0..1.0).contains(&x) {
                Some(x)
            } else {
                self.problem(v, format!("`{name}` must be a relative amount from 0 to below 1, got {x:?}"));
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
                    self.problem(correction, format!("unknown correction `{other}` (expected `holm`, `bh` or `none`)"));
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
                (Some(x), None, _) if x.abs() <= MAX_CAP => Some(Cap::Absolute(x)),
                (None, Some(p), _) if p > 0.0 && p < 1.0 => Some(Cap::Percentile(p)),
                _ => {
                    self.problem(cap, format!(
                        "metric `{name}`: `cap` takes one of `absolute = <number from -{MAX_CAP:e} to {MAX_CAP:e}>` or `percentile = <between 0 and 1>`"
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
            if !(MIN_WEIGHT..=MAX_WEIGHT).contains(&weight) {
                self.problem(
                    &raw.variants,
                    format!(
                        "experiment `{id}`: variant `{name}` needs an expected weight (`variants`) from {MIN_WEIGHT} to {MAX_WEIGHT}, got {weight:?}"
                    ),
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
                self.problem(
                    &raw.control,
                    format!("experiment `{id}`: control `{control}` is not one of its variants"),
                );
            }
        }
        if variants.len() < 2 {
            self.problem(&raw.variants, format!("experiment `{id}` needs at least two variants"));
        }
        let start = match raw.start.get_ref() {
            toml::Value::Datetime(dt) => {
                dt.date.and_then(|d| NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day)))
            }
            toml::Value::String(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
            _ => None,
        };
        let start = start.filter(|d| START_YEARS.contains(&chrono::Datelike::year(d)));
        if start.is_none() {
            self.problem(
                &raw.start,
                format!(
                    "experiment `{id}`: `start` must be a date such as 2026-11-01, in the years {} to {}",
                    START_YEARS.start(),
                    START_YEARS.end()
                ),
            );
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
                        (Some(metric), None) if unknown.is_empty() => self.problem(
                            guardrail,
                            format!(
                                "experiment `{id}`: guardrail `{metric}`: `margin` must be a relative amount from 0 to below 1, got {}",
                                table.get("margin").map_or_else(String::new, toml::Value::to_string)
                            ),
                        ),
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
            Ok(n) if (2..=MAX_PLANNED_UNITS).contains(&n) => Some(n),
            _ => {
                self.problem(
                    p,
                    format!(
                        "experiment `{id}`: `planned_units` must be 2 to {MAX_PLANNED_UNITS} (a trillion), got {}",
                        p.get_ref()
                    ),
                );
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

/// Whether `name` can be an environment variable's name as a shell writes one: a letter or
/// `_`, then letters, digits and `_`.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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
    fn a_huge_or_odd_number_is_a_problem_on_its_line_not_a_panic() {
        for (line, expected) in [
            (
                "sla_seconds = 1e300",
                "2: `sla_seconds` must be a positive number of seconds up to 86400 (a day), got 1e300",
            ),
            ("sla_seconds = inf", "2: `sla_seconds` must be a positive number of seconds up to 86400 (a day), got inf"),
            ("sla_seconds = nan", "2: `sla_seconds` must be a positive number of seconds up to 86400 (a day), got NaN"),
        ] {
            assert_eq!(problems(&format!("\n{line}\n{GOOD}")), vec![expected.to_string()]);
        }
        let found = problems(&GOOD.replace("alpha = 0.01", "planned_units = 9223372036854775807\nmde = 1e308"));
        assert_eq!(
            found,
            [
                "28: `mde` must be a positive relative effect such as 0.05, up to 10 (+1000%), got 1e308",
                "27: experiment `checkout`: `planned_units` must be 2 to 1000000000000 (a trillion), got 9223372036854775807"
            ]
        );
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
                    attach_max_bytes: DEFAULT_ATTACH_MAX_BYTES,
                    link_base_url: None,
                },
            ]
        );
    }

    #[test]
    fn a_chat_delivery_names_its_webhook_variable_with_a_default() {
        let text = format!(
            "{GOOD}\n[[deliver]]\nkind = \"chat\"\n\n[[deliver]]\nkind = \"chat\"\nwebhook_env = \"TEAM_HOOK\"\n\
             link_base_url = \"https://files.example.com/xp/\"\n"
        );
        let job = check(&text, Path::new("/srv/jobs/t.toml")).expect("valid");
        assert_eq!(
            job.deliveries,
            vec![
                Delivery::Chat { webhook_env: "ABREPORT_CHAT_WEBHOOK".into(), link_base_url: None },
                Delivery::Chat {
                    webhook_env: "TEAM_HOOK".into(),
                    link_base_url: Some("https://files.example.com/xp".into())
                },
            ]
        );
    }

    #[test]
    fn chat_delivery_problems_name_the_key_and_line_and_never_quote_a_url_given_as_the_variable() {
        let secret = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX";
        let text = format!(
            "{GOOD}\n[[deliver]]\nkind = \"chat\"\nwebhook_env = \"{secret}\"\n\n\
             [[deliver]]\nkind = \"chat\"\nto = [\"pm@example.com\"]\nlink_base_url = \"ftp://files\"\n\n\
             [[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]\nwebhook_env = \"HOOK\"\n\n\
             [[deliver]]\nkind = \"chat\"\nwebhook_env = \"1ABC\"\n"
        );
        let found = problems(&text);
        assert!(found.iter().all(|p| !p.contains("XXXXsecretXXXX") && !p.contains("hooks.slack")), "{found:?}");
        let variable = "must be the name of an environment variable (letters, digits, `_`), not the webhook URL";
        assert!(found.iter().any(|p| p.starts_with("31: `webhook_env` ") && p.contains(variable)), "{found:?}");
        assert!(found.contains(&"34: a chat delivery does not take `to`".to_string()), "{found:?}");
        assert!(found.iter().any(|p| p.starts_with("36: `link_base_url` `ftp://files` must be an http")), "{found:?}");
        assert!(found.contains(&"39: an email delivery does not take `webhook_env`".to_string()), "{found:?}");
        assert!(found.iter().any(|p| p.starts_with("45: `webhook_env` ")), "{found:?}");
        assert_eq!(found.len(), 5, "{found:?}");
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
        assert!(
            found.contains(&"39: `attach_max_bytes` must be 0 to 1000000000 (1 GB), got -1".to_string()),
            "{found:?}"
        );
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

    /// Property tests: whatever numbers and whatever text a job file holds, `check` returns
    /// (never panics), and every problem names its field or line.
    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// A number of the job file: where it goes, the name a problem must quote, and what
        /// the checker accepts.
        struct Field {
            /// `{}` is replaced by the value.
            line: &'static str,
            name: &'static str,
            integer: bool,
            accepts: fn(f64) -> bool,
        }

        fn unit_open(x: f64) -> bool {
            x > 0.0 && x < 1.0
        }

        fn relative_amount(x: f64) -> bool {
            (0.0..1.0).contains(&x)
        }

        /// Every numeric field, in file order; `##` marks where the template's tables start.
        const FIELDS: &[Field] = &[
            Field {
                line: "sla_seconds = {}",
                name: "sla_seconds",
                integer: false,
                accepts: |x| x > 0.0 && x <= MAX_SLA_SECONDS,
            },
            Field { line: "##[stats]", name: "", integer: false, accepts: |_| true },
            Field { line: "alpha = {}", name: "alpha", integer: false, accepts: unit_open },
            Field { line: "power = {}", name: "power", integer: false, accepts: unit_open },
            Field { line: "srm_p_value = {}", name: "srm_p_value", integer: false, accepts: unit_open },
            Field { line: "mde = {}", name: "mde", integer: false, accepts: |x| x > 0.0 && x <= MAX_RELATIVE_EFFECT },
            Field {
                line: "cuped_lookback_days = {}",
                name: "cuped_lookback_days",
                integer: true,
                accepts: |x| (1.0..=366.0).contains(&x),
            },
            Field {
                line: "prior_stddev = {}",
                name: "prior_stddev",
                integer: false,
                accepts: |x| (MIN_PRIOR_STDDEV..=MAX_RELATIVE_EFFECT).contains(&x),
            },
            Field {
                line: "srm_min_deviation = {}",
                name: "srm_min_deviation",
                integer: false,
                accepts: relative_amount,
            },
            Field { line: "guardrail_margin = {}", name: "guardrail_margin", integer: false, accepts: relative_amount },
            Field { line: "max_days = {}", name: "max_days", integer: true, accepts: |x| (1.0..=3660.0).contains(&x) },
            Field {
                line: "##[[metrics]]\nname = \"conversion\"\nkind = \"proportion\"\nevent = \"purchase\"\n\n[[metrics]]\nname = \"revenue\"\nkind = \"mean\"\nevent = \"purchase\"",
                name: "",
                integer: false,
                accepts: |_| true,
            },
            Field { line: "cap = { absolute = {} }", name: "cap", integer: false, accepts: |x| x.abs() <= MAX_CAP },
            Field {
                line: "##[[metrics]]\nname = \"orders\"\nkind = \"mean\"\nevent = \"purchase\"\naggregate = \"count\"",
                name: "",
                integer: false,
                accepts: |_| true,
            },
            Field { line: "cap = { percentile = {} }", name: "cap", integer: false, accepts: unit_open },
            Field {
                line: "##[[experiments]]\nid = \"checkout\"\ncontrol = \"control\"\nstart = 2026-11-01\nprimary = \"conversion\"\nsecondary = [\"revenue\"]",
                name: "",
                integer: false,
                accepts: |_| true,
            },
            Field {
                line: "variants = { control = {}, treatment = 0.5 }",
                name: "variants",
                integer: false,
                accepts: |x| (MIN_WEIGHT..=MAX_WEIGHT).contains(&x),
            },
            Field {
                line: "guardrails = [{ metric = \"orders\", margin = {} }]",
                name: "margin",
                integer: false,
                accepts: relative_amount,
            },
            Field {
                line: "planned_units = {}",
                name: "planned_units",
                integer: true,
                accepts: |x| x >= 2.0 && x <= MAX_PLANNED_UNITS as f64,
            },
            Field { line: "alpha = {}", name: "alpha", integer: false, accepts: unit_open },
            Field { line: "power = {}", name: "power", integer: false, accepts: unit_open },
            Field { line: "srm_p_value = {}", name: "srm_p_value", integer: false, accepts: unit_open },
            Field { line: "mde = {}", name: "mde", integer: false, accepts: |x| x > 0.0 && x <= MAX_RELATIVE_EFFECT },
            Field { line: "max_days = {}", name: "max_days", integer: true, accepts: |x| (1.0..=3660.0).contains(&x) },
            Field {
                line: "##[[deliver]]\nkind = \"email\"\nto = [\"pm@example.com\"]",
                name: "",
                integer: false,
                accepts: |_| true,
            },
            Field {
                line: "attach_max_bytes = {}",
                name: "attach_max_bytes",
                integer: true,
                accepts: |x| x >= 0.0 && x <= MAX_ATTACH_BYTES as f64,
            },
        ];

        /// A float as TOML writes it.
        fn toml_float(x: f64) -> String {
            if x.is_nan() {
                "nan".into()
            } else if x.is_infinite() {
                if x > 0.0 { "inf".into() } else { "-inf".into() }
            } else {
                format!("{x:?}")
            }
        }

        /// Floats near every bound, and anything at all.
        fn float() -> impl Strategy<Value = f64> {
            prop_oneof![
                any::<f64>(),
                -2.0..2.0f64,
                prop::sample::select(vec![
                    0.0,
                    -0.0,
                    1.0,
                    1e-4,
                    0.99999,
                    1e-6,
                    9.9e-7,
                    1e6,
                    1.000001e6,
                    10.0,
                    10.000001,
                    86_400.0,
                    86_400.001,
                    1e15,
                    -1e15,
                    1.1e15,
                    1e300,
                    -1e300,
                    1e-300,
                    5e-324,
                    f64::MAX,
                    f64::MIN,
                ]),
            ]
        }

        fn integer() -> impl Strategy<Value = i64> {
            prop_oneof![
                any::<i64>(),
                -5..400i64,
                prop::sample::select(vec![
                    0,
                    1,
                    2,
                    366,
                    367,
                    3660,
                    3661,
                    1_000_000_000,
                    1_000_000_001,
                    1_000_000_000_000,
                    1_000_000_000_001,
                    i64::MAX,
                    i64::MIN,
                ]),
            ]
        }

        /// The job text for one value per field, and each field's line (1-based).
        fn render(values: &[(f64, String)]) -> (String, Vec<usize>) {
            let mut text = String::from("name = \"daily\"\n[source]\nurl = \"file:///data/xp\"\n");
            // `sla_seconds` is a top-level key: it goes before `[source]`.
            let mut lines = Vec::new();
            let (mut top, mut rest) = (String::new(), String::new());
            for (field, (_, value)) in FIELDS.iter().zip(values) {
                match field.line.strip_prefix("##") {
                    Some(table) => {
                        rest.push('\n');
                        rest.push_str(table);
                        rest.push('\n');
                    }
                    None if field.name == "sla_seconds" => {
                        top.push_str(&format!("{}\n", field.line.replace("{}", value)));
                    }
                    None => rest.push_str(&format!("{}\n", field.line.replace("{}", value))),
                }
            }
            text = format!("{top}{text}{rest}");
            for field in FIELDS {
                if field.line.starts_with("##") {
                    lines.push(0);
                    continue;
                }
                let prefix = field.line.split("{}").next().unwrap_or_default();
                let nth =
                    FIELDS.iter().take_while(|f| !std::ptr::eq(*f, field)).filter(|f| f.line == field.line).count();
                let line =
                    text.lines().enumerate().filter(|(_, l)| l.starts_with(prefix)).nth(nth).map_or(0, |(i, _)| i + 1);
                lines.push(line);
            }
            (text, lines)
        }

        fn values() -> impl Strategy<Value = Vec<(f64, String)>> {
            FIELDS
                .iter()
                .map(|field| {
                    if field.integer {
                        integer().prop_map(|n| (n as f64, n.to_string())).boxed()
                    } else {
                        float().prop_map(|x| (x, toml_float(x))).boxed()
                    }
                })
                .collect::<Vec<_>>()
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 600, failure_persistence: None, ..ProptestConfig::default() })]

            /// Any number in any numeric field: accepted exactly inside its documented range;
            /// outside it, a problem on the field's line that names the field.
            #[test]
            fn every_number_is_bounded_and_a_rejection_names_its_field_and_line(values in values()) {
                let (text, lines) = render(&values);
                let outcome = check(&text, Path::new("jobs/t.toml"));
                let bad: Vec<usize> = FIELDS
                    .iter()
                    .zip(&values)
                    .enumerate()
                    .filter(|(_, (field, (x, _)))| !field.line.starts_with("##") && !(field.accepts)(*x))
                    .map(|(i, _)| i)
                    .collect();
                match outcome {
                    Ok(_) => prop_assert!(bad.is_empty(), "accepted {:?}:\n{text}", bad.iter().map(|&i| FIELDS[i].name).collect::<Vec<_>>()),
                    Err(ConfigError::Invalid { problems, .. }) => {
                        prop_assert!(!bad.is_empty(), "rejected a valid job: {problems:?}\n{text}");
                        for &i in &bad {
                            let quoted = format!("`{}`", FIELDS[i].name);
                            prop_assert!(
                                problems.iter().any(|p| p.line == Some(lines[i]) && p.message.contains(&quoted)),
                                "{} on line {} not named: {problems:?}\n{text}", FIELDS[i].name, lines[i]
                            );
                        }
                        let bad_lines: Vec<Option<usize>> = bad.iter().map(|&i| Some(lines[i])).collect();
                        for p in &problems {
                            prop_assert!(bad_lines.contains(&p.line), "a problem on a good line: {p:?}\n{text}");
                        }
                    }
                    Err(other) => prop_assert!(false, "{other}"),
                }
            }

            /// Any cron-ish schedule in any time zone name: checked (with the parser the
            /// scheduler uses), never a panic; a rejection is on the line of the field it names.
            #[test]
            fn any_schedule_and_time_zone_is_checked_without_panicking(
                schedule in "[0-9*/,LW#?A-Za-z -]{0,40}",
                timezone in prop_oneof!["[A-Za-z/_+0-9-]{0,30}", Just("Europe/Berlin".to_string()), Just("UTC".to_string())],
            ) {
                let text = format!("schedule = \"{schedule}\"\ntimezone = \"{timezone}\"\n{GOOD}").replacen("schedule = \"0 0 6 * * *\"\ntimezone = \"Asia/Bangkok\"\n", "", 1);
                match check(&text, Path::new("jobs/t.toml")) {
                    Ok(_) => {}
                    Err(ConfigError::Invalid { problems, .. }) => {
                        for p in problems {
                            prop_assert!(matches!(p.line, Some(1 | 2)), "{p:?}\n{text}");
                            prop_assert!(p.message.contains("schedule") || p.message.contains("time zone"), "{p:?}");
                        }
                    }
                    Err(other) => prop_assert!(false, "{other}"),
                }
            }

            /// TOML-ish text, and the good job file with bytes dropped or inserted: `check`
            /// returns, and every problem has a line or names what is wrong.
            #[test]
            fn any_text_is_checked_without_panicking_and_every_problem_is_placed(
                text in prop_oneof![
                    "[a-z_\\[\\]{}=\", .\n0-9#+-]{0,300}",
                    (0usize..GOOD.len(), 0usize..40, "[a-z_\\[\\]{}=\", .\n0-9+-]{0,12}").prop_map(|(at, cut, insert)| {
                        let mut text = GOOD.to_string();
                        let at = (0..=at).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
                        let end = (at + cut).min(text.len());
                        let end = (end..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
                        text.replace_range(at..end, &insert);
                        text
                    }),
                ]
            ) {
                match check(&text, Path::new("jobs/t.toml")) {
                    Ok(_) => {}
                    Err(ConfigError::Invalid { problems, .. }) => {
                        prop_assert!(!problems.is_empty());
                        for p in problems {
                            prop_assert!(
                                p.line.is_some() || p.message.contains('`') || p.message.contains("[["),
                                "a problem without a place: {p:?}\n{text}"
                            );
                        }
                    }
                    Err(other) => prop_assert!(false, "{other}"),
                }
            }
        }
    }

    fn with_source(lines: &str) -> String {
        GOOD.replace("url = \"file:///data/xp\"\n", &format!("url = \"file:///data/xp\"\n{lines}"))
    }

    #[test]
    fn source_kind_and_engine_are_read_and_default_to_parquet_and_embedded() {
        let job = check(GOOD, Path::new("jobs/t.toml")).expect("valid");
        assert_eq!((job.source.kind, job.source.engine.clone()), (SourceKind::Parquet, Engine::Embedded));
        let text = with_source("kind = \"sufficient_stats\"\n");
        let job = check(&text, Path::new("jobs/t.toml")).expect("valid");
        assert_eq!(job.source.kind, SourceKind::SufficientStats);
        let text = with_source("engine = \"spark\"\nspark_remote = \"sc://127.0.0.1:15002\"\n");
        let job = check(&text, Path::new("jobs/t.toml")).expect("valid");
        assert_eq!(job.source.engine, Engine::Spark { remote: "sc://127.0.0.1:15002".into(), output: None });
    }

    #[test]
    fn the_spark_output_is_a_url_paths_resolved_against_the_job_folder_and_only_for_spark() {
        let text = with_source("engine = \"spark\"\nspark_remote = \"sc://h:1\"\nspark_output = \"per-unit\"\n");
        let job = check(&text, Path::new("/srv/jobs/t.toml")).expect("valid");
        let output = Some("file:///srv/jobs/per-unit/".to_string());
        assert_eq!(job.source.engine, Engine::Spark { remote: "sc://h:1".into(), output });
        let text = with_source("engine = \"spark\"\nspark_remote = \"sc://h:1\"\nspark_output = \"s3://b/units\"\n");
        let job = check(&text, Path::new("/srv/jobs/t.toml")).expect("valid");
        assert_eq!(job.source.engine, Engine::Spark { remote: "sc://h:1".into(), output: Some("s3://b/units".into()) });
        let found = problems(&with_source("spark_output = \"s3://b/units\"\n"));
        assert!(found.iter().any(|p| p.starts_with("8: `source.spark_output` is only used with")), "{found:?}");
        // The command line's output wins over the file's.
        let mut source = job.source;
        let cli = EngineOverride { engine: None, spark_remote: None, spark_output: Some("gs://other/x".into()) };
        source.apply(&cli).expect("complete");
        assert_eq!(source.engine, Engine::Spark { remote: "sc://h:1".into(), output: Some("gs://other/x".into()) });
    }

    #[test]
    fn a_wrong_kind_engine_or_remote_is_named_with_its_line() {
        let found = problems(&with_source("kind = \"csv\"\n"));
        assert!(
            found.iter().any(|p| p.starts_with("8: `source.kind` must be `parquet` or `sufficient_stats`")),
            "{found:?}"
        );
        let found = problems(&with_source("engine = \"flink\"\n"));
        assert!(found.iter().any(|p| p.starts_with("8: `source.engine` must be `embedded` or `spark`")), "{found:?}");
        let found = problems(&with_source("engine = \"spark\"\nspark_remote = \"http://x\"\n"));
        assert!(
            found.iter().any(|p| p.starts_with("9: `source.spark_remote` must be a Spark Connect URL")),
            "{found:?}"
        );
        let found = problems(&with_source("spark_remote = \"sc://x:1\"\n"));
        assert!(found.iter().any(|p| p.contains("only used with `engine = \"spark\"`")), "{found:?}");
        let found = problems(&with_source("kind = \"sufficient_stats\"\nengine = \"spark\"\n"));
        assert!(found.iter().any(|p| p.contains("already holds them")), "{found:?}");
    }

    #[test]
    fn the_command_line_wins_over_the_environment_and_the_file_and_a_spark_engine_needs_a_remote() {
        let mut source = check(GOOD, Path::new("jobs/t.toml")).expect("valid").source;
        let environment = EngineOverride {
            engine: Some("spark".into()),
            spark_remote: Some("sc://env:1".into()),
            spark_output: None,
        };
        let command_line =
            EngineOverride { engine: None, spark_remote: Some("sc://cli:2;token=secret".into()), spark_output: None };
        source.apply(&environment.clone().or(command_line)).expect("complete");
        assert_eq!(source.engine, Engine::Spark { remote: "sc://cli:2;token=secret".into(), output: None });
        let mut source = check(GOOD, Path::new("jobs/t.toml")).expect("valid").source;
        let missing =
            source.apply(&EngineOverride { engine: Some("spark".into()), spark_remote: None, spark_output: None });
        let message = missing.expect_err("no remote");
        assert!(message.contains("spark_remote") && message.contains("ABREPORT_SPARK_REMOTE"), "{message}");
        let mut source = check(GOOD, Path::new("jobs/t.toml")).expect("valid").source;
        source
            .apply(&EngineOverride { engine: Some("embedded".into()), spark_remote: None, spark_output: None })
            .expect("embedded");
        assert_eq!(source.engine, Engine::Embedded);
    }
}
