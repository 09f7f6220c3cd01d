//! The persistence writer. Messages are queued to one thread that owns the write
//! connection; it takes every message waiting (up to `write_batch_max`), runs each in its
//! own savepoint inside one transaction (a write alone in its batch needs none), commits
//! once, then answers them all. SQLite has a
//! single writer this way (no `database is locked`), and both backends pay one commit for
//! many writes.

use crate::db::DbConnection;
use crate::error::{StoreError, StoreResult};
use actix::prelude::*;
use diesel::Connection;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// A write: what it does inside the batch transaction, and what it answers.
pub trait WriteOp: Send + 'static {
    /// The answer once committed.
    type Output: Send + 'static;
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
    /// answers whether it succeeded.
    fn run(&mut self, conn: &mut DbConnection, savepoint: bool) -> bool;
    /// Answers the sender once the batch's fate is known.
    fn answer(self: Box<Self>, commit: &StoreResult<()>);
}

struct Queued<M: WriteOp> {
    op: Option<M>,
    outcome: Option<StoreResult<M::Output>>,
    reply: oneshot::Sender<StoreResult<M::Output>>,
}

impl<M: WriteOp> Pending for Queued<M> {
    fn run(&mut self, conn: &mut DbConnection, savepoint: bool) -> bool {
        let Some(op) = self.op.take() else {
            return false;
        };
        let outcome = if savepoint {
            conn.transaction(|c| op.apply(c))
        } else {
            op.apply(conn)
        };
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn answer(self: Box<Self>, commit: &StoreResult<()>) {
        let outcome = match (self.outcome, commit) {
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
    /// Starts the writer thread on its own connection.
    pub fn start(conn: DbConnection, batch_max: usize) -> Addr<StoreWriter> {
        let (tx, rx) = mpsc::channel::<Box<dyn Pending>>();
        std::thread::Builder::new()
            .name("jobline-writer".into())
            .spawn(move || write_loop(conn, rx, batch_max.max(1)))
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

fn write_loop(mut conn: DbConnection, rx: mpsc::Receiver<Box<dyn Pending>>, batch_max: usize) {
    let mut batch: Vec<Box<dyn Pending>> = Vec::with_capacity(batch_max);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // A write alone in its batch needs no savepoint (two round trips fewer on
        // PostgreSQL): if it fails, the whole transaction is rolled back instead.
        let alone = batch.len() == 1;
        let mut failed_alone = false;
        let commit: StoreResult<()> = conn
            .transaction(|c| {
                for pending in batch.iter_mut() {
                    if !pending.run(c, !alone) && alone {
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
                StoreError::Database(e.to_string())
            });
        for pending in batch.drain(..) {
            pending.answer(&commit);
        }
    }
}
