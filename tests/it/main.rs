//! Integration tests: the built `abreport` binary run as a user runs it, on real Parquet files.
//!
//! One test binary; each module reads like a transcript of a user session.

mod bad_input;
mod browser;
mod chat;
mod checks;
mod cloud;
mod deliver;
mod encodings;
mod engines;
mod incremental;
mod layering;
mod outputs;
mod recommendations;
mod reference;
mod reproducible;
mod scan;
mod serve;
mod serve_bad_job;
mod servers;
mod simulate;
mod sla;
mod spark_engine;
mod statistics;
mod story;
mod sufficient_source;
mod support;
mod variants;
