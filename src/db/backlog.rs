//! A queue's backlog as its worker pool sees it: the pending jobs a worker could claim
//! now (the claim skips an e-shop's jobs while it has `max_running_per_eshop` running, so
//! those wait on their e-shop, not on workers) and how long the oldest of them has
//! waited. Read across the cluster, so every node scales from the shared backlog.

use super::schema::jobs;
use super::DbConnection;
use crate::error::StoreResult;
use crate::model::Micros;
use diesel::dsl::{count_star, min};
use diesel::prelude::*;
use std::collections::HashMap;

/// The claimable part of a queue's backlog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Pending jobs whose e-shop is under its cap: what more workers could start now.
    pub claimable: i64,
    /// Creation time of the oldest pending job of an e-shop under its cap.
    pub oldest: Option<Micros>,
}

/// Reads the queue's pending and running jobs per e-shop (in one read transaction) and
/// answers what more workers could claim.
pub fn claimable(conn: &mut DbConnection, queue: &str, max_per_eshop: i64) -> StoreResult<Backlog> {
    conn.transaction(|conn| {
        let pending: Vec<(i64, i64, Option<Micros>)> = jobs::table
            .filter(jobs::queue.eq(queue))
            .filter(jobs::status.eq("pending"))
            .group_by(jobs::eshop_id)
            .select((jobs::eshop_id, count_star(), min(jobs::creation_time)))
            .load(conn)?;
        if pending.is_empty() {
            return Ok(Backlog::default());
        }
        let running: Vec<(i64, i64)> = jobs::table
            .filter(jobs::queue.eq(queue))
            .filter(jobs::status.eq("running"))
            .group_by(jobs::eshop_id)
            .select((jobs::eshop_id, count_star()))
            .load(conn)?;
        Ok(combine(
            &pending,
            &running.into_iter().collect(),
            max_per_eshop,
        ))
    })
}

/// Per e-shop: at most `max_per_eshop - running` of its pending jobs are claimable.
fn combine(
    pending: &[(i64, i64, Option<Micros>)],
    running: &HashMap<i64, i64>,
    max_per_eshop: i64,
) -> Backlog {
    let mut backlog = Backlog::default();
    for (eshop, waiting, oldest) in pending {
        let room = (max_per_eshop - running.get(eshop).copied().unwrap_or(0)).max(0);
        let claimable = (*waiting).min(room);
        if claimable > 0 {
            backlog.claimable += claimable;
            backlog.oldest = match (backlog.oldest, *oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    backlog
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_of_an_eshop_at_its_cap_are_not_claimable() {
        let pending = [(1, 50, Some(100)), (2, 3, Some(300)), (3, 1, Some(50))];
        let running: HashMap<i64, i64> = [(1, 1), (3, 2)].into_iter().collect();
        // e-shop 1: one more of 50; e-shop 2: two of 3; e-shop 3: at its cap.
        assert_eq!(
            combine(&pending, &running, 2),
            Backlog {
                claimable: 3,
                oldest: Some(100)
            }
        );
        assert_eq!(combine(&[], &running, 2), Backlog::default());
    }
}
