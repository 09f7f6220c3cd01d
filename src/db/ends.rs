//! A run of attempts' ends written at once. On PostgreSQL the whole run is one statement
//! (its rows travel as one JSON parameter, so it is prepared once whatever the run's
//! length): the fenced status change, the `job:finished` outbox rows and the results' last
//! chunks, after one statement that removes the chunks earlier attempts may have left.
//! SQLite runs in-process, with no round trip to save: there each end is
//! [`jobs::finish_end`]'s few cached statements.

use super::jobs::{self, End, Outcome, ResultMeta};
use super::notifications::{job_finished_body, Written, JOB_FINISHED};
use super::prepared::{prepared, Param};
use super::{results, DbConnection};
use crate::error::{StoreError, StoreResult};
use crate::model::{ids, time, Micros};
use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl};
use serde::Serialize;
use std::collections::HashSet;

/// Writes the ends of a run of attempts, each fenced as [`jobs::finish_end`] is (only the
/// attempt that holds the job, only from `running`); answers, in order, the notification
/// each end wrote, or `None` where it did not take effect. A job may appear once in a run
/// on PostgreSQL; a run that names one twice is written end by end, so the first end
/// counts and the second is refused, as in a row.
pub fn finish_all(conn: &mut DbConnection, ends: &[End]) -> StoreResult<Vec<Option<Written>>> {
    let distinct = ends.iter().map(|e| e.id).collect::<HashSet<_>>().len() == ends.len();
    match conn {
        DbConnection::Pg(c) if distinct => finish_all_on_pg(c, ends),
        _ => ends.iter().map(|e| jobs::finish_end(conn, e)).collect(),
    }
}

/// One row of the PostgreSQL statement's JSON parameter.
#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    attempt: i32,
    status: &'static str,
    log: &'a str,
    ext: Option<&'a str>,
    content_type: Option<&'a str>,
    size: Option<i64>,
    valid_until: Option<Micros>,
    /// The result's last chunk, hex.
    seq: Option<i32>,
    data: Option<String>,
    /// The whole result, hex, when it is kept in the job's row ([`results::inline`]).
    inline: Option<String>,
    notification_id: String,
    payload: String,
    claimed_by: Option<&'a str>,
    claim_expires: Option<Micros>,
}

/// ?1 the rows, ?2 now. The fenced status change; the outbox rows and the last chunks of
/// exactly the jobs it changed, in the same statement (and so the same transaction).
const PG_FINISH_ALL: &str = "\
    WITH u AS ( \
        SELECT * FROM json_to_recordset(?1::json) AS x(id text, attempt integer, \
            status text, log text, ext text, content_type text, size bigint, \
            valid_until bigint, seq integer, data text, inline text, notification_id text, \
            payload text, \
            claimed_by text, claim_expires bigint) \
    ), ended AS ( \
        UPDATE jobs j SET status = u.status, completion_time = ?2, lease_owner = NULL, \
            lease_expires = NULL, log = j.log || u.log, \
            result_ext = COALESCE(u.ext, j.result_ext), \
            result_content_type = COALESCE(u.content_type, j.result_content_type), \
            result_size = COALESCE(u.size, j.result_size), \
            valid_until = COALESCE(u.valid_until, j.valid_until), \
            result_inline = decode(u.inline, 'hex') \
        FROM u WHERE j.id = u.id AND j.attempt = u.attempt AND j.status = 'running' \
        RETURNING j.id, j.eshop_id \
    ), outbox AS ( \
        INSERT INTO notifications (id, eshop_id, event, event_instance, payload, status, \
            attempts, next_attempt_at, created_at, claimed_by, claim_expires) \
        SELECT u.notification_id, e.eshop_id, ?3, e.id, u.payload, 'pending', 0, ?2, ?2, \
            u.claimed_by, u.claim_expires \
        FROM ended e JOIN u ON u.id = e.id \
    ), tails AS ( \
        INSERT INTO job_result_chunks (job_id, seq, data) \
        SELECT e.id, u.seq, decode(u.data, 'hex') \
        FROM ended e JOIN u ON u.id = e.id WHERE u.data IS NOT NULL \
    ) \
    SELECT id FROM ended";

/// ?1 a JSON array of (id, attempt) pairs: removes the stored chunks of those jobs whose
/// attempt still holds them.
const PG_CLEAR: &str = "\
    DELETE FROM job_result_chunks c \
    USING json_to_recordset(?1::json) AS x(id text, attempt integer), jobs j \
    WHERE c.job_id = x.id AND j.id = x.id AND j.attempt = x.attempt \
        AND j.status = 'running'";

/// A job the statement ended.
#[derive(QueryableByName)]
struct Ended {
    #[diesel(sql_type = Text)]
    id: String,
}

/// Whether an end must first remove chunks stored before: an attempt that did not
/// complete keeps no result, and a result whose last chunk is its first may find chunks
/// an earlier attempt left (also one handed back unspent, whose number is used again),
/// unless it is kept inline, where readers ignore them.
fn clears(e: &End) -> bool {
    match e.outcome {
        Outcome::Completed(ResultMeta { tail, .. }) => {
            matches!(tail, Some((0, _))) && results::inline(tail.as_ref()).is_none()
        }
        Outcome::Failed | Outcome::Killed => true,
    }
}

fn finish_all_on_pg(
    c: &mut diesel::PgConnection,
    ends: &[End],
) -> StoreResult<Vec<Option<Written>>> {
    let now = time::now();
    let clear: Vec<(&str, i32)> = ends
        .iter()
        .filter(|e| clears(e))
        .map(|e| (e.id, e.attempt))
        .collect();
    if !clear.is_empty() {
        let pairs: Vec<_> = clear
            .iter()
            .map(|(id, attempt)| serde_json::json!({"id": id, "attempt": attempt}))
            .collect();
        prepared!(PG_CLEAR, &[Param::Text(&to_json(&pairs)?)]).execute(c)?;
    }
    let rows: Vec<Row> = ends
        .iter()
        .map(|e| {
            let meta = match e.outcome {
                Outcome::Completed(meta) => Some(meta),
                _ => None,
            };
            let tail = meta.and_then(|m| m.tail.as_ref());
            let inline = results::inline(tail);
            let tail = tail.filter(|_| inline.is_none());
            Row {
                id: e.id,
                attempt: e.attempt,
                status: e.outcome.status().as_str(),
                log: e.log,
                ext: meta.map(|m| m.ext.as_str()),
                content_type: meta.map(|m| m.content_type.as_str()),
                size: meta.map(|m| m.size),
                valid_until: meta.map(|_| now + e.result_ttl),
                seq: tail.map(|(seq, _)| *seq),
                data: tail.map(|(_, data)| hex::encode(data)),
                inline: inline.map(hex::encode),
                notification_id: ids::ordered_id("msg", now),
                payload: job_finished_body(e.eshop_id, &e.zone.format(now), e.id),
                claimed_by: e.claim.map(|c| c.node),
                claim_expires: e.claim.map(|c| c.until),
            }
        })
        .collect();
    let ended: Vec<Ended> = prepared!(
        PG_FINISH_ALL,
        &[
            Param::Text(&to_json(&rows)?),
            Param::BigInt(now),
            Param::Text(JOB_FINISHED),
        ],
    )
    .load(c)?;
    let ended: HashSet<String> = ended.into_iter().map(|e| e.id).collect();
    Ok(ends
        .iter()
        .zip(rows)
        .map(|(e, row)| {
            ended.contains(e.id).then_some(Written {
                id: row.notification_id,
                eshop_id: e.eshop_id,
                payload: row.payload,
            })
        })
        .collect())
}

fn to_json(value: &impl Serialize) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Database(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{jobs::pending_for_tests, migrated_for_tests, notifications, results};
    use crate::model::Zone;

    /// One run of ends on a real database: a completion with its last chunk, a failure
    /// that drops the chunk its attempt wrote, a stale attempt (refused, no outbox row),
    /// and an attempt whose one-chunk result (kept inline) replaces the two chunks of one
    /// handed back before it. SQLite writes them end by end, PostgreSQL in one statement: the outcome
    /// is the same.
    fn a_run_of_ends(server: Option<&str>) {
        let (_db, conn) = &mut migrated_for_tests(server);
        let jobs: Vec<_> = (0..4).map(|_| pending_for_tests("snapshots")).collect();
        for job in &jobs {
            jobs::insert(conn, job, None, time::SECOND).unwrap();
        }
        let now = time::now();
        let lease = now + 30 * time::SECOND;
        assert_eq!(
            jobs::claim(conn, "snapshots", "n", 4, 9, lease, now)
                .unwrap()
                .len(),
            4
        );
        let (done, failed, stale, again) = (&jobs[0].id, &jobs[1].id, &jobs[2].id, &jobs[3].id);
        results::append(conn, failed, 0, b"partial").unwrap();
        results::append(conn, again, 0, b"old").unwrap();
        results::append(conn, again, 1, b"old too").unwrap();
        // Handed back unspent: the next claim runs attempt 1 again.
        jobs::release(conn, again, 1, "").unwrap().unwrap();
        let reclaimed = jobs::claim(conn, "snapshots", "n", 1, 9, lease, now).unwrap();
        assert_eq!(reclaimed[0].attempt, 1);

        let completed = |data: &[u8]| {
            Outcome::Completed(ResultMeta {
                ext: "jsonl.gz".into(),
                content_type: "application/gzip".into(),
                size: data.len() as i64,
                tail: Some((0, data.to_vec())),
            })
        };
        // One result too large to keep inline (stored as a chunk), one kept inline.
        let large = vec![7u8; results::INLINE_MAX + 1];
        let (new, fresh, zone) = (completed(b"new"), completed(&large), Zone::utc());
        let end = |id, attempt, outcome| End {
            id,
            eshop_id: 1,
            attempt,
            outcome,
            log: "ended\n",
            zone: &zone,
            result_ttl: time::SECOND,
            claim: None,
        };
        let run = [
            end(done, 1, &fresh),
            end(failed, 1, &Outcome::Failed),
            end(stale, 2, &Outcome::Failed),
            end(again, 1, &new),
        ];
        let written = finish_all(conn, &run).unwrap();
        let took: Vec<bool> = written.iter().map(Option::is_some).collect();
        assert_eq!(took, [true, true, false, true]);

        let d = jobs::get(conn, 1, done, 0).unwrap();
        assert_eq!(d.status, "completed");
        assert_eq!(d.result_size, Some(large.len() as i64));
        assert!(d.valid_until.is_some() && d.log.ends_with("ended\n"));
        assert_eq!(jobs::get(conn, 1, failed, 0).unwrap().status, "failed");
        assert_eq!(
            jobs::get(conn, 1, stale, 0).unwrap().status,
            "running",
            "a stale attempt changes nothing"
        );
        assert_eq!(jobs::get(conn, 1, again, 0).unwrap().status, "completed");
        assert_eq!(results::chunk(conn, done, 0).unwrap().unwrap(), large);
        assert_eq!(results::chunk(conn, done, 1).unwrap(), None);
        assert_eq!(results::chunk(conn, failed, 0).unwrap(), None);
        assert_eq!(results::chunk(conn, again, 0).unwrap().unwrap(), b"new");
        assert_eq!(
            results::chunk(conn, again, 1).unwrap(),
            None,
            "the earlier attempt's second chunk is not served"
        );
        for (id, rows) in [(done, 1), (failed, 1), (stale, 0), (again, 1)] {
            assert_eq!(
                notifications::count_for_instance(conn, id).unwrap(),
                rows,
                "{id}"
            );
        }
    }

    #[test]
    fn sqlite_writes_a_run_of_ends() {
        a_run_of_ends(None);
    }

    #[test]
    fn postgres_writes_a_run_of_ends_in_one_statement() {
        a_run_of_ends(Some(&crate::bench::database::test_server()));
    }
}
