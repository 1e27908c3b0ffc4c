//! A Parquet [`AsyncFileReader`] over any [`ObjectStore`].
//!
//! parquet's own `ParquetObjectReader` is deprecated (apache/arrow-rs#10308); this is the small
//! replacement it recommends. The file size comes from the listing, so the footer is fetched
//! with one ranged read and no extra HEAD request. Each ranged read is retried on its own
//! (through the run's [`Retry`]): re-reading a byte range is idempotent, while re-reading a
//! whole file would feed its first batches to the aggregation twice.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::retry::{Failure, Retry};

/// Reads one Parquet object.
pub(super) struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    retry: Retry,
}

impl ObjectReader {
    pub(super) fn new(store: Arc<dyn ObjectStore>, path: Path, size: u64, retry: Retry) -> Self {
        Self { store, path, size, retry }
    }
}

/// Parquet carries our failure as an external error; `Source::parquet_error` downcasts it back.
fn external(failure: Failure) -> ParquetError {
    ParquetError::External(Box::new(failure))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let (store, path) = (&self.store, &self.path);
            self.retry.run(path.as_ref(), || store.get_range(path, range.clone())).await.map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let (store, path) = (&self.store, &self.path);
            self.retry.run(path.as_ref(), || store.get_ranges(path, &ranges)).await.map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata =
                ParquetMetaDataReader::new().with_arrow_reader_options(options).load_and_finish(self, size).await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}
