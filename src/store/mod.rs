//! The persistence layer, below the job kinds and the engine actors, above `db`: a
//! [`StoreWriter`] that commits every waiting write in one transaction (group commit; one
//! writer on SQLite, one per [`Lane`] on PostgreSQL), a [`QueryActor`] pool of readers, so a
//! slow list never blocks a submit, and the [`events`] hub through which the writer tells
//! this node what it committed. Both answer store errors, never HTTP errors.
//!
//! A message is a plain struct implementing [`WriteOp`] or [`ReadOp`]; [`Store`] sends it
//! to the right actor and awaits the answer.

mod attempt;
mod backlog_ops;
mod dashboard_ops;
mod effects;
mod eshop_ops;
pub mod events;
mod handoff;
mod image_ops;
mod job_ops;
mod link;
mod metrics_ops;
mod page_reader;
mod product_ops;
mod reader;
mod wake_pacer;
mod webhook_ops;
mod writer;

pub use attempt::AttemptStore;
pub use backlog_ops::*;
pub use dashboard_ops::*;
pub use effects::{Effects, Publish};
pub use eshop_ops::*;
pub use handoff::Handoff;
pub use image_ops::*;
pub use job_ops::*;
pub use metrics_ops::*;
pub use page_reader::PageReader;
pub use product_ops::*;
pub use reader::{QueryActor, Read, ReadOp};
pub use webhook_ops::*;
pub use writer::{Lane, StoreWriter, WriteOp};

use crate::db::images::ProductWithImages;
use crate::db::products::{PageStart, ProductFilter};
use crate::error::{StoreError, StoreResult};
use crate::model::Micros;
use actix::Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The handle HTTP handlers, queues, workers and the janitor hold to reach the persistence
/// actors: every read and write goes through a message.
#[derive(Clone)]
pub struct Store {
    /// The writer (one thread on SQLite, one per lane on PostgreSQL).
    writer: StoreWriter,
    /// The reader pool.
    pub reader: Addr<QueryActor>,
    /// Reads snapshots' pages of whole catalogues, many in one statement (PostgreSQL).
    pages: Option<PageReader>,
    /// How many answers were `Unavailable` so far: a worker whose job failed while this
    /// moved hands the job back rather than failing it for the database's absence.
    unavailable: Arc<AtomicU64>,
}

impl Store {
    /// A handle on the persistence actors.
    pub fn new(writer: StoreWriter, reader: Addr<QueryActor>, pages: Option<PageReader>) -> Store {
        Store {
            writer,
            reader,
            pages,
            unavailable: Arc::default(),
        }
    }

    /// Sends a write and waits until it is committed (or failed).
    pub async fn write<M: WriteOp>(&self, op: M) -> StoreResult<M::Output> {
        let answer = self.writer.write(op).await;
        self.counted(answer)
    }

    /// Sends a read to the reader pool.
    pub async fn read<M: ReadOp>(&self, op: M) -> StoreResult<M::Output> {
        let answer = self.reader.send(Read(op)).await;
        self.counted(answer.map_err(|_| StoreError::Unavailable).and_then(|a| a))
    }

    /// One page of a snapshot: up to `limit` products of the e-shop (with their images)
    /// matching `filter`, after the `(creation time, guid)` last read. On PostgreSQL a whole
    /// catalogue's page is read together with other snapshots' ([`PageReader`]); a
    /// filtered one, and every page on SQLite, by the reader pool.
    pub async fn products_page(
        &self,
        eshop_id: i64,
        filter: &ProductFilter,
        after: Option<(Micros, String)>,
        limit: i64,
    ) -> StoreResult<Vec<ProductWithImages>> {
        let pages = self.pages.as_ref();
        let Some(pages) = pages.filter(|_| *filter == ProductFilter::default()) else {
            let filter = filter.clone();
            return self
                .read(ProductsPage {
                    eshop_id,
                    filter,
                    after,
                    limit,
                })
                .await;
        };
        let answer = pages.page(PageStart { eshop_id, after }, limit).await;
        self.counted(answer)
    }

    /// How many answers were `Unavailable` since the node started.
    pub fn unavailable_answers(&self) -> u64 {
        self.unavailable.load(Ordering::Relaxed)
    }

    fn counted<T>(&self, answer: StoreResult<T>) -> StoreResult<T> {
        if matches!(answer, Err(StoreError::Unavailable)) {
            self.unavailable.fetch_add(1, Ordering::Relaxed);
        }
        answer
    }
}
