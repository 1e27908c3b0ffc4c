//! abreport: daily A/B experiment reports. See ARCHITECTURE.md for the map.

/// Prints a line on stdout. Unlike `println!`, a closed stdout (`abreport … | head`) is not a
/// panic: the line is dropped and the run goes on to its real exit code.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod aggregate;
pub mod analyze;
pub mod app;
pub mod cli;
pub mod config;
pub mod cron;
pub mod decide;
pub mod deliver;
pub mod env;
pub mod export;
pub mod generate;
pub mod ledger;
pub mod notice;
pub mod numbers;
pub mod outcome;
pub mod pipeline;
pub mod recorded;
pub mod render;
pub mod results;
pub mod rng;
pub mod runlog;
pub mod schedule;
pub mod simulate;
pub mod source;
pub mod sql;
pub mod stale;
pub mod stats;
pub mod store;
pub mod sufficient_table;
#[cfg(test)]
pub(crate) mod test_support;
pub mod threads;
