//! Listens for the signals of every node's writer on PostgreSQL (`LISTEN jobline`) and
//! publishes them to this node's [`Events`], what arrived in one poll at once: a job submitted on one node wakes an idle worker on any node
//! within milliseconds, a kill stops the job wherever it runs, a `?wait` on any node
//! answers when the job ends. libpq offers no blocking wait through diesel, so a thread
//! polls the connection's input every few milliseconds (a non-blocking read).
//!
//! A lost connection is replaced with backoff (50 ms doubling to 2 s). Signals sent while
//! it was not listening are lost, so once listening again it wakes every local queue and
//! the webhook dispatcher: none waits for the slow poll. The supervisor starts a new
//! listener if the thread ends (a panic).

use crate::db::backoff::Backoff;
use crate::db::signals::{Signal, CHANNEL};
use crate::db::{Backend, DbConnection};
use crate::faults::{FailurePoint, FailurePoints};
use crate::store::events::Events;
use crate::store::{Effects, Publish};
use diesel::connection::SimpleConnection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the listener looks for notifications.
pub const POLL: Duration = Duration::from_millis(5);

/// Stops the listener thread when dropped.
pub struct PgListener {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Drop for PgListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl PgListener {
    /// Starts listening on its own connection and thread.
    pub fn start(backend: Backend, events: Arc<Events>, faults: Arc<FailurePoints>) -> PgListener {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("jobline-listener".into())
            .spawn(move || listen_loop(backend, events, flag, faults))
            .expect("spawn listener thread");
        PgListener { stop, thread }
    }

    /// Whether the thread ended without being asked to (it panicked).
    pub fn stopped(&self) -> bool {
        self.thread.is_finished() && !self.stop.load(Ordering::Relaxed)
    }
}

fn listen_loop(
    backend: Backend,
    events: Arc<Events>,
    stop: Arc<AtomicBool>,
    faults: Arc<FailurePoints>,
) {
    let mut backoff = Backoff::default();
    while !stop.load(Ordering::Relaxed) {
        let listening = backend.establish().and_then(|conn| match conn {
            DbConnection::Pg(mut c) => c
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .map(|()| c)
                .map_err(|e| format!("LISTEN failed: {e}")),
            DbConnection::Sqlite(_) => Err("LISTEN needs PostgreSQL".into()),
        });
        let mut conn = match listening {
            Ok(c) => c,
            Err(e) => {
                let delay = backoff.next_delay();
                log::warn!("listener cannot listen ({e}); next try in {delay:?}");
                std::thread::sleep(delay);
                continue;
            }
        };
        backoff.reset();
        // Whatever was signalled while we were not listening is lost: look once.
        events.wake_all();
        events.wake_webhooks();
        'poll: while !stop.load(Ordering::Relaxed) {
            faults.panic_if_armed(FailurePoint::ListenerPanics);
            let mut received = Effects::default();
            let mut failed = None;
            for notification in conn.notifications_iter() {
                match notification {
                    Ok(n) => match Signal::decode(&n.payload) {
                        Some(signal) => received.add_signal(signal),
                        None => log::warn!("unknown signal {:?}", n.payload),
                    },
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if !received.is_empty() {
                received.dedup();
                events.publish(&received);
            }
            if let Some(e) = failed {
                log::warn!("listener connection failed ({e}); reconnecting");
                break 'poll;
            }
            std::thread::sleep(POLL);
        }
    }
}
