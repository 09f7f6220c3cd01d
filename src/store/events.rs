//! In-process signals to actors and handlers: "jobs are waiting in queue X" (a committed
//! submit wakes an idle worker at once), "job X ended" (for `?wait=N`), "job X was killed"
//! (to stop it on this node at once), "a notification may be due" (a job ended with no
//! room in the dispatcher, a kill or a redelivery: the webhook dispatcher claims at once)
//! and "these notifications are yours" (claimed at birth: [`super::Handoff`]). Only the writer publishes
//! here, what each batch committed ([`Effects`]); the PostgreSQL listener passes on what
//! other nodes' writers committed.

use super::effects::{Effects, Publish};
use crate::db::deliveries::ClaimedDelivery;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// Tells a queue that jobs may be waiting.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Wake;

/// Gives the webhook dispatcher notifications claimed for it at birth, once committed.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Handed(pub Vec<ClaimedDelivery>);

/// Tells a queue to stop a job it runs (killed through the API, or the lease was lost).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct StopJob {
    /// Job id.
    pub id: String,
}

/// The hub: queues and the webhook dispatcher register here; the writer publishes through it.
pub struct Events {
    queues: Mutex<HashMap<String, Recipient<Wake>>>,
    /// By queue name: a restarted queue replaces its predecessor.
    stoppers: Mutex<HashMap<String, Recipient<StopJob>>>,
    ended: broadcast::Sender<String>,
    /// The webhook dispatcher, once started.
    webhooks: Mutex<Option<Dispatcher>>,
}

/// The webhook dispatcher's two doors.
struct Dispatcher {
    wake: Recipient<Wake>,
    handed: Recipient<Handed>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            queues: Mutex::default(),
            stoppers: Mutex::default(),
            ended: broadcast::channel(4096).0,
            webhooks: Mutex::default(),
        }
    }
}

impl Events {
    /// Registers a queue under its name (again when the queue was restarted).
    pub fn register_queue(&self, name: &str, wake: Recipient<Wake>, stop: Recipient<StopJob>) {
        self.queues
            .lock()
            .expect("events lock")
            .insert(name.to_string(), wake);
        self.stoppers
            .lock()
            .expect("events lock")
            .insert(name.to_string(), stop);
    }

    /// Wakes every queue (the listener lost signals while it reconnected).
    pub fn wake_all(&self) {
        for r in self.queues.lock().expect("events lock").values() {
            r.do_send(Wake);
        }
    }

    /// Registers the webhook dispatcher (again when it was restarted).
    pub fn register_webhooks(&self, wake: Recipient<Wake>, handed: Recipient<Handed>) {
        *self.webhooks.lock().expect("events lock") = Some(Dispatcher { wake, handed });
    }

    /// Tells the webhook dispatcher that a notification may be due (the listener lost
    /// signals while it reconnected).
    pub fn wake_webhooks(&self) {
        if let Some(d) = self.webhooks.lock().expect("events lock").as_ref() {
            d.wake.do_send(Wake);
        }
    }

    /// Listens for ended jobs.
    pub fn subscribe_ended(&self) -> broadcast::Receiver<String> {
        self.ended.subscribe()
    }
}

impl Publish for Events {
    /// Wakes each queue that got jobs, stops each killed job if it runs here, announces each
    /// ended job, hands the dispatcher its notifications and wakes it once when others may
    /// be due. Jobs ended on other nodes do not wake it: their notifications are their
    /// node's, and the poll finds them should that node die.
    fn publish(&self, effects: &Effects) {
        if !effects.queued.is_empty() {
            let queues = self.queues.lock().expect("events lock");
            for queue in &effects.queued {
                if let Some(r) = queues.get(queue) {
                    r.do_send(Wake);
                }
            }
        }
        if !effects.killed.is_empty() {
            let stoppers = self.stoppers.lock().expect("events lock");
            for id in &effects.killed {
                for r in stoppers.values() {
                    r.do_send(StopJob { id: id.clone() });
                }
            }
        }
        for id in &effects.ended {
            // No receiver (nobody waits) is fine.
            let _ = self.ended.send(id.clone());
        }
        if !effects.handed.is_empty() {
            if let Some(d) = self.webhooks.lock().expect("events lock").as_ref() {
                // A dispatcher stopped meanwhile: the claims run out and any poll finds them.
                d.handed.do_send(Handed(effects.handed.clone()));
            }
        }
        if effects.notifications_due {
            self.wake_webhooks();
        }
    }
}
