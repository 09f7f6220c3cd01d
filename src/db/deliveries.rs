//! Delivery state of the notification outbox: the tenant's view of its notifications,
//! batched claims with a short lease (so two nodes never deliver one notification at the
//! same time), the record of every attempt, and redelivery.

use super::notifications::{Written, JOB_FINISHED};
use super::prepared::{plan_by_index_for_the_session, prepared, Param};
use super::schema::{notification_attempts, notifications};
use super::{webhooks, DbConnection};
use crate::error::{StoreError, StoreResult};
use crate::model::Micros;
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use serde::Serialize;
use std::collections::HashMap;

/// A notification as the API shows it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = notifications)]
pub struct Notification {
    /// `msg_…`: also the `webhook-id` header of every attempt.
    pub id: String,
    /// The webhook of the last attempt.
    pub webhook_id: Option<String>,
    /// The URL of the last attempt.
    pub url: Option<String>,
    /// `job:finished`.
    pub event: String,
    /// The job id.
    pub event_instance: String,
    /// The exact body sent.
    pub payload: String,
    /// `pending`, `success` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// When the last attempt started.
    pub last_attempt_at: Option<Micros>,
    /// The HTTP status of the last answer, if one came.
    pub last_status_code: Option<i32>,
    /// How long the last attempt took.
    pub last_duration_ms: Option<i64>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

/// Filters of the notifications list.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    /// Only this status.
    pub status: Option<String>,
    /// Only this event.
    pub event: Option<String>,
    /// Created at or after.
    pub from: Option<Micros>,
}

fn filtered<'a>(
    eshop_id: i64,
    f: &NotificationFilter,
    cutoff: Micros,
) -> notifications::BoxedQuery<'a, super::connection::MultiBackend> {
    let mut q = notifications::table
        .filter(notifications::eshop_id.eq(eshop_id))
        .filter(notifications::created_at.ge(cutoff))
        .into_boxed();
    if let Some(s) = &f.status {
        q = q.filter(notifications::status.eq(s.clone()));
    }
    if let Some(e) = &f.event {
        q = q.filter(notifications::event.eq(e.clone()));
    }
    if let Some(t) = f.from {
        q = q.filter(notifications::created_at.ge(t));
    }
    q
}

/// One page of an e-shop's notifications created since `cutoff`, newest first, and the
/// total count.
pub fn list(
    conn: &mut DbConnection,
    eshop_id: i64,
    f: &NotificationFilter,
    offset: i64,
    limit: i64,
    cutoff: Micros,
) -> StoreResult<(Vec<Notification>, i64)> {
    let total: i64 = filtered(eshop_id, f, cutoff)
        .select(count_star())
        .first(conn)?;
    let items = filtered(eshop_id, f, cutoff)
        .order((notifications::created_at.desc(), notifications::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(Notification::as_select())
        .load(conn)?;
    Ok((items, total))
}

/// Queues one more delivery of an e-shop's notification created since `cutoff`: `pending`,
/// due at `now`. A notification that had ended gets exactly one attempt (no new retry
/// schedule); a pending one is only made due at once.
pub fn redeliver(
    conn: &mut DbConnection,
    eshop_id: i64,
    id: &str,
    now: Micros,
    cutoff: Micros,
) -> StoreResult<()> {
    let mine = notifications::table
        .filter(notifications::eshop_id.eq(eshop_id))
        .filter(notifications::id.eq(id))
        .filter(notifications::created_at.ge(cutoff));
    let status: String = mine.select(notifications::status).first(conn)?;
    if status == "pending" {
        diesel::update(mine)
            .set(notifications::next_attempt_at.eq(Some(now)))
            .execute(conn)?;
    } else {
        diesel::update(mine)
            .set((
                notifications::status.eq("pending"),
                notifications::next_attempt_at.eq(Some(now)),
                notifications::redelivery.eq(true),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Where a notification goes, as [`target_columns!`] selects it: the e-shop's active webhook
/// for the event (NULL without one) and the secrets that sign now, newest first, joined by
/// spaces (a secret is `whsec_` + base64, so it holds none).
#[derive(Debug, Clone, QueryableByName)]
struct TargetColumns {
    #[diesel(sql_type = Nullable<Text>)]
    webhook_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    url: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    secrets: Option<String>,
}

impl TargetColumns {
    /// The target; `None` without an active webhook.
    fn into_target(self) -> Option<Target> {
        let secrets = self.secrets.unwrap_or_default();
        self.webhook_id
            .zip(self.url)
            .map(|(webhook_id, url)| Target {
                webhook_id,
                url,
                secrets: secrets
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
    }
}

/// The select-list items that [`TargetColumns`] reads, for the e-shop and the event that
/// the SQL expressions `$shop` and `$event` name, with the keys valid at `?3`; the backends
/// name their string aggregate differently (`$aggregate`). Shared by the claim's
/// `RETURNING` and [`targets`].
macro_rules! target_columns {
    ($shop:literal, $event:literal, $aggregate:literal) => {
        concat!(
            "(SELECT w.id FROM webhooks w WHERE w.eshop_id = ",
            $shop,
            " AND w.event = ",
            $event,
            " AND w.active) AS webhook_id, \
             (SELECT w.url FROM webhooks w WHERE w.eshop_id = ",
            $shop,
            " AND w.event = ",
            $event,
            " AND w.active) AS url, \
             (SELECT ",
            $aggregate,
            "(k.secret, ' ' ORDER BY k.created_at DESC, k.id DESC) FROM signature_keys k \
                WHERE k.eshop_id = ",
            $shop,
            " AND (k.expires_at IS NULL OR k.expires_at > ?3)) AS secrets"
        )
    };
}

/// A claimed notification's row with where it goes.
#[derive(Debug, Clone, QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    event: String,
    #[diesel(sql_type = Text)]
    payload: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Bool)]
    redelivery: bool,
    #[diesel(embed)]
    target: TargetColumns,
}

/// Where a claimed notification goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The e-shop's active webhook for the event.
    pub webhook_id: String,
    /// Its URL.
    pub url: String,
    /// The secrets that sign now (two during a renewal's grace).
    pub secrets: Vec<String>,
}

/// A notification handed to the dispatcher for one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    /// Notification id (the `webhook-id` header).
    pub id: String,
    /// The event (`job:finished`).
    pub event: String,
    /// The exact body.
    pub payload: String,
    /// The number of this attempt, from 1: with the id and the claim, it fences the record.
    pub attempt: i32,
    /// Whether this is a redelivery's single attempt.
    pub redelivery: bool,
    /// When this node's claim on it runs out: another node may take it from then on, so
    /// an attempt must not start too close to it.
    pub claim_until: Micros,
    /// Where to deliver; `None` when the e-shop has no active webhook for the event.
    pub target: Option<Target>,
}

/// The claim: ?1 node, ?2 claim end, ?3 now, ?4 limit. The rows it takes return with their
/// webhook and signing keys (subqueries of `RETURNING`), so a batch costs one statement
/// whatever its size. PostgreSQL also locks the rows it picks; the backends name their
/// string aggregate differently. The limit is an expression, not a bare parameter: SQLite
/// (3.47 and later) builds a bare `LIMIT ?` into the plan and so prepares the statement
/// again whenever the parameter is bound, on every call.
///
/// The due notifications are taken in the order of `notifications_due` alone (ties in
/// their index order), so a claim stops after `limit` rows whatever the backlog. On
/// PostgreSQL the picked rows are named by `ctid` in an `ARRAY(…)`: the locking subquery
/// runs once and the update finds its rows by address. Written as `id IN (…)` and ordered
/// by `(next_attempt_at, id)`, the generic plan of a table without statistics
/// (`autovacuum = off`) sorted every due notification and ran the locking subquery again
/// for each of them (a semi join): 23 ms and 28 666 buffers a claim under a backlog, which
/// sometimes brought `jobline bench` with 64 snapshot workers down to 1 400 jobs/s.
///
/// The update names its rows by the subquery alone, which checked them (on PostgreSQL
/// under the lock it takes), and PostgreSQL plans it on indexes
/// on the connection ([`plan_on_indexes`]). Checked again there, `status = 'pending'` let PostgreSQL
/// find them through `notifications_due` with the `ctid`s as a filter, and the subquery
/// sorted every due notification after a bitmap scan: a walk over the whole webhook
/// backlog at each claim (419 to 4 058 rows for 15 claimed), where a TID scan reads just
/// the picked ones.
macro_rules! claim_sql {
    ($open:literal, $picked:literal, $close:literal, $aggregate:literal) => {
        concat!(
            "UPDATE notifications SET claimed_by = ?1, claim_expires = ?2 \
             WHERE ",
            $open,
            " SELECT ",
            $picked,
            " FROM notifications \
                WHERE status = 'pending' AND next_attempt_at <= ?3 \
                    AND (claim_expires IS NULL OR claim_expires < ?3) \
                ORDER BY next_attempt_at LIMIT (?4 + 0) ",
            $close,
            " RETURNING id, event, payload, attempts, redelivery, ",
            target_columns!("notifications.eshop_id", "notifications.event", $aggregate)
        )
    };
}

/// Sets up a PostgreSQL connection that runs [`claim`] and [`record_attempts`] (the webhook
/// deliveries' writer lane) so that they are planned on indexes, once for the session:
/// their generic plans, made while the table was nearly empty, would otherwise read it
/// whole. Every statement of that lane touches a few rows by key. On any other
/// connection they give the same answers, planned as PostgreSQL likes.
pub fn plan_on_indexes(conn: &mut DbConnection) -> QueryResult<()> {
    plan_by_index_for_the_session(conn)
}

/// Claims up to `limit` due pending notifications for `node` until `claim_until`, oldest
/// due first, each with its webhook and signing keys: one statement for the whole batch.
pub fn claim(
    conn: &mut DbConnection,
    node: &str,
    limit: i64,
    claim_until: Micros,
    now: Micros,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let params = [
        Param::Text(node),
        Param::BigInt(claim_until),
        Param::BigInt(now),
        Param::BigInt(limit),
    ];
    let rows: Vec<ClaimedRow> = match conn {
        DbConnection::Sqlite(c) => {
            prepared!(claim_sql!("id IN (", "id", ")", "group_concat"), &params).load(c)?
        }
        DbConnection::Pg(c) => prepared!(
            claim_sql!(
                "ctid = ANY (ARRAY(",
                "ctid",
                "FOR UPDATE SKIP LOCKED))",
                "string_agg"
            ),
            &params,
        )
        .load(c)?,
    };
    let mut claimed: Vec<ClaimedDelivery> = rows
        .into_iter()
        .map(|row| ClaimedDelivery {
            target: row.target.into_target(),
            id: row.id,
            event: row.event,
            payload: row.payload,
            attempt: row.attempts + 1,
            redelivery: row.redelivery,
            claim_until,
        })
        .collect();
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

/// One e-shop's target, as [`targets`] reads it.
#[derive(QueryableByName)]
struct TargetRow {
    #[diesel(sql_type = BigInt)]
    eshop_id: i64,
    #[diesel(embed)]
    target: TargetColumns,
}

/// ?1 a JSON array of e-shop ids, ?2 the event, ?3 now: each e-shop's target, as the
/// claim's `RETURNING` reads it. The backends unpack the array differently.
macro_rules! targets_sql {
    ($shops:literal, $aggregate:literal) => {
        concat!(
            "WITH s AS (",
            $shops,
            ") SELECT s.eshop_id, ",
            target_columns!("s.eshop_id", "?2", $aggregate),
            " FROM s"
        )
    };
}

/// Where `event` notifications of each of `eshop_ids` go now: for notifications claimed at
/// birth ([`super::notifications::BornClaim`]), which no claim's `RETURNING` looked up.
/// One statement for all of them; e-shops without an active webhook are left out.
pub fn targets(
    conn: &mut DbConnection,
    eshop_ids: &[i64],
    event: &str,
    now: Micros,
) -> StoreResult<HashMap<i64, Target>> {
    if eshop_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids = serde_json::to_string(eshop_ids).map_err(|e| StoreError::Database(e.to_string()))?;
    let params = [Param::Text(&ids), Param::Text(event), Param::BigInt(now)];
    let rows: Vec<TargetRow> = match conn {
        DbConnection::Sqlite(c) => prepared!(
            targets_sql!(
                "SELECT CAST(value AS INTEGER) AS eshop_id FROM json_each(?1)",
                "group_concat"
            ),
            &params
        )
        .load(c)?,
        DbConnection::Pg(c) => prepared!(
            targets_sql!(
                "SELECT v::bigint AS eshop_id FROM jsonb_array_elements_text(?1::jsonb) AS e(v)",
                "string_agg"
            ),
            &params
        )
        .load(c)?,
    };
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let shop = row.eshop_id;
            row.target.into_target().map(|t| (shop, t))
        })
        .collect())
}

impl ClaimedDelivery {
    /// The first attempt of a notification claimed at birth until `claim_until`, going to
    /// `target`.
    pub fn born(written: Written, claim_until: Micros, target: Option<Target>) -> ClaimedDelivery {
        ClaimedDelivery {
            id: written.id,
            event: JOB_FINISHED.to_string(),
            payload: written.payload,
            attempt: 1,
            redelivery: false,
            claim_until,
            target,
        }
    }
}

/// Lets go of every claim on a pending notification: for a single SQLite node starting,
/// whose claims all belonged to a process that is gone (one process per file), so that
/// what it had claimed, or was handed at birth, is delivered now rather than when the
/// claims run out. Answers how many were let go.
pub fn release_all_claims(conn: &mut DbConnection) -> StoreResult<usize> {
    Ok(diesel::update(
        notifications::table
            .filter(super::literal("status = 'pending'"))
            .filter(notifications::claimed_by.is_not_null()),
    )
    .set((
        notifications::claimed_by.eq(None::<String>),
        notifications::claim_expires.eq(None::<Micros>),
    ))
    .execute(conn)?)
}

/// What one attempt did and what comes next. Serialised, it is one row of the JSON array
/// that [`record_attempts`] hands PostgreSQL (the keys are the SQL's column names).
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// Notification id.
    pub notification_id: String,
    /// The claiming node (fences the record).
    pub node: String,
    /// The attempt's number, from 1.
    pub attempt: i32,
    /// When it started.
    #[serde(rename = "attempted_at")]
    pub at: Micros,
    /// The webhook it went to.
    pub webhook_id: Option<String>,
    /// The URL it went to.
    pub url: Option<String>,
    /// The HTTP status of the answer, if one came.
    pub status_code: Option<i32>,
    /// How long it took.
    pub duration_ms: i64,
    /// Why it failed (None on success).
    pub error: Option<String>,
    /// The start of the answer's body, capped.
    pub response_excerpt: Option<String>,
    /// The notification's status after it: `pending`, `success` or `failed`.
    pub status: &'static str,
    /// When the next attempt is due (`pending` only).
    pub next_attempt_at: Option<Micros>,
    /// The receiver answered 410 Gone: the webhook is turned off.
    #[serde(skip)]
    pub disable_webhook: bool,
}

/// PostgreSQL records a batch in one statement: the rows of the JSON array ?1 move their
/// notifications on where the claim still holds (same node, same attempt), and exactly
/// those get their attempt row. A claimed notification is always pending: only a claim
/// sets `claimed_by` (or a notification is born with it), only on a pending row, and
/// every record clears it. So the fence does not name the status, which let PostgreSQL
/// join the batch to every pending notification through `notifications_due` (338 rows
/// read for 15 recorded) instead of looking each one up by its key; and it is planned on
/// indexes on the connection ([`plan_on_indexes`]), since its generic plan, made while the table was
/// nearly empty, read the whole table (20 000 rows for 14 recorded).
const PG_RECORD: &str = "\
    WITH v AS ( \
        SELECT * FROM json_to_recordset(?1::json) AS x(notification_id text, node text, \
            attempt integer, attempted_at bigint, webhook_id text, url text, \
            status_code integer, duration_ms bigint, error text, response_excerpt text, \
            status text, next_attempt_at bigint) \
    ), moved AS ( \
        UPDATE notifications n SET status = v.status, attempts = v.attempt, \
            next_attempt_at = v.next_attempt_at, claimed_by = NULL, claim_expires = NULL, \
            redelivery = FALSE, webhook_id = v.webhook_id, url = v.url, \
            last_attempt_at = v.attempted_at, last_status_code = v.status_code, \
            last_duration_ms = v.duration_ms, last_error = v.error \
        FROM v \
        WHERE n.id = v.notification_id AND n.claimed_by = v.node \
            AND n.attempts = v.attempt - 1 \
        RETURNING n.id \
    ) \
    INSERT INTO notification_attempts (notification_id, attempt, attempted_at, url, \
        status_code, duration_ms, error, response_excerpt) \
    SELECT v.notification_id, v.attempt, v.attempted_at, v.url, v.status_code, \
        v.duration_ms, v.error, v.response_excerpt \
    FROM v JOIN moved ON moved.id = v.notification_id \
    RETURNING notification_id";

/// SQLite moves one notification on where the claim still holds: ?1 id, ?2 node, ?3 the
/// attempts before this one. SQLite runs in-process (no round trip to save) and has no
/// data-modifying CTE: two cached statements per attempt cost less than unpacking a JSON
/// batch twice (measured: the JSON form took 7.9 % of the server's samples, three times
/// the per-row form).
const SQLITE_MOVE_ON: &str = "\
    UPDATE notifications SET status = ?5, attempts = ?4, next_attempt_at = ?6, \
        claimed_by = NULL, claim_expires = NULL, redelivery = FALSE, webhook_id = ?7, \
        url = ?8, last_attempt_at = ?9, last_status_code = ?10, last_duration_ms = ?11, \
        last_error = ?12 \
    WHERE id = ?1 AND status = 'pending' AND claimed_by = ?2 AND attempts = ?3";

/// SQLite's attempt row, written after [`SQLITE_MOVE_ON`] moved its notification on.
const SQLITE_ATTEMPT_ROW: &str = "\
    INSERT INTO notification_attempts (notification_id, attempt, attempted_at, url, \
        status_code, duration_ms, error, response_excerpt) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Records one attempt on SQLite; answers whether the claim still held.
fn record_on_sqlite(c: &mut diesel::SqliteConnection, a: &Attempt) -> StoreResult<bool> {
    let moved = prepared!(
        SQLITE_MOVE_ON,
        &[
            Param::Text(&a.notification_id),
            Param::Text(&a.node),
            Param::Integer(a.attempt - 1),
            Param::Integer(a.attempt),
            Param::Text(a.status),
            Param::NullableBigInt(a.next_attempt_at),
            Param::NullableText(a.webhook_id.as_deref()),
            Param::NullableText(a.url.as_deref()),
            Param::BigInt(a.at),
            Param::NullableInteger(a.status_code),
            Param::BigInt(a.duration_ms),
            Param::NullableText(a.error.as_deref()),
        ],
    )
    .execute(c)?;
    if moved == 0 {
        return Ok(false);
    }
    prepared!(
        SQLITE_ATTEMPT_ROW,
        &[
            Param::Text(&a.notification_id),
            Param::Integer(a.attempt),
            Param::BigInt(a.at),
            Param::NullableText(a.url.as_deref()),
            Param::NullableInteger(a.status_code),
            Param::BigInt(a.duration_ms),
            Param::NullableText(a.error.as_deref()),
            Param::NullableText(a.response_excerpt.as_deref()),
        ],
    )
    .execute(c)?;
    Ok(true)
}

/// The id of a notification whose attempt was recorded.
#[derive(Debug, QueryableByName)]
struct RecordedRow {
    #[diesel(sql_type = Text)]
    notification_id: String,
}

/// Records a batch of attempts and moves their notifications on, each only if its node
/// still holds the claim of that attempt; turns off the webhooks that answered 410. On
/// PostgreSQL the batch is one statement, the same whatever its size (its rows travel as
/// one JSON parameter), so it is prepared once; on SQLite two cached statements per
/// attempt. Answers the ids recorded; a notification must appear at most once in a batch.
pub fn record_attempts(conn: &mut DbConnection, batch: &[Attempt]) -> StoreResult<Vec<String>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let recorded: Vec<String> = match conn {
        DbConnection::Pg(c) => {
            let rows =
                serde_json::to_string(batch).map_err(|e| StoreError::Database(e.to_string()))?;
            let recorded: Vec<RecordedRow> = prepared!(PG_RECORD, &[Param::Text(&rows)]).load(c)?;
            recorded.into_iter().map(|r| r.notification_id).collect()
        }
        DbConnection::Sqlite(c) => {
            let mut recorded = Vec::with_capacity(batch.len());
            for a in batch {
                if record_on_sqlite(c, a)? {
                    recorded.push(a.notification_id.clone());
                }
            }
            recorded
        }
    };
    for a in batch.iter().filter(|a| a.disable_webhook) {
        if let (true, Some(webhook)) = (recorded.contains(&a.notification_id), &a.webhook_id) {
            webhooks::deactivate(conn, webhook, a.at)?;
        }
    }
    Ok(recorded)
}

/// A recorded attempt in short: its number, the answer's status code, and its error.
pub type AttemptSummary = (i32, Option<i32>, Option<String>);

/// The recorded attempts of a notification, in order.
pub fn attempts_of(
    conn: &mut DbConnection,
    notification_id: &str,
) -> StoreResult<Vec<AttemptSummary>> {
    Ok(notification_attempts::table
        .filter(notification_attempts::notification_id.eq(notification_id))
        .order(notification_attempts::attempt)
        .select((
            notification_attempts::attempt,
            notification_attempts::status_code,
            notification_attempts::error,
        ))
        .load(conn)?)
}

#[cfg(test)]
#[path = "deliveries_tests.rs"]
mod deliveries_tests;
