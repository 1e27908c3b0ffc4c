//! The sufficient-statistics table (docs/sufficient-stats.md): everything the statistics read of
//! a run, per experiment, as a small table whose size does not depend on units or events.
//!
//! Engines that compute it elsewhere (the SQL of `crate::sql`, run on Spark or a warehouse) hand
//! it over as Arrow; `read` turns it into what `analyze` reads. The embedded engine can write
//! the same table from its own aggregates (`embedded`), which is how the tests prove the
//! engines equal.

mod read;

pub use crate::sufficient_table::{SCHEMA_VERSION, Section, column, counter, schema};
pub use read::{ExperimentStats, TableError, TableStats, read};
