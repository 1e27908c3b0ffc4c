//! Calibration by simulation: thousands of synthetic experiments whose truth is known, each read
//! every day for `days` days through the real [`analyze`](crate::analyze::analyze) and
//! [`recommend`](crate::decide::recommend) code, with the job parsed by the real job-file
//! checker and designs carried from look to look as the run ledger carries them. It measures
//! what a decision rule promises: false PROMOTE and false ROLLBACK under A/A, and under a true
//! effect equal to the MDE, how often the experiment is promoted by the day its report first
//! quoted, how often a true win is rolled back, and whether the report ever said "stop and keep
//! the control" while its interval still contained the MDE.
//!
//! The model. Units arrive at a constant expected rate and are assigned to variants at random
//! with the configured weights (so the split varies as a real one does). Each unit has a fixed
//! set of outcomes — a purchase (10%) with 1 + Poisson(0.5) orders of log-normal value
//! (σ = 1, a skewed revenue), page views Poisson(λ) with a persistent λ ~ Gamma(2, 2.5) that
//! also drives a pre-period count (the CUPED covariate), errors Poisson(0.2), a latency breach
//! (5%) and a refund (2%) — that become visible a geometric number of days after exposure
//! (half on the day itself, capped at 6), so early looks see fewer events, as a real job
//! does. A true effect multiplies the primary metric's per-unit mean by `1 + MDE` in every
//! treatment variant. Each look is the cumulative data up to that day, summarized exactly as
//! the pipeline summarizes per-unit values (counts, sums, sums of squares and cross products);
//! the simulation keeps those sums per day of arrival and of realization instead of units, so a
//! look costs nothing but the analysis. What it leaves out: outlier caps (percentile caps need
//! per-unit values), dimensions, and data-quality faults (SRM, multi-variant units).
//!
//! No IO but the caller's printing; deterministic for a seed and thread count.

use chrono::{Days, NaiveDate};

use crate::aggregate::{AllocationCounts, VariantSummaries};
use crate::analyze::{self, Design, ExperimentData, MetricData};
use crate::config::{self, Job};
use crate::decide;
use crate::results::{ExperimentResult, ReasonCode, Recommendation, Role};
use crate::rng::Rng;
use crate::stats::{CovariateSummary, RatioSummary, Summary};

/// The metrics every simulated experiment can use, in job order.
const METRICS: &str = r#"
[[metrics]]
name = "conversion"
kind = "proportion"
event = "purchase"

[[metrics]]
name = "revenue"
kind = "mean"
event = "purchase"
aggregate = "sum"

[[metrics]]
name = "order_value"
kind = "ratio"
numerator = { event = "purchase", aggregate = "sum" }
denominator = { event = "purchase", aggregate = "count" }

[[metrics]]
name = "page_views"
kind = "mean"
event = "page_view"
aggregate = "count"
cuped = true

[[metrics]]
name = "errors"
kind = "mean"
event = "error"
aggregate = "count"
higher_is_better = false

[[metrics]]
name = "latency_breach"
kind = "proportion"
event = "slow_page"
higher_is_better = false

[[metrics]]
name = "refunds"
kind = "proportion"
event = "refund"
higher_is_better = false
"#;

/// Index of each metric in [`METRICS`].
const CONVERSION: usize = 0;
const REVENUE: usize = 1;
const ORDER_VALUE: usize = 2;
const PAGE_VIEWS: usize = 3;
const ERRORS: usize = 4;
const LATENCY: usize = 5;
const REFUNDS: usize = 6;
const N_METRICS: usize = 7;

/// One kind of experiment: a design and a truth.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    /// The `[[experiments]]` entry, without `id` and `start` (the simulation adds them).
    pub experiment_toml: &'static str,
    /// Index of the primary metric in [`METRICS`].
    pub primary: usize,
    /// Configured variant weights, control first.
    pub weights: &'static [f64],
    /// Expected new units per day, all variants together.
    pub units_per_day: f64,
    /// True relative effect on the primary metric in every treatment variant (0: A/A).
    pub effect: f64,
    /// The experiment's MDE (the effect of the A/B twin).
    pub mde: f64,
}

/// The standard set: four designs (a proportion, a skewed mean, a count mean with CUPED over
/// three variants, a ratio; 50/50, 90/10 and three-way splits; harm-only and margin guardrails),
/// each under A/A and under a true effect equal to its MDE.
pub fn standard_scenarios() -> Vec<Scenario> {
    // (name, [[experiments]] entry, primary, weights, units per day, MDE)
    type Design = (&'static str, &'static str, usize, &'static [f64], f64, f64);
    let designs: [Design; 4] = [
        (
            "conversion (proportion), 50/50",
            r#"variants = { control = 0.5, treatment = 0.5 }
primary = "conversion"
secondary = ["revenue", "order_value", "page_views"]
guardrails = ["errors", "latency_breach", "refunds"]
mde = 0.10"#,
            CONVERSION,
            &[0.5, 0.5],
            5_000.0,
            0.10,
        ),
        (
            "revenue (skewed mean), 90/10",
            r#"variants = { control = 0.9, treatment = 0.1 }
primary = "revenue"
secondary = ["conversion", "order_value"]
guardrails = ["errors", "latency_breach", { metric = "refunds", margin = 0.5 }]
mde = 0.15"#,
            REVENUE,
            &[0.9, 0.1],
            25_000.0,
            0.15,
        ),
        (
            "page views (count, CUPED), 3 variants",
            r#"variants = { control = 0.34, a = 0.33, b = 0.33 }
primary = "page_views"
secondary = ["conversion", "revenue"]
guardrails = ["errors", "latency_breach"]
mde = 0.02"#,
            PAGE_VIEWS,
            &[0.34, 0.33, 0.33],
            6_000.0,
            0.02,
        ),
        (
            "order value (ratio), 50/50",
            r#"variants = { control = 0.5, treatment = 0.5 }
primary = "order_value"
secondary = ["conversion", "revenue"]
guardrails = ["errors", "refunds"]
mde = 0.08"#,
            ORDER_VALUE,
            &[0.5, 0.5],
            12_000.0,
            0.08,
        ),
    ];
    let mut scenarios = Vec::new();
    for (name, toml, primary, weights, units_per_day, mde) in designs {
        for effect in [0.0, mde] {
            scenarios.push(Scenario { name, experiment_toml: toml, primary, weights, units_per_day, effect, mde });
        }
    }
    scenarios
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimSpec {
    /// Experiments per scenario.
    pub experiments: u32,
    /// Daily looks per experiment.
    pub days: u32,
    pub seed: u64,
    pub threads: usize,
    pub scenarios: Vec<Scenario>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("the simulation's job file does not check: {0}")]
    Job(#[from] config::ConfigError),
    #[error("{0}")]
    Spec(String),
}

/// How one simulated experiment went over its looks.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Trajectory {
    /// Day (1-based look) of the first PROMOTE, ROLLBACK and of any terminal recommendation.
    pub first_promote: Option<u32>,
    pub first_rollback: Option<u32>,
    pub first_terminal: Option<(u32, Recommendation)>,
    /// The reason codes of the first terminal recommendation.
    pub first_terminal_codes: Vec<ReasonCode>,
    /// The day of decision the report first quoted (days since start, 1-based), if any.
    pub quoted_day: Option<u32>,
    /// Looks that said "stop and keep the control" (PRIMARY_NO_EFFECT) while the primary's
    /// interval still contained the MDE.
    pub stop_with_mde_in_interval: u32,
    /// Looks that recommended CONTINUE without an expected verdict date, after the first week.
    pub continue_without_date: u32,
}

/// The measured rates of one scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub truth: String,
    pub split: String,
    pub units_per_day: f64,
    pub experiments: u32,
    pub days: u32,
    /// Share with a PROMOTE on any look, and with a ROLLBACK on any look.
    pub ever_promote: f64,
    pub ever_rollback: f64,
    /// Share promoted on or before the day the report first quoted (A/B).
    pub promote_by_quoted_day: f64,
    /// Share promoted by the last look.
    pub promote_by_end: f64,
    pub median_quoted_day: Option<u32>,
    pub median_promote_day: Option<u32>,
    pub stop_with_mde_in_interval: u32,
    pub continue_without_date: u32,
    /// First terminal recommendation counts: promote, rollback, inconclusive, pause.
    pub first_terminal: [u32; 4],
    /// How often each outcome ended an experiment first, by its main reason code.
    pub first_terminal_reasons: std::collections::BTreeMap<String, u32>,
}

/// Per-day, per-variant, per-metric sums of what became visible that day.
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    n: f64,
    sy: f64,
    syy: f64,
    sx: f64,
    sxx: f64,
    sxy: f64,
}

impl Moments {
    fn add(&mut self, other: &Moments) {
        self.n += other.n;
        self.sy += other.sy;
        self.syy += other.syy;
        self.sx += other.sx;
        self.sxx += other.sxx;
        self.sxy += other.sxy;
    }

    fn summary(&self) -> Summary {
        let n = self.n;
        let mean = if n > 0.0 { self.sy / n } else { 0.0 };
        let variance = if n > 1.0 { ((self.syy - self.sy * mean) / (n - 1.0)).max(0.0) } else { 0.0 };
        Summary { n: n as u64, mean, variance }
    }

    fn ratio(&self) -> RatioSummary {
        let n = self.n;
        if n < 1.0 {
            return RatioSummary::default();
        }
        let (mn, md) = (self.sy / n, self.sx / n);
        let dof = if n > 1.0 { n - 1.0 } else { f64::INFINITY };
        RatioSummary {
            n: n as u64,
            mean_numerator: mn,
            mean_denominator: md,
            var_numerator: ((self.syy - self.sy * mn) / dof).max(0.0),
            var_denominator: ((self.sxx - self.sx * md) / dof).max(0.0),
            covariance: (self.sxy - self.sy * md) / dof,
        }
    }

    fn covariate(&self) -> CovariateSummary {
        let n = self.n;
        let s = self.summary();
        let dof = if n > 1.0 { n - 1.0 } else { f64::INFINITY };
        let mean_covariate = if n > 0.0 { self.sx / n } else { 0.0 };
        CovariateSummary {
            n: s.n,
            mean: s.mean,
            mean_covariate,
            variance: s.variance,
            variance_covariate: ((self.sxx - self.sx * mean_covariate) / dof).max(0.0),
            covariance: (self.sxy - self.sy * mean_covariate) / dof,
        }
    }
}

/// The job of a scenario: the metrics and one experiment, checked by the real job checker.
fn scenario_job(scenario: &Scenario, start: NaiveDate) -> Result<Job, SimulateError> {
    let text = format!(
        "name = \"simulate\"\n\n[source]\nurl = \"file:///simulated\"\n{METRICS}\n[[experiments]]\nid = \"simulated\"\ncontrol = \"control\"\nstart = {start}\n{}\n",
        scenario.experiment_toml
    );
    Ok(config::check(&text, std::path::Path::new("simulate.toml"))?)
}

/// A unit's outcomes: `[metric] -> (y, x)`: the value (ratio: numerator) and the covariate
/// (ratio: denominator).
fn draw_unit(rng: &mut Rng, variant: usize, scenario: &Scenario) -> [(f64, f64); N_METRICS] {
    let lift = |metric: usize| if variant > 0 && scenario.primary == metric { 1.0 + scenario.effect } else { 1.0 };
    let purchase = rng.chance(0.10 * lift(CONVERSION));
    let (orders, revenue) = if purchase {
        let orders = 1 + rng.poisson(0.5);
        let value_lift = lift(REVENUE) * lift(ORDER_VALUE);
        let revenue: f64 = (0..orders).map(|_| (3.0 + rng.normal()).exp() * value_lift).sum();
        (f64::from(orders), revenue)
    } else {
        (0.0, 0.0)
    };
    let propensity = 2.5 * (rng.exponential() + rng.exponential());
    let pre_views = f64::from(rng.poisson(propensity));
    let views = f64::from(rng.poisson(propensity * lift(PAGE_VIEWS)));
    let mut out = [(0.0, 0.0); N_METRICS];
    out[CONVERSION] = (f64::from(u8::from(purchase)), 0.0);
    out[REVENUE] = (revenue, 0.0);
    out[ORDER_VALUE] = (revenue, orders);
    out[PAGE_VIEWS] = (views, pre_views);
    out[ERRORS] = (f64::from(rng.poisson(0.2)), 0.0);
    out[LATENCY] = (f64::from(u8::from(rng.chance(0.05))), 0.0);
    out[REFUNDS] = (f64::from(u8::from(rng.chance(0.02))), 0.0);
    out
}

/// One experiment: its units' sums by day, then one analysis per day.
fn run_experiment(job: &Job, scenario: &Scenario, days: u32, seed: u64, index: u64) -> Trajectory {
    let experiment = &job.experiments[0];
    let n_variants = scenario.weights.len();
    let days_us = days as usize;
    // arrivals[day][variant][metric]: new units (n, and the covariate sums known at arrival);
    // realized[day][variant][metric]: the outcomes that became visible that day.
    let mut arrivals = vec![vec![[Moments::default(); N_METRICS]; n_variants]; days_us];
    let mut realized = vec![vec![[Moments::default(); N_METRICS]; n_variants]; days_us];
    let mut units_by_day = vec![vec![0u64; n_variants]; days_us];
    let mut rng = Rng::for_stream(seed, index, 0x5157);
    for day in 0..days_us {
        let arriving = rng.poisson_large(scenario.units_per_day);
        for _ in 0..arriving {
            let variant = rng.pick(scenario.weights);
            let outcomes = draw_unit(&mut rng, variant, scenario);
            let mut delay = 0;
            while delay < 6 && rng.chance(0.5) {
                delay += 1;
            }
            units_by_day[day][variant] += 1;
            for (metric, &(y, x)) in outcomes.iter().enumerate() {
                let arrival = &mut arrivals[day][variant][metric];
                arrival.n += 1.0;
                if metric == PAGE_VIEWS {
                    arrival.sx += x;
                    arrival.sxx += x * x;
                }
                if let Some(visible) = realized.get_mut(day + delay) {
                    let m = &mut visible[variant][metric];
                    m.sy += y;
                    m.syy += y * y;
                    m.sxy += x * y;
                    if metric == ORDER_VALUE {
                        m.sx += x;
                        m.sxx += x * x;
                    }
                }
            }
        }
    }

    let metric_index = |name: &str| {
        ["conversion", "revenue", "order_value", "page_views", "errors", "latency_breach", "refunds"]
            .iter()
            .position(|m| *m == name)
            .expect("a simulated metric")
    };
    let used: Vec<usize> = experiment.metrics.iter().map(|m| metric_index(&job.metrics[m.metric].name)).collect();
    let mut cumulative = vec![[Moments::default(); N_METRICS]; n_variants];
    let mut design: Option<Design> = None;
    let mut trajectory = Trajectory::default();
    for day in 0..days_us {
        for v in 0..n_variants {
            for metric in 0..N_METRICS {
                cumulative[v][metric].add(&arrivals[day][v][metric]);
                cumulative[v][metric].add(&realized[day][v][metric]);
            }
        }
        let report_date = experiment.start + Days::new(day as u64);
        let metrics: Vec<MetricData> = used
            .iter()
            .map(|&metric| {
                let summaries = if metric == ORDER_VALUE {
                    VariantSummaries::Ratio(cumulative.iter().map(|m| m[metric].ratio()).collect())
                } else {
                    VariantSummaries::Single(cumulative.iter().map(|m| m[metric].summary()).collect())
                };
                let covariates =
                    (metric == PAGE_VIEWS).then(|| cumulative.iter().map(|m| m[metric].covariate()).collect());
                MetricData { summaries, covariates, cap: None }
            })
            .collect();
        let counts = AllocationCounts {
            units: (0..n_variants).map(|v| units_by_day[..=day].iter().map(|d| d[v]).sum()).collect(),
            by_day: (0..=day).map(|d| (experiment.start + Days::new(d as u64), units_by_day[d].clone())).collect(),
            all_units: units_by_day[..=day].iter().flatten().sum(),
            ..AllocationCounts::default()
        };
        let data = ExperimentData {
            job,
            experiment,
            report_date,
            allocation: &counts,
            counted_events: 0,
            invalid_values: 0,
            metrics: &metrics,
            missing_partitions: &[],
            breakdowns: &[],
            design: design.as_ref(),
        };
        let analysis = analyze::analyze(&data);
        if analysis.new_design.is_some() {
            design = analysis.new_design;
        }
        let result = decide::decide(analysis.result, None);
        observe(&mut trajectory, &result, day as u32 + 1, scenario);
    }
    trajectory
}

fn observe(trajectory: &mut Trajectory, result: &ExperimentResult, look: u32, scenario: &Scenario) {
    let decision = &result.decision;
    let start = result.window.start;
    if trajectory.quoted_day.is_none()
        && let Some(date) = result.plan.as_ref().and_then(|p| p.first_expected_verdict_date)
    {
        trajectory.quoted_day = Some((date - start).num_days() as u32 + 1);
    }
    match decision.recommendation {
        Recommendation::Promote => {
            trajectory.first_promote.get_or_insert(look);
        }
        Recommendation::Rollback => {
            trajectory.first_rollback.get_or_insert(look);
        }
        Recommendation::Continue if look > 7 && decision.expected_verdict_date.is_none() => {
            trajectory.continue_without_date += 1;
        }
        _ => {}
    }
    if decision.recommendation != Recommendation::Continue && trajectory.first_terminal.is_none() {
        trajectory.first_terminal = Some((look, decision.recommendation));
        trajectory.first_terminal_codes = decision.reason_codes.clone();
    }
    if decision.reason_codes.contains(&ReasonCode::PrimaryNoEffect) {
        let primary = result.metrics.iter().find(|m| m.role == Role::Primary);
        let contains_mde = primary.is_some_and(|m| {
            m.comparisons.iter().any(|c| {
                c.inference.as_ref().is_some_and(|i| {
                    let mde = if m.higher_is_better { scenario.mde } else { -scenario.mde };
                    i.ci[0] <= mde && mde <= i.ci[1]
                })
            })
        });
        if contains_mde {
            trajectory.stop_with_mde_in_interval += 1;
        }
    }
}

fn median(mut values: Vec<u32>) -> Option<u32> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

/// Runs every scenario of `spec` and measures it.
pub fn simulate(spec: &SimSpec) -> Result<Vec<ScenarioReport>, SimulateError> {
    if spec.days == 0 || spec.experiments == 0 {
        return Err(SimulateError::Spec("simulate needs at least one experiment and one day".into()));
    }
    let start = NaiveDate::from_ymd_opt(2026, 1, 5).expect("a date");
    let mut reports = Vec::new();
    for (s, scenario) in spec.scenarios.iter().enumerate() {
        let job = scenario_job(scenario, start)?;
        let next = std::sync::atomic::AtomicU64::new(0);
        let threads = spec.threads.max(1);
        let mut trajectories: Vec<(u64, Trajectory)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= u64::from(spec.experiments) {
                                break;
                            }
                            let seed = spec.seed ^ ((s as u64) << 40);
                            done.push((i, run_experiment(&job, scenario, spec.days, seed, i)));
                        }
                        done
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
        });
        trajectories.sort_by_key(|(i, _)| *i);
        let trajectories: Vec<Trajectory> = trajectories.into_iter().map(|(_, t)| t).collect();
        if trajectories.len() != spec.experiments as usize {
            return Err(SimulateError::Spec("a simulation worker failed".into()));
        }
        reports.push(measure(scenario, spec, &trajectories));
    }
    Ok(reports)
}

fn measure(scenario: &Scenario, spec: &SimSpec, trajectories: &[Trajectory]) -> ScenarioReport {
    let n = trajectories.len() as f64;
    let share = |f: &dyn Fn(&Trajectory) -> bool| trajectories.iter().filter(|t| f(t)).count() as f64 / n;
    let promoted_first = |t: &Trajectory| t.first_terminal.is_some_and(|(_, r)| r == Recommendation::Promote);
    let mut first_terminal = [0u32; 4];
    let mut first_terminal_reasons = std::collections::BTreeMap::new();
    for t in trajectories {
        if let Some((_, r)) = t.first_terminal {
            let main = t.first_terminal_codes.iter().find(|c| !matches!(c, ReasonCode::CheckWarning(_)));
            *first_terminal_reasons
                .entry(format!("{}: {}", r.name(), main.map(ToString::to_string).unwrap_or_default()))
                .or_insert(0) += 1;
        }
        if let Some((_, r)) = t.first_terminal {
            let i = match r {
                Recommendation::Promote => 0,
                Recommendation::Rollback => 1,
                Recommendation::Inconclusive => 2,
                Recommendation::Continue | Recommendation::Pause => 3,
            };
            first_terminal[i] += 1;
        }
    }
    let split = scenario.weights.iter().map(|w| format!("{:.0}", w * 100.0)).collect::<Vec<_>>().join("/");
    ScenarioReport {
        name: scenario.name.to_string(),
        truth: if scenario.effect == 0.0 { "A/A".into() } else { format!("+{:.0}% (= MDE)", scenario.effect * 100.0) },
        split,
        units_per_day: scenario.units_per_day,
        experiments: spec.experiments,
        days: spec.days,
        ever_promote: share(&|t| t.first_promote.is_some()),
        ever_rollback: share(&|t| t.first_rollback.is_some()),
        promote_by_quoted_day: share(&|t| {
            promoted_first(t) && matches!((t.first_promote, t.quoted_day), (Some(day), Some(quoted)) if day <= quoted)
        }),
        promote_by_end: share(&|t| promoted_first(t)),
        median_quoted_day: median(trajectories.iter().filter_map(|t| t.quoted_day).collect()),
        median_promote_day: median(trajectories.iter().filter_map(|t| t.first_promote).collect()),
        stop_with_mde_in_interval: trajectories.iter().map(|t| t.stop_with_mde_in_interval).sum(),
        continue_without_date: trajectories.iter().map(|t| t.continue_without_date).sum(),
        first_terminal,
        first_terminal_reasons,
    }
}

/// `4.2% [2.6, 6.4]`: a rate with its 95% Wilson interval, the Monte Carlo error of a table.
fn rate(p: f64, n: u32) -> String {
    let n = f64::from(n);
    let z = 1.959_963_984_540_054_f64;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    format!("{:.1}% [{:.1}, {:.1}]", p * 100.0, (centre - half).max(0.0) * 100.0, (centre + half).min(1.0) * 100.0)
}

/// The reports as a Markdown table, the form the README quotes.
pub fn table(reports: &[ScenarioReport]) -> String {
    let mut out = String::new();
    out.push_str("| design | truth | split | units/day | false PROMOTE (any look) | false ROLLBACK (any look) |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for r in reports.iter().filter(|r| r.truth == "A/A") {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.truth,
            r.split,
            crate::numbers::count(r.units_per_day as u64),
            rate(r.ever_promote, r.experiments),
            rate(r.ever_rollback, r.experiments)
        ));
    }
    out.push('\n');
    out.push_str("| design | truth | PROMOTE by the first quoted day | PROMOTE by the last look | true win rolled back | median quoted day | median PROMOTE day | \"stop, keep control\" with the MDE in the interval |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for r in reports.iter().filter(|r| r.truth != "A/A") {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.truth,
            rate(r.promote_by_quoted_day, r.experiments),
            rate(r.promote_by_end, r.experiments),
            rate(r.ever_rollback, r.experiments),
            r.median_quoted_day.map_or("–".into(), |d| format!("day {d}")),
            r.median_promote_day.map_or("–".into(), |d| format!("day {d}")),
            r.stop_with_mde_in_interval
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::close;

    /// Sums of units `(y, x)` added one at a time, as the simulation adds them, turned into
    /// each summary, against the two-pass summaries of the values themselves.
    #[track_caller]
    fn check(ys: &[f64], xs: &[f64]) {
        let mut m = Moments::default();
        for (&y, &x) in ys.iter().zip(xs) {
            m.add(&Moments { n: 1.0, sy: y, syy: y * y, sx: x, sxx: x * x, sxy: x * y });
        }
        let (y, x, yx) = (Summary::from_values(ys), Summary::from_values(xs), RatioSummary::from_values(ys, xs));

        let s = m.summary();
        assert_eq!(s.n, y.n);
        close(s.mean, y.mean, 1e-12, "mean");
        close(s.variance, y.variance, 1e-12, "variance");

        let r = m.ratio();
        assert_eq!(r.n, yx.n);
        close(r.mean_numerator, yx.mean_numerator, 1e-12, "mean_numerator");
        close(r.mean_denominator, yx.mean_denominator, 1e-12, "mean_denominator");
        close(r.var_numerator, yx.var_numerator, 1e-12, "var_numerator");
        close(r.var_denominator, yx.var_denominator, 1e-12, "var_denominator");
        close(r.covariance, yx.covariance, 1e-12, "ratio covariance");

        // CovariateSummary has no two-pass constructor: its parts are those of Y, of X, and
        // the covariance of the pair.
        let c = m.covariate();
        assert_eq!(c.n, y.n);
        close(c.mean, y.mean, 1e-12, "covariate: mean");
        close(c.variance, y.variance, 1e-12, "covariate: variance");
        close(c.mean_covariate, x.mean, 1e-12, "covariate: mean_covariate");
        close(c.variance_covariate, x.variance, 1e-12, "covariate: variance_covariate");
        close(c.covariance, yx.covariance, 1e-12, "covariate: covariance");
    }

    #[test]
    fn moments_agree_with_two_pass_summaries() {
        // numpy: y = [1, 2, 4, 7]: mean 3.5, var(ddof=1) 7.0.
        check(&[1.0, 2.0, 4.0, 7.0], &[0.0, 1.0, 1.0, 3.0]);
        // Revenue and orders of five units, three without a purchase (a ratio's numerators and
        // denominators).
        check(&[0.0, 23.5, 0.0, 61.25, 12.9], &[0.0, 1.0, 0.0, 2.0, 1.0]);
        // Page views against pre-period views (CUPED).
        check(&[3.0, 0.0, 11.0, 5.0, 8.0, 2.0], &[4.0, 1.0, 9.0, 5.0, 6.0, 0.0]);
        // A proportion: 0/1 outcomes.
        check(&[1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], &[0.0; 7]);
    }

    #[test]
    fn moments_of_one_or_no_unit_agree_too() {
        check(&[2.5], &[1.0]);
        check(&[], &[]);
    }
}
