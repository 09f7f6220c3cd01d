//! The persistence actors: one [`StoreWriter`] that commits every waiting write in one
//! transaction (group commit), and a [`QueryActor`] pool of readers, so a slow list never
//! blocks a submit. Both answer store errors, never HTTP errors.
//!
//! A message is a plain struct implementing [`WriteOp`] or [`ReadOp`]; [`Store`] sends it
//! to the right actor and awaits the answer.

mod dashboard_ops;
mod eshop_ops;
mod image_ops;
mod job_ops;
mod metrics_ops;
mod product_ops;
mod reader;
mod webhook_ops;
mod writer;

pub use dashboard_ops::*;
pub use eshop_ops::*;
pub use image_ops::*;
pub use job_ops::*;
pub use metrics_ops::*;
pub use product_ops::*;
pub use reader::{QueryActor, Read, ReadOp};
pub use webhook_ops::*;
pub use writer::{StoreWriter, Write, WriteOp};

use crate::error::{StoreError, StoreResult};
use actix::Addr;

/// The handle HTTP handlers, queues, workers and the janitor hold to reach the persistence
/// actors: every read and write goes through a message.
#[derive(Clone)]
pub struct Store {
    /// The single writer.
    pub writer: Addr<StoreWriter>,
    /// The reader pool.
    pub reader: Addr<QueryActor>,
}

impl Store {
    /// Sends a write and waits until it is committed (or failed).
    pub async fn write<M: WriteOp>(&self, op: M) -> StoreResult<M::Output> {
        self.writer
            .send(Write(op))
            .await
            .map_err(|_| StoreError::Unavailable)?
    }

    /// Sends a read to the reader pool.
    pub async fn read<M: ReadOp>(&self, op: M) -> StoreResult<M::Output> {
        self.reader
            .send(Read(op))
            .await
            .map_err(|_| StoreError::Unavailable)?
    }
}
