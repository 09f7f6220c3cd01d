//! The narrow handle a job kind gets instead of the whole [`Store`]: what one attempt of
//! one job may read and write, scoped to the job's e-shop and fenced by the attempt. A job
//! kind can read its e-shop's products, store images on them and append its result, and
//! nothing else: it cannot kill jobs, read another e-shop's data, or write once its
//! attempt no longer holds the job.

use super::{AppendResultChunk, Store, StoreImage};
use crate::db::images::{NewImage, ProductWithImages};
use crate::db::jobs::ClaimedJob;
use crate::db::products::ProductFilter;
use crate::error::StoreResult;
use crate::model::Micros;

/// The store as one attempt of one job sees it.
#[derive(Clone)]
pub struct AttemptStore {
    /// The persistence actors, reached only through the methods below.
    store: Store,
    /// The job whose attempt writes.
    job_id: String,
    /// The attempt: every write is refused once it no longer holds the job.
    attempt: i32,
    /// The job's e-shop: the only one it reads and writes.
    eshop_id: i64,
}

impl AttemptStore {
    /// The handle for the attempt `job` was claimed for.
    pub fn new(store: Store, job: &ClaimedJob) -> AttemptStore {
        AttemptStore {
            store,
            job_id: job.id.clone(),
            attempt: job.attempt,
            eshop_id: job.eshop_id,
        }
    }

    /// One page of the e-shop's products (with their images) matching `filter`, after the
    /// `(creation time, guid)` last read.
    pub async fn products_page(
        &self,
        filter: &ProductFilter,
        after: Option<(Micros, String)>,
        limit: i64,
    ) -> StoreResult<Vec<ProductWithImages>> {
        self.store
            .products_page(self.eshop_id, filter, after, limit)
            .await
    }

    /// Stores an image on a product of the e-shop (the same name replaces), while the
    /// attempt holds the job.
    pub async fn store_image(&self, mut image: NewImage) -> StoreResult<()> {
        image.eshop_id = self.eshop_id;
        self.store
            .write(StoreImage {
                job_id: self.job_id.clone(),
                attempt: self.attempt,
                image,
            })
            .await
    }

    /// Appends chunk `seq` of the job's result, while the attempt holds the job.
    pub async fn append_result_chunk(&self, seq: i32, data: Vec<u8>) -> StoreResult<()> {
        self.store
            .write(AppendResultChunk {
                id: self.job_id.clone(),
                attempt: self.attempt,
                seq,
                data,
            })
            .await
    }
}
