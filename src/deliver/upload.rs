//! `kind = "upload"`: puts every output file under a URL through object_store, manifest last,
//! at `<url>/<job>/<report_date>/<experiment>/<file>`; a re-run overwrites the same keys, after
//! deleting the experiment's old manifest, so an upload that fails half-way never leaves a
//! manifest vouching for a set that is partly new (as `export::write_dir` does in a folder).
//! object_store retries transient HTTP failures itself; errors here are what remained.

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use crate::export::{ExperimentOutputs, MANIFEST};
use crate::store::{describe_error_chain, display_url, open_writer};

/// Uploads `outputs` under `url` + `prefix`, experiment after experiment, each manifest last.
pub(super) async fn upload(url: &str, prefix: &str, outputs: &[ExperimentOutputs]) -> Result<(), String> {
    let (store, base) = open_writer(url).map_err(|e| format!("cannot open `{}`: {e}", display_url(url)))?;
    for output in outputs {
        let location = |name: &str| {
            let mut location: Path = base.clone();
            for part in prefix.split('/').chain([output.dir_name.as_str(), name]) {
                location = location.join(part);
            }
            location
        };
        // The old manifest goes before the first new object: from here until the new one is
        // up, no manifest vouches for the experiment's keys.
        let manifest = location(MANIFEST);
        match store.delete(&manifest).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(format!("cannot remove the old `{manifest}`: {}", describe_error_chain(&e))),
        }
        // Files are listed manifest last; uploading in order keeps the manifest the last key.
        for file in &output.files {
            let location = location(&file.name);
            let payload = PutPayload::from_bytes(bytes::Bytes::copy_from_slice(&file.bytes));
            store
                .put(&location, payload)
                .await
                .map_err(|e| format!("cannot upload `{location}`: {}", describe_error_chain(&e)))?;
        }
    }
    Ok(())
}
