//! The results of a run: the typed model that `results.json` serializes and that the reports
//! and exports are rendered from. Field names follow `shared/contract.md` (schema_version 1);
//! fields beyond the contract are additions, never renames.

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
}

/// A data-quality check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
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
    pub kind: String,
    pub role: String,
    pub higher_is_better: bool,
    pub variants: Vec<MetricVariant>,
    pub comparisons: Vec<ComparisonResult>,
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
    /// Units per variant needed to detect the experiment's MDE (primary and guardrail metrics).
    pub sample_size: Option<SampleSizeResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Better,
    Worse,
    Neutral,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleSizeResult {
    pub mde: f64,
    pub mde_absolute: f64,
    pub power_at_current_n: f64,
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
    pub correction: String,
    pub srm_p_value: f64,
    pub mde: f64,
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
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}
