//! The webhook dispatcher: up to `webhook_workers` deliveries at once on this node. It
//! claims as many due notifications as it has free slots, in one batch with a short claim
//! (so no other node delivers them meanwhile), delivers each, records the attempt with
//! what comes next, and claims again. It wakes when a job ends on this node and on a slow
//! poll as a backstop (jobs ended on other nodes, retries coming due, redeliveries).
//!
//! One actor with `webhook_workers` delivery slots, rather than an actor per slot: a
//! delivery is an awaited HTTP request, and the actor runs as many of them at once as it
//! has slots, so a pool of actors would add mailboxes and hand-offs, not parallelism.

use super::deliver::{deliver, Delivered};
use super::retry::{self, Next};
use crate::actors::queue::Drain;
use crate::actors::Shared;
use crate::db::deliveries::{Attempt, ClaimedDelivery};
use crate::faults::FailurePoint;
use crate::model::time;
use crate::outbound::{GuardedClient, OutboundPolicy};
use crate::store::events::Wake;
use crate::store::{ClaimNotifications, RecordAttempt};
use actix::prelude::*;
use rand::Rng;
use std::time::Duration;
use tokio::sync::oneshot;

/// How much longer than `webhook_timeout` a claim lasts: a node that dies mid-delivery
/// lets another node retry once this has passed.
const CLAIM_MARGIN: Duration = Duration::from_secs(30);

/// The delivery actor.
pub struct WebhookDispatcher {
    /// What every engine actor shares.
    shared: Shared,
    /// The guarded client: no private targets unless allowed, no redirects.
    client: GuardedClient,
    /// Deliveries in flight.
    in_flight: usize,
    /// A claim is under way.
    claiming: bool,
    /// Something woke the dispatcher during a claim: claim again after it.
    wake_again: bool,
    /// Shutting down: claim nothing more.
    draining: bool,
    /// Who waits for the in-flight deliveries to end.
    drained: Vec<oneshot::Sender<()>>,
}

impl WebhookDispatcher {
    /// A dispatcher; it starts claiming when started.
    pub fn new(shared: Shared) -> WebhookDispatcher {
        let client = GuardedClient::new(&OutboundPolicy::from_config(
            &shared.config,
            shared.config.webhook_timeout,
        ));
        WebhookDispatcher {
            shared,
            client,
            in_flight: 0,
            claiming: false,
            wake_again: false,
            draining: false,
            drained: Vec::new(),
        }
    }

    fn slots(&self) -> usize {
        self.shared.config.webhook_workers.max(1)
    }

    fn claim(&mut self, ctx: &mut Context<Self>) {
        if self.draining || self.in_flight >= self.slots() {
            return;
        }
        self.shared
            .faults
            .panic_if_armed(FailurePoint::WebhookDispatcherPanics);
        if self.claiming {
            self.wake_again = true;
            return;
        }
        self.claiming = true;
        self.wake_again = false;
        let limit = self.slots() - self.in_flight;
        let op = ClaimNotifications {
            node: self.shared.node.clone(),
            limit: limit as i64,
            claim: time::micros(self.shared.config.webhook_timeout + CLAIM_MARGIN),
        };
        let store = self.shared.store.clone();
        async move { store.write(op).await }
            .into_actor(self)
            .map(move |claimed, act, ctx| {
                act.claiming = false;
                match claimed {
                    Ok(due) => {
                        let full = due.len() == limit;
                        for d in due {
                            act.start_delivery(d, ctx);
                        }
                        if full || act.wake_again {
                            act.claim(ctx);
                        }
                    }
                    Err(e) => log::error!("claiming webhook notifications failed: {e}"),
                }
                act.check_drained();
            })
            .spawn(ctx);
    }

    fn start_delivery(&mut self, d: ClaimedDelivery, ctx: &mut Context<Self>) {
        self.in_flight += 1;
        let client = self.client.clone();
        let config = self.shared.config.clone();
        let store = self.shared.store.clone();
        let node = self.shared.node.clone();
        let metrics = self.shared.metrics.clone();
        async move {
            let got = deliver(&client, &d, config.webhook_timeout).await;
            metrics.webhook_attempt(got.outcome.as_str());
            let jitter = rand::rng().random_range(1.0 - retry::JITTER..=1.0 + retry::JITTER);
            let next = retry::next(
                got.status,
                got.retry_after,
                d.attempt,
                d.redelivery,
                &config.webhook_retry_schedule,
                jitter,
            );
            let attempt = attempt_record(&d, node, got, &next);
            match store.write(RecordAttempt(attempt)).await {
                Ok(true) => {}
                Ok(false) => log::info!("notification {} was claimed elsewhere meanwhile", d.id),
                Err(e) => log::error!("recording an attempt of {} failed: {e}", d.id),
            }
        }
        .into_actor(self)
        .map(|_, act, ctx| {
            act.in_flight -= 1;
            act.check_drained();
            act.claim(ctx);
        })
        .spawn(ctx);
    }

    fn check_drained(&mut self) {
        if self.draining && self.in_flight == 0 && !self.claiming {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

/// The record of an attempt and the notification's state after it.
fn attempt_record(d: &ClaimedDelivery, node: String, got: Delivered, next: &Next) -> Attempt {
    let (status, next_attempt_at) = match next {
        Next::Success => ("success", None),
        Next::Failed => ("failed", None),
        Next::RetryAfter(delay) => ("pending", Some(time::now() + time::micros(*delay))),
    };
    Attempt {
        notification_id: d.id.clone(),
        node,
        attempt: d.attempt,
        at: got.at,
        webhook_id: d.target.as_ref().map(|t| t.webhook_id.clone()),
        url: d.target.as_ref().map(|t| t.url.clone()),
        status_code: got.status.map(i32::from),
        duration_ms: got.duration_ms,
        error: got.error,
        response_excerpt: got.excerpt,
        status,
        next_attempt_at,
        disable_webhook: got.status == Some(410),
    }
}

impl Actor for WebhookDispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.shared
            .events
            .register_webhooks(ctx.address().recipient());
        ctx.run_interval(self.shared.config.poll_interval, |act, ctx| act.claim(ctx));
        self.claim(ctx);
    }
}

impl Handler<Wake> for WebhookDispatcher {
    type Result = ();
    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.claim(ctx);
    }
}

impl Handler<Drain> for WebhookDispatcher {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        let (tx, rx) = oneshot::channel();
        self.drained.push(tx);
        self.check_drained();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
