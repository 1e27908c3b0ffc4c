//! Publishing a run's outputs to the job's destinations: a local folder (`dir`), any object
//! store (`upload`) and email.
//!
//! Every destination receives the same set at `<job>/<report_date>/<experiment>/<file>`,
//! manifest last, so a reader that sees a manifest sees a complete set; re-running a job and
//! date overwrites the same keys. One failed destination does not stop the others.

mod upload;

use std::path::Path;

use chrono::NaiveDate;

use crate::config::{Delivery, Job, safe_path_component};
use crate::export::{self, ExperimentOutputs};

/// How one destination fared.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryReport {
    pub destination: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// The key prefix of one run: `<job>/<report_date>`, each part made path-safe.
pub fn run_prefix(job: &str, report_date: NaiveDate) -> String {
    format!("{}/{}", safe_path_component(job), report_date)
}

/// Delivers `outputs` to every destination of `job`.
pub async fn deliver_all(job: &Job, report_date: NaiveDate, outputs: &[ExperimentOutputs]) -> Vec<DeliveryReport> {
    let prefix = run_prefix(&job.name, report_date);
    let mut reports = Vec::new();
    for delivery in &job.deliveries {
        let (destination, result) = match delivery {
            Delivery::Dir { path } => (format!("dir {}", path.display()), deliver_dir(path, &prefix, outputs)),
            Delivery::Upload { url } => {
                (format!("upload {}", crate::pipeline::display_url(url)), upload::upload(url, &prefix, outputs).await)
            }
            Delivery::Email { to } => (
                format!("email to {}", to.join(", ")),
                Err("email delivery is not available in this build yet".to_string()),
            ),
        };
        match &result {
            Ok(()) => tracing::info!(destination, "delivered"),
            Err(error) => tracing::error!(destination, error, "delivery failed"),
        }
        reports.push(DeliveryReport { destination, ok: result.is_ok(), error: result.err() });
    }
    reports
}

fn deliver_dir(path: &Path, prefix: &str, outputs: &[ExperimentOutputs]) -> Result<(), String> {
    let root = path.join(prefix);
    for output in outputs {
        export::write_dir(&root, output).map_err(|e| e.to_string())?;
    }
    Ok(())
}
