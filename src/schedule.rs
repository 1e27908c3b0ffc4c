//! The clock around the pipeline: `abreport serve` fires each job on its cron schedule in its
//! time zone, keeps a run ledger, catches up missed runs, and reports health and metrics.
//!
//! - [`service`]: the loop: tokio-cron-scheduler, one run per job at a time, signals, reload.
//! - [`metrics`] and [`http`]: Prometheus metrics and `/healthz`.
//!
//! The cron schedules are [`crate::cron`], the run ledger [`crate::ledger`]; a scheduled run is
//! the same `recorded::run_recorded` call `abreport run` makes; this module adds
//! only when, for which date, and what to do about the outcome. It reads no data itself.

pub mod http;
pub mod metrics;
pub mod service;
