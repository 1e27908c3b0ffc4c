//! The results of a run: the typed model that `results.json` serializes and that the reports
//! and exports are rendered from. Field names follow `shared/contract.md` (schema_version 1);
//! fields beyond the contract are additions, never renames.
//!
//! Every word that code decides on (a metric's role and kind, a check's name, a cap's kind, the
//! correction, a reason code) is an enum that serializes to the contract's string, so the
//! compiler checks each rule that reads it and `results.json` reads as before.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub const SCHEMA_VERSION: u32 = 1;

/// `results.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultsFile {
    pub schema_version: u32,
    pub job: String,
    pub report_date: NaiveDate,
    pub generated_at: String,
    pub abreport_version: String,
    pub experiments: Vec<ExperimentResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
}

/// One experiment's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentResult {
    pub id: String,
    /// The job file's `description` of the experiment, shown under its name in reports.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    pub status: Status,
    pub error: Option<String>,
    pub decision: Decision,
    pub checks: Vec<Check>,
    pub variants: Vec<VariantResult>,
    pub metrics: Vec<MetricResult>,
    /// The analysis window, both ends inclusive.
    pub window: Window,
    pub settings: Settings,
    /// Units entering the experiment per day, for "how many more days" estimates.
    pub traffic: Traffic,
    /// Where the allocation broke, when it did: the split by day and by dimension value.
    pub srm: SrmDetail,
    /// Exploratory per-slice results of the primary metric (never used for the decision).
    pub breakdowns: Vec<Breakdown>,
    /// The sample the recommendation needs, when it is expected, and the sequential tuning.
    #[serde(default)]
    pub plan: Option<Plan>,
    /// What abreport reported on each report date of the window up to this one, oldest first
    /// (this run's point last): the story the report's trend charts draw. Empty for a failed
    /// experiment.
    #[serde(default)]
    pub trend: Vec<TrendPoint>,
}

/// An analysed experiment before its recommendation: what `analyze` computes and `decide`
/// reads. `decide` turns it into the [`ExperimentResult`] (one field per field, plus the
/// status, error and decision).
#[derive(Debug, Clone)]
pub struct Analyzed {
    pub id: String,
    pub description: Option<String>,
    pub checks: Vec<Check>,
    pub variants: Vec<VariantResult>,
    pub metrics: Vec<MetricResult>,
    pub window: Window,
    pub settings: Settings,
    pub traffic: Traffic,
    pub srm: SrmDetail,
    pub breakdowns: Vec<Breakdown>,
    pub plan: Option<Plan>,
}

impl Analyzed {
    pub fn check(&self, name: CheckName) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The result of this analysis with its outcome: the decision, and the error that failed
    /// the experiment when one did.
    pub fn with_decision(self, decision: Decision, error: Option<String>) -> ExperimentResult {
        let Analyzed { id, description, checks, variants, metrics, window, settings, traffic, srm, breakdowns, plan } =
            self;
        let status = if error.is_some() { Status::Failed } else { Status::Ok };
        ExperimentResult {
            id,
            description,
            status,
            error,
            decision,
            checks,
            variants,
            metrics,
            window,
            settings,
            traffic,
            srm,
            breakdowns,
            plan,
            trend: Vec::new(),
        }
    }
}

/// Where an experiment stands against the sample its recommendation needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Where the always-valid intervals' tuning comes from.
    pub tuning_source: TuningSource,
    /// The report date of the run that fixed the design (tuning and first expected date).
    pub designed_on: Option<NaiveDate>,
    /// The verdict date quoted first, once the experiment had a week of data; kept from run to
    /// run.
    pub first_expected_verdict_date: Option<NaiveDate>,
    /// `expected_verdict_date` comes from less than a week of data: it will move.
    #[serde(default)]
    pub estimate_is_provisional: bool,
    /// Every test the recommendation needs to pass, with the units it needs.
    pub tests: Vec<PlannedTest>,
    /// Units needed per configured variant (control first): the most any test needs; null
    /// when no test can be planned yet.
    pub required_units: Vec<Option<u64>>,
    /// New units per configured variant per day, over the last `inflow_days` days.
    pub inflow_per_day: Vec<f64>,
    pub inflow_days: u32,
    /// Days until every variant has its required units at its own inflow.
    pub days_to_decision: Option<f64>,
    /// The report date by which the needed sample is expected.
    pub expected_verdict_date: Option<NaiveDate>,
    /// Every variant has its required units.
    pub sample_reached: bool,
    /// The last day the experiment should run (`start + max_days - 1`).
    pub last_day: NaiveDate,
    /// When the sample cannot be reached by `last_day`: the smallest relative effect on the
    /// primary that the sample reachable by then detects with the planned power.
    pub feasible_mde: Option<f64>,
    /// Units per configured variant at which every primary interval is narrower than the MDE,
    /// so that it must rule out either no effect or the MDE: what settles a test that reached
    /// its planned sample without a verdict.
    #[serde(default)]
    pub units_to_settle: Vec<Option<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TuningSource {
    /// The experiment's `planned_units`.
    PlannedUnits,
    /// The planned sample, fixed at the first run that could compute it.
    Design,
    /// gbstats' default (5,000 units) until a design can be made.
    Default,
    /// Fixed-horizon inference (`sequential = false`): no tuning.
    None,
}

/// One test of the decision rule and the units it needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedTest {
    pub metric: String,
    pub variant: String,
    /// `success` (the primary metric improves by the MDE) or `non_inferiority` (a guardrail
    /// with a margin, unchanged, is shown within it).
    pub test: PlannedTestKind,
    /// The relative effect (MDE) or margin to detect.
    pub effect: f64,
    /// Two-sided level of the interval the test reads.
    pub alpha: f64,
    /// Power this test must have: the rule's power split over its tests (Schultzberg et al.).
    pub power: f64,
    /// Units needed by [control, variant]: the real allocation ratio.
    pub required_units: [u64; 2],
    pub power_at_current_n: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannedTestKind {
    Success,
    NonInferiority,
}

/// The allocation by day (and dimension value), to localise a sample ratio mismatch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SrmDetail {
    /// Relative deviation of the most-off variant share from its expected weight.
    pub max_relative_deviation: Option<f64>,
    pub by_day: Vec<SrmSlice>,
    /// The first day whose new units' split fails the SRM test (p and practical deviation).
    pub first_broken_day: Option<NaiveDate>,
    /// Dimension values whose split fails the SRM test.
    pub broken_dimension_values: Vec<SrmSlice>,
}

/// The split of one slice of units (a day of first exposures, or a dimension value).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SrmSlice {
    /// `YYYY-MM-DD` for days, `dimension=value` for dimension values.
    pub slice: String,
    /// Units per configured variant, in variant order.
    pub units: Vec<u64>,
    pub p_value: Option<f64>,
    pub broken: bool,
}

/// Exploratory results of one metric by one dimension.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Breakdown {
    pub dimension: String,
    pub metric: String,
    /// Always true: slices are many looks at the same data; not for decisions.
    pub exploratory: bool,
    pub slices: Vec<BreakdownSlice>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BreakdownSlice {
    /// The dimension value, `(other)` for the values beyond the top 20, `(missing)` for nulls.
    pub value: String,
    pub units: u64,
    pub variants: Vec<MetricVariant>,
    pub comparisons: Vec<ComparisonResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recommendation {
    Promote,
    Rollback,
    Continue,
    Pause,
    Inconclusive,
}

impl Recommendation {
    pub fn name(self) -> &'static str {
        match self {
            Recommendation::Promote => "promote",
            Recommendation::Rollback => "rollback",
            Recommendation::Continue => "continue",
            Recommendation::Pause => "pause",
            Recommendation::Inconclusive => "inconclusive",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    pub recommendation: Recommendation,
    /// The variant to promote or roll back.
    pub variant: Option<String>,
    /// Plain-language reasons, most important first.
    pub reasons: Vec<String>,
    /// Machine-readable reasons, e.g. `PRIMARY_SIGNIFICANT_WIN`, `GUARDRAIL_NON_INFERIOR:latency`.
    #[serde(default)]
    pub reason_codes: Vec<ReasonCode>,
    /// The rule that fired, in words.
    #[serde(default)]
    pub rule: String,
    /// `continue`: the report date by which the sample for a verdict is expected.
    #[serde(default)]
    pub expected_verdict_date: Option<NaiveDate>,
}

/// A machine-readable reason for a decision. `results.json` writes it as `CODE` or
/// `CODE:subject` (a metric, a variant, a check or a horizon); docs/job-file.md lists them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum ReasonCode {
    MissingVariant,
    /// A failed check that breaks the allocation (`srm`, `multi_variant_units`).
    DataQualityFailed(CheckName),
    NoPrimaryMetric,
    TooEarly,
    PrimaryNotTestable,
    PrimarySignificantWin,
    PrimarySignificantLoss,
    PrimaryWorseNotYetHarmful,
    PrimaryNotSignificant,
    PrimaryNoEffect,
    /// The guardrail (a metric name) was shown within its margin.
    GuardrailNonInferior(String),
    GuardrailNoHarm(String),
    GuardrailNotTestable(String),
    GuardrailNotYetNonInferior(String),
    GuardrailWorseNotYetHarmful(String),
    GuardrailSignificantLoss(String),
    GuardrailWithinMarginLoss(String),
    SecondarySignificantLoss(String),
    TradeOff,
    /// On a promotion, another variant (its name) that is harmed.
    OtherVariantHarmful(String),
    HorizonReached(Horizon),
    HoldRollout,
    NotFeasibleByLastDay,
    /// A check that warned.
    CheckWarning(CheckName),
    /// The experiment has no analyzable data.
    NoData,
}

/// Which horizon an experiment reached: its planned sample, or its last day (`max_days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Horizon {
    Sample,
    MaxDays,
}

impl Horizon {
    pub fn name(self) -> &'static str {
        match self {
            Horizon::Sample => "sample",
            Horizon::MaxDays => "max_days",
        }
    }
}

impl ReasonCode {
    /// The code without its subject, and the subject.
    fn parts(&self) -> (&'static str, Option<&str>) {
        use ReasonCode::*;
        match self {
            MissingVariant => ("MISSING_VARIANT", None),
            DataQualityFailed(check) => ("DATA_QUALITY_FAILED", Some(check.name())),
            NoPrimaryMetric => ("NO_PRIMARY_METRIC", None),
            TooEarly => ("TOO_EARLY", None),
            PrimaryNotTestable => ("PRIMARY_NOT_TESTABLE", None),
            PrimarySignificantWin => ("PRIMARY_SIGNIFICANT_WIN", None),
            PrimarySignificantLoss => ("PRIMARY_SIGNIFICANT_LOSS", None),
            PrimaryWorseNotYetHarmful => ("PRIMARY_WORSE_NOT_YET_HARMFUL", None),
            PrimaryNotSignificant => ("PRIMARY_NOT_SIGNIFICANT", None),
            PrimaryNoEffect => ("PRIMARY_NO_EFFECT", None),
            GuardrailNonInferior(metric) => ("GUARDRAIL_NON_INFERIOR", Some(metric)),
            GuardrailNoHarm(metric) => ("GUARDRAIL_NO_HARM", Some(metric)),
            GuardrailNotTestable(metric) => ("GUARDRAIL_NOT_TESTABLE", Some(metric)),
            GuardrailNotYetNonInferior(metric) => ("GUARDRAIL_NOT_YET_NON_INFERIOR", Some(metric)),
            GuardrailWorseNotYetHarmful(metric) => ("GUARDRAIL_WORSE_NOT_YET_HARMFUL", Some(metric)),
            GuardrailSignificantLoss(metric) => ("GUARDRAIL_SIGNIFICANT_LOSS", Some(metric)),
            GuardrailWithinMarginLoss(metric) => ("GUARDRAIL_WITHIN_MARGIN_LOSS", Some(metric)),
            SecondarySignificantLoss(metric) => ("SECONDARY_SIGNIFICANT_LOSS", Some(metric)),
            TradeOff => ("TRADE_OFF", None),
            OtherVariantHarmful(variant) => ("OTHER_VARIANT_HARMFUL", Some(variant)),
            HorizonReached(horizon) => ("HORIZON_REACHED", Some(horizon.name())),
            HoldRollout => ("HOLD_ROLLOUT", None),
            NotFeasibleByLastDay => ("NOT_FEASIBLE_BY_LAST_DAY", None),
            CheckWarning(check) => ("CHECK_WARNING", Some(check.name())),
            NoData => ("NO_DATA", None),
        }
    }

    /// The guardrail the code is about, if it is about one.
    pub fn guardrail(&self) -> Option<&str> {
        use ReasonCode::*;
        match self {
            GuardrailNonInferior(metric)
            | GuardrailNoHarm(metric)
            | GuardrailNotTestable(metric)
            | GuardrailNotYetNonInferior(metric)
            | GuardrailWorseNotYetHarmful(metric)
            | GuardrailSignificantLoss(metric)
            | GuardrailWithinMarginLoss(metric) => Some(metric),
            _ => None,
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parts() {
            (code, None) => f.write_str(code),
            (code, Some(subject)) => write!(f, "{code}:{subject}"),
        }
    }
}

impl From<ReasonCode> for String {
    fn from(code: ReasonCode) -> String {
        code.to_string()
    }
}

impl TryFrom<String> for ReasonCode {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        use ReasonCode::*;
        let unknown = || format!("unknown reason code `{text}`");
        let (code, subject) = match text.split_once(':') {
            Some((code, subject)) => (code, Some(subject)),
            None => (text.as_str(), None),
        };
        let check = |name: &str| {
            CheckName::from_name(name).ok_or_else(|| format!("unknown check `{name}` in reason code `{text}`"))
        };
        Ok(match (code, subject) {
            ("MISSING_VARIANT", None) => MissingVariant,
            ("DATA_QUALITY_FAILED", Some(name)) => DataQualityFailed(check(name)?),
            ("NO_PRIMARY_METRIC", None) => NoPrimaryMetric,
            ("TOO_EARLY", None) => TooEarly,
            ("PRIMARY_NOT_TESTABLE", None) => PrimaryNotTestable,
            ("PRIMARY_SIGNIFICANT_WIN", None) => PrimarySignificantWin,
            ("PRIMARY_SIGNIFICANT_LOSS", None) => PrimarySignificantLoss,
            ("PRIMARY_WORSE_NOT_YET_HARMFUL", None) => PrimaryWorseNotYetHarmful,
            ("PRIMARY_NOT_SIGNIFICANT", None) => PrimaryNotSignificant,
            ("PRIMARY_NO_EFFECT", None) => PrimaryNoEffect,
            ("GUARDRAIL_NON_INFERIOR", Some(m)) => GuardrailNonInferior(m.into()),
            ("GUARDRAIL_NO_HARM", Some(m)) => GuardrailNoHarm(m.into()),
            ("GUARDRAIL_NOT_TESTABLE", Some(m)) => GuardrailNotTestable(m.into()),
            ("GUARDRAIL_NOT_YET_NON_INFERIOR", Some(m)) => GuardrailNotYetNonInferior(m.into()),
            ("GUARDRAIL_WORSE_NOT_YET_HARMFUL", Some(m)) => GuardrailWorseNotYetHarmful(m.into()),
            ("GUARDRAIL_SIGNIFICANT_LOSS", Some(m)) => GuardrailSignificantLoss(m.into()),
            ("GUARDRAIL_WITHIN_MARGIN_LOSS", Some(m)) => GuardrailWithinMarginLoss(m.into()),
            ("SECONDARY_SIGNIFICANT_LOSS", Some(m)) => SecondarySignificantLoss(m.into()),
            ("TRADE_OFF", None) => TradeOff,
            ("OTHER_VARIANT_HARMFUL", Some(v)) => OtherVariantHarmful(v.into()),
            ("HORIZON_REACHED", Some("sample")) => HorizonReached(Horizon::Sample),
            ("HORIZON_REACHED", Some("max_days")) => HorizonReached(Horizon::MaxDays),
            ("HOLD_ROLLOUT", None) => HoldRollout,
            ("NOT_FEASIBLE_BY_LAST_DAY", None) => NotFeasibleByLastDay,
            ("CHECK_WARNING", Some(name)) => CheckWarning(check(name)?),
            ("NO_DATA", None) => NoData,
            _ => return Err(unknown()),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
}

/// The data-quality checks: the six of the contract, then the extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// The split of units between variants matches the configured weights.
    Srm,
    MultiVariantUnits,
    InvalidValues,
    UnknownVariant,
    MissingVariant,
    MissingPartitions,
    FutureExposures,
    IncompleteRows,
}

impl CheckName {
    /// The name in `results.json`, reports and reason codes.
    pub fn name(self) -> &'static str {
        match self {
            CheckName::Srm => "srm",
            CheckName::MultiVariantUnits => "multi_variant_units",
            CheckName::InvalidValues => "invalid_values",
            CheckName::UnknownVariant => "unknown_variant",
            CheckName::MissingVariant => "missing_variant",
            CheckName::MissingPartitions => "missing_partitions",
            CheckName::FutureExposures => "future_exposures",
            CheckName::IncompleteRows => "incomplete_rows",
        }
    }

    pub fn from_name(name: &str) -> Option<CheckName> {
        CheckName::ALL.into_iter().find(|check| check.name() == name)
    }

    pub const ALL: [CheckName; 8] = [
        CheckName::Srm,
        CheckName::MultiVariantUnits,
        CheckName::InvalidValues,
        CheckName::UnknownVariant,
        CheckName::MissingVariant,
        CheckName::MissingPartitions,
        CheckName::FutureExposures,
        CheckName::IncompleteRows,
    ];
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A data-quality check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: CheckName,
    pub status: CheckStatus,
    pub p_value: Option<f64>,
    pub detail: String,
}

/// A configured variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantResult {
    pub name: String,
    /// Units with exactly this one configured variant in the window.
    pub units: u64,
    /// Configured weight, normalised to sum to 1.
    pub expected_weight: f64,
    /// Observed share of units.
    pub observed_share: Option<f64>,
}

/// One metric in one experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricResult {
    pub name: String,
    /// The job file's `description` of the metric.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    pub kind: MetricKind,
    pub role: Role,
    pub higher_is_better: bool,
    pub variants: Vec<MetricVariant>,
    pub comparisons: Vec<ComparisonResult>,
    /// Guardrails: the relative non-inferiority margin.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub margin: Option<f64>,
    /// CUPED, when applied: the pooled theta and the variance reduction achieved.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cuped: Option<CupedInfo>,
    /// Outlier capping, when configured.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cap: Option<CapInfo>,
}

/// The role of a metric in one experiment: what the recommendation reads it for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Secondary,
    Guardrail,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
            Role::Guardrail => "guardrail",
        }
    }
}

/// How a metric's per-unit value is made, by name (the job's `MetricKind` holds its events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Proportion,
    Mean,
    Ratio,
}

impl MetricKind {
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Proportion => "proportion",
            MetricKind::Mean => "mean",
            MetricKind::Ratio => "ratio",
        }
    }
}

/// Multiple-comparison correction across the comparisons of one experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Correction {
    #[serde(rename = "holm")]
    Holm,
    #[serde(rename = "bh")]
    BenjaminiHochberg,
    #[serde(rename = "none")]
    None,
}

impl Correction {
    pub fn name(self) -> &'static str {
        match self {
            Correction::Holm => "holm",
            Correction::BenjaminiHochberg => "bh",
            Correction::None => "none",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CupedInfo {
    pub theta: f64,
    /// `1 - var_adjusted / var_unadjusted`, pooled over variants.
    pub variance_reduction: Option<f64>,
    pub lookback_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapInfo {
    pub kind: CapKind,
    pub percentile: Option<f64>,
    /// The value per-unit values were capped at.
    pub value: f64,
    /// Units whose value was lowered to the cap.
    pub capped_units: u64,
}

/// How a metric's cap was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapKind {
    /// A fixed value.
    Absolute,
    /// A quantile of the experiment's units (`percentile`).
    Percentile,
}

impl CapKind {
    pub fn name(self) -> &'static str {
        match self {
            CapKind::Absolute => "absolute",
            CapKind::Percentile => "percentile",
        }
    }
}

/// One variant's statistics on one metric.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricVariant {
    pub variant: String,
    pub units: u64,
    /// Average per-unit value (ratio metrics: Σ numerators / Σ denominators); null when undefined.
    pub mean: Option<f64>,
    /// Unbiased variance of per-unit values (ratio metrics: delta-method variance × n).
    pub variance: Option<f64>,
    /// Ratio metrics: the means of per-unit numerators and denominators.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub numerator_mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub denominator_mean: Option<f64>,
}

/// A variant against the baseline on one metric.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComparisonResult {
    pub variant: String,
    pub baseline: String,
    pub absolute_effect: Option<f64>,
    pub relative_effect: Option<f64>,
    pub ci_absolute: Option<[f64; 2]>,
    pub ci_relative: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    pub p_value_adjusted: Option<f64>,
    pub significant: bool,
    /// `better`, `worse` or `neutral` given the metric's direction and significance.
    pub direction: Direction,
    pub standard_error: Option<f64>,
    pub df: Option<f64>,
    /// Why a field is null, in words.
    pub notes: Vec<String>,
    /// Units per variant needed to detect the experiment's MDE (primary metric), or to show
    /// non-inferiority (guardrails).
    pub power: Option<PowerResult>,
    /// Always-valid results (when `[stats] sequential` is on), safe to read daily.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sequential: Option<SequentialResult>,
    /// Bayesian view of the relative effect.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bayesian: Option<BayesianResult>,
    /// With CUPED: the numbers before adjustment (the main fields are adjusted).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unadjusted: Option<UnadjustedResult>,
    /// Guardrails: the one-sided non-inferiority test against the margin.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub non_inferiority: Option<NonInferiorityResult>,
    /// The test the recommendation reads and the report shows first (always-valid by
    /// default); the fixed-horizon fields above stay as the contract defines them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub inference: Option<Inference>,
    /// CUPED: θ of this comparison, pooled over its two variants (as gbstats).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cuped_theta: Option<f64>,
}

/// One comparison as the recommendation tests it: one scale, one interval, one level.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inference {
    /// `always_valid` (safe to read daily) or `fixed_horizon` (`[stats] sequential = false`).
    pub method: InferenceMethod,
    /// `relative` (`mean_t / mean_c - 1`), or `absolute` when the control mean is 0.
    pub scale: InferenceScale,
    /// Confidence level of `ci`: `1 - alpha / (treatment variants)`.
    pub level: f64,
    pub estimate: f64,
    pub ci: [f64; 2],
    /// Two-sided p-value of "no effect"; below `1 - level` exactly when `ci` excludes 0.
    pub p_value: f64,
    /// Primary and guardrails: two-sided p-value of the harm bound (0, or the guardrail's
    /// margin on the worse side), which ROLLBACK tests at alpha shared by every harm test.
    pub harm_p_value: Option<f64>,
    /// `ci` excludes 0.
    pub significant: bool,
    pub direction: Direction,
    /// Always-valid: the total units of the two variants at which the interval is tightest.
    pub tuning: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InferenceMethod {
    AlwaysValid,
    FixedHorizon,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InferenceScale {
    Relative,
    Absolute,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SequentialResult {
    pub ci_absolute: Option<[f64; 2]>,
    pub ci_relative: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    pub significant: bool,
    /// The tuning (planned total units) the intervals are narrowest at.
    pub tuning: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BayesianResult {
    /// Probability that the variant is better than the baseline.
    pub chance_to_win: f64,
    /// Expected relative loss of choosing [baseline, variant].
    pub risk: [f64; 2],
    pub ci_relative: [f64; 2],
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnadjustedResult {
    pub absolute_effect: Option<f64>,
    pub relative_effect: Option<f64>,
    pub ci_absolute: Option<[f64; 2]>,
    pub ci_relative: Option<[f64; 2]>,
    pub p_value: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NonInferiorityResult {
    /// Relative margin: the variant may be this much worse.
    pub margin: f64,
    /// One-sided p-value of "worse by at least the margin".
    pub p_value: Option<f64>,
    /// The worse end of the comparison's `inference` interval, which must lie within the margin.
    pub bound: Option<f64>,
    pub non_inferior: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Better,
    Worse,
    Neutral,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PowerResult {
    /// Relative effect to detect (primary: the MDE; guardrails: the margin).
    pub mde: f64,
    pub mde_absolute: f64,
    /// Target power for this comparison (guardrails: corrected across guardrails).
    pub target_power: f64,
    pub power_at_current_n: f64,
    /// Units per variant needed (under the sequential bounds when sequential is on).
    pub required_units: u64,
    pub additional_units: u64,
    /// At the observed daily traffic per variant; null when there is no traffic to go by.
    pub additional_days: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Window {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub alpha: f64,
    pub power: f64,
    pub correction: Correction,
    pub srm_p_value: f64,
    pub mde: f64,
    /// Decisions use always-valid (sequential) inference.
    #[serde(default)]
    pub sequential: bool,
    /// An experiment without a verdict is told to stop from day `max_days` of its window on
    /// (the report date `start + max_days - 1`).
    #[serde(default)]
    pub max_days: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Traffic {
    /// Analyzable units per variant per day of the window, on average.
    pub units_per_variant_per_day: Option<f64>,
    /// Exposure rows read for the experiment.
    pub exposure_rows: u64,
    /// Events that counted toward a metric.
    pub counted_events: u64,
    /// Units excluded for exposure to several variants or to an unknown one.
    pub excluded_units: u64,
}

impl ExperimentResult {
    pub fn check(&self, name: CheckName) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// What this result says on `report_date`, as one point of the experiment's story; `None`
    /// for a failed experiment (it has no numbers to tell).
    pub fn trend_point(&self, report_date: NaiveDate) -> Option<TrendPoint> {
        if self.status == Status::Failed {
            return None;
        }
        let units = self.variants.iter().map(|v| VariantUnits { variant: v.name.clone(), units: v.units }).collect();
        let effects = self
            .metrics
            .iter()
            .flat_map(|m| {
                m.comparisons.iter().filter_map(move |c| {
                    let i = c.inference.as_ref()?;
                    Some(TrendEffect {
                        metric: m.name.clone(),
                        role: m.role,
                        variant: c.variant.clone(),
                        scale: i.scale,
                        estimate: i.estimate,
                        ci: i.ci,
                        significant: i.significant,
                        direction: i.direction,
                    })
                })
            })
            .collect();
        let progress = self.plan.as_ref().map(|plan| {
            let needed: Option<u64> = plan.required_units.iter().copied().sum();
            // Units beyond a variant's need do not make up for another variant's shortfall.
            let toward = needed.map(|_| {
                self.variants
                    .iter()
                    .zip(&plan.required_units)
                    .map(|(v, need)| v.units.min(need.unwrap_or(0)))
                    .sum::<u64>()
            });
            TrendProgress {
                units_needed: needed,
                units_toward_need: toward,
                units_now: self.variants.iter().map(|v| v.units).sum(),
                sample_reached: plan.sample_reached,
                expected_verdict_date: plan.expected_verdict_date,
            }
        });
        Some(TrendPoint {
            report_date,
            recommendation: self.decision.recommendation,
            variant: self.decision.variant.clone(),
            units,
            effects,
            progress,
        })
    }
}

/// What abreport reported for one experiment on one report date: units per variant, each
/// comparison's `inference` (the test the recommendation reads, as the metric tables show it),
/// the progress to the planned sample and the recommendation. Kept per experiment beside the
/// run ledger (an [`ExperimentHistory`]) and shown in results.json's `trend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    pub report_date: NaiveDate,
    pub recommendation: Recommendation,
    /// The variant the recommendation names, if any.
    pub variant: Option<String>,
    /// Analyzable units per variant in the window up to that date (control first).
    pub units: Vec<VariantUnits>,
    /// Every metric's comparison with its test, in the report's order.
    pub effects: Vec<TrendEffect>,
    /// Where the experiment stood against its planned sample.
    pub progress: Option<TrendProgress>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantUnits {
    pub variant: String,
    pub units: u64,
}

/// One comparison's `inference` on one report date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendEffect {
    pub metric: String,
    pub role: Role,
    pub variant: String,
    /// `relative`, or `absolute` when the control mean was 0.
    pub scale: InferenceScale,
    pub estimate: f64,
    /// The test's interval at its level.
    pub ci: [f64; 2],
    pub significant: bool,
    pub direction: Direction,
}

/// Progress to the planned sample on one report date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendProgress {
    /// Units the tests need over all variants; null while they cannot be sized.
    pub units_needed: Option<u64>,
    /// Units counting toward that need: each variant's units up to its own need.
    pub units_toward_need: Option<u64>,
    /// Analyzable units over all variants.
    pub units_now: u64,
    pub sample_reached: bool,
    pub expected_verdict_date: Option<NaiveDate>,
}

impl TrendProgress {
    /// The share of the planned sample in, from 0 to 1, when the tests are sized.
    pub fn fraction(&self) -> Option<f64> {
        if self.sample_reached {
            return Some(1.0);
        }
        let (needed, toward) = (self.units_needed?, self.units_toward_need?);
        (needed > 0).then(|| (toward as f64 / needed as f64).clamp(0.0, 1.0))
    }
}

/// Version of the history file format.
pub const HISTORY_VERSION: u32 = 1;

/// One experiment's kept story: the point each published run reported, oldest first, one per
/// report date. The ledger keeps it (`<ledger>/.history/<job>/<experiment>.json`); the pipeline
/// only reads and returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentHistory {
    pub version: u32,
    pub experiment: String,
    pub points: Vec<TrendPoint>,
}

impl ExperimentHistory {
    pub fn new(experiment: &str) -> Self {
        Self { version: HISTORY_VERSION, experiment: experiment.to_string(), points: Vec::new() }
    }

    /// Puts `point` in its place by date, replacing a point of the same report date (a re-run
    /// says what abreport says now). Points after it are kept: a re-run of an older date does
    /// not forget later days.
    pub fn upsert(&mut self, point: TrendPoint) {
        self.points.sort_by_key(|p| p.report_date);
        self.points.dedup_by_key(|p| p.report_date);
        match self.points.binary_search_by_key(&point.report_date, |p| p.report_date) {
            Ok(at) => self.points[at] = point,
            Err(at) => self.points.insert(at, point),
        }
    }

    /// The story as of `report_date`: the points before it, oldest first (as kept, sorted).
    pub fn before(&self, report_date: NaiveDate) -> Vec<TrendPoint> {
        let mut points: Vec<TrendPoint> = self.points.iter().filter(|p| p.report_date < report_date).cloned().collect();
        points.sort_by_key(|p| p.report_date);
        points.dedup_by_key(|p| p.report_date);
        points
    }
}

#[cfg(test)]
impl ExperimentResult {
    /// The analysis this result was decided from (its status, error and decision dropped).
    pub(crate) fn analyzed(self) -> Analyzed {
        let ExperimentResult {
            id,
            description,
            checks,
            variants,
            metrics,
            window,
            settings,
            traffic,
            srm,
            breakdowns,
            plan,
            ..
        } = self;
        Analyzed { id, description, checks, variants, metrics, window, settings, traffic, srm, breakdowns, plan }
    }
}

/// A promoted two-variant experiment with a primary and a secondary metric, for the tests of
/// the stages that lay results out (reports, charts, mail).
#[cfg(test)]
pub(crate) fn sample_result() -> ExperimentResult {
    let comparison = |relative: f64, significant: bool| ComparisonResult {
        variant: "treatment".into(),
        baseline: "control".into(),
        absolute_effect: Some(relative * 0.1),
        relative_effect: Some(relative),
        ci_absolute: Some([relative * 0.1 - 0.002, relative * 0.1 + 0.002]),
        ci_relative: Some([relative - 0.02, relative + 0.02]),
        p_value: Some(if significant { 0.003 } else { 0.4 }),
        p_value_adjusted: Some(if significant { 0.006 } else { 0.4 }),
        significant,
        direction: if significant { Direction::Better } else { Direction::Neutral },
        standard_error: Some(0.01),
        df: Some(1998.0),
        notes: vec![],
        power: None,
        sequential: None,
        bayesian: None,
        unadjusted: None,
        non_inferiority: None,
        inference: Some(Inference {
            method: InferenceMethod::AlwaysValid,
            scale: InferenceScale::Relative,
            level: 0.95,
            estimate: relative,
            ci: [relative - 0.03, relative + 0.03],
            p_value: if significant { 0.004 } else { 0.6 },
            harm_p_value: None,
            significant,
            direction: if significant { Direction::Better } else { Direction::Neutral },
            tuning: Some(4000.0),
        }),
        cuped_theta: None,
    };
    let metric = |name: &str, role: Role, c: ComparisonResult| MetricResult {
        description: None,
        name: name.into(),
        kind: MetricKind::Proportion,
        role,
        higher_is_better: true,
        variants: ["control", "treatment"]
            .into_iter()
            .map(|v| MetricVariant {
                variant: v.into(),
                units: 1000,
                mean: Some(0.1),
                variance: Some(0.09),
                numerator_mean: None,
                denominator_mean: None,
            })
            .collect(),
        comparisons: vec![c],
        margin: None,
        cuped: None,
        cap: None,
    };
    let date = NaiveDate::from_ymd_opt(2026, 11, 20).expect("a date");
    ExperimentResult {
        id: "checkout-redesign".into(),
        description: None,
        status: Status::Ok,
        error: None,
        decision: Decision {
            recommendation: Recommendation::Promote,
            variant: Some("treatment".into()),
            reasons: vec!["`conversion` is up +4.1% for `treatment`.".into()],
            reason_codes: vec![],
            rule: "primary_better".into(),
            expected_verdict_date: None,
        },
        checks: [
            CheckName::Srm,
            CheckName::MultiVariantUnits,
            CheckName::InvalidValues,
            CheckName::UnknownVariant,
            CheckName::MissingVariant,
            CheckName::MissingPartitions,
        ]
        .into_iter()
        .map(|name| Check { name, status: CheckStatus::Pass, p_value: None, detail: String::new() })
        .collect(),
        variants: ["control", "treatment"]
            .into_iter()
            .map(|v| VariantResult { name: v.into(), units: 1000, expected_weight: 0.5, observed_share: Some(0.5) })
            .collect(),
        metrics: vec![
            metric("conversion", Role::Primary, comparison(0.041, true)),
            metric("revenue", Role::Secondary, comparison(0.01, false)),
        ],
        window: Window { start: date, end: date, days: 1 },
        settings: Settings {
            alpha: 0.05,
            power: 0.8,
            correction: Correction::Holm,
            srm_p_value: 0.001,
            mde: 0.05,
            sequential: true,
            max_days: 42,
        },
        traffic: Traffic::default(),
        srm: SrmDetail::default(),
        breakdowns: vec![],
        plan: None,
        trend: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).expect("a date")
    }

    fn point(d: u32, units: u64) -> TrendPoint {
        let mut result = sample_result();
        result.variants[0].units = units;
        result.trend_point(day(d)).expect("an ok result has a point")
    }

    #[test]
    fn a_history_keeps_one_point_per_date_in_date_order() {
        let mut history = ExperimentHistory::new("checkout");
        history.upsert(point(12, 1));
        history.upsert(point(10, 2));
        history.upsert(point(11, 3));
        let dates: Vec<NaiveDate> = history.points.iter().map(|p| p.report_date).collect();
        assert_eq!(dates, vec![day(10), day(11), day(12)]);
        // A re-run of a date replaces its point and keeps the later days.
        history.upsert(point(11, 30));
        assert_eq!(history.points.len(), 3);
        assert_eq!(history.points[1].units[0].units, 30);
        assert_eq!(history.points[2].report_date, day(12), "later points kept");
    }

    #[test]
    fn the_story_before_a_date_leaves_out_that_date_and_later_ones() {
        let mut history = ExperimentHistory::new("checkout");
        // Out of order and duplicated, as a hand-edited file could be.
        history.points = vec![point(12, 1), point(10, 2), point(10, 4), point(11, 3)];
        let before: Vec<NaiveDate> = history.before(day(12)).iter().map(|p| p.report_date).collect();
        assert_eq!(before, vec![day(10), day(11)]);
        assert!(history.before(day(10)).is_empty());
        history.upsert(point(9, 5));
        let dates: Vec<NaiveDate> = history.points.iter().map(|p| p.report_date).collect();
        assert_eq!(dates, vec![day(9), day(10), day(11), day(12)], "sorted and deduplicated on write");
    }

    #[test]
    fn a_trend_point_is_what_the_metric_tables_show() {
        let result = sample_result();
        let point = result.trend_point(day(20)).expect("a point");
        assert_eq!(point.recommendation, Recommendation::Promote);
        assert_eq!(
            point.units,
            vec![
                VariantUnits { variant: "control".into(), units: 1000 },
                VariantUnits { variant: "treatment".into(), units: 1000 }
            ]
        );
        let conversion = &point.effects[0];
        let inference = result.metrics[0].comparisons[0].inference.as_ref().expect("a test");
        assert_eq!((conversion.metric.as_str(), conversion.role), ("conversion", Role::Primary));
        assert_eq!((conversion.estimate, conversion.ci), (inference.estimate, inference.ci));
        assert!(conversion.significant);
        let mut failed = sample_result();
        failed.status = Status::Failed;
        assert!(failed.trend_point(day(20)).is_none(), "a failed experiment tells nothing");
    }

    #[test]
    fn progress_counts_each_variant_only_up_to_its_need() {
        let progress = |needed: [Option<u64>; 2], reached| {
            TrendProgress {
                units_needed: needed.iter().copied().sum(),
                units_toward_need: needed
                    .iter()
                    .copied()
                    .sum::<Option<u64>>()
                    .map(|_| [1500u64, 500].iter().zip(needed).map(|(u, n)| (*u).min(n.unwrap_or(0))).sum()),
                units_now: 2000,
                sample_reached: reached,
                expected_verdict_date: None,
            }
            .fraction()
        };
        assert_eq!(progress([Some(1000), Some(1000)], false), Some(0.75));
        assert_eq!(progress([None, Some(1000)], false), None, "not sized yet");
        assert_eq!(progress([Some(1000), Some(1000)], true), Some(1.0));
    }

    /// Each enum writes the very string `results.json` had before it was typed, and reads it back.
    #[test]
    fn the_typed_words_serialize_as_their_names() {
        for check in CheckName::ALL {
            assert_eq!(json(&check), format!("\"{}\"", check.name()));
            assert_eq!(CheckName::from_name(check.name()), Some(check));
        }
        for role in [Role::Primary, Role::Secondary, Role::Guardrail] {
            assert_eq!(json(&role), format!("\"{}\"", role.name()));
        }
        for kind in [MetricKind::Proportion, MetricKind::Mean, MetricKind::Ratio] {
            assert_eq!(json(&kind), format!("\"{}\"", kind.name()));
        }
        for correction in [Correction::Holm, Correction::BenjaminiHochberg, Correction::None] {
            assert_eq!(json(&correction), format!("\"{}\"", correction.name()));
        }
        for cap in [CapKind::Absolute, CapKind::Percentile] {
            assert_eq!(json(&cap), format!("\"{}\"", cap.name()));
        }
    }

    #[test]
    fn reason_codes_read_back_what_they_write() {
        let written = [
            "MISSING_VARIANT",
            "DATA_QUALITY_FAILED:srm",
            "DATA_QUALITY_FAILED:multi_variant_units",
            "NO_PRIMARY_METRIC",
            "TOO_EARLY",
            "PRIMARY_NOT_TESTABLE",
            "PRIMARY_SIGNIFICANT_WIN",
            "PRIMARY_SIGNIFICANT_LOSS",
            "PRIMARY_WORSE_NOT_YET_HARMFUL",
            "PRIMARY_NOT_SIGNIFICANT",
            "PRIMARY_NO_EFFECT",
            "GUARDRAIL_NON_INFERIOR:latency",
            "GUARDRAIL_NO_HARM:errors",
            "GUARDRAIL_NOT_TESTABLE:refunds",
            "GUARDRAIL_NOT_YET_NON_INFERIOR:latency",
            "GUARDRAIL_WORSE_NOT_YET_HARMFUL:errors",
            "GUARDRAIL_SIGNIFICANT_LOSS:a:b",
            "GUARDRAIL_WITHIN_MARGIN_LOSS:latency",
            "SECONDARY_SIGNIFICANT_LOSS:revenue",
            "TRADE_OFF",
            "OTHER_VARIANT_HARMFUL:b",
            "HORIZON_REACHED:sample",
            "HORIZON_REACHED:max_days",
            "HOLD_ROLLOUT",
            "NOT_FEASIBLE_BY_LAST_DAY",
            "CHECK_WARNING:invalid_values",
            "NO_DATA",
        ];
        for text in written {
            let code: ReasonCode = serde_json::from_str(&format!("\"{text}\"")).expect(text);
            assert_eq!(code.to_string(), text);
            assert_eq!(serde_json::to_string(&code).expect("a string"), format!("\"{text}\""));
        }
        assert_eq!(
            ReasonCode::try_from("GUARDRAIL_SIGNIFICANT_LOSS:a:b".to_string()),
            Ok(ReasonCode::GuardrailSignificantLoss("a:b".into()))
        );
        for wrong in ["PRIMARY_WIN", "TRADE_OFF:x", "HORIZON_REACHED:never", "CHECK_WARNING:nope", "GUARDRAIL_NO_HARM"]
        {
            assert!(ReasonCode::try_from(wrong.to_string()).is_err(), "{wrong}");
        }
    }

    fn json(value: &impl Serialize) -> String {
        serde_json::to_string(value).expect("serializable")
    }
}
