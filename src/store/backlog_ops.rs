//! The read behind a queue's pool scaling: the claimable backlog of the queue.

use super::ReadOp;
use crate::db::backlog::{self, Backlog};
use crate::db::DbConnection;
use crate::error::StoreResult;

/// Reads the pending jobs of `queue` that a worker could claim now.
pub struct ReadBacklog {
    /// The queue.
    pub queue: String,
    /// `max_running_per_eshop`: jobs of an e-shop at its cap are not claimable.
    pub max_per_eshop: i64,
}

impl ReadOp for ReadBacklog {
    type Output = Backlog;
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Backlog> {
        backlog::claimable(conn, &self.queue, self.max_per_eshop)
    }
}
