//! The read behind `GET /metrics`: the cluster-wide job and queue gauges.

use super::ReadOp;
use crate::db::{jobs, DbConnection};
use crate::error::StoreResult;
use crate::metrics::gauges::DbGauges;
use crate::model::{time, JobStatus, Micros};

/// Reads the database gauges of one scrape.
pub struct ReadGauges {
    /// Every endpoint that has jobs (each gets a series per status, 0 when empty).
    pub endpoints: Vec<&'static str>,
    /// Every queue (each gets its series, 0 when empty).
    pub queues: Vec<&'static str>,
    /// The time the statuses and ages are read at.
    pub now: Micros,
}

impl ReadOp for ReadGauges {
    type Output = DbGauges;
    fn run(self, conn: &mut DbConnection) -> StoreResult<DbGauges> {
        let mut g = DbGauges::zeroed(
            self.endpoints,
            JobStatus::ALL.iter().map(|s| s.as_str()),
            self.queues,
        );
        for (endpoint, status, n) in jobs::count_by_endpoint_status(conn, self.now)? {
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
