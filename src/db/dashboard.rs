//! The operator dashboard's reads and bulk selections, across every e-shop. Every query is
//! bounded: lists are paginated through an index, and counts stop at [`COUNT_CAP`] (the page
//! shows "10000+" beyond), so a table of millions of jobs costs no scan of its history.

use super::jobs::{retained, with_filter, Job, JobFilter};
use super::schema::{jobs, notification_attempts, notifications, webhooks};
use super::webhooks::Webhook;
use super::{literal, DbConnection};
use crate::error::StoreResult;
use crate::model::{ids, Micros};
use diesel::dsl::count_star;
use diesel::prelude::*;

/// Counts stop here: what the dashboard needs to know beyond is "more than this".
pub const COUNT_CAP: i64 = 10_000;

/// Most rows one bulk action touches; the confirmation page says so when there are more.
pub const BULK_MAX: i64 = 1_000;

/// A count that stops at a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded {
    /// Rows counted, at most the cap.
    pub n: i64,
    /// Whether there were more than `n`.
    pub more: bool,
}

impl Bounded {
    fn of(found: usize, cap: i64) -> Bounded {
        let found = found as i64;
        Bounded {
            n: found.min(cap),
            more: found > cap,
        }
    }
}

impl std::fmt::Display for Bounded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.n, if self.more { "+" } else { "" })
    }
}

/// One queue's figures, cluster-wide.
#[derive(Debug, Clone)]
pub struct QueueFigures {
    /// The queue.
    pub queue: String,
    /// Jobs waiting.
    pub pending: Bounded,
    /// Jobs running on any node.
    pub running: i64,
    /// Jobs running on this node (its busy workers).
    pub busy_here: i64,
    /// When the oldest pending job was accepted.
    pub oldest_pending: Option<Micros>,
}

/// Pending, running and oldest pending of a queue. Pending jobs are counted through the
/// `jobs_claim` index up to [`COUNT_CAP`]; running jobs through `jobs_running`.
pub fn queue_figures(
    conn: &mut DbConnection,
    queue: &str,
    node: &str,
) -> StoreResult<QueueFigures> {
    let pending: Vec<String> = jobs::table
        .filter(jobs::queue.eq(queue))
        .filter(literal("status = 'pending'"))
        .select(jobs::id)
        .limit(COUNT_CAP + 1)
        .load(conn)?;
    let running: Vec<Option<String>> = jobs::table
        .filter(jobs::queue.eq(queue))
        .filter(literal("status = 'running'"))
        .select(jobs::lease_owner)
        .load(conn)?;
    // `creation_time + 0`, not the bare column: given `min(creation_time)`, PostgreSQL walks
    // the `jobs_creation` index from the oldest job of all history until it meets a pending
    // one (280-360 ms at a million jobs); the expression keeps it on the partial `jobs_claim`
    // index, whose size is the backlog.
    let oldest_pending = jobs::table
        .filter(jobs::queue.eq(queue))
        .filter(literal("status = 'pending'"))
        .select(diesel::dsl::min(jobs::creation_time + 0i64))
        .first(conn)?;
    Ok(QueueFigures {
        queue: queue.to_string(),
        pending: Bounded::of(pending.len(), COUNT_CAP),
        running: running.len() as i64,
        busy_here: running
            .iter()
            .filter(|o| o.as_deref() == Some(node))
            .count() as i64,
        oldest_pending,
    })
}

/// The webhook figures of the overview.
#[derive(Debug, Clone)]
pub struct WebhookFigures {
    /// Notifications whose next attempt is due now.
    pub due: Bounded,
    /// Webhooks whose pending notifications have already failed at least once (retrying).
    pub failing: Bounded,
    /// Webhooks that are switched off (410, or paused).
    pub disabled: i64,
}

/// Due notifications (through `notifications_due`), failing and disabled targets.
pub fn webhook_figures(conn: &mut DbConnection, now: Micros) -> StoreResult<WebhookFigures> {
    let due: Vec<String> = notifications::table
        .filter(literal("status = 'pending'"))
        .filter(notifications::next_attempt_at.le(now))
        .select(notifications::id)
        .limit(COUNT_CAP + 1)
        .load(conn)?;
    let mut failing: Vec<Option<String>> = notifications::table
        .filter(literal("status = 'pending'"))
        .filter(notifications::attempts.gt(0))
        .select(notifications::webhook_id)
        .limit(COUNT_CAP + 1)
        .load(conn)?;
    failing.sort();
    failing.dedup();
    let disabled: i64 = webhooks::table
        .filter(webhooks::active.eq(false))
        .select(count_star())
        .first(conn)?;
    Ok(WebhookFigures {
        due: Bounded::of(due.len(), COUNT_CAP),
        failing: Bounded::of(failing.len(), COUNT_CAP),
        disabled,
    })
}

/// What `?q=` of the jobs list finds: a job id, an e-shop id, or either when it could be both.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    /// A job id.
    pub job_id: Option<String>,
    /// An e-shop id.
    pub eshop_id: Option<i64>,
}

impl Search {
    /// Reads a search box: a job id (7 lower-case letters and digits) and/or an e-shop id
    /// (a number); anything else finds nothing.
    pub fn parse(q: &str) -> Option<Search> {
        let q = q.trim();
        if q.is_empty() {
            return Some(Search::default());
        }
        let s = Search {
            job_id: ids::is_job_id(q).then(|| q.to_string()),
            eshop_id: q.parse().ok(),
        };
        (s != Search::default()).then_some(s)
    }
}

fn all_jobs<'a>(
    f: &JobFilter,
    search: &Search,
    now: Micros,
    cutoff: Micros,
) -> jobs::BoxedQuery<'a, super::connection::MultiBackend> {
    let mut q = jobs::table.into_boxed().filter(retained(cutoff));
    match (&search.job_id, search.eshop_id) {
        (Some(id), Some(e)) => q = q.filter(jobs::id.eq(id.clone()).or(jobs::eshop_id.eq(e))),
        (Some(id), None) => q = q.filter(jobs::id.eq(id.clone())),
        (None, Some(e)) => q = q.filter(jobs::eshop_id.eq(e)),
        (None, None) => {}
    }
    with_filter(q, f, now)
}

/// One page of every e-shop's jobs, newest first, and, when the search names an e-shop or
/// a job, their count up to [`COUNT_CAP`] (through the per-e-shop indexes). Across all
/// e-shops there is no count: a rare status would have to be looked for in the whole history.
pub fn list_jobs(
    conn: &mut DbConnection,
    f: &JobFilter,
    search: &Search,
    offset: i64,
    limit: i64,
    now: Micros,
    cutoff: Micros,
) -> StoreResult<(Vec<Job>, Option<Bounded>)> {
    let count = if *search == Search::default() {
        None
    } else {
        let counted: Vec<String> = all_jobs(f, search, now, cutoff)
            .select(jobs::id)
            .limit(COUNT_CAP + 1)
            .load(conn)?;
        Some(Bounded::of(counted.len(), COUNT_CAP))
    };
    let items = all_jobs(f, search, now, cutoff)
        .order((jobs::creation_time.desc(), jobs::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(Job::as_select())
        .load(conn)?;
    Ok((items, count))
}

/// A notification with the detail the dashboard shows.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = notifications)]
pub struct NotificationRow {
    /// `msg_…`.
    pub id: String,
    /// Owner.
    pub eshop_id: i64,
    /// The webhook of the last attempt.
    pub webhook_id: Option<String>,
    /// The URL of the last attempt.
    pub url: Option<String>,
    /// `job:finished`.
    pub event: String,
    /// `pending`, `success` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// When the next attempt is due.
    pub next_attempt_at: Option<Micros>,
    /// When recorded.
    pub created_at: Micros,
}

/// One delivery attempt.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = notification_attempts)]
pub struct AttemptRow {
    /// 1, 2, …
    pub attempt: i32,
    /// When it started.
    pub attempted_at: Micros,
    /// Where it went.
    pub url: Option<String>,
    /// The answer's HTTP status, if one came.
    pub status_code: Option<i32>,
    /// How long it took.
    pub duration_ms: i64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// A job's notifications (through the `(event, event_instance)` key), each with its attempts.
pub fn notifications_of_job(
    conn: &mut DbConnection,
    job_id: &str,
) -> StoreResult<Vec<(NotificationRow, Vec<AttemptRow>)>> {
    let rows: Vec<NotificationRow> = notifications::table
        .filter(notifications::event_instance.eq(job_id))
        .order(notifications::created_at)
        .select(NotificationRow::as_select())
        .load(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for n in rows {
        let attempts = notification_attempts::table
            .filter(notification_attempts::notification_id.eq(&n.id))
            .order(notification_attempts::attempt)
            .select(AttemptRow::as_select())
            .load(conn)?;
        out.push((n, attempts));
    }
    Ok(out)
}

/// A webhook with its recent delivery record.
#[derive(Debug, Clone)]
pub struct WebhookHealth {
    /// The webhook.
    pub webhook: Webhook,
    /// Notifications of the recent window that succeeded.
    pub succeeded: i64,
    /// Notifications of the recent window that ended failed.
    pub failed: i64,
    /// Notifications still being retried after a failed attempt.
    pub retrying: i64,
    /// The last error of a delivery to it, with its time.
    pub last_error: Option<(Micros, String)>,
}

/// How many recent notifications of a webhook its success rate is read from.
pub const RECENT: i64 = 200;

/// One page of every webhook (by e-shop, then event) with the record of its last
/// [`RECENT`] notifications created since `since` (read through `notifications_eshop`).
pub fn webhook_health(
    conn: &mut DbConnection,
    offset: i64,
    limit: i64,
    since: Micros,
) -> StoreResult<(Vec<WebhookHealth>, i64)> {
    let total: i64 = webhooks::table.select(count_star()).first(conn)?;
    let page: Vec<Webhook> = webhooks::table
        .order((webhooks::eshop_id, webhooks::event, webhooks::id))
        .offset(offset)
        .limit(limit)
        .select(Webhook::as_select())
        .load(conn)?;
    let mut out = Vec::with_capacity(page.len());
    for webhook in page {
        let recent: Vec<(String, i32, Option<Micros>, Option<String>)> = notifications::table
            .filter(notifications::eshop_id.eq(webhook.eshop_id))
            .filter(notifications::created_at.ge(since))
            .filter(notifications::webhook_id.eq(&webhook.id))
            .order(notifications::created_at.desc())
            .select((
                notifications::status,
                notifications::attempts,
                notifications::last_attempt_at,
                notifications::last_error,
            ))
            .limit(RECENT)
            .load(conn)?;
        let count = |st: &str| recent.iter().filter(|r| r.0 == st).count() as i64;
        let last_error = recent
            .iter()
            .filter_map(|(_, _, at, e)| Some((at.unwrap_or(0), e.clone()?)))
            .max_by_key(|(at, _)| *at);
        out.push(WebhookHealth {
            succeeded: count("success"),
            failed: count("failed"),
            retrying: recent
                .iter()
                .filter(|r| r.0 == "pending" && r.1 > 0)
                .count() as i64,
            last_error,
            webhook,
        });
    }
    Ok((out, total))
}

/// A webhook of any e-shop.
pub fn webhook(conn: &mut DbConnection, id: &str) -> StoreResult<Webhook> {
    Ok(webhooks::table
        .filter(webhooks::id.eq(id))
        .select(Webhook::as_select())
        .first(conn)?)
}

/// The pending jobs of an e-shop (oldest first, at most `limit`), for a bulk kill.
pub fn pending_of_eshop(
    conn: &mut DbConnection,
    eshop_id: i64,
    limit: i64,
) -> StoreResult<Vec<String>> {
    Ok(jobs::table
        .filter(jobs::eshop_id.eq(eshop_id))
        .filter(literal("status = 'pending'"))
        .order((jobs::creation_time, jobs::id))
        .select(jobs::id)
        .limit(limit)
        .load(conn)?)
}

/// The failed notifications of a webhook created since `cutoff` (at most `limit`), for a
/// bulk redelivery.
pub fn failed_of_webhook(
    conn: &mut DbConnection,
    webhook: &Webhook,
    cutoff: Micros,
    limit: i64,
) -> StoreResult<Vec<String>> {
    Ok(notifications::table
        .filter(notifications::eshop_id.eq(webhook.eshop_id))
        .filter(notifications::created_at.ge(cutoff))
        .filter(notifications::webhook_id.eq(&webhook.id))
        .filter(notifications::status.eq("failed"))
        .order(notifications::created_at)
        .select(notifications::id)
        .limit(limit)
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_finds_job_ids_and_eshop_ids() {
        assert_eq!(Search::parse(""), Some(Search::default()));
        assert_eq!(
            Search::parse(" ab12cd3 "),
            Some(Search {
                job_id: Some("ab12cd3".into()),
                eshop_id: None
            })
        );
        assert_eq!(
            Search::parse("42"),
            Some(Search {
                job_id: None,
                eshop_id: Some(42)
            })
        );
        assert_eq!(
            Search::parse("1234567"),
            Some(Search {
                job_id: Some("1234567".into()),
                eshop_id: Some(1234567)
            })
        );
        assert_eq!(Search::parse("<script>"), None);
    }

    #[test]
    fn bounded_counts_say_when_there_are_more() {
        assert_eq!(Bounded::of(3, 10).to_string(), "3");
        assert_eq!(Bounded::of(11, 10).to_string(), "10+");
    }
}
