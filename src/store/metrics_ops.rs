//! The read behind `GET /metrics`: the cluster-wide job and queue gauges, each read through
//! a partial index of pending or running jobs, so a scrape is bounded by the backlog.

use super::ReadOp;
use crate::db::{jobs, DbConnection};
use crate::error::StoreResult;
use crate::metrics::gauges::DbGauges;
use crate::model::{time, JobStatus, Micros};

/// Reads the database gauges of one scrape.
pub struct ReadGauges {
    /// Every endpoint that has jobs (each gets a pending and a running series, 0 when empty).
    pub endpoints: Vec<&'static str>,
    /// Every queue (each gets its series, 0 when empty).
    pub queues: Vec<&'static str>,
    /// The time the ages are read at.
    pub now: Micros,
}

impl ReadOp for ReadGauges {
    type Output = DbGauges;
    fn run(&self, conn: &mut DbConnection) -> StoreResult<DbGauges> {
        let mut g = DbGauges::zeroed(
            self.endpoints.clone(),
            [JobStatus::Pending.as_str(), JobStatus::Running.as_str()],
            self.queues.clone(),
        );
        for (endpoint, status, n) in jobs::count_unfinished_by_endpoint(conn)? {
            g.jobs.insert((endpoint, status), n);
        }
        for (queue, n, oldest) in jobs::pending_by_queue(conn)? {
            let q = g.queues.entry(queue).or_default();
            q.pending = n;
            q.oldest_pending_age = oldest
                .map(|t| (self.now - t).max(0) as f64 / time::SECOND as f64)
                .unwrap_or(0.0);
        }
        for (queue, n) in jobs::running_by_queue(conn)? {
            g.queues.entry(queue).or_default().running = n;
        }
        Ok(g)
    }
}
