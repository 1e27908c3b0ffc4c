//! Pure math on numbers: sufficient statistics, Welch tests and intervals, the delta method,
//! multiple-comparison corrections, the SRM test and sample sizes.
//!
//! This module knows nothing of Arrow, files or the job: it takes counts, sums and slices, so
//! every function is tested with literals against scipy/statsmodels/gbstats references. No
//! function here returns NaN: undefined quantities are `None` with a reason.

mod bayesian;
mod correction;
mod cuped;
mod inference;
mod noninferiority;
mod normal;
mod power;
mod sequential;
mod srm;
mod student_t;
mod summary;
mod welch;

pub use bayesian::{BayesianComparison, GaussianPrior, compare_bayesian, compare_bayesian_with};
pub use correction::adjust;
pub use cuped::{CovariateSummary, Cuped, adjust as cuped_adjust, compare_cuped, cuped};
pub use inference::{Effect, Method, Scale};
pub use noninferiority::{NonInferiority, noninferiority};
pub use power::{Contrast, control_units_for_half_width, detectable_distance, power, required_control_units};
pub use sequential::{DEFAULT_TUNING, SequentialComparison, compare_sequential, compare_sequential_with};
pub use srm::srm_p_value;
pub use summary::{RatioSummary, Summary, relative_variance};
pub use welch::{Comparison, compare};
