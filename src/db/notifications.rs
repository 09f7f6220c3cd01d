//! The outbox of webhook notifications. A `job:finished` row is written by the same
//! transaction that gives a job its final status, so an event is never lost between the
//! commit and its delivery, and the unique (event, instance) pair forbids a second one.
//! Retention deletes the oldest first, found through `notifications_created`.

use super::prepared::{by_index, prepared, Param};
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

/// A `job:finished` notification written already claimed by the node whose webhook
/// dispatcher will deliver it: the dispatcher gets it from the writer once it commits, with
/// no claim of its own (an update of the row and a round trip). Until `until` no other node
/// delivers it; if this node dies first, any node's poll finds it after that.
#[derive(Debug, Clone, Copy)]
pub struct BornClaim<'a> {
    /// The claiming node.
    pub node: &'a str,
    /// When the claim runs out.
    pub until: Micros,
}

/// A `job:finished` notification as written: what its delivery needs besides its target.
#[derive(Debug, Clone)]
pub struct Written {
    /// `msg_…`.
    pub id: String,
    /// The e-shop it goes to.
    pub eshop_id: i64,
    /// The exact body.
    pub payload: String,
}

/// Records the `job:finished` notification of a job that has just ended.
pub fn record_job_finished(
    conn: &mut DbConnection,
    eshop_id: i64,
    job_id: &str,
    zone: &Zone,
    now: Micros,
) -> StoreResult<()> {
    record_job_finished_claimed(conn, eshop_id, job_id, zone, now, None).map(|_| ())
}

/// [`record_job_finished`], claimed at birth when `claim` says so; answers what it wrote.
pub(crate) fn record_job_finished_claimed(
    conn: &mut DbConnection,
    eshop_id: i64,
    job_id: &str,
    zone: &Zone,
    now: Micros,
    claim: Option<BornClaim>,
) -> StoreResult<Written> {
    let written = Written {
        id: ids::ordered_id("msg", now),
        eshop_id,
        payload: job_finished_body(eshop_id, &zone.format(now), job_id),
    };
    prepared!(
        "INSERT INTO notifications (id, eshop_id, event, event_instance, payload, status, \
            attempts, next_attempt_at, created_at, claimed_by, claim_expires) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6, ?7, ?8)",
        &[
            Param::Text(&written.id),
            Param::BigInt(eshop_id),
            Param::Text(JOB_FINISHED),
            Param::Text(job_id),
            Param::Text(&written.payload),
            Param::BigInt(now),
            Param::NullableText(claim.map(|c| c.node)),
            Param::NullableBigInt(claim.map(|c| c.until)),
        ],
    )
    .run(conn)?;
    Ok(written)
}

/// How many notifications exist for one job (tests and invariant checks).
pub fn count_for_instance(conn: &mut DbConnection, event_instance: &str) -> StoreResult<i64> {
    Ok(notifications::table
        .filter(notifications::event_instance.eq(event_instance))
        .count()
        .get_result(conn)?)
}

/// A notification to delete.
#[derive(QueryableByName)]
struct Old {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

/// Deletes notifications older than `cutoff` with their attempts, at most `limit` of them,
/// oldest first. They are found through `notifications_created`, in its order, so a pass
/// reads what it deletes: without that index every pass of the janitor read the whole
/// table (4–5 ms a second at 20 000 notifications on PostgreSQL, and the retention keeps
/// a week of them). PostgreSQL plans it [`by_index`]: its plan cached on a new, nearly
/// empty table would read the table whole however large it grew.
pub fn purge(conn: &mut DbConnection, cutoff: Micros, limit: i64) -> StoreResult<usize> {
    const OLDEST: &str = "SELECT id FROM notifications WHERE created_at < ?1 \
                          ORDER BY created_at LIMIT (?2 + 0)";
    let params = [Param::BigInt(cutoff), Param::BigInt(limit)];
    let old: Vec<Old> = match conn {
        DbConnection::Sqlite(c) => prepared!(OLDEST, &params).load(c)?,
        DbConnection::Pg(c) => by_index(c, |c| prepared!(OLDEST, &params).load(c))?,
    };
    if old.is_empty() {
        return Ok(0);
    }
    let old: Vec<String> = old.into_iter().map(|o| o.id).collect();
    diesel::delete(
        notification_attempts::table.filter(notification_attempts::notification_id.eq_any(&old)),
    )
    .execute(conn)?;
    Ok(diesel::delete(notifications::table.filter(notifications::id.eq_any(old))).execute(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::database::test_server;
    use crate::db::migrated_for_tests;
    use crate::db::prepared::assert_reads_by_index;
    use crate::model::time;

    /// Writes the `job:finished` notification of job `job`, created at `at`, with one
    /// recorded attempt.
    fn notification(conn: &mut DbConnection, job: &str, at: Micros) {
        record_job_finished(conn, 1, job, &Zone::utc(), at).unwrap();
        let id: String = notifications::table
            .filter(notifications::event_instance.eq(job))
            .select(notifications::id)
            .first(conn)
            .unwrap();
        diesel::insert_into(notification_attempts::table)
            .values((
                notification_attempts::notification_id.eq(id),
                notification_attempts::attempt.eq(1),
                notification_attempts::attempted_at.eq(at),
                notification_attempts::duration_ms.eq(1),
            ))
            .execute(conn)
            .unwrap();
    }

    /// 2 000 notifications, 7 of them past the retention: purges of 5 take the oldest
    /// first, then the rest, then nothing, each with its attempts, and the young ones stay.
    /// On PostgreSQL the pass reads only the rows it deletes, also with the statement's
    /// plan cached on the empty table (`prepared::assert_reads_by_index`).
    fn purge_takes_only_the_old(server: Option<&str>) {
        let (_db, conn) = &mut migrated_for_tests(server);
        let now = time::now();
        let cutoff = now - 7 * 24 * 3600 * time::SECOND;
        for _ in 0..8 {
            assert_eq!(purge(conn, cutoff, 5).unwrap(), 0);
        }
        conn.transaction::<_, diesel::result::Error, _>(|c| {
            for i in 0..2000i64 {
                // The old ones are spread among the young in the order of writing.
                let at = match i % 300 {
                    7 => cutoff - 10_000 + i,
                    _ => now - i,
                };
                notification(c, &format!("j{i:04}"), at);
            }
            Ok(())
        })
        .unwrap();
        let left = |conn: &mut DbConnection| -> (i64, i64) {
            let n = notifications::table.count().get_result(conn).unwrap();
            let a = notification_attempts::table
                .count()
                .get_result(conn)
                .unwrap();
            (n, a)
        };
        let oldest_first: Vec<String> = (0..2000)
            .filter(|i| i % 300 == 7)
            .map(|i| format!("j{i:04}"))
            .collect();
        let purged = conn
            .transaction::<_, crate::error::StoreError, _>(|c| {
                assert_reads_by_index(c, "notifications", 20, |c| purge(c, cutoff, 5))
            })
            .unwrap();
        assert_eq!(purged, 5);
        assert_eq!(left(conn), (1995, 1995));
        for (i, job) in oldest_first.iter().enumerate() {
            assert_eq!(
                count_for_instance(conn, job).unwrap(),
                (i >= 5) as i64,
                "{job}"
            );
        }
        assert_eq!(purge(conn, cutoff, 5).unwrap(), 2);
        assert_eq!(purge(conn, cutoff, 5).unwrap(), 0);
        assert_eq!(left(conn), (1993, 1993));
    }

    #[test]
    fn sqlite_purge_takes_only_the_old() {
        purge_takes_only_the_old(None);
    }

    #[test]
    fn postgres_purge_takes_only_the_old() {
        purge_takes_only_the_old(Some(&test_server()));
    }

    #[test]
    fn body_is_exactly_the_contracts() {
        assert_eq!(
            super::job_finished_body(222651, "2019-01-08T15:13:39+0100", "3ax1844"),
            r#"{"eshopId": 222651, "event": "job:finished", "eventCreated": "2019-01-08T15:13:39+0100", "eventInstance": "3ax1844"}"#
        );
    }
}
