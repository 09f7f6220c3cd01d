//! Listens for other nodes' signals on PostgreSQL (`LISTEN jobline`) and passes them to
//! this node's [`Events`]: a job submitted on one node wakes an idle worker on any node
//! within milliseconds, a kill stops the job wherever it runs, a `?wait` on any node
//! answers when the job ends. libpq offers no blocking wait through diesel, so a thread
//! polls the connection's input every few milliseconds (a non-blocking read); the queues'
//! slow poll still covers a listener that is reconnecting.

use super::events::Events;
use crate::db::signals::{Signal, CHANNEL};
use crate::db::{Backend, DbConnection};
use diesel::connection::SimpleConnection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the listener looks for notifications.
pub const POLL: Duration = Duration::from_millis(5);

/// Stops the listener thread when dropped.
pub struct PgListener {
    stop: Arc<AtomicBool>,
}

impl Drop for PgListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl PgListener {
    /// Starts listening on its own connection and thread.
    pub fn start(backend: Backend, events: Arc<Events>) -> PgListener {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("jobline-listener".into())
            .spawn(move || listen_loop(backend, events, flag))
            .expect("spawn listener thread");
        PgListener { stop }
    }
}

fn listen_loop(backend: Backend, events: Arc<Events>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let mut conn = match backend.establish() {
            Ok(DbConnection::Pg(c)) => c,
            Ok(_) => return,
            Err(e) => {
                log::warn!("listener cannot connect ({e}); retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if let Err(e) = conn.batch_execute(&format!("LISTEN {CHANNEL}")) {
            log::warn!("LISTEN failed ({e}); retrying");
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        // Whatever was signalled while we were not listening: look once.
        events.wake_all();
        'poll: while !stop.load(Ordering::Relaxed) {
            for received in conn.notifications_iter() {
                match received {
                    Ok(n) => match Signal::decode(&n.payload) {
                        Some(Signal::Wake(queue)) => events.wake(&queue),
                        Some(Signal::Kill(id)) => events.stop_job(&id),
                        Some(Signal::Ended(id)) => events.job_ended(&id),
                        None => log::warn!("unknown signal {:?}", n.payload),
                    },
                    Err(e) => {
                        log::warn!("listener connection failed ({e}); reconnecting");
                        break 'poll;
                    }
                }
            }
            std::thread::sleep(POLL);
        }
    }
}
