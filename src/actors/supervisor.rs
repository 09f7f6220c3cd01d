//! The supervisor starts every actor from the configuration, restarts the ones that stop
//! unexpectedly, and runs shutdown: stop claiming, let running jobs and webhook deliveries
//! finish within `shutdown_grace` (or until told to hurry), then hand the rest back to
//! `pending` without spending an attempt (a delivery cut short is retried once its claim
//! ends).
//!
//! An actor that panics is gone (its mailbox closes); the supervisor looks every
//! [`CHECK_EVERY`] and starts a new one in its place, logs it and counts it in
//! `jobline_actor_restarts_total{actor}`. What the dead actor held is recovered as after a
//! crash: its running jobs finish on their workers or are taken back by their lease, its
//! webhook claims expire and are retried.

use super::janitor::Janitor;
use super::pg_listener::PgListener;
use super::queue::{Drain, HandBackAll, Queue};
use super::webhooks::WebhookDispatcher;
use super::Shared;
use crate::config::QueueSettings;
use crate::db::Backend;
use actix::prelude::*;
use futures_util::future::join_all;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How often the supervisor looks for actors that stopped: the longest a queue, the
/// dispatcher, the janitor or the listener stays down after a panic.
pub const CHECK_EVERY: Duration = Duration::from_millis(200);

/// Starts the shutdown of the engine; answers when every job has finished or been handed back.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Ends the grace period at once (a second SIGTERM).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Hurry;

/// One queue as the supervisor keeps it: what it needs to start it again.
struct SupervisedQueue {
    name: String,
    settings: QueueSettings,
    /// The thread its workers run on; a restarted queue starts its workers there too.
    workers: Arbiter,
    addr: Addr<Queue>,
}

/// The engine's supervisor.
pub struct Supervisor {
    shared: Shared,
    /// Where the PostgreSQL listener connects (`None` on SQLite: one node, nothing to hear).
    listen_to: Option<Backend>,
    queues: Vec<SupervisedQueue>,
    janitor: Option<Addr<Janitor>>,
    webhooks: Option<Addr<WebhookDispatcher>>,
    listener: Option<PgListener>,
    hurry: Arc<Notify>,
}

impl Supervisor {
    /// A supervisor; the actors start when it starts.
    pub fn new(shared: Shared, backend: Backend) -> Supervisor {
        Supervisor {
            shared,
            listen_to: backend.is_postgres().then_some(backend),
            queues: Vec::new(),
            janitor: None,
            webhooks: None,
            listener: None,
            hurry: Arc::new(Notify::new()),
        }
    }

    fn start_janitor(&self) -> Addr<Janitor> {
        Janitor::new(self.shared.clone()).start()
    }

    fn start_listener(&self) -> Option<PgListener> {
        let backend = self.listen_to.clone()?;
        Some(PgListener::start(
            backend,
            self.shared.events.clone(),
            self.shared.faults.clone(),
        ))
    }

    /// Starts again whatever stopped without being asked to.
    fn restart_stopped(&mut self) {
        let shared = self.shared.clone();
        for queue in &mut self.queues {
            if !queue.addr.connected() {
                restarted(&shared, &format!("queue {}", queue.name), "queue");
                queue.addr = Queue::new(
                    queue.name.clone(),
                    queue.settings.clone(),
                    shared.clone(),
                    queue.workers.handle(),
                )
                .start();
            }
        }
        if self.webhooks.as_ref().is_some_and(|a| !a.connected()) {
            restarted(&shared, "webhook dispatcher", "webhook_dispatcher");
            self.webhooks = Some(WebhookDispatcher::new(shared.clone()).start());
        }
        if self.janitor.as_ref().is_some_and(|a| !a.connected()) {
            restarted(&shared, "janitor", "janitor");
            self.janitor = Some(self.start_janitor());
        }
        if self.listener.as_ref().is_some_and(PgListener::stopped) {
            restarted(&shared, "PostgreSQL listener", "pg_listener");
            self.listener = self.start_listener();
        }
    }
}

/// Logs and counts the restart of an actor.
fn restarted(shared: &Shared, what: &str, label: &str) {
    log::error!("{what} stopped unexpectedly; restarting it");
    shared.metrics.actor_restarted(label);
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let shared = &self.shared;
        for (name, settings) in shared.config.queue_settings() {
            log::info!(
                "queue {name}: {} workers, max_run_time {:?}",
                settings.workers,
                settings.max_run_time
            );
            let workers = Arbiter::new();
            let addr = Queue::new(
                name.clone(),
                settings.clone(),
                shared.clone(),
                workers.handle(),
            )
            .start();
            self.queues.push(SupervisedQueue {
                name,
                settings,
                workers,
                addr,
            });
        }
        log::info!(
            "webhooks: {} concurrent deliveries",
            shared.config.webhook_workers
        );
        self.webhooks = Some(WebhookDispatcher::new(shared.clone()).start());
        self.janitor = Some(self.start_janitor());
        self.listener = self.start_listener();
        ctx.run_interval(CHECK_EVERY, |act, _| act.restart_stopped());
    }
}

impl Handler<Hurry> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: Hurry, _: &mut Context<Self>) {
        self.hurry.notify_one();
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        let queues: Vec<Addr<Queue>> = self.queues.iter().map(|q| q.addr.clone()).collect();
        let webhooks = self.webhooks.clone();
        let grace = self.shared.config.shutdown_grace;
        let hurry = self.hurry.clone();
        Box::pin(async move {
            let deliveries = async {
                if let Some(w) = &webhooks {
                    let _ = w.send(Drain).await;
                }
            };
            let drained = futures_util::future::join(
                join_all(queues.iter().map(|q| q.send(Drain))),
                deliveries,
            );
            tokio::select! {
                _ = drained => log::info!("every running job finished"),
                _ = tokio::time::sleep(grace) => log::warn!("shutdown grace over; handing jobs back"),
                _ = hurry.notified() => log::warn!("asked to hurry; handing jobs back"),
            }
            join_all(queues.iter().map(|q| q.send(HandBackAll))).await;
        })
    }
}
