//! The webhook dispatcher: up to `webhook_workers` deliveries at once on this node. It works
//! in rounds, one write op at a time: a round records every attempt that finished since the
//! last one and claims due notifications, each with its webhook and keys, with a short
//! claim (so no other node delivers them meanwhile). While a round is under way, finished
//! attempts gather for the next, so the writer sees one op and a few statements per round
//! instead of an op per attempt and per claim. It wakes when a job ends on this node, when
//! a delivery finishes, and on a slow poll as a backstop (jobs ended on other nodes,
//! retries coming due, redeliveries).
//!
//! A round claims up to [`AHEAD`] × `webhook_workers` notifications more than its free
//! slots: they wait here, claimed, and a slot that frees starts the next of them at once
//! instead of waiting for two rounds (the one under way and its own) to record its attempt
//! and claim it new work. With 16 slots and a round taking 2.4 ms on PostgreSQL, that wait
//! was most of a slot's cycle, and it capped deliveries at about 16 per round; with 16
//! waiting, the rounds (which share SQLite's one writer with submits and job ends) still
//! let the slots run dry (docs/benchmarks.md, "Seventh session"). Never more than
//! `webhook_workers` requests are under way.
//!
//! Slots are shared between webhooks ([`Slots`]): one busy e-shop alone uses all but one,
//! an e-shop whose endpoint hangs cannot hold them all.
//!
//! A claim lasts [`CLAIM_TIMEOUTS`] attempts' timeouts and a margin, however many wait
//! here: a waiting notification whose claim would run out before its attempt could time
//! out is let go instead of started ([`may_start`]), and is claimed again once its claim
//! has run out (here or on another node), so no two nodes deliver it at once. The room
//! ahead is therefore not bounded by the claims, only by what bursts of job ends need.
//!
//! Most notifications do not need a claim of the dispatcher's: a job that ends on this node
//! writes its notification already claimed for it while the dispatcher offers room
//! ([`Handoff`]), and the writer hands it over once committed ([`Handed`]). The dispatcher
//! offers its room whenever it changes and none while a claim of its own is under way, and
//! claims only when told that unclaimed notifications may be due (a job ended with no room
//! left, a kill, a redelivery), when a claim came back full, and at its poll; a round that
//! only records attempts claims nothing.
//!
//! A round that would only record waits until a round's worth of attempts has finished
//! (one per slot) or the first of them finished [`RECORD_DELAY`] ago: under a moderate load
//! each delivery would otherwise be recorded by a round (a transaction and its commit) of
//! its own. The webhook has arrived by then; only the record of it waits.
//!
//! One actor with `webhook_workers` delivery slots, rather than an actor per slot: a
//! delivery is an awaited HTTP request, and the actor runs as many of them at once as it
//! has slots, so a pool of actors would add mailboxes and hand-offs, not parallelism.

use super::deliver::{deliver, Delivered};
use super::retry::{self, Next};
use super::slots::Slots;
use crate::actors::queue::Drain;
use crate::actors::Shared;
use crate::config::Config;
use crate::db::deliveries::{Attempt, ClaimedDelivery};
use crate::faults::FailurePoint;
use crate::model::{time, Micros};
use crate::outbound::{GuardedClient, OutboundPolicy};
use crate::store::events::{Handed, Wake};
use crate::store::{DeliveryRound, Handoff};
use actix::prelude::*;
use rand::Rng;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Notifications claimed ahead, waiting for a slot, in multiples of `webhook_workers`.
/// With 3 (48 with the default 16 slots, 9 ms of job ends at 7 000 jobs/s) a hiccup of the
/// deliveries used up the room; job ends then wrote their notifications unclaimed, each
/// round's claim took the room back as it freed, and the node stayed in that costlier
/// mode (a claim per notification, through SQLite's one writer) while the load lasted:
/// SQLite end to end −13 %, notifications 300 ms behind their jobs (docs/benchmarks.md,
/// "Nineteenth session").
const AHEAD: usize = 16;

/// How many attempts' timeouts a claim lasts, before [`CLAIM_MARGIN`]: the attempts under
/// way, and those that wait for them.
const CLAIM_TIMEOUTS: u32 = 4;

/// How long a finished attempt may wait for others to be recorded with it, when a round
/// would only record: the most that the notification's state (`success`, the attempt's
/// row) shows later than the delivery. A round that claims records what has finished,
/// and so does every round while the node drains.
const RECORD_DELAY: Duration = Duration::from_millis(10);

/// How much longer than `CLAIM_TIMEOUTS × webhook_timeout` a claim lasts: a node that
/// dies mid-delivery lets another node retry once this has passed.
const CLAIM_MARGIN: Duration = Duration::from_secs(30);

/// How long a claim must still last when an attempt starts, beyond the attempt's timeout:
/// time for the round that records it.
const RECORD_MARGIN: Duration = Duration::from_secs(5);

/// How long a claim of this node's lasts, its own or one a notification is born with.
pub(crate) fn claim_duration(config: &Config) -> Duration {
    config.webhook_timeout * CLAIM_TIMEOUTS + CLAIM_MARGIN
}

/// Whether a waiting delivery may start at `now`: its claim lasts until its attempt has
/// timed out and been recorded. One that waited longer (every slot held by targets that
/// hang) is let go: its claim runs out and a later claim takes it.
fn may_start(d: &ClaimedDelivery, now: Micros, timeout: Duration) -> bool {
    d.claim_until >= now + time::micros(timeout + RECORD_MARGIN)
}

/// The delivery actor.
pub struct WebhookDispatcher {
    /// What every engine actor shares.
    shared: Shared,
    /// The guarded client: no private targets unless allowed, no redirects. One client,
    /// so its pool keeps a keep-alive connection per target across deliveries.
    client: GuardedClient,
    /// The delivery slots, the deliveries under way and the claimed notifications waiting
    /// for a slot.
    slots: Slots,
    /// Attempts that finished and wait for the next round to record them.
    finished: Vec<Attempt>,
    /// When the oldest of `finished` finished.
    finished_since: Option<Instant>,
    /// A round is due at [`RECORD_DELAY`] after `finished_since` (a timer is set).
    record_timer: bool,
    /// A round is under way.
    in_round: bool,
    /// The round under way claims: no room is offered meanwhile.
    claiming: bool,
    /// Unclaimed notifications may be due: the next round claims.
    want_claim: bool,
    /// Something woke the dispatcher during a round: run another after it.
    wake_again: bool,
    /// Shutting down: claim nothing more.
    draining: bool,
    /// Who waits for the in-flight deliveries to end and be recorded.
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
            slots: Slots::new(shared.config.webhook_workers),
            shared,
            client,
            finished: Vec::new(),
            finished_since: None,
            record_timer: false,
            in_round: false,
            claiming: false,
            want_claim: true,
            wake_again: false,
            draining: false,
            drained: Vec::new(),
        }
    }

    fn slot_count(&self) -> usize {
        self.shared.config.webhook_workers.max(1)
    }

    fn handoff(&self) -> &Handoff {
        &self.shared.handoff
    }

    /// How many more notifications it takes now: deliveries under way and waiting stay
    /// within `AHEAD + 1` times the slots.
    fn room(&self) -> usize {
        if self.draining {
            return 0;
        }
        (self.slot_count() * (AHEAD + 1))
            .saturating_sub(self.slots.delivering() + self.slots.waiting())
    }

    /// Offers the room to job ends of this node, none while a claim is under way.
    fn offer_room(&self) {
        let room = if self.claiming { 0 } else { self.room() };
        self.handoff().offer(room);
    }

    /// Starts a round when there is something to record, or unclaimed notifications may be
    /// due and a slot is free to fill.
    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.in_round {
            self.wake_again = true;
            return;
        }
        let limit = if self.want_claim { self.room() } else { 0 };
        if limit == 0 && (self.finished.is_empty() || self.record_later(ctx)) {
            return;
        }
        if limit > 0 {
            self.shared
                .faults
                .panic_if_armed(FailurePoint::WebhookDispatcherPanics);
        }
        self.in_round = true;
        self.wake_again = false;
        if limit > 0 {
            self.claiming = true;
            self.want_claim = false;
            self.offer_room();
        }
        let finished = self.take_finished();
        let sent: Vec<String> = finished.iter().map(|a| a.notification_id.clone()).collect();
        let op = DeliveryRound {
            node: self.shared.node.clone(),
            finished,
            limit: limit as i64,
            claim: time::micros(claim_duration(&self.shared.config)),
        };
        let store = self.shared.store.clone();
        async move { store.write(op).await }
            .into_actor(self)
            .map(move |done, act, ctx| {
                act.in_round = false;
                act.claiming = false;
                match done {
                    Ok(done) => {
                        for id in sent.iter().filter(|id| !done.recorded.contains(id)) {
                            log::info!("notification {id} was claimed elsewhere meanwhile");
                        }
                        let full = limit > 0 && done.claimed.len() == limit;
                        act.want_claim |= full;
                        act.slots.wait(done.claimed);
                        act.fill_slots(ctx);
                        act.offer_room();
                        if full || act.wake_again || !act.finished.is_empty() {
                            act.round(ctx);
                        }
                    }
                    // Their claims run out and they are delivered again (at least once).
                    Err(e) => {
                        log::error!(
                            "a webhook delivery round failed, {} attempts unrecorded: {e}",
                            sent.len()
                        );
                        act.want_claim |= limit > 0;
                        act.offer_room();
                    }
                }
                act.check_drained();
            })
            .spawn(ctx);
    }

    /// Whether the finished attempts wait for more before a round records them: fewer than
    /// one per slot, the oldest younger than [`RECORD_DELAY`], the node not draining. Sets
    /// the timer that starts the round when the oldest has waited that long.
    fn record_later(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.draining || self.finished.len() >= self.slot_count() {
            return false;
        }
        let now = Instant::now();
        let due = *self.finished_since.get_or_insert(now) + RECORD_DELAY;
        if now >= due {
            return false;
        }
        if !self.record_timer {
            self.record_timer = true;
            ctx.run_later(due - now, |act, ctx| {
                act.record_timer = false;
                act.round(ctx);
            });
        }
        true
    }

    /// The finished attempts to record now: at most one per notification (a claim that
    /// ran out and was taken again by this node could add a second), the rest wait.
    fn take_finished(&mut self) -> Vec<Attempt> {
        let mut ids = HashSet::new();
        let (now, later): (Vec<Attempt>, Vec<Attempt>) = std::mem::take(&mut self.finished)
            .into_iter()
            .partition(|a| ids.insert(a.notification_id.clone()));
        self.finished_since = (!later.is_empty()).then(Instant::now);
        self.finished = later;
        now
    }

    /// Starts waiting deliveries while slots are free, in the order [`Slots`] gives; lets
    /// go of those whose claim would run out during their attempt.
    fn fill_slots(&mut self, ctx: &mut Context<Self>) {
        while let Some(d) = self.slots.take_next() {
            if may_start(&d, time::now(), self.shared.config.webhook_timeout) {
                self.start_delivery(d, ctx);
            } else {
                log::warn!(
                    "notification {} waited for a delivery slot until its claim nearly ran out; \
                     it is left for a later claim",
                    d.id
                );
            }
        }
    }

    fn start_delivery(&mut self, d: ClaimedDelivery, ctx: &mut Context<Self>) {
        self.slots.started(&d);
        let client = self.client.clone();
        let config = self.shared.config.clone();
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
            attempt_record(&d, node, got, &next)
        }
        .into_actor(self)
        .map(|attempt, act, ctx| {
            act.slots.ended(attempt.webhook_id.as_deref());
            act.finished_since.get_or_insert_with(Instant::now);
            act.finished.push(attempt);
            act.fill_slots(ctx);
            act.round(ctx);
            act.offer_room();
        })
        .spawn(ctx);
    }

    fn check_drained(&mut self) {
        if self.draining
            && self.slots.delivering() == 0
            && self.slots.waiting() == 0
            && self.finished.is_empty()
            && !self.in_round
        {
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
            .register_webhooks(ctx.address().recipient(), ctx.address().recipient());
        ctx.run_interval(self.shared.config.poll_interval, |act, ctx| {
            act.want_claim = true;
            act.round(ctx);
        });
        self.round(ctx);
        self.offer_room();
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Nothing more is handed to a dispatcher that is gone (a restarted one offers anew).
        self.handoff().offer(0);
    }
}

impl Handler<Wake> for WebhookDispatcher {
    type Result = ();
    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.want_claim = true;
        self.round(ctx);
    }
}

impl Handler<Handed> for WebhookDispatcher {
    type Result = ();
    fn handle(&mut self, Handed(deliveries): Handed, ctx: &mut Context<Self>) {
        self.slots.wait(deliveries);
        self.fill_slots(ctx);
        self.offer_room();
    }
}

impl Handler<Drain> for WebhookDispatcher {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        self.offer_room();
        let (tx, rx) = oneshot::channel();
        self.drained.push(tx);
        // Attempts left for a later round are recorded now.
        self.round(ctx);
        self.check_drained();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed_until(claim_until: Micros) -> ClaimedDelivery {
        ClaimedDelivery {
            id: "msg_1".into(),
            event: "job:finished".into(),
            payload: "{}".into(),
            attempt: 1,
            redelivery: false,
            claim_until,
            target: None,
        }
    }

    #[test]
    fn a_delivery_starts_only_while_its_claim_outlasts_its_attempt_and_record() {
        let timeout = Duration::from_secs(15);
        let now = time::now();
        let left = |d: Duration| claimed_until(now + time::micros(d));
        let needed = timeout + RECORD_MARGIN;
        assert!(may_start(
            &left(claim_duration(&Config::default())),
            now,
            timeout
        ));
        assert!(may_start(&left(needed), now, timeout));
        assert!(!may_start(
            &left(needed - Duration::from_millis(1)),
            now,
            timeout
        ));
        assert!(!may_start(&claimed_until(now - time::SECOND), now, timeout));
    }

    #[test]
    fn claims_do_not_grow_with_the_room_ahead() {
        let config = Config::default();
        assert_eq!(claim_duration(&config), Duration::from_secs(90));
    }
}
