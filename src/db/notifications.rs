//! The outbox of webhook notifications. A `job:finished` row is written by the same
//! transaction that gives a job its final status, so an event is never lost between the
//! commit and its delivery, and the unique (event, instance) pair forbids a second one.

use super::prepared::{prepared, Param};
use super::schema::{notification_attempts, notifications};
use super::DbConnection;
use crate::error::StoreResult;
use crate::model::{ids, Micros, Zone};
use diesel::prelude::*;

/// The event every finished job yields.
pub const JOB_FINISHED: &str = "job:finished";

/// The exact body of a `job:finished` delivery, in the contract's key order and spacing.
pub fn job_finished_body(eshop_id: i64, created: &str, job_id: &str) -> String {
    format!(
        r#"{{"eshopId": {eshop_id}, "event": "{JOB_FINISHED}", "eventCreated": "{created}", "eventInstance": "{job_id}"}}"#
    )
}

/// Records the `job:finished` notification of a job that has just ended.
pub fn record_job_finished(
    conn: &mut DbConnection,
    eshop_id: i64,
    job_id: &str,
    zone: &Zone,
    now: Micros,
) -> StoreResult<()> {
    prepared!(
        "INSERT INTO notifications (id, eshop_id, event, event_instance, payload, status, \
            attempts, next_attempt_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6)",
        &[
            Param::Text(&ids::ordered_id("msg", now)),
            Param::BigInt(eshop_id),
            Param::Text(JOB_FINISHED),
            Param::Text(job_id),
            Param::Text(&job_finished_body(eshop_id, &zone.format(now), job_id)),
            Param::BigInt(now),
        ],
    )
    .run(conn)?;
    Ok(())
}

/// How many notifications exist for one job (tests and invariant checks).
pub fn count_for_instance(conn: &mut DbConnection, event_instance: &str) -> StoreResult<i64> {
    Ok(notifications::table
        .filter(notifications::event_instance.eq(event_instance))
        .count()
        .get_result(conn)?)
}

/// Deletes notifications older than `cutoff` with their attempts, at most `limit` of them.
pub fn purge(conn: &mut DbConnection, cutoff: Micros, limit: i64) -> StoreResult<usize> {
    let old: Vec<String> = notifications::table
        .filter(notifications::created_at.lt(cutoff))
        .select(notifications::id)
        .limit(limit)
        .load(conn)?;
    if old.is_empty() {
        return Ok(0);
    }
    diesel::delete(
        notification_attempts::table.filter(notification_attempts::notification_id.eq_any(&old)),
    )
    .execute(conn)?;
    Ok(diesel::delete(notifications::table.filter(notifications::id.eq_any(old))).execute(conn)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_is_exactly_the_contracts() {
        assert_eq!(
            super::job_finished_body(222651, "2019-01-08T15:13:39+0100", "3ax1844"),
            r#"{"eshopId": 222651, "event": "job:finished", "eventCreated": "2019-01-08T15:13:39+0100", "eventInstance": "3ax1844"}"#
        );
    }
}
