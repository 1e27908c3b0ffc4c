//! abreport: daily A/B experiment reports. See ARCHITECTURE.md for the map.

pub mod aggregate;
pub mod analyze;
pub mod app;
pub mod cli;
pub mod config;
pub mod decide;
pub mod deliver;
pub mod env;
pub mod export;
pub mod generate;
pub mod numbers;
pub mod pipeline;
pub mod render;
pub mod results;
pub mod runlog;
pub mod schedule;
pub mod source;
pub mod stats;
