//! The persistence writer. Messages are queued to one thread that owns the write
//! connection; it takes every message waiting (up to `write_batch_max`), runs them all in
//! one transaction with no savepoint, commits once, then answers them all. SQLite has a
//! single writer this way (no `database is locked`), and both backends pay one commit for
//! many writes and, on PostgreSQL, no savepoint round trips in the common batch.
//!
//! Where one thread writes for every [`Lane`] (SQLite), a batch's submits commit first, in
//! a transaction of their own, and are answered before the rest of the batch is written:
//! a 202 then waits for the inserts of its batch, not also for the job ends and webhook
//! rounds that came with them. Under a closed loop of 32 connections that raised the
//! submits, and so the end-to-end rate, by about 6 %; the ends that wait meanwhile
//! commit in larger runs (docs/benchmarks.md, ninth session).
//!
//! Ops of one type that follow each other in a batch are applied together
//! ([`WriteOp::apply_all`]): a run of job ends, say, is one set-based statement and one
//! claim for all the workers they free, not one round of statements per op.
//!
//! When an op of a batch fails (its own error, a database error or a panic), the batch is
//! rolled back at once and run again with a savepoint per op: the failed op is not run
//! again and answers its first error, every other op runs in its own savepoint, so one
//! failing op never poisons the others and never leaves a partial write (alone in its
//! batch, the rollback is all it needs). Ops are therefore re-runnable
//! ([`WriteOp::apply`] takes `&self`).
//!
//! The writer is the one publisher of what writes changed: each op reports its effects
//! ([`WriteOp::effects`]); those of the ops that committed go to other nodes in one
//! `NOTIFY` statement at the end of the batch's transaction (PostgreSQL), and to this node
//! once the batch has committed ([`Publish`]). An op rolled back to its savepoint, or a
//! batch rolled back, publishes nothing. Wake-ups to other nodes are paced: a queue's at
//! most once per `wake_signal_interval` and writer thread ([`WakePacer`]).
//!
//! A batch that is one run of ops which can write themselves in a single statement
//! ([`WriteOp::apply_all_alone`]: on PostgreSQL, a batch of submits without idempotency
//! keys, or a webhook round that only records or only claims) is written so, its signals
//! to other nodes in the same statement, outside a transaction: PostgreSQL commits the
//! statement by itself, so the batch costs one round trip instead of four (`BEGIN`, the
//! insert, the `NOTIFY`, `COMMIT`). With two nodes that is a third of the server's round
//! trips to the database (docs/benchmarks.md, fourteenth session). Should the statement
//! fail, nothing of it was written and the batch runs the usual way, which finds the op at
//! fault.
//!
//! Two guards keep the writer serving: a write op that panics is caught and counts as its
//! own failure (above); a batch that fails on a lost connection answers every sender
//! `Unavailable` (the HTTP layer's 503) and the [`Link`] reconnects with backoff.
//!
//! Each op names its [`Lane`]. On SQLite every lane is the one writer thread (a single
//! writer is what keeps SQLite free of `database is locked`). On PostgreSQL each lane is a
//! thread with its own connection, so the submits, the jobs' life cycle and the webhook
//! deliveries commit side by side instead of waiting for each other's round trips and
//! fsyncs; they touch different rows, and where they meet (a job's row, a notification's
//! row) the database's row locks and the fencing by attempt keep them correct, exactly as
//! between the writers of several nodes.

use super::effects::{Effects, Publish};
use super::link::{Link, Setup};
use super::wake_pacer::WakePacer;
use crate::db::deliveries;
use crate::db::signals::{self, Signal};
use crate::db::{Backend, DbConnection};
use crate::error::{StoreError, StoreResult};
use crate::faults::{FailurePoint, FailurePoints};
use crate::metrics::{writers::WriterMeter, Metrics};
use diesel::Connection;
use std::any::{Any, TypeId};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A write: what it does inside the batch transaction, and what it answers.
pub trait WriteOp: Send + 'static {
    /// The answer once committed.
    type Output: Send + 'static;
    /// Where a test can make this op panic (none for most ops).
    const FAILURE_POINT: Option<FailurePoint> = None;
    /// Which writer commits it (module doc): the jobs' life cycle unless it says otherwise.
    const LANE: Lane = Lane::Jobs;
    /// Applies the change inside the batch transaction. It may run twice (the second time
    /// in a savepoint, after another op of its batch failed and the batch was rolled back),
    /// so it changes nothing but the database.
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<Self::Output>;
    /// Applies a run of ops of this type that follow each other in a batch, all at once:
    /// set-based statements instead of one round of statements per op. All of them take
    /// effect or the call fails; then the batch is rolled back and run again op by op
    /// ([`WriteOp::apply`], each in its savepoint), which finds the op at fault. The
    /// default applies them one by one.
    fn apply_all(ops: &[&Self], conn: &mut DbConnection) -> StoreResult<Vec<Self::Output>>
    where
        Self: Sized,
    {
        ops.iter().map(|op| op.apply(conn)).collect()
    }
    /// Writes a run of ops of this type that is its whole batch in one statement that also
    /// sends the batch's signals to other nodes (`signals` gives them from the run's
    /// answers) and commits by itself (module doc). Answers `None`, having written
    /// nothing, when the run cannot be written so: the default, since most runs need the
    /// batch's transaction. An error, too, leaves nothing written.
    fn apply_all_alone(
        _ops: &[&Self],
        _conn: &mut DbConnection,
        _signals: &dyn Fn(&[Self::Output]) -> Vec<Signal>,
    ) -> Option<StoreResult<Vec<Self::Output>>>
    where
        Self: Sized,
    {
        None
    }
    /// Reports what the applied change means to others (jobs queued, killed or ended,
    /// notifications due); the writer publishes it once the batch commits. Most ops
    /// change nothing anyone waits for.
    fn effects(&self, _output: &Self::Output, _effects: &mut Effects) {}
}

/// The writer that commits an op (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// New jobs: inserts that no other write waits on.
    Submits,
    /// Everything that changes a job after its submit (claims, ends, kills, leases,
    /// maintenance) and the rest of the writes (products, webhooks, sessions).
    Jobs,
    /// Claims and outcomes of webhook deliveries.
    Deliveries,
}

impl Lane {
    const ALL: [Lane; 3] = [Lane::Submits, Lane::Jobs, Lane::Deliveries];

    /// What each connection of this lane's writer runs first: the deliveries' statements
    /// are planned on indexes for the whole session, so they need no settings per
    /// transaction and may run outside one (PostgreSQL; nothing on SQLite).
    fn connection_setup(self) -> Setup {
        match self {
            Lane::Deliveries => deliveries::plan_on_indexes,
            Lane::Submits | Lane::Jobs => |_| Ok(()),
        }
    }

    /// The writer thread's name (at most 15 bytes: what `top` and `perf` show).
    fn thread_name(self) -> &'static str {
        match self {
            Lane::Submits => "writer-submits",
            Lane::Jobs => "writer-jobs",
            Lane::Deliveries => "writer-delivery",
        }
    }

    /// The `writer` label of the lane's counters (`jobline_writer_*`).
    fn label(self) -> &'static str {
        match self {
            Lane::Submits => "submits",
            Lane::Jobs => "jobs",
            Lane::Deliveries => "deliveries",
        }
    }
}

/// The `writer` label of SQLite's one writer, which writes for every lane.
const ONE_WRITER: &str = "all";

/// A queued write whose answer waits for the commit.
trait Pending: Send + Any {
    /// Runs the write, in its own savepoint when asked; keeps the outcome and answers
    /// whether it succeeded. A panic of the op is its own failure. An op that already
    /// failed is not run again (its first error is its answer).
    fn run(&mut self, conn: &mut DbConnection, savepoint: bool, faults: &FailurePoints) -> bool;
    /// Runs this write and the writes of the same type right after it in `rest` at once
    /// ([`WriteOp::apply_all`]), with no savepoint; keeps their outcomes. Answers how many
    /// it ran (this one included) and whether all succeeded. A failure leaves no outcome
    /// but the one of an op whose failure point fired (its own failure, as in `run`).
    fn run_all(
        &mut self,
        rest: &mut [Box<dyn Pending>],
        conn: &mut DbConnection,
        faults: &FailurePoints,
    ) -> (usize, bool);
    /// Writes this write and the rest of its batch, all of its type, by
    /// [`WriteOp::apply_all_alone`], sending other nodes `to_send` of their effects, and
    /// keeps their outcomes once it succeeds. `None` when they cannot be written so (another type in the batch, an armed failure point
    /// left to the usual path, or the op's own choice); an error keeps no outcome. Either
    /// way nothing was written.
    fn run_alone(
        &mut self,
        rest: &mut [Box<dyn Pending>],
        conn: &mut DbConnection,
        faults: &FailurePoints,
        to_send: &dyn Fn(&Effects) -> Vec<Signal>,
    ) -> Option<StoreResult<()>>;
    /// For [`Pending::run_all`]: the queued write as its own type.
    fn as_any(&mut self) -> &mut dyn Any;
    /// Adds the effects of the write if its last run succeeded.
    fn effects(&self, into: &mut Effects);
    /// Answers the sender once the batch's fate is known.
    fn answer(self: Box<Self>, commit: &StoreResult<()>);
    /// The op's lane.
    fn lane(&self) -> Lane;
}

struct Queued<M: WriteOp> {
    op: M,
    outcome: Option<StoreResult<M::Output>>,
    reply: oneshot::Sender<StoreResult<M::Output>>,
}

impl<M: WriteOp> Queued<M> {
    /// This write and `rest`, all of its type (checked by the caller), as one run.
    fn with<'a>(&'a mut self, rest: &'a mut [Box<dyn Pending>]) -> Vec<&'a mut Queued<M>> {
        let mut run: Vec<&mut Queued<M>> = Vec::with_capacity(rest.len() + 1);
        run.push(self);
        for p in rest {
            run.push(p.as_any().downcast_mut().expect("checked type"));
        }
        run
    }
}

impl<M: WriteOp> Pending for Queued<M> {
    fn run(&mut self, conn: &mut DbConnection, savepoint: bool, faults: &FailurePoints) -> bool {
        if matches!(self.outcome, Some(Err(_))) {
            return false;
        }
        let op = &self.op;
        // In a savepoint, the panic is caught inside it, so the savepoint is rolled back
        // and the transaction stays usable for the rest of the batch.
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

    fn run_all(
        &mut self,
        rest: &mut [Box<dyn Pending>],
        conn: &mut DbConnection,
        faults: &FailurePoints,
    ) -> (usize, bool) {
        let same = rest
            .iter()
            .take_while(|p| (***p).type_id() == TypeId::of::<Self>())
            .count();
        if same == 0 {
            return (1, self.run(conn, false, faults));
        }
        let mut run = self.with(&mut rest[..same]);
        // A failure point fires for its own op alone, as in `run`.
        if let Some(point) = M::FAILURE_POINT {
            for q in run.iter_mut() {
                if catch_unwind(AssertUnwindSafe(|| faults.panic_if_armed(point))).is_err() {
                    let op = std::any::type_name::<M>();
                    log::error!("write op {op} panicked; the rest of its batch goes on");
                    q.outcome = Some(Err(StoreError::Database(format!("write op {op} panicked"))));
                    return (same + 1, false);
                }
            }
        }
        let ops: Vec<&M> = run.iter().map(|q| &q.op).collect();
        let applied =
            catch_unwind(AssertUnwindSafe(|| M::apply_all(&ops, conn))).unwrap_or_else(|_| {
                let op = std::any::type_name::<M>();
                log::error!("write ops {op} panicked together; run again one by one");
                Err(StoreError::Database(format!("write op {op} panicked")))
            });
        match applied {
            Ok(outputs) if outputs.len() == run.len() => {
                for (q, output) in run.into_iter().zip(outputs) {
                    q.outcome = Some(Ok(output));
                }
                (same + 1, true)
            }
            _ => (same + 1, false),
        }
    }

    fn run_alone(
        &mut self,
        rest: &mut [Box<dyn Pending>],
        conn: &mut DbConnection,
        faults: &FailurePoints,
        to_send: &dyn Fn(&Effects) -> Vec<Signal>,
    ) -> Option<StoreResult<()>> {
        let whole_run = rest.iter().all(|p| (**p).type_id() == TypeId::of::<Self>());
        if !whole_run || M::FAILURE_POINT.is_some_and(|point| faults.armed(point)) {
            return None;
        }
        let run = self.with(rest);
        let ops: Vec<&M> = run.iter().map(|q| &q.op).collect();
        let signals = |outputs: &[M::Output]| {
            let mut effects = Effects::default();
            for (op, output) in ops.iter().zip(outputs) {
                op.effects(output, &mut effects);
            }
            effects.dedup();
            to_send(&effects)
        };
        let written = catch_unwind(AssertUnwindSafe(|| {
            M::apply_all_alone(&ops, conn, &signals)
        }))
        .unwrap_or_else(|_| {
            let op = std::any::type_name::<M>();
            log::error!("write ops {op} panicked as one statement; run again the usual way");
            Some(Err(StoreError::Database(format!("write op {op} panicked"))))
        })?;
        Some(match written {
            Ok(outputs) if outputs.len() == run.len() => {
                for (q, output) in run.into_iter().zip(outputs) {
                    q.outcome = Some(Ok(output));
                }
                Ok(())
            }
            Ok(_) => Err(StoreError::Database(
                "a run answered the wrong count".into(),
            )),
            Err(e) => Err(e),
        })
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    fn effects(&self, into: &mut Effects) {
        if let Some(Ok(output)) = &self.outcome {
            self.op.effects(output, into);
        }
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

    fn lane(&self) -> Lane {
        M::LANE
    }
}

/// The handle to the writer threads: queues each write to its lane's thread and waits for
/// the answer (no actor mailbox in between: one channel send, one wake-up).
#[derive(Clone)]
pub struct StoreWriter {
    /// By [`Lane`]; on SQLite all three send to the one thread.
    lanes: [mpsc::Sender<Box<dyn Pending>>; 3],
}

impl StoreWriter {
    /// Starts the writer thread(s): one on SQLite, on `conn`; one per [`Lane`] on
    /// PostgreSQL, the first on `conn`, the others on connections of their own (each
    /// reopened when lost). What their batches commit is published to `publish`; other
    /// nodes hear of a queue's new jobs at most once per `wake_interval` and writer
    /// ([`WakePacer`]). Each writer counts its batches in `metrics`.
    pub fn start(
        conn: DbConnection,
        backend: Backend,
        batch_max: usize,
        wake_interval: Duration,
        faults: Arc<FailurePoints>,
        publish: Arc<dyn Publish>,
        metrics: &Metrics,
    ) -> StoreWriter {
        let batch_max = batch_max.max(1);
        // SQLite is one node: no one to signal.
        let wake_interval = if backend.is_postgres() {
            wake_interval
        } else {
            Duration::ZERO
        };
        let spawn = |link: Link, name: &str, label: &str| {
            let (tx, rx) = mpsc::channel::<Box<dyn Pending>>();
            let faults = faults.clone();
            let publish = publish.clone();
            let pacer = WakePacer::new(wake_interval);
            let meter = metrics.writer(label);
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || write_loop(link, rx, batch_max, pacer, &faults, &*publish, &meter))
                .expect("spawn writer thread");
            tx
        };
        let first = Link::new(conn, backend.clone(), faults.clone());
        let lanes = if backend.is_postgres() {
            let mut first = Some(first);
            Lane::ALL.map(|lane| {
                let link = first
                    .take()
                    .unwrap_or_else(|| Link::unopened(backend.clone(), faults.clone()))
                    .with_setup(lane.connection_setup());
                spawn(link, lane.thread_name(), lane.label())
            })
        } else {
            let one = spawn(first, "jobline-writer", ONE_WRITER);
            [one.clone(), one.clone(), one]
        };
        StoreWriter { lanes }
    }

    /// Queues a write on its lane and waits until it is committed (or failed).
    pub async fn write<M: WriteOp>(&self, op: M) -> StoreResult<M::Output> {
        let (reply, answer) = oneshot::channel();
        let queued = Box::new(Queued {
            op,
            outcome: None,
            reply,
        });
        self.lanes[M::LANE as usize]
            .send(queued)
            .map_err(|_| StoreError::Unavailable)?;
        answer.await.unwrap_or(Err(StoreError::Unavailable))
    }
}

fn write_loop(
    mut link: Link,
    rx: mpsc::Receiver<Box<dyn Pending>>,
    batch_max: usize,
    mut pacer: WakePacer,
    faults: &FailurePoints,
    publish: &dyn Publish,
    meter: &WriterMeter,
) {
    let mut batch: Vec<Box<dyn Pending>> = Vec::with_capacity(batch_max);
    loop {
        let next = match pacer.due() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(due) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
        };
        let first = match next {
            Ok(first) => first,
            Err(RecvTimeoutError::Timeout) => {
                send_owed_wake_ups(&mut link, &mut pacer);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        batch.push(first);
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // Where one thread writes for every lane (SQLite), the submits commit first, on
        // their own (module doc).
        let (submits, rest): (Vec<_>, Vec<_>) =
            batch.drain(..).partition(|p| p.lane() == Lane::Submits);
        for part in [submits, rest] {
            if !part.is_empty() {
                commit_and_answer(&mut link, part, &mut pacer, faults, publish, meter);
            }
        }
    }
}

/// The wake-ups no batch took within their interval, sent by themselves ([`WakePacer`]).
/// Should the database be out of reach, they are forgotten: other nodes' polls find the
/// jobs, as after any lost signal.
fn send_owed_wake_ups(link: &mut Link, pacer: &mut WakePacer) {
    let (nothing, now) = (Effects::default(), Instant::now());
    let Some(conn) = link.connection() else {
        pacer.forget_owed();
        return;
    };
    match signals::notify(conn, &pacer.signals(&nothing, now)) {
        Ok(()) => pacer.committed(&nothing, now),
        Err(e) => {
            log::warn!("owed wake-ups to other nodes not sent: {e}");
            link.lost_after_failure();
            pacer.forget_owed();
        }
    }
}

/// Commits a batch, answers its senders, counts it and publishes what it changed.
fn commit_and_answer(
    link: &mut Link,
    mut batch: Vec<Box<dyn Pending>>,
    pacer: &mut WakePacer,
    faults: &FailurePoints,
    publish: &dyn Publish,
    meter: &WriterMeter,
) {
    let now = Instant::now();
    let commit = match link.connection() {
        Some(conn) => commit_batch(conn, &mut batch, |e| pacer.signals(e, now), faults),
        None => Err(StoreError::Unavailable),
    };
    let (commit, effects) = match commit {
        Ok(effects) => {
            pacer.committed(&effects, now);
            (Ok(()), effects)
        }
        Err(_) if link.lost_after_failure() => (Err(StoreError::Unavailable), Effects::default()),
        Err(e) => (Err(e), Effects::default()),
    };
    meter.batch(batch.len(), now.elapsed());
    for pending in batch.drain(..) {
        pending.answer(&commit);
    }
    // Committed: published once the senders have their answers, so that what it wakes
    // (claims, webhook claims) tends to meet the senders' next writes in one batch.
    if !effects.is_empty() {
        publish.publish(&effects);
    }
}

/// Runs a batch in one transaction with no savepoint and commits it; when an op fails,
/// runs it again with a savepoint per op (module doc). Other nodes get `to_send` of the
/// committed ops' effects; answers those effects.
fn commit_batch(
    conn: &mut DbConnection,
    batch: &mut [Box<dyn Pending>],
    to_send: impl Fn(&Effects) -> Vec<Signal>,
    faults: &FailurePoints,
) -> StoreResult<Effects> {
    if let Some(effects) = commit_alone(conn, batch, &to_send, faults) {
        return Ok(effects);
    }
    let mut op_failed = false;
    let mut outcome = run_batch(conn, batch, false, &to_send, faults, &mut op_failed);
    if op_failed && batch.len() > 1 {
        op_failed = false;
        outcome = run_batch(conn, batch, true, &to_send, faults, &mut op_failed);
    }
    outcome.map_err(|e| {
        if !op_failed {
            log::error!("write batch of {} failed to commit: {e}", batch.len());
        }
        StoreError::from(e)
    })
}

/// Writes a batch that is one run of ops in one statement that commits by itself (module
/// doc); answers its effects, already sent to other nodes, or `None` when the batch could
/// not be written so or failed (then nothing of it was written).
fn commit_alone(
    conn: &mut DbConnection,
    batch: &mut [Box<dyn Pending>],
    to_send: &dyn Fn(&Effects) -> Vec<Signal>,
    faults: &FailurePoints,
) -> Option<Effects> {
    let (first, rest) = batch.split_first_mut()?;
    if let Err(e) = first.run_alone(rest, conn, faults, to_send)? {
        log::debug!(
            "a batch of {} written alone failed ({e}); run the usual way",
            batch.len()
        );
        return None;
    }
    let mut effects = Effects::default();
    for pending in batch.iter() {
        pending.effects(&mut effects);
    }
    effects.dedup();
    Some(effects)
}

/// One run of a batch. Without savepoints, the first op that fails rolls the batch back
/// and sets `op_failed`; with them, each failed op is rolled back to its own savepoint.
/// Answers the effects of the ops that succeeded, already sent to other nodes.
fn run_batch(
    conn: &mut DbConnection,
    batch: &mut [Box<dyn Pending>],
    savepoints: bool,
    to_send: &dyn Fn(&Effects) -> Vec<Signal>,
    faults: &FailurePoints,
    op_failed: &mut bool,
) -> Result<Effects, diesel::result::Error> {
    conn.transaction(|c| {
        if savepoints {
            for pending in batch.iter_mut() {
                pending.run(c, true, faults);
            }
        } else {
            let mut next = 0;
            while let Some((first, rest)) = batch[next..].split_first_mut() {
                let (ran, ok) = first.run_all(rest, c, faults);
                if !ok {
                    *op_failed = true;
                    return Err(diesel::result::Error::RollbackTransaction);
                }
                next += ran;
            }
        }
        let mut effects = Effects::default();
        for pending in batch.iter() {
            pending.effects(&mut effects);
        }
        effects.dedup();
        // Other nodes hear of it once, exactly when it commits.
        signals::notify(c, &to_send(&effects))?;
        Ok(effects)
    })
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
