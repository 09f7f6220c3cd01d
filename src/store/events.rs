//! In-process signals between actors and handlers: "jobs are waiting in queue X" (a
//! committed submit wakes an idle worker at once), "job X ended" (for `?wait=N`) and
//! "job X was killed" (to stop it on this node at once), and "a notification may be due"
//! (a job ended or a redelivery was asked: the webhook dispatcher claims at once).

use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// Tells a queue that jobs may be waiting.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Wake;

/// Tells a queue to stop a job it runs (killed through the API, or the lease was lost).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct StopJob {
    /// Job id.
    pub id: String,
}

/// The hub: queues register here; writers and handlers signal through it.
pub struct Events {
    queues: Mutex<HashMap<String, Recipient<Wake>>>,
    /// By queue name: a restarted queue replaces its predecessor.
    stoppers: Mutex<HashMap<String, Recipient<StopJob>>>,
    ended: broadcast::Sender<String>,
    /// The webhook dispatcher, once started.
    webhooks: Mutex<Option<Recipient<Wake>>>,
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

    /// Wakes one queue.
    pub fn wake(&self, queue: &str) {
        if let Some(r) = self.queues.lock().expect("events lock").get(queue) {
            r.do_send(Wake);
        }
    }

    /// Wakes every queue (jobs came back to `pending`).
    pub fn wake_all(&self) {
        for r in self.queues.lock().expect("events lock").values() {
            r.do_send(Wake);
        }
    }

    /// Stops a job on this node if one of its queues runs it.
    pub fn stop_job(&self, id: &str) {
        for r in self.stoppers.lock().expect("events lock").values() {
            r.do_send(StopJob { id: id.to_string() });
        }
    }

    /// Announces that a job has ended (its `job:finished` notification is committed).
    pub fn job_ended(&self, id: &str) {
        let _ = self.ended.send(id.to_string());
        self.wake_webhooks();
    }

    /// Registers the webhook dispatcher.
    pub fn register_webhooks(&self, wake: Recipient<Wake>) {
        *self.webhooks.lock().expect("events lock") = Some(wake);
    }

    /// Tells the webhook dispatcher that a notification may be due.
    pub fn wake_webhooks(&self) {
        if let Some(r) = self.webhooks.lock().expect("events lock").as_ref() {
            r.do_send(Wake);
        }
    }

    /// Listens for ended jobs.
    pub fn subscribe_ended(&self) -> broadcast::Receiver<String> {
        self.ended.subscribe()
    }
}
