//! Delivery state of the notification outbox: the tenant's view of its notifications,
//! batched claims with a short lease (so two nodes never deliver one notification at the
//! same time), the record of every attempt, and redelivery.

use super::prepared::{prepared, Param};
use super::schema::{notification_attempts, notifications};
use super::{signature_keys, webhooks, DbConnection};
use crate::error::StoreResult;
use crate::model::Micros;
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Text};
use std::collections::hash_map::{Entry, HashMap};

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

/// A claimed notification's row.
#[derive(Debug, Clone, QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = BigInt)]
    eshop_id: i64,
    #[diesel(sql_type = Text)]
    event: String,
    #[diesel(sql_type = Text)]
    payload: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Bool)]
    redelivery: bool,
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
#[derive(Debug, Clone)]
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
    /// Where to deliver; `None` when the e-shop has no active webhook for the event.
    pub target: Option<Target>,
}

/// Claims up to `limit` due pending notifications for `node` until `claim_until`, oldest
/// due first, and finds each one's webhook and signing keys; one statement claims the batch.
pub fn claim(
    conn: &mut DbConnection,
    node: &str,
    limit: i64,
    claim_until: Micros,
    now: Micros,
) -> StoreResult<Vec<ClaimedDelivery>> {
    // ?1 node, ?2 claim end, ?3 now, ?4 limit; PostgreSQL also locks the rows it picks.
    macro_rules! claim_sql {
        ($lock:literal) => {
            concat!(
                "UPDATE notifications SET claimed_by = ?1, claim_expires = ?2 \
                 WHERE id IN ( \
                    SELECT id FROM notifications \
                    WHERE status = 'pending' AND next_attempt_at <= ?3 \
                        AND (claim_expires IS NULL OR claim_expires < ?3) \
                    ORDER BY next_attempt_at, id LIMIT ?4 ",
                $lock,
                ") AND status = 'pending' AND (claim_expires IS NULL OR claim_expires < ?3) \
                 RETURNING id, eshop_id, event, payload, attempts, redelivery"
            )
        };
    }
    let params = [
        Param::Text(node),
        Param::BigInt(claim_until),
        Param::BigInt(now),
        Param::BigInt(limit),
    ];
    let rows: Vec<ClaimedRow> = match conn {
        DbConnection::Sqlite(c) => prepared(claim_sql!(""), &params).load(c)?,
        DbConnection::Pg(c) => prepared(claim_sql!("FOR UPDATE SKIP LOCKED"), &params).load(c)?,
    };
    // One lookup of webhook and keys per e-shop and event of the batch, not one per row.
    let mut targets: HashMap<(i64, String), Option<Target>> = HashMap::new();
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let target = match targets.entry((row.eshop_id, row.event.clone())) {
            Entry::Occupied(known) => known.get().clone(),
            Entry::Vacant(new) => new
                .insert(target_of(conn, row.eshop_id, &row.event, now)?)
                .clone(),
        };
        claimed.push(ClaimedDelivery {
            id: row.id,
            event: row.event,
            payload: row.payload,
            attempt: row.attempts + 1,
            redelivery: row.redelivery,
            target,
        });
    }
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

/// Where an e-shop's notifications of `event` go now, and the keys that sign them.
fn target_of(
    conn: &mut DbConnection,
    eshop_id: i64,
    event: &str,
    now: Micros,
) -> StoreResult<Option<Target>> {
    Ok(match webhooks::active_for(conn, eshop_id, event)? {
        Some(w) => Some(Target {
            webhook_id: w.id,
            url: w.url,
            secrets: signature_keys::valid(conn, eshop_id, now)?,
        }),
        None => None,
    })
}

/// What one attempt did and what comes next.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Notification id.
    pub notification_id: String,
    /// The claiming node (fences the record).
    pub node: String,
    /// The attempt's number, from 1.
    pub attempt: i32,
    /// When it started.
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
    pub disable_webhook: bool,
}

/// Records an attempt and moves the notification on, only if `node` still holds the claim
/// of that attempt; answers whether it did.
pub fn record_attempt(conn: &mut DbConnection, a: &Attempt) -> StoreResult<bool> {
    let n = prepared(
        "UPDATE notifications SET status = ?5, attempts = ?4, next_attempt_at = ?6, \
            claimed_by = NULL, claim_expires = NULL, redelivery = FALSE, webhook_id = ?7, \
            url = ?8, last_attempt_at = ?9, last_status_code = ?10, last_duration_ms = ?11, \
            last_error = ?12 \
         WHERE id = ?1 AND status = 'pending' AND claimed_by = ?2 AND attempts = ?3",
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
    .execute(conn)?;
    if n == 0 {
        return Ok(false);
    }
    diesel::insert_into(notification_attempts::table)
        .values((
            notification_attempts::notification_id.eq(&a.notification_id),
            notification_attempts::attempt.eq(a.attempt),
            notification_attempts::attempted_at.eq(a.at),
            notification_attempts::url.eq(&a.url),
            notification_attempts::status_code.eq(a.status_code),
            notification_attempts::duration_ms.eq(a.duration_ms),
            notification_attempts::error.eq(&a.error),
            notification_attempts::response_excerpt.eq(&a.response_excerpt),
        ))
        .execute(conn)?;
    if let (true, Some(webhook)) = (a.disable_webhook, &a.webhook_id) {
        webhooks::deactivate(conn, webhook, a.at)?;
    }
    Ok(true)
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
