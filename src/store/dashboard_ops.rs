//! Messages of the operator dashboard: sessions, the overview's figures, the cross-e-shop
//! lists, bulk actions, and the nodes' heartbeats. Reads go to the reader pool; the few
//! writes (sign-in, sign-out, heartbeat, bulk actions) are ordinary write ops.

use super::{Effects, ReadOp, WriteOp};
use crate::db::dashboard::{
    self, AttemptRow, Bounded, NotificationRow, QueueFigures, Search, WebhookFigures, WebhookHealth,
};
use crate::db::jobs::{self, Job, JobFilter};
use crate::db::nodes::{self, NodeBeat};
use crate::db::operators::{self, Session};
use crate::db::webhooks::Webhook;
use crate::db::{deliveries, DbConnection};
use crate::error::{StoreError, StoreResult};
use crate::model::{time, Micros, Zone};

/// Signs an operator in: a new session when the token is an operator's.
pub struct SignIn {
    /// SHA-256 of the presented token.
    pub token_hash: String,
    /// The new session's id (the cookie's value; stored hashed).
    pub session_id: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// Now.
    pub now: Micros,
    /// When the session ends.
    pub expires_at: Micros,
}

impl WriteOp for SignIn {
    type Output = String;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<String> {
        operators::sign_in(
            conn,
            &self.token_hash,
            &self.session_id,
            &self.csrf,
            self.now,
            self.expires_at,
        )
    }
}

/// Ends a session.
pub struct SignOut {
    /// SHA-256 of the session id.
    pub id_hash: String,
}

impl WriteOp for SignOut {
    type Output = ();
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<()> {
        operators::sign_out(conn, &self.id_hash)
    }
}

/// The live session with this id hash.
pub struct GetSession {
    /// SHA-256 of the session id.
    pub id_hash: String,
    /// Now: an expired session is not found.
    pub now: Micros,
}

impl ReadOp for GetSession {
    type Output = Session;
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Session> {
        operators::session(conn, &self.id_hash, self.now)
    }
}

/// A node's heartbeat, with the jobs it ended per minute.
pub struct Beat {
    /// The node.
    pub node: String,
    /// When it started.
    pub started_at: Micros,
    /// Now.
    pub now: Micros,
    /// Its per-minute counts, encoded.
    pub minutes: String,
    /// Nodes silent since then are forgotten.
    pub forget_before: Micros,
}

impl WriteOp for Beat {
    type Output = ();
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<()> {
        nodes::beat(
            conn,
            &self.node,
            self.started_at,
            self.now,
            &self.minutes,
            self.forget_before,
        )
    }
}

/// What the overview shows.
pub struct Overview {
    /// Per queue.
    pub queues: Vec<QueueFigures>,
    /// Webhook deliveries.
    pub webhooks: WebhookFigures,
    /// Nodes heard from in the last hour, most recent first.
    pub nodes: Vec<NodeBeat>,
}

/// Reads the overview.
pub struct ReadOverview {
    /// The configured queues.
    pub queues: Vec<String>,
    /// This node.
    pub node: String,
    /// Now.
    pub now: Micros,
}

impl ReadOp for ReadOverview {
    type Output = Overview;
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Overview> {
        let queues = self
            .queues
            .iter()
            .map(|q| dashboard::queue_figures(conn, q, &self.node))
            .collect::<StoreResult<_>>()?;
        Ok(Overview {
            queues,
            webhooks: dashboard::webhook_figures(conn, self.now)?,
            nodes: nodes::since(conn, self.now - 3600 * time::SECOND)?,
        })
    }
}

/// One page of every e-shop's jobs, with a bounded count when searching an e-shop or job.
pub struct ListAllJobs {
    /// The API's filters.
    pub filter: JobFilter,
    /// `?q=`.
    pub search: Search,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
    /// Now (`expired` is read at this time).
    pub now: Micros,
    /// Jobs created before this are gone (retention).
    pub cutoff: Micros,
}

impl ReadOp for ListAllJobs {
    type Output = (Vec<Job>, Option<Bounded>);
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Self::Output> {
        dashboard::list_jobs(
            conn,
            &self.filter,
            &self.search,
            self.offset,
            self.limit,
            self.now,
            self.cutoff,
        )
    }
}

/// A job of any e-shop with its notifications and their attempts.
pub struct JobDetail {
    /// Job id.
    pub id: String,
    /// Jobs created before this are gone (retention).
    pub cutoff: Micros,
}

impl ReadOp for JobDetail {
    type Output = (Job, Vec<(NotificationRow, Vec<AttemptRow>)>);
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Self::Output> {
        let job = jobs::get_unscoped(conn, &self.id, self.cutoff)?;
        let notes = dashboard::notifications_of_job(conn, &self.id)?;
        Ok((job, notes))
    }
}

/// One page of every webhook with its recent delivery record.
pub struct ReadWebhookHealth {
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
    /// The recent window starts here.
    pub since: Micros,
}

impl ReadOp for ReadWebhookHealth {
    type Output = (Vec<WebhookHealth>, i64);
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Self::Output> {
        dashboard::webhook_health(conn, self.offset, self.limit, self.since)
    }
}

/// A webhook of any e-shop.
pub struct GetAnyWebhook {
    /// Webhook id.
    pub id: String,
}

impl ReadOp for GetAnyWebhook {
    type Output = Webhook;
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Webhook> {
        dashboard::webhook(conn, &self.id)
    }
}

/// What a bulk action would touch (for its confirmation page) or touches (when confirmed).
#[derive(Debug, Clone)]
pub enum Bulk {
    /// Kill every pending job of an e-shop.
    KillPending {
        /// The e-shop.
        eshop_id: i64,
    },
    /// Redeliver every failed notification of a webhook.
    RedeliverFailed {
        /// The webhook id.
        webhook_id: String,
    },
}

/// The rows a bulk action would touch, at most [`dashboard::BULK_MAX`] + 1.
fn bulk_rows(conn: &mut DbConnection, bulk: &Bulk, cutoff: Micros) -> StoreResult<Vec<String>> {
    match bulk {
        Bulk::KillPending { eshop_id } => {
            dashboard::pending_of_eshop(conn, *eshop_id, dashboard::BULK_MAX + 1)
        }
        Bulk::RedeliverFailed { webhook_id } => {
            let webhook = dashboard::webhook(conn, webhook_id)?;
            dashboard::failed_of_webhook(conn, &webhook, cutoff, dashboard::BULK_MAX + 1)
        }
    }
}

/// Counts the rows a bulk action would touch.
pub struct CountBulk {
    /// The action.
    pub bulk: Bulk,
    /// Notifications created before this are gone (retention).
    pub cutoff: Micros,
}

impl ReadOp for CountBulk {
    type Output = Bounded;
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Bounded> {
        let rows = bulk_rows(conn, &self.bulk, self.cutoff)?;
        Ok(Bounded {
            n: (rows.len() as i64).min(dashboard::BULK_MAX),
            more: rows.len() as i64 > dashboard::BULK_MAX,
        })
    }
}

/// Runs a bulk action on at most [`dashboard::BULK_MAX`] rows: each job is killed as
/// `DELETE /api/system/jobs/{id}` would kill it (with its `job:finished` notification), each
/// notification redelivered as its redeliver call would. Answers the ids touched, each
/// killed job with its endpoint (for the metrics).
pub struct RunBulk {
    /// The action.
    pub bulk: Bulk,
    /// Zone of the log lines and event times.
    pub zone: Zone,
    /// Rows created before this are gone (job or notification retention, per action).
    pub cutoff: Micros,
}

impl WriteOp for RunBulk {
    type Output = Vec<(String, Option<String>)>;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<Vec<(String, Option<String>)>> {
        let mut rows = bulk_rows(conn, &self.bulk, self.cutoff)?;
        rows.truncate(dashboard::BULK_MAX as usize);
        let now = time::now();
        let mut done = Vec::with_capacity(rows.len());
        for id in rows {
            let outcome = match &self.bulk {
                Bulk::KillPending { eshop_id } => {
                    jobs::kill(conn, *eshop_id, &id, &self.zone, self.cutoff)
                        .map(|job| Some(job.endpoint))
                }
                Bulk::RedeliverFailed { webhook_id } => {
                    let webhook = dashboard::webhook(conn, webhook_id)?;
                    deliveries::redeliver(conn, webhook.eshop_id, &id, now, self.cutoff)
                        .map(|()| None)
                }
            };
            match outcome {
                Ok(endpoint) => done.push((id, endpoint)),
                // Started or finished since it was listed: nothing to do for it.
                Err(StoreError::InvalidState(_) | StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
    fn effects(&self, done: &Self::Output, effects: &mut Effects) {
        match &self.bulk {
            Bulk::KillPending { .. } => {
                for (id, _) in done {
                    effects.job_killed(id);
                    effects.job_ended(id);
                }
                if !done.is_empty() {
                    effects.notification_due();
                }
            }
            Bulk::RedeliverFailed { .. } if !done.is_empty() => effects.notification_due(),
            Bulk::RedeliverFailed { .. } => {}
        }
    }
}
