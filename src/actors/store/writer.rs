//! The persistence writer. Messages are queued to one thread that owns the write
//! connection; it takes every message waiting (up to `write_batch_max`), runs each in its
//! own savepoint inside one transaction (a write alone in its batch needs none), commits
//! once, then answers them all. SQLite has a
//! single writer this way (no `database is locked`), and both backends pay one commit for
//! many writes.
//!
//! Two guards keep the writer serving: a write op that panics is caught inside its own
//! savepoint and answers its sender an error while the rest of its batch commits (alone in
//! its batch, the batch is rolled back); a batch that fails on a lost connection answers
//! every sender `Unavailable` (the HTTP layer's 503) and the [`Link`] reconnects with backoff.

use super::link::Link;
use crate::db::{Backend, DbConnection};
use crate::error::{StoreError, StoreResult};
use crate::faults::{FailurePoint, FailurePoints};
use actix::prelude::*;
use diesel::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// A write: what it does inside the batch transaction, and what it answers.
pub trait WriteOp: Send + 'static {
    /// The answer once committed.
    type Output: Send + 'static;
    /// Where a test can make this op panic (none for most ops).
    const FAILURE_POINT: Option<FailurePoint> = None;
    /// Applies the change (inside a savepoint of the batch transaction).
    fn apply(self, conn: &mut DbConnection) -> StoreResult<Self::Output>;
}

/// The message that carries a [`WriteOp`] to the [`StoreWriter`].
pub struct Write<M: WriteOp>(pub M);

impl<M: WriteOp> Message for Write<M> {
    type Result = StoreResult<M::Output>;
}

/// A queued write whose answer waits for the commit.
trait Pending: Send {
    /// Runs the write, in its own savepoint when it shares the batch; keeps the outcome and
    /// answers whether it succeeded. A panic of the op is its own failure.
    fn run(&mut self, conn: &mut DbConnection, savepoint: bool, faults: &FailurePoints) -> bool;
    /// Answers the sender once the batch's fate is known.
    fn answer(self: Box<Self>, commit: &StoreResult<()>);
}

struct Queued<M: WriteOp> {
    op: Option<M>,
    outcome: Option<StoreResult<M::Output>>,
    reply: oneshot::Sender<StoreResult<M::Output>>,
}

impl<M: WriteOp> Pending for Queued<M> {
    fn run(&mut self, conn: &mut DbConnection, savepoint: bool, faults: &FailurePoints) -> bool {
        let Some(op) = self.op.take() else {
            return false;
        };
        // The panic is caught inside the savepoint, so the savepoint is rolled back and the
        // transaction stays usable for the rest of the batch.
        let guarded = |c: &mut DbConnection| {
            catch_unwind(AssertUnwindSafe(|| {
                if let Some(point) = M::FAILURE_POINT {
                    faults.panic_if_armed(point);
                }
                op.apply(c)
            }))
            .unwrap_or_else(|_| {
                let op = std::any::type_name::<M>();
                log::error!("write op {op} panicked; the rest of its batch goes on");
                Err(StoreError::Database(format!("write op {op} panicked")))
            })
        };
        let outcome = if savepoint {
            conn.transaction(guarded)
        } else {
            guarded(conn)
        };
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn answer(self: Box<Self>, commit: &StoreResult<()>) {
        let outcome = match (self.outcome, commit) {
            // The connection was lost: whatever the op said, nothing of the batch stands.
            (_, Err(StoreError::Unavailable)) => Err(StoreError::Unavailable),
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (Some(Ok(_)), Err(e)) => Err(e.clone()),
            (None, _) => Err(StoreError::Unavailable),
        };
        let _ = self.reply.send(outcome);
    }
}

/// The writer actor: a front that queues messages to the writer thread.
pub struct StoreWriter {
    queue: mpsc::Sender<Box<dyn Pending>>,
}

impl StoreWriter {
    /// Starts the writer thread on its own connection (to `backend`, which it reopens
    /// when the connection is lost).
    pub fn start(
        conn: DbConnection,
        backend: Backend,
        batch_max: usize,
        faults: Arc<FailurePoints>,
    ) -> Addr<StoreWriter> {
        let (tx, rx) = mpsc::channel::<Box<dyn Pending>>();
        let link = Link::new(conn, backend, faults.clone());
        std::thread::Builder::new()
            .name("jobline-writer".into())
            .spawn(move || write_loop(link, rx, batch_max.max(1), &faults))
            .expect("spawn writer thread");
        StoreWriter { queue: tx }.start()
    }
}

impl Actor for StoreWriter {
    type Context = Context<Self>;
}

impl<M: WriteOp> Handler<Write<M>> for StoreWriter {
    type Result = ResponseFuture<StoreResult<M::Output>>;

    fn handle(&mut self, msg: Write<M>, _: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        let queued = Box::new(Queued {
            op: Some(msg.0),
            outcome: None,
            reply,
        });
        let sent = self.queue.send(queued).is_ok();
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Unavailable);
            }
            answer.await.unwrap_or(Err(StoreError::Unavailable))
        })
    }
}

fn write_loop(
    mut link: Link,
    rx: mpsc::Receiver<Box<dyn Pending>>,
    batch_max: usize,
    faults: &FailurePoints,
) {
    let mut batch: Vec<Box<dyn Pending>> = Vec::with_capacity(batch_max);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let commit = match link.connection() {
            Some(conn) => commit_batch(conn, &mut batch, faults),
            None => Err(StoreError::Unavailable),
        };
        let commit = match commit {
            Err(_) if link.lost_after_failure() => Err(StoreError::Unavailable),
            other => other,
        };
        for pending in batch.drain(..) {
            pending.answer(&commit);
        }
    }
}

/// Runs a batch in one transaction and commits it.
fn commit_batch(
    conn: &mut DbConnection,
    batch: &mut [Box<dyn Pending>],
    faults: &FailurePoints,
) -> StoreResult<()> {
    // A write alone in its batch needs no savepoint (two round trips fewer on
    // PostgreSQL): if it fails, the whole transaction is rolled back instead.
    let alone = batch.len() == 1;
    let mut failed_alone = false;
    conn.transaction(|c| {
        for pending in batch.iter_mut() {
            if !pending.run(c, !alone, faults) && alone {
                failed_alone = true;
                return Err(diesel::result::Error::RollbackTransaction);
            }
        }
        Ok::<_, diesel::result::Error>(())
    })
    .map_err(|e| {
        if !failed_alone {
            log::error!("write batch of {} failed to commit: {e}", batch.len());
        }
        StoreError::from(e)
    })
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
