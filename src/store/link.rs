//! The writer's connection, replaced when it is lost. A batch that fails is followed by a
//! check of the connection (one round trip, only after a failure); a lost connection is
//! dropped, and the next batch opens a new one. While the database cannot be reached,
//! batches are answered `Unavailable` at once and a new connection is tried with
//! [`Backoff`]: 50 ms doubling to 2 s, so a restarted server is noticed within 2 s. A
//! lane whose statements need session settings names them ([`Link::with_setup`]); every
//! connection the link opens runs them before its first batch.

use crate::db::backoff::Backoff;
use crate::db::{is_lost, Backend, DbConnection};
use crate::faults::{FailurePoint, FailurePoints};
use std::sync::Arc;
use std::time::Instant;

/// The write connection and how to replace it.
pub(super) struct Link {
    backend: Backend,
    /// The open connection; `None` while the database cannot be reached.
    conn: Option<DbConnection>,
    backoff: Backoff,
    /// No new connection is tried before this.
    retry_at: Instant,
    /// Where tests make the connection "lost".
    faults: Arc<FailurePoints>,
    /// What every new connection runs before its first batch.
    setup: Setup,
}

/// A lane's session settings, run on each connection it opens.
pub(super) type Setup = fn(&mut DbConnection) -> diesel::QueryResult<()>;

impl Link {
    /// A link over an open connection.
    pub(super) fn new(conn: DbConnection, backend: Backend, faults: Arc<FailurePoints>) -> Link {
        Link {
            conn: Some(conn),
            ..Link::unopened(backend, faults)
        }
    }

    /// A link that opens its connection for its first batch.
    pub(super) fn unopened(backend: Backend, faults: Arc<FailurePoints>) -> Link {
        Link {
            backend,
            conn: None,
            backoff: Backoff::default(),
            retry_at: Instant::now(),
            faults,
            setup: |_| Ok(()),
        }
    }

    /// Runs `setup` on every connection this link opens (a lane's session settings); an
    /// open connection gets it now, or is dropped for a new one if it fails.
    pub(super) fn with_setup(mut self, setup: Setup) -> Link {
        self.setup = setup;
        if let Some(conn) = self.conn.as_mut() {
            if let Err(e) = setup(conn) {
                log::warn!("writer connection set-up failed ({e}); reconnecting");
                self.conn = None;
            }
        }
        self
    }

    /// The connection to run the next batch on, reconnecting when one is due; `None` while
    /// the database cannot be reached.
    pub(super) fn connection(&mut self) -> Option<&mut DbConnection> {
        if self.conn.is_some() && self.faults.fires(FailurePoint::WriterConnectionLost) {
            log::warn!("writer connection lost (failure point)");
            self.conn = None;
            return None;
        }
        if self.conn.is_none() && Instant::now() >= self.retry_at {
            let setup = self.setup;
            let opened = self.backend.establish_writer().and_then(|mut conn| {
                setup(&mut conn)
                    .map(|()| conn)
                    .map_err(|e| format!("session set-up failed: {e}"))
            });
            match opened {
                Ok(conn) => {
                    log::info!("writer reconnected to the database");
                    self.backoff.reset();
                    self.conn = Some(conn);
                }
                Err(e) => {
                    let delay = self.backoff.next_delay();
                    log::warn!("writer cannot reconnect ({e}); next try in {delay:?}");
                    self.retry_at = Instant::now() + delay;
                }
            }
        }
        self.conn.as_mut()
    }

    /// After a failed batch: whether the connection is lost. A lost one is dropped and the
    /// next batch reconnects at once.
    pub(super) fn lost_after_failure(&mut self) -> bool {
        let lost = self.conn.as_mut().is_none_or(is_lost);
        if lost && self.conn.take().is_some() {
            log::warn!("writer connection lost; reconnecting");
            self.retry_at = Instant::now();
        }
        lost
    }
}
