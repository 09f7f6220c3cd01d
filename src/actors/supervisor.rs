//! The supervisor starts every actor from the configuration and runs shutdown: stop
//! claiming, let running jobs and webhook deliveries finish within `shutdown_grace` (or
//! until told to hurry), then hand the rest back to `pending` without spending an attempt
//! (a delivery cut short is retried once its claim ends).

use super::janitor::Janitor;
use super::pool::QueueSettings;
use super::queue::{Drain, HandBackAll, Queue};
use super::webhooks::WebhookDispatcher;
use super::Shared;
use actix::prelude::*;
use futures_util::future::join_all;
use std::sync::Arc;
use tokio::sync::Notify;

/// Starts the shutdown of the engine; answers when every job has finished or been handed back.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Ends the grace period at once (a second SIGTERM).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Hurry;

/// The engine's supervisor.
pub struct Supervisor {
    shared: Shared,
    /// Every queue's pool settings, planned and checked before the start.
    queue_settings: Vec<QueueSettings>,
    queues: Vec<Addr<Queue>>,
    janitor: Option<Addr<Janitor>>,
    webhooks: Option<Addr<WebhookDispatcher>>,
    hurry: Arc<Notify>,
}

impl Supervisor {
    /// A supervisor; the actors start when it starts.
    pub fn new(shared: Shared, queue_settings: Vec<QueueSettings>) -> Supervisor {
        Supervisor {
            shared,
            queue_settings,
            queues: Vec::new(),
            janitor: None,
            webhooks: None,
            hurry: Arc::new(Notify::new()),
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        let shared = &self.shared;
        for settings in self.queue_settings.clone() {
            let r = &settings.rule;
            log::info!(
                "queue {}: {} to {} workers on {} threads, max_run_time {:?}",
                settings.name,
                r.min_workers,
                r.max_workers,
                settings.threads,
                settings.max_run_time
            );
            self.queues.push(Queue::start(settings, shared.clone()));
        }
        log::info!(
            "webhooks: {} concurrent deliveries",
            shared.config.webhook_workers
        );
        self.webhooks = Some(WebhookDispatcher::new(shared.clone()).start());
        self.janitor = Some(
            Janitor::new(
                shared.store.clone(),
                shared.config.clone(),
                shared.events.clone(),
            )
            .start(),
        );
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
        let queues = self.queues.clone();
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
