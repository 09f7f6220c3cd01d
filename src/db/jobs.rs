//! Jobs: insertion (with idempotency keys), tenant-scoped reads and lists, batched claims
//! with leases, fenced completion, kill, hand-back, lease recovery, expiry and retention.
//! Every status change names the status it comes from in its SQL, so it follows
//! [`JobStatus::can_become`] even when nodes race.

use super::notifications::{self, BornClaim, Written};
use super::prepared::{prepared, usual_plans, Param, OFF_FOR_THE_TRANSACTION};
use super::schema::{idempotency_keys, job_result_chunks, jobs};
use super::signals::{self, Signal};
use super::{literal, DbConnection};
use crate::error::{StoreError, StoreResult};
use crate::model::{time, JobStatus, Micros, Zone};
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use std::sync::LazyLock;

/// A job as stored (serialized as a row of [`insert_all`]'s JSON on PostgreSQL).
#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = jobs)]
pub struct Job {
    /// 7 lower-case letters and digits.
    pub id: String,
    /// Owner.
    pub eshop_id: i64,
    /// The asynchronous endpoint that created it, e.g. `/api/products/snapshot`.
    pub endpoint: String,
    /// The queue whose workers run it.
    pub queue: String,
    /// Stored status (`completed` past `valid_until` reads as `expired`: see [`Job::status_at`]).
    pub status: String,
    /// The validated request, as JSON, for the job kind.
    pub params: String,
    /// When accepted.
    pub creation_time: Micros,
    /// When the current (or last) attempt started.
    pub started_time: Option<Micros>,
    /// When it ended.
    pub completion_time: Option<Micros>,
    /// How many times it has been started.
    pub attempt: i32,
    /// The node holding the lease while running.
    pub lease_owner: Option<String>,
    /// When the lease ends unless renewed.
    pub lease_expires: Option<Micros>,
    /// The secret part of the result URL.
    pub result_secret: String,
    /// Extension of the result file (`jsonl.gz`, `json`).
    pub result_ext: Option<String>,
    /// Content type the result is served with.
    pub result_content_type: Option<String>,
    /// Result size in bytes.
    pub result_size: Option<i64>,
    /// Until when the result can be downloaded.
    pub valid_until: Option<Micros>,
    /// Log lines, newline-terminated.
    pub log: String,
}

impl Job {
    /// The status as a client sees it at `now`: a completed job whose result has passed
    /// `valid_until` is `expired` even before the janitor has removed the result.
    pub fn status_at(&self, now: Micros) -> JobStatus {
        let stored: JobStatus = self.status.parse().unwrap_or(JobStatus::Failed);
        match (stored, self.valid_until) {
            (JobStatus::Completed, Some(until)) if until < now => JobStatus::Expired,
            (st, _) => st,
        }
    }
}

/// The stored names of a status change, checked against the job life cycle: the `from`
/// name goes into the change's WHERE clause, so the database applies only allowed moves.
fn transition(from: JobStatus, to: JobStatus) -> (&'static str, &'static str) {
    assert!(
        from.can_become(to),
        "{from} -> {to} is not a job transition"
    );
    (from.as_str(), to.as_str())
}

/// A log line: the time in the API's zone, then the message.
pub fn log_line(zone: &Zone, now: Micros, message: &str) -> String {
    format!("{} {message}\n", zone.format(now))
}

/// What a job kind returns when it has produced its result.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultMeta {
    /// File extension of the result (`jsonl.gz`).
    pub ext: String,
    /// Content type it is served with.
    pub content_type: String,
    /// Size in bytes.
    pub size: i64,
    /// The last chunk (number, bytes), not stored yet: the completing transaction writes
    /// it, so a result of up to one chunk costs no commit of its own.
    pub tail: Option<(i32, Vec<u8>)>,
}

/// How a running attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A result was stored.
    Completed(ResultMeta),
    /// No result; the log says why.
    Failed,
    /// Stopped: past `max_run_time`, or out of attempts.
    Killed,
}

impl Outcome {
    /// The job's final status after this outcome.
    pub fn status(&self) -> JobStatus {
        match self {
            Outcome::Completed(_) => JobStatus::Completed,
            Outcome::Failed => JobStatus::Failed,
            Outcome::Killed => JobStatus::Killed,
        }
    }
}

/// Inserts a job unless the e-shop sent the same `Idempotency-Key` within `idem_window`;
/// answers the job id and whether it is new.
pub fn insert(
    conn: &mut DbConnection,
    job: &Job,
    idem_key: Option<&str>,
    idem_window: Micros,
) -> StoreResult<(String, bool)> {
    if let Some(key) = idem_key {
        let existing: Option<(String, Micros)> = idempotency_keys::table
            .filter(idempotency_keys::eshop_id.eq(job.eshop_id))
            .filter(idempotency_keys::idem_key.eq(key))
            .select((idempotency_keys::job_id, idempotency_keys::created_at))
            .first(conn)
            .optional()?;
        match existing {
            Some((id, at)) if at > job.creation_time - idem_window => return Ok((id, false)),
            Some(_) => {
                diesel::delete(
                    idempotency_keys::table
                        .filter(idempotency_keys::eshop_id.eq(job.eshop_id))
                        .filter(idempotency_keys::idem_key.eq(key)),
                )
                .execute(conn)?;
            }
            None => {}
        }
        diesel::insert_into(idempotency_keys::table)
            .values((
                idempotency_keys::eshop_id.eq(job.eshop_id),
                idempotency_keys::idem_key.eq(key),
                idempotency_keys::job_id.eq(&job.id),
                idempotency_keys::created_at.eq(job.creation_time),
            ))
            .execute(conn)
            .map_err(raced)?;
    }
    insert_row(conn, job)?;
    Ok((job.id.clone(), true))
}

/// Inserts jobs that carry no idempotency key. On PostgreSQL two or more are one statement
/// whatever their number (the rows travel as one JSON parameter, so it is prepared once):
/// one round trip instead of one per job. On SQLite, in-process, the cached single-row
/// insert per job costs less than unpacking a JSON batch (measured: twice the CPU).
pub fn insert_all(conn: &mut DbConnection, batch: &[&Job]) -> StoreResult<()> {
    if batch.len() > 1 {
        if let DbConnection::Pg(c) = conn {
            let rows =
                serde_json::to_string(batch).map_err(|e| StoreError::Database(e.to_string()))?;
            prepared!(PG_INSERT_ALL, &[Param::Text(&rows)])
                .execute(c)
                .map_err(raced)?;
            return Ok(());
        }
    }
    for job in batch {
        insert_row(conn, job)?;
    }
    Ok(())
}

/// Inserts jobs that carry no idempotency key and sends `signals` in one statement that
/// commits by itself, outside any transaction (PostgreSQL only; `None` on SQLite, where
/// nothing was written). A batch of submits is then one round trip instead of four (the
/// `BEGIN`, the insert, the `NOTIFY` and the `COMMIT`): the `NOTIFY` is the statement's
/// main query and the insert its data-modifying `WITH`, which PostgreSQL runs to the end
/// whatever the main query reads. Both commit together or not at all; an error leaves
/// nothing written.
pub fn insert_all_signalling(
    conn: &mut DbConnection,
    batch: &[&Job],
    signals: &[Signal],
) -> Option<StoreResult<()>> {
    static INSERT_ALL_SIGNALLING: LazyLock<String> = LazyLock::new(|| {
        let notify = signals::notify_select(2);
        format!("WITH inserted AS ({PG_INSERT_ALL}) {notify}")
    });
    let DbConnection::Pg(c) = conn else {
        return None;
    };
    let inserted = serde_json::to_string(batch)
        .map_err(|e| StoreError::Database(e.to_string()))
        .and_then(|rows| {
            prepared!(
                INSERT_ALL_SIGNALLING.as_str(),
                &[
                    Param::Text(&rows),
                    Param::Text(signals::CHANNEL),
                    Param::Text(&signals::payloads(signals)),
                ],
            )
            .execute(c)
            .map_err(raced)
        });
    Some(inserted.map(|_| ()))
}

/// PostgreSQL's insert of a batch of jobs: one row per element of the JSON array ?1.
const PG_INSERT_ALL: &str = "\
    INSERT INTO jobs (id, eshop_id, endpoint, queue, status, params, creation_time, \
        started_time, completion_time, attempt, lease_owner, lease_expires, result_secret, \
        result_ext, result_content_type, result_size, valid_until, log) \
    SELECT id, eshop_id, endpoint, queue, status, params, creation_time, started_time, \
        completion_time, attempt, lease_owner, lease_expires, result_secret, result_ext, \
        result_content_type, result_size, valid_until, log \
    FROM json_to_recordset(?1::json) AS x(id text, eshop_id bigint, endpoint text, \
        queue text, status text, params text, creation_time bigint, started_time bigint, \
        completion_time bigint, attempt integer, lease_owner text, lease_expires bigint, \
        result_secret text, result_ext text, result_content_type text, result_size bigint, \
        valid_until bigint, log text)";

/// Inserts one job row (a cached statement).
fn insert_row(conn: &mut DbConnection, job: &Job) -> StoreResult<()> {
    prepared!(
        "INSERT INTO jobs (id, eshop_id, endpoint, queue, status, params, creation_time, \
            started_time, completion_time, attempt, lease_owner, lease_expires, result_secret, \
            result_ext, result_content_type, result_size, valid_until, log) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        &[
            Param::Text(&job.id),
            Param::BigInt(job.eshop_id),
            Param::Text(&job.endpoint),
            Param::Text(&job.queue),
            Param::Text(&job.status),
            Param::Text(&job.params),
            Param::BigInt(job.creation_time),
            Param::NullableBigInt(job.started_time),
            Param::NullableBigInt(job.completion_time),
            Param::Integer(job.attempt),
            Param::NullableText(job.lease_owner.as_deref()),
            Param::NullableBigInt(job.lease_expires),
            Param::Text(&job.result_secret),
            Param::NullableText(job.result_ext.as_deref()),
            Param::NullableText(job.result_content_type.as_deref()),
            Param::NullableBigInt(job.result_size),
            Param::NullableBigInt(job.valid_until),
            Param::Text(&job.log),
        ],
    )
    .run(conn)
    .map_err(raced)?;
    Ok(())
}

/// A job id already taken, or an idempotency key inserted by a concurrent request: the
/// caller retries (with a new id; the key then finds the other request's job).
fn raced(e: diesel::result::Error) -> StoreError {
    if crate::error::is_unique_violation(&e) {
        StoreError::Conflict("job-insert-raced")
    } else {
        e.into()
    }
}

/// Jobs still kept: created after the retention `cutoff`, or not finished yet (a job that
/// waited or ran longer than the retention is not forgotten while it is unfinished).
pub(crate) fn retained(cutoff: Micros) -> JobPredicate {
    Box::new(
        jobs::creation_time
            .ge(cutoff)
            .or(jobs::status.eq_any(["pending", "running"])),
    )
}

/// One job of one e-shop, unless the retention `cutoff` removed it.
pub fn get(conn: &mut DbConnection, eshop_id: i64, id: &str, cutoff: Micros) -> StoreResult<Job> {
    Ok(jobs::table
        .filter(jobs::eshop_id.eq(eshop_id))
        .filter(jobs::id.eq(id))
        .filter(retained(cutoff))
        .select(Job::as_select())
        .first(conn)?)
}

/// A job by id alone: only for result downloads, where the URL's secret is the credential.
pub fn get_unscoped(conn: &mut DbConnection, id: &str, cutoff: Micros) -> StoreResult<Job> {
    Ok(jobs::table
        .filter(jobs::id.eq(id))
        .filter(retained(cutoff))
        .select(Job::as_select())
        .first(conn)?)
}

/// Filters of the jobs list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Any of these statuses (as the client sees them).
    pub statuses: Vec<JobStatus>,
    /// Only this endpoint.
    pub endpoint: Option<String>,
    /// Created at or after.
    pub creation_from: Option<Micros>,
    /// Created at or before.
    pub creation_to: Option<Micros>,
    /// Completed at or after.
    pub completion_from: Option<Micros>,
    /// Completed at or before.
    pub completion_to: Option<Micros>,
}

type JobPredicate = Box<
    dyn BoxableExpression<
        jobs::table,
        super::connection::MultiBackend,
        SqlType = diesel::sql_types::Bool,
    >,
>;

/// The SQL condition for one client-visible status at `now`.
fn status_predicate(st: JobStatus, now: Micros) -> JobPredicate {
    match st {
        JobStatus::Completed => Box::new(
            jobs::status
                .eq("completed")
                .and(jobs::valid_until.ge(now).assume_not_null()),
        ),
        JobStatus::Expired => Box::new(
            jobs::status.eq("expired").or(jobs::status
                .eq("completed")
                .and(jobs::valid_until.lt(now).assume_not_null())),
        ),
        other => Box::new(jobs::status.eq(other.as_str())),
    }
}

fn filtered<'a>(
    eshop_id: i64,
    f: &JobFilter,
    now: Micros,
    cutoff: Micros,
) -> jobs::BoxedQuery<'a, super::connection::MultiBackend> {
    let q = jobs::table
        .filter(jobs::eshop_id.eq(eshop_id))
        .into_boxed()
        .filter(retained(cutoff));
    with_filter(q, f, now)
}

/// Adds the jobs list's filters to a query (statuses as the client sees them at `now`).
pub(crate) fn with_filter<'a>(
    mut q: jobs::BoxedQuery<'a, super::connection::MultiBackend>,
    f: &JobFilter,
    now: Micros,
) -> jobs::BoxedQuery<'a, super::connection::MultiBackend> {
    if let Some((first, rest)) = f.statuses.split_first() {
        let mut any = status_predicate(*first, now);
        for st in rest {
            any = Box::new(any.or(status_predicate(*st, now)));
        }
        q = q.filter(any);
    }
    if let Some(e) = &f.endpoint {
        q = q.filter(jobs::endpoint.eq(e.clone()));
    }
    if let Some(t) = f.creation_from {
        q = q.filter(jobs::creation_time.ge(t));
    }
    if let Some(t) = f.creation_to {
        q = q.filter(jobs::creation_time.le(t));
    }
    if let Some(t) = f.completion_from {
        q = q.filter(jobs::completion_time.ge(t));
    }
    if let Some(t) = f.completion_to {
        q = q.filter(jobs::completion_time.le(t));
    }
    q
}

/// How far past the requested page a list counts its matches: a list's `totalCount` is
/// exact while the matches end within this many rows after the page, and otherwise says
/// `offset + limit + COUNT_AHEAD` (a lower bound), so counting never scans a whole history.
pub const COUNT_AHEAD: i64 = 10_000;

/// One page of an e-shop's jobs, newest first, and their count, exact up to
/// [`COUNT_AHEAD`] rows past the page (read through the same index as the page).
pub fn list(
    conn: &mut DbConnection,
    eshop_id: i64,
    f: &JobFilter,
    offset: i64,
    limit: i64,
    now: Micros,
    cutoff: Micros,
) -> StoreResult<(Vec<Job>, i64)> {
    let counted: Vec<String> = filtered(eshop_id, f, now, cutoff)
        .order((jobs::creation_time.desc(), jobs::id.desc()))
        .select(jobs::id)
        .limit(offset + limit + COUNT_AHEAD)
        .load(conn)?;
    let total = counted.len() as i64;
    let items = filtered(eshop_id, f, now, cutoff)
        .order((jobs::creation_time.desc(), jobs::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(Job::as_select())
        .load(conn)?;
    Ok((items, total))
}

/// A job handed to a worker by a claim.
#[derive(Debug, Clone, QueryableByName, PartialEq)]
pub struct ClaimedJob {
    /// Job id.
    #[diesel(sql_type = Text)]
    pub id: String,
    /// Owner.
    #[diesel(sql_type = BigInt)]
    pub eshop_id: i64,
    /// Selects the job kind.
    #[diesel(sql_type = Text)]
    pub endpoint: String,
    /// The request, as JSON.
    #[diesel(sql_type = Text)]
    pub params: String,
    /// This attempt's number: with the id, it fences every later write of the attempt.
    #[diesel(sql_type = Integer)]
    pub attempt: i32,
}

/// The PostgreSQL advisory lock that serialises claims across nodes (`claim`); a constant
/// of its own, beside the maintenance lock's.
const CLAIM_LOCK: i64 = 7308339535425250819;

/// Claims up to `limit` pending jobs of `queue`, oldest first, while no e-shop gets more
/// than `max_per_eshop` running jobs in the queue; one statement for the whole batch.
pub fn claim(
    conn: &mut DbConnection,
    queue: &str,
    node: &str,
    limit: i64,
    max_per_eshop: i64,
    lease_until: Micros,
    now: Micros,
) -> StoreResult<Vec<ClaimedJob>> {
    // ?1 queue, ?2 max per e-shop, ?3 limit, ?4 node, ?5 lease end, ?6 now.
    // Both backends walk the distinct e-shops with pending jobs through the claim index (a
    // loose index scan) and take the oldest min(?2, ?3) pending jobs of each: no e-shop can
    // get more than the cap, nor the batch more than the limit. A claim so costs
    // O(e-shops × min(cap, limit)), not O(pending jobs): at 100 000 pending jobs of 8
    // e-shops the SQLite statement takes 1.7 ms instead of 250 ms for a window over them all.
    const SQLITE_SHOPS: &str = "\
        WITH RECURSIVE shops(eshop_id) AS ( \
            SELECT MIN(eshop_id) FROM jobs WHERE queue = ?1 AND status = 'pending' \
            UNION ALL \
            SELECT (SELECT MIN(j.eshop_id) FROM jobs j \
                    WHERE j.queue = ?1 AND j.status = 'pending' AND j.eshop_id > s.eshop_id) \
            FROM shops s WHERE s.eshop_id IS NOT NULL \
        ), ";
    // `LIMIT (?3 + 0)`, not `LIMIT ?3`: SQLite reads a bare bound LIMIT as a constant while
    // planning and so re-prepares the statement at every new binding, which was 30 % of
    // the server's time under load (see `db::prepared`).
    // SQLite has no LATERAL. Per e-shop, `cut` finds the creation time of its
    // min(?2, ?3)-th pending job (NULL when it has fewer), and the candidates are its
    // pending jobs up to that time, read as one range of the claim index, which holds every
    // column read here: no row of `jobs` is looked up for a candidate. (A correlated
    // `IN (… LIMIT)` list per e-shop looked every candidate up by id, then its row: 280 µs
    // for a claim of 17 jobs among 8 e-shops at 20 000 pending jobs, 210 µs this way.)
    // Jobs created in the same microsecond as the cut may add candidates. `CROSS JOIN`
    // keeps the e-shops the outer loop, so the plan cannot scan the queue.
    const SQLITE_CUT: &str = "\
        cut AS ( \
            SELECT s.eshop_id, ( \
                SELECT q.creation_time FROM jobs q \
                WHERE q.queue = ?1 AND q.status = 'pending' AND q.eshop_id = s.eshop_id \
                ORDER BY q.creation_time, q.id LIMIT 1 OFFSET MIN(?2, ?3) - 1) AS until \
            FROM shops s WHERE s.eshop_id IS NOT NULL \
        ), ";
    // Where the cap may bind, each candidate is ranked within its e-shop, and only those
    // whose rank and the e-shop's running jobs stay within the cap are picked (the ranking
    // also drops the extra candidates of a tie at the cut).
    const SQLITE_PICK_RANKED: &str = "\
        running AS ( \
            SELECT eshop_id, COUNT(*) AS n FROM jobs \
            WHERE queue = ?1 AND status = 'running' GROUP BY eshop_id \
        ), ranked AS ( \
            SELECT q.id, q.eshop_id, q.creation_time, \
                ROW_NUMBER() OVER (PARTITION BY q.eshop_id ORDER BY q.creation_time, q.id) AS rn \
            FROM cut c CROSS JOIN jobs q \
            WHERE q.queue = ?1 AND q.status = 'pending' AND q.eshop_id = c.eshop_id \
                AND q.creation_time <= COALESCE(c.until, 9223372036854775807) \
        ), picked AS ( \
            SELECT r.id FROM ranked r LEFT JOIN running u ON u.eshop_id = r.eshop_id \
            WHERE r.rn + COALESCE(u.n, 0) <= ?2 \
            ORDER BY r.creation_time, r.id LIMIT (?3 + 0) \
        ) ";
    // Where it cannot ([`sqlite_cap_binds`]), the oldest `?3` candidates are the claim: no
    // ranking, no running counts (half the statement's time at 16 jobs a claim among 8
    // e-shops: 230–253 µs ranked, 128–140 µs so). Each e-shop's candidates hold its oldest
    // `?3` pending jobs, so the oldest `?3` of the queue are among them; the extra
    // candidates of a tie at the cut are newer than those they would displace.
    const SQLITE_PICK_OLDEST: &str = "\
        picked AS ( \
            SELECT q.id FROM cut c CROSS JOIN jobs q \
            WHERE q.queue = ?1 AND q.status = 'pending' AND q.eshop_id = c.eshop_id \
                AND q.creation_time <= COALESCE(c.until, 9223372036854775807) \
            ORDER BY q.creation_time, q.id LIMIT (?3 + 0) \
        ) ";
    const SQLITE_UPDATE: &str = "\
        UPDATE jobs SET status = 'running', attempt = attempt + 1, lease_owner = ?4, \
            lease_expires = ?5, started_time = ?6 \
        WHERE id IN (SELECT id FROM picked) AND status = 'pending' \
        RETURNING id, eshop_id, endpoint, params, attempt";
    static SQLITE_RANKED: LazyLock<String> =
        LazyLock::new(|| format!("{SQLITE_SHOPS}{SQLITE_CUT}{SQLITE_PICK_RANKED}{SQLITE_UPDATE}"));
    static SQLITE_OLDEST: LazyLock<String> =
        LazyLock::new(|| format!("{SQLITE_SHOPS}{SQLITE_CUT}{SQLITE_PICK_OLDEST}{SQLITE_UPDATE}"));
    // PostgreSQL: the same walk, written so that no plan can read the backlog or the
    // history, whatever the statistics say (a plan cached while the table was small, or
    // from an ANALYZE taken when every job was pending, read every pending job or every
    // finished one of an e-shop at each claim: docs/benchmarks.md, "The PostgreSQL claim
    // read the whole backlog"):
    // - every probe orders by `(queue, eshop_id …)` and bounds it by row comparisons, so
    //   the claim index is the only index that serves it (`queue = ?1` would let an index
    //   on `eshop_id` serve the same order through the history);
    // - the running count is looked up once per e-shop found, in a `MATERIALIZED` CTE: as
    //   a lateral join beside the candidates, the plan counted again for every candidate
    //   (`loops=312` for 8 e-shops, 1 655 of the statement's 2 746 buffers, at 40 jobs a
    //   claim). It counts up to the cap (no more matters), in the order of `jobs_running`,
    //   so that index is the one that serves it: a plan cached on an empty table once
    //   counted through another index of every running job (`jobs_lease`, since dropped)
    //   and read all of them for each e-shop;
    // - each e-shop gives as many candidates as it may still start (the cap less its
    //   running count, at most the limit), so every candidate is within the cap; the
    //   oldest `limit` of them are picked;
    // - only the picked jobs are locked, `FOR UPDATE SKIP LOCKED` through their `ctid` (a
    //   row another transaction holds, a kill, is skipped, not waited for: the claim then
    //   starts fewer), and updated by their `ctid`: no join or filter on `jobs` that a plan
    //   could turn into a scan (a `status = 'pending'` filter beside the `ctid`s let the
    //   cached plan read the whole claim index instead: 1 900 buffers a claim). A job that
    //   a kill ended after the statement's snapshot was taken is locked in its new version,
    //   which the update, reading through that snapshot, does not see: it is not claimed.
    //   The lock keeps the others `pending` until this statement moves them to `running`.
    //   Locking every candidate instead (the lateral's own `FOR UPDATE`) wrote a lock
    //   record to the WAL for each: with 8 e-shops, 12.3 lock records per job in all
    //   (6.1 now).
    // `claim` also makes PostgreSQL plan it with seq, bitmap, hash and merge plans off (as
    // `prepared::by_index` does, but local to the writer's transaction and set in the
    // statement that takes the advisory lock, so it costs no round trip of its own). So
    // even its cached generic plan, made at its sixth run while the table may be nearly
    // empty, walks the indexes and stops at the limit. With no statistics (a table never
    // analyzed, as under `autovacuum = off`) a free planner expects a dozen pending jobs
    // per e-shop and fetches all of them through a bitmap to sort them (81 ms and 5 015
    // buffers at 11 616 pending jobs, against 4 ms and 837 buffers in the index's order),
    // and a generic plan cached on an empty table reads the table whole. Planning it at
    // every call instead (`plan_cache_mode = force_custom_plan`, until the sixth session)
    // cost a planning of this statement per claim: at 1 450 submits/s the claims took
    // half of the jobs lane's time, and the p50 from submit to webhook was 16–19 ms
    // against 12–15 ms with the plan cached.
    const PG_CLAIM: &str = "\
        WITH RECURSIVE shops(queue, eshop_id) AS ( \
            (SELECT j.queue, j.eshop_id FROM jobs j \
             WHERE j.status = 'pending' AND j.queue >= ?1 \
             ORDER BY j.queue, j.eshop_id LIMIT 1) \
            UNION ALL \
            SELECT n.queue, n.eshop_id FROM shops s CROSS JOIN LATERAL ( \
                SELECT j.queue, j.eshop_id FROM jobs j \
                WHERE j.status = 'pending' AND (j.queue, j.eshop_id) > (s.queue, s.eshop_id) \
                ORDER BY j.queue, j.eshop_id LIMIT 1) n \
            WHERE s.queue = ?1 \
        ), counted AS MATERIALIZED ( \
            SELECT s.queue, s.eshop_id, ( \
                SELECT COUNT(*) FROM ( \
                    SELECT 1 FROM jobs r \
                    WHERE r.status = 'running' \
                        AND (r.queue, r.eshop_id) >= (s.queue, s.eshop_id) \
                        AND (r.queue, r.eshop_id) <= (s.queue, s.eshop_id) \
                    ORDER BY r.queue, r.eshop_id LIMIT ?2) r \
            ) AS running \
            FROM shops s WHERE s.queue = ?1 \
        ), candidates AS ( \
            SELECT c.row, c.creation_time, c.id \
            FROM counted s CROSS JOIN LATERAL ( \
                SELECT p.ctid AS row, p.id, p.creation_time FROM jobs p \
                WHERE p.status = 'pending' \
                    AND (p.queue, p.eshop_id) >= (s.queue, s.eshop_id) \
                    AND (p.queue, p.eshop_id) <= (s.queue, s.eshop_id) \
                ORDER BY p.queue, p.eshop_id, p.creation_time, p.id \
                LIMIT LEAST(?2 - s.running, ?3)) c \
        ), picked AS ( \
            SELECT j.ctid AS row FROM jobs j \
            WHERE j.ctid = ANY (ARRAY( \
                    SELECT c.row FROM candidates c ORDER BY c.creation_time, c.id LIMIT ?3)) \
            FOR UPDATE SKIP LOCKED \
        ) \
        UPDATE jobs SET status = 'running', attempt = attempt + 1, lease_owner = ?4, \
            lease_expires = ?5, started_time = ?6 \
        WHERE ctid = ANY (ARRAY(SELECT row FROM picked)) \
        RETURNING id, eshop_id, endpoint, params, attempt";
    let params = [
        Param::Text(queue),
        Param::BigInt(max_per_eshop),
        Param::BigInt(limit),
        Param::Text(node),
        Param::BigInt(lease_until),
        Param::BigInt(now),
    ];
    let mut claimed: Vec<ClaimedJob> = match conn {
        DbConnection::Sqlite(c) => {
            if max_per_eshop <= limit || sqlite_cap_binds(c, queue, max_per_eshop, limit)? {
                prepared!(SQLITE_RANKED.as_str(), &params).load(c)?
            } else {
                prepared!(SQLITE_OLDEST.as_str(), &params).load(c)?
            }
        }
        DbConnection::Pg(c) => {
            // Claims are serialised across nodes for the length of this transaction, so
            // the per-e-shop cap holds cluster-wide. One lock for every queue: a batch may
            // claim for several queues (ends of one, the poll of another), in any order,
            // and holds each lock until its commit; with a lock per queue, two nodes that
            // took them in opposite orders waited for each other until PostgreSQL failed
            // one batch after `deadlock_timeout` (seen on three nodes, 1 s per cycle).
            // The claim is planned on indexes alone (see `PG_CLAIM`), by settings local to
            // the writer's transaction (the writer always runs one); the rest of the
            // transaction goes back to the usual planning.
            static LOCK: LazyLock<String> = LazyLock::new(|| {
                format!(
                    "SELECT pg_advisory_xact_lock({CLAIM_LOCK}), {}",
                    *OFF_FOR_THE_TRANSACTION
                )
            });
            prepared!(&LOCK, &[]).execute(c)?;
            let claimed = prepared!(PG_CLAIM, &params).load(c)?;
            usual_plans(c)?;
            claimed
        }
    };
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

/// Whether the per-e-shop cap can keep a SQLite claim of `limit` jobs in `queue` from
/// taking the queue's oldest; asked only when the cap is above the limit (at or below it,
/// the claim ranks without asking): only when the jobs running in the queue (of every
/// e-shop) and the claim's own could exceed it. One count through `jobs_running`, which
/// holds no more entries than the queue's workers (and the leases a crash left, until
/// recovered).
fn sqlite_cap_binds(
    c: &mut diesel::SqliteConnection,
    queue: &str,
    max_per_eshop: i64,
    limit: i64,
) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Running {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let running: Running = prepared!(
        "SELECT COUNT(*) AS n FROM jobs WHERE queue = ?1 AND status = 'running'",
        &[Param::Text(queue)],
    )
    .get_result(c)?;
    Ok(running.n + limit > max_per_eshop)
}

/// Renews the leases of the jobs this node runs; answers the (id, attempt) pairs it still
/// holds: a job missing from the answer was killed or taken over and must stop.
pub fn renew_leases(
    conn: &mut DbConnection,
    node: &str,
    ids: &[String],
    lease_until: Micros,
) -> StoreResult<Vec<(String, i32)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let held = jobs::table
        .filter(jobs::id.eq_any(ids))
        .filter(jobs::status.eq("running"))
        .filter(jobs::lease_owner.eq(node));
    diesel::update(held.clone())
        .set(jobs::lease_expires.eq(lease_until))
        .execute(conn)?;
    Ok(held.select((jobs::id, jobs::attempt)).load(conn)?)
}

/// One attempt's end in a run of ends ([`super::ends::finish_all`]).
pub struct End<'a> {
    /// The job.
    pub id: &'a str,
    /// Its e-shop (the `job:finished` body names it).
    pub eshop_id: i64,
    /// The attempt that ran: only it may end the job.
    pub attempt: i32,
    /// How it ended.
    pub outcome: &'a Outcome,
    /// Log lines of the attempt.
    pub log: &'a str,
    /// Zone of the event time.
    pub zone: &'a Zone,
    /// How long a result stays downloadable.
    pub result_ttl: Micros,
    /// Write the `job:finished` notification claimed by this node's dispatcher.
    pub claim: Option<BornClaim<'a>>,
}

/// Ends a running attempt of a job: fenced, only the attempt that holds the job and only
/// from `running`; the `job:finished` notification is written in the same transaction,
/// claimed at birth when the end says so. Answers the notification written, or `None`
/// when the attempt no longer held the job. One end of a run ([`super::ends::finish_all`],
/// which every caller goes through): SQLite's few cached statements per end.
pub(crate) fn finish_end(conn: &mut DbConnection, end: &End) -> StoreResult<Option<Written>> {
    let End {
        id,
        eshop_id,
        attempt,
        outcome,
        log,
        zone,
        result_ttl,
        claim,
    } = *end;
    let now = time::now();
    let (from, to) = transition(JobStatus::Running, outcome.status());
    // ?1 id, ?2 attempt, ?3 from, ?4 to, ?5 now, ?6 log; a result adds ?7 to ?11.
    let ended = [
        Param::Text(id),
        Param::Integer(attempt),
        Param::Text(from),
        Param::Text(to),
        Param::BigInt(now),
        Param::Text(log),
    ];
    let inline = match outcome {
        Outcome::Completed(meta) => super::results::inline(meta.tail.as_ref()),
        _ => None,
    };
    let ended = match outcome {
        // A result kept in the row ([`super::results::inline`]) is written here; NULL else.
        Outcome::Completed(meta) => prepared!(
            "UPDATE jobs SET status = ?4, completion_time = ?5, lease_owner = NULL, \
                lease_expires = NULL, log = log || ?6, result_ext = ?7, \
                result_content_type = ?8, result_size = ?9, valid_until = ?10, \
                result_inline = ?11 \
             WHERE id = ?1 AND attempt = ?2 AND status = ?3",
            &[
                &ended[..],
                &[
                    Param::Text(&meta.ext),
                    Param::Text(&meta.content_type),
                    Param::BigInt(meta.size),
                    Param::BigInt(now + result_ttl),
                    Param::NullableBinary(inline),
                ],
            ]
            .concat(),
        )
        .run(conn)?,
        Outcome::Failed | Outcome::Killed => prepared!(
            "UPDATE jobs SET status = ?4, completion_time = ?5, lease_owner = NULL, \
                lease_expires = NULL, log = log || ?6 \
             WHERE id = ?1 AND attempt = ?2 AND status = ?3",
            &ended,
        )
        .run(conn)?,
    };
    if ended == 0 {
        return Ok(None);
    }
    match outcome {
        // Kept in the row: the chunks an earlier attempt left are never read.
        Outcome::Completed(_) if inline.is_some() => {}
        Outcome::Completed(ResultMeta {
            tail: Some((seq, data)),
            ..
        }) => {
            if *seq == 0 {
                super::results::delete(conn, id)?;
            }
            super::results::append(conn, id, *seq, data)?;
        }
        Outcome::Completed(_) => {}
        _ => super::results::delete(conn, id)?,
    }
    let written = notifications::record_job_finished_claimed(conn, eshop_id, id, zone, now, claim)?;
    Ok(Some(written))
}

/// Kills a pending or running job of an e-shop (the `DELETE` of the API); a finished job
/// is `InvalidState("job-already-finished")`. Answers the job as it now is.
pub fn kill(
    conn: &mut DbConnection,
    eshop_id: i64,
    id: &str,
    zone: &Zone,
    cutoff: Micros,
) -> StoreResult<Job> {
    let job = get(conn, eshop_id, id, cutoff)?;
    let now = time::now();
    let (pending, killed) = transition(JobStatus::Pending, JobStatus::Killed);
    let (running, _) = transition(JobStatus::Running, JobStatus::Killed);
    let n = diesel::update(
        jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::status.eq_any([pending, running])),
    )
    .set((
        jobs::status.eq(killed),
        jobs::completion_time.eq(Some(now)),
        jobs::lease_owner.eq(None::<String>),
        jobs::lease_expires.eq(None::<Micros>),
        jobs::log.eq(jobs::log.concat(log_line(zone, now, "killed on request"))),
    ))
    .execute(conn)?;
    if n == 0 {
        return if job.status_at(now).is_finished() {
            Err(StoreError::InvalidState("job-already-finished"))
        } else {
            Err(StoreError::NotFound)
        };
    }
    super::results::delete(conn, id)?;
    notifications::record_job_finished(conn, eshop_id, id, zone, now)?;
    get(conn, eshop_id, id, cutoff)
}

/// Hands a running attempt back to `pending` without spending the attempt (shutdown).
/// Answers the queue the job went back to, or `None` when the attempt no longer held it.
pub fn release(
    conn: &mut DbConnection,
    id: &str,
    attempt: i32,
    log: &str,
) -> StoreResult<Option<String>> {
    let (from, to) = transition(JobStatus::Running, JobStatus::Pending);
    let target = jobs::table
        .filter(jobs::id.eq(id))
        .filter(jobs::attempt.eq(attempt))
        .filter(jobs::status.eq(from));
    let queue: Option<String> = target.select(jobs::queue).first(conn).optional()?;
    let n = diesel::update(target)
        .set((
            jobs::status.eq(to),
            jobs::attempt.eq(attempt - 1),
            jobs::lease_owner.eq(None::<String>),
            jobs::lease_expires.eq(None::<Micros>),
            jobs::started_time.eq(None::<Micros>),
            jobs::log.eq(jobs::log.concat(log.to_string())),
        ))
        .execute(conn)?;
    Ok(queue.filter(|_| n == 1))
}

/// Takes back running jobs whose lease ended before `now` (their node died or lost
/// contact): back to `pending`, or `killed` once `max_attempts` are spent. With
/// `owner_gone`, every running job of that owner is taken back at once (a restarted
/// single SQLite node knows its predecessor is dead). At most `limit` jobs per call.
/// Answers what was taken back: the queues that got jobs again, the jobs killed. The
/// running jobs are found through `jobs_running` (never more than the workers of all
/// nodes) and ordered by their lease here; an index of their own cost every claim an
/// index entry (docs/benchmarks.md, eleventh session).
pub fn recover_lost(
    conn: &mut DbConnection,
    now: Micros,
    max_attempts: i32,
    zone: &Zone,
    limit: i64,
    everything_running: bool,
) -> StoreResult<Recovered> {
    let mut q = jobs::table
        .filter(literal("status = 'running'"))
        .order(jobs::lease_expires)
        .select((
            jobs::id,
            jobs::eshop_id,
            jobs::attempt,
            jobs::queue,
            jobs::lease_owner,
            jobs::endpoint,
        ))
        .limit(limit)
        .into_boxed();
    if !everything_running {
        q = q.filter(jobs::lease_expires.lt(now));
    }
    let lost: Vec<(String, i64, i32, String, Option<String>, String)> = q.load(conn)?;
    let mut recovered = Recovered {
        taken: lost.len(),
        ..Recovered::default()
    };
    for (id, eshop_id, attempt, queue, owner, endpoint) in &lost {
        let owner = owner.as_deref().unwrap_or("an unknown node");
        let to = if *attempt >= max_attempts {
            JobStatus::Killed
        } else {
            JobStatus::Pending
        };
        let (from, to) = transition(JobStatus::Running, to);
        let target = jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::attempt.eq(attempt))
            .filter(jobs::status.eq(from));
        if *attempt >= max_attempts {
            let line = log_line(
                zone,
                now,
                &format!(
                    "attempt {attempt} on {owner} lost its lease; out of attempts ({max_attempts})"
                ),
            );
            let n = diesel::update(target)
                .set((
                    jobs::status.eq(to),
                    jobs::completion_time.eq(Some(now)),
                    jobs::lease_owner.eq(None::<String>),
                    jobs::lease_expires.eq(None::<Micros>),
                    jobs::log.eq(jobs::log.concat(line)),
                ))
                .execute(conn)?;
            if n == 1 {
                super::results::delete(conn, id)?;
                notifications::record_job_finished(conn, *eshop_id, id, zone, now)?;
                recovered.killed.push((id.clone(), endpoint.clone()));
            }
        } else {
            let line = log_line(
                zone,
                now,
                &format!("attempt {attempt} on {owner} lost its lease; will run again"),
            );
            diesel::update(target)
                .set((
                    jobs::status.eq(to),
                    jobs::lease_owner.eq(None::<String>),
                    jobs::lease_expires.eq(None::<Micros>),
                    jobs::log.eq(jobs::log.concat(line)),
                ))
                .execute(conn)?;
            if !recovered.requeued.contains(queue) {
                recovered.requeued.push(queue.clone());
            }
        }
    }
    Ok(recovered)
}

/// What [`recover_lost`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    /// Running jobs taken back.
    pub taken: usize,
    /// The queues that got jobs back to `pending`, each once.
    pub requeued: Vec<String>,
    /// The id and endpoint of each job killed because it was out of attempts.
    pub killed: Vec<(String, String)>,
}

/// Marks completed jobs past `valid_until` as `expired` and deletes their results; at most
/// `limit` per call. Answers the endpoint of each job expired (for the metrics).
pub fn expire(conn: &mut DbConnection, now: Micros, limit: i64) -> StoreResult<Vec<String>> {
    let found: Vec<(String, String)> = jobs::table
        .filter(literal("status = 'completed'"))
        .filter(jobs::valid_until.lt(now))
        .order(jobs::valid_until)
        .select((jobs::id, jobs::endpoint))
        .limit(limit)
        .load(conn)?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let (due, endpoints): (Vec<String>, Vec<String>) = found.into_iter().unzip();
    diesel::delete(job_result_chunks::table.filter(job_result_chunks::job_id.eq_any(&due)))
        .execute(conn)?;
    let (from, to) = transition(JobStatus::Completed, JobStatus::Expired);
    diesel::update(
        jobs::table
            .filter(jobs::id.eq_any(&due))
            .filter(jobs::status.eq(from)),
    )
    .set((jobs::status.eq(to), jobs::result_inline.eq(None::<Vec<u8>>)))
    .execute(conn)?;
    Ok(endpoints)
}

/// Deletes finished jobs created before `cutoff` with their results, and idempotency keys
/// older than `idem_cutoff`; at most `limit` jobs per call.
pub fn purge(
    conn: &mut DbConnection,
    cutoff: Micros,
    idem_cutoff: Micros,
    limit: i64,
) -> StoreResult<usize> {
    diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(idem_cutoff)))
        .execute(conn)?;
    let old: Vec<String> = jobs::table
        .filter(jobs::creation_time.lt(cutoff))
        .filter(literal("status NOT IN ('pending', 'running')"))
        .order(jobs::creation_time)
        .select(jobs::id)
        .limit(limit)
        .load(conn)?;
    if old.is_empty() {
        return Ok(0);
    }
    diesel::delete(job_result_chunks::table.filter(job_result_chunks::job_id.eq_any(&old)))
        .execute(conn)?;
    Ok(diesel::delete(jobs::table.filter(jobs::id.eq_any(&old))).execute(conn)?)
}

/// Pending jobs per queue and the creation time of the oldest (for readiness and metrics).
pub fn pending_by_queue(
    conn: &mut DbConnection,
) -> StoreResult<Vec<(String, i64, Option<Micros>)>> {
    Ok(jobs::table
        .filter(jobs::status.eq("pending"))
        .group_by(jobs::queue)
        .select((
            jobs::queue,
            count_star(),
            diesel::dsl::min(jobs::creation_time),
        ))
        .load(conn)?)
}

/// Running jobs per queue, on every node (for metrics).
pub fn running_by_queue(conn: &mut DbConnection) -> StoreResult<Vec<(String, i64)>> {
    Ok(jobs::table
        .filter(jobs::status.eq("running"))
        .group_by(jobs::queue)
        .select((jobs::queue, count_star()))
        .load(conn)?)
}

/// Pending and running jobs by endpoint (for metrics): each count reads only its status's
/// rows, through its partial index, so it is bounded by the backlog, not by history.
pub fn count_unfinished_by_endpoint(
    conn: &mut DbConnection,
) -> StoreResult<Vec<(String, String, i64)>> {
    let mut counts = Vec::new();
    for status in [JobStatus::Pending, JobStatus::Running] {
        let by_endpoint: Vec<(String, i64)> = jobs::table
            .filter(jobs::status.eq(status.as_str()))
            .group_by(jobs::endpoint)
            .select((jobs::endpoint, count_star()))
            .load(conn)?;
        counts.extend(
            by_endpoint
                .into_iter()
                .map(|(endpoint, n)| (endpoint, status.as_str().to_string(), n)),
        );
    }
    Ok(counts)
}

/// A new pending job of e-shop 1 in `queue`, as a submit would insert it (tests).
#[cfg(test)]
pub(crate) fn pending_for_tests(queue: &str) -> Job {
    Job {
        id: crate::model::ids::new_job_id(crate::model::time::now()),
        eshop_id: 1,
        endpoint: "/api/products/snapshot".into(),
        queue: queue.into(),
        status: "pending".into(),
        params: "{}".into(),
        creation_time: crate::model::time::now(),
        started_time: None,
        completion_time: None,
        attempt: 0,
        lease_owner: None,
        lease_expires: None,
        result_secret: crate::model::ids::new_result_secret(),
        result_ext: None,
        result_content_type: None,
        result_size: None,
        valid_until: None,
        log: String::new(),
    }
}

#[cfg(test)]
#[path = "claim_tests.rs"]
mod claim_tests;
