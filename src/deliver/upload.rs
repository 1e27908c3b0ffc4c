//! `kind = "upload"`: puts every output file under a URL through object_store, manifest last.

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use crate::export::ExperimentOutputs;
use crate::source::describe_store_error;

pub async fn upload(url: &str, prefix: &str, outputs: &[ExperimentOutputs]) -> Result<(), String> {
    let (store, base) = crate::source::open_store(url)?;
    for output in outputs {
        // Files are listed manifest last; uploading in order keeps the manifest the last key.
        for file in &output.files {
            let mut location: Path = base.clone();
            for part in prefix.split('/').chain([output.dir_name.as_str(), file.name.as_str()]) {
                location = location.join(part);
            }
            let payload = PutPayload::from_bytes(bytes::Bytes::copy_from_slice(&file.bytes));
            store
                .put(&location, payload)
                .await
                .map_err(|e| format!("cannot upload `{location}`: {}", describe_store_error(&e)))?;
        }
    }
    Ok(())
}
