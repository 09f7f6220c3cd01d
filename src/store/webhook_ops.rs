//! Messages about webhooks, signature keys and the delivery of notifications.

use super::{Effects, Lane, ReadOp, WriteOp};
use crate::db::deliveries::{self, Attempt, ClaimedDelivery, Notification, NotificationFilter};
use crate::db::signals::Signal;
use crate::db::webhooks::{self, Webhook, WebhookChange};
use crate::db::{signature_keys, DbConnection};
use crate::error::StoreResult;
use crate::model::{time, Micros};

/// Registers webhooks of an e-shop, all or none.
pub struct CreateWebhooks {
    /// Owner.
    pub eshop_id: i64,
    /// The new webhooks, in request order.
    pub webhooks: Vec<Webhook>,
}

/// The answer to [`CreateWebhooks`].
#[derive(Debug)]
pub enum WebhooksCreated {
    /// Every webhook was stored.
    Created(Vec<Webhook>),
    /// The webhook at this index is for an event the e-shop already has a webhook for;
    /// nothing was stored.
    EventTaken(usize),
}

impl WriteOp for CreateWebhooks {
    type Output = WebhooksCreated;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<WebhooksCreated> {
        let taken = webhooks::registered_events(conn, self.eshop_id)?;
        if let Some(i) = self.webhooks.iter().position(|w| taken.contains(&w.event)) {
            return Ok(WebhooksCreated::EventTaken(i));
        }
        for w in &self.webhooks {
            webhooks::insert(conn, w)?;
        }
        Ok(WebhooksCreated::Created(self.webhooks.clone()))
    }
}

/// Reads one webhook of an e-shop.
pub struct GetWebhook {
    /// Owner.
    pub eshop_id: i64,
    /// Webhook id.
    pub id: String,
}

impl ReadOp for GetWebhook {
    type Output = Webhook;
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Webhook> {
        webhooks::get(conn, self.eshop_id, &self.id)
    }
}

/// One page of an e-shop's webhooks with the total count.
pub struct ListWebhooks {
    /// Owner.
    pub eshop_id: i64,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

impl ReadOp for ListWebhooks {
    type Output = (Vec<Webhook>, i64);
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Self::Output> {
        webhooks::list(conn, self.eshop_id, self.offset, self.limit)
    }
}

/// Changes a webhook's URL or activity.
pub struct UpdateWebhook {
    /// Owner.
    pub eshop_id: i64,
    /// Webhook id.
    pub id: String,
    /// What changes.
    pub change: WebhookChange,
}

impl WriteOp for UpdateWebhook {
    type Output = Webhook;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<Webhook> {
        webhooks::update(conn, self.eshop_id, &self.id, &self.change)
    }
    fn effects(&self, webhook: &Webhook, effects: &mut Effects) {
        if webhook.active {
            effects.notification_due();
        }
    }
}

/// Removes a webhook.
pub struct DeleteWebhook {
    /// Owner.
    pub eshop_id: i64,
    /// Webhook id.
    pub id: String,
}

impl WriteOp for DeleteWebhook {
    type Output = ();
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<()> {
        webhooks::delete(conn, self.eshop_id, &self.id)
    }
}

/// Issues a new signature key; the current one keeps signing for `grace`.
pub struct RenewSignatureKey {
    /// Owner.
    pub eshop_id: i64,
    /// How long the previous key keeps signing.
    pub grace: Micros,
}

impl WriteOp for RenewSignatureKey {
    type Output = String;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<String> {
        signature_keys::renew(conn, self.eshop_id, time::now(), self.grace)
    }
}

/// Reads the key that signs an e-shop's deliveries now.
pub struct GetSignatureKey {
    /// Owner.
    pub eshop_id: i64,
}

impl ReadOp for GetSignatureKey {
    type Output = String;
    fn run(&self, conn: &mut DbConnection) -> StoreResult<String> {
        signature_keys::current(conn, self.eshop_id, time::now())
    }
}

/// One page of an e-shop's notifications with the total count.
pub struct ListNotifications {
    /// Owner.
    pub eshop_id: i64,
    /// Filters.
    pub filter: NotificationFilter,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
    /// Notifications created before this are gone (retention).
    pub cutoff: Micros,
}

impl ReadOp for ListNotifications {
    type Output = (Vec<Notification>, i64);
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Self::Output> {
        deliveries::list(
            conn,
            self.eshop_id,
            &self.filter,
            self.offset,
            self.limit,
            self.cutoff,
        )
    }
}

/// Queues one more delivery of a notification.
pub struct RedeliverNotification {
    /// Owner.
    pub eshop_id: i64,
    /// Notification id.
    pub id: String,
    /// Notifications created before this are gone (retention).
    pub cutoff: Micros,
}

impl WriteOp for RedeliverNotification {
    type Output = ();
    const LANE: Lane = Lane::Deliveries;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<()> {
        deliveries::redeliver(conn, self.eshop_id, &self.id, time::now(), self.cutoff)
    }
    fn effects(&self, _: &(), effects: &mut Effects) {
        effects.notification_due();
    }
}

/// One round of the webhook dispatcher: records the attempts that finished since its last
/// round, then claims due notifications for its free delivery slots, each with its webhook
/// and keys. One write op and a few statements per round, whatever its size, instead of
/// a claim op and an op (two statements) per attempt.
pub struct DeliveryRound {
    /// This node (the claims' owner).
    pub node: String,
    /// Finished attempts, at most one per notification, each fenced by its claim.
    pub finished: Vec<Attempt>,
    /// Free delivery slots: how many due notifications to claim (0: none).
    pub limit: i64,
    /// How long a claim holds: longer than one attempt can take.
    pub claim: Micros,
}

/// What a [`DeliveryRound`] did.
#[derive(Debug)]
pub struct RoundDone {
    /// The notifications whose attempt was recorded (the others were claimed elsewhere
    /// meanwhile).
    pub recorded: Vec<String>,
    /// The notifications claimed for delivery.
    pub claimed: Vec<ClaimedDelivery>,
}

impl WriteOp for DeliveryRound {
    type Output = RoundDone;
    const LANE: Lane = Lane::Deliveries;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<RoundDone> {
        let recorded = deliveries::record_attempts(conn, &self.finished)?;
        let claimed = if self.limit > 0 {
            let now = time::now();
            deliveries::claim(conn, &self.node, self.limit, now + self.claim, now)?
        } else {
            Vec::new()
        };
        Ok(RoundDone { recorded, claimed })
    }
    /// A round alone in its batch that only records (no free slot) or only claims (no
    /// attempt finished) is one statement, committed by itself on PostgreSQL (one round
    /// trip instead of four; most rounds under load only record, since notifications are
    /// handed to the dispatcher at birth). Not when it must also turn a webhook off (a
    /// 410), a statement of its own. A round reports no effects, so the statement sends
    /// no signal (checked in debug builds, where the engine tests write rounds alone).
    fn apply_all_alone(
        ops: &[&Self],
        conn: &mut DbConnection,
        signals: &dyn Fn(&[RoundDone]) -> Vec<Signal>,
    ) -> Option<StoreResult<Vec<RoundDone>>> {
        let [round] = ops else { return None };
        let one_statement = (round.finished.is_empty() || round.limit == 0)
            && !round.finished.iter().any(|a| a.disable_webhook);
        if !one_statement || !matches!(conn, DbConnection::Pg(_)) {
            return None;
        }
        Some(round.apply(conn).map(|done| {
            let done = vec![done];
            debug_assert!(signals(&done).is_empty(), "a round alone sends no signal");
            done
        }))
    }
}
