//! The writer's guards, on the real write loop and a real SQLite file (PostgreSQL where
//! the backends differ): a batch runs once
//! with no savepoint unless an op fails, then again with one per op; a panicking op
//! fails alone and the rest of its batch commits; a lost connection answers the batch
//! `Unavailable` and the next batch runs on a new connection; what a batch changed is
//! published once per transaction, after it commits, and only for the ops that committed;
//! on SQLite a batch's submits commit first, on their own.

use super::*;
use diesel::connection::SimpleConnection;
use diesel::sql_types::BigInt;
use diesel::RunQueryDsl;

/// Inserts a number into the test table.
struct Insert(i64);

impl WriteOp for Insert {
    type Output = ();
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<()> {
        conn.batch_execute(&format!("INSERT INTO t VALUES ({})", self.0))?;
        Ok(())
    }
}

/// Writes nothing.
struct Nothing;

impl WriteOp for Nothing {
    type Output = ();
    fn apply(&self, _: &mut DbConnection) -> StoreResult<()> {
        Ok(())
    }
}

/// A write op with a bug.
struct Panics;

impl WriteOp for Panics {
    type Output = ();
    fn apply(&self, _: &mut DbConnection) -> StoreResult<()> {
        panic!("a bug in a write op");
    }
}

/// Holds the loop in its own batch until released, so that the ops queued meanwhile form
/// the next batch together.
struct Gate {
    reached: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
}

impl WriteOp for Gate {
    type Output = ();
    fn apply(&self, _: &mut DbConnection) -> StoreResult<()> {
        self.reached.send(()).unwrap();
        self.release.recv().unwrap();
        Ok(())
    }
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

type Answer = oneshot::Receiver<StoreResult<()>>;

/// Keeps what the writer publishes, one entry per publication.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<Effects>>);

impl Publish for Recorder {
    fn publish(&self, effects: &Effects) {
        self.0.lock().unwrap().push(effects.clone());
    }
}

/// A running write loop on a fresh database with table `t`.
struct Harness {
    tx: mpsc::Sender<Box<dyn Pending>>,
    backend: Backend,
    faults: Arc<FailurePoints>,
    published: Arc<Recorder>,
    _db: crate::bench::database::BenchDatabase,
}

impl Harness {
    /// On a fresh SQLite file.
    fn new() -> Harness {
        Harness::on(None)
    }

    /// On a fresh SQLite file (`server` None) or a fresh PostgreSQL database.
    fn on(server: Option<String>) -> Harness {
        Harness::paced(server, Duration::ZERO)
    }

    /// As [`Harness::on`], waking other nodes at most once per `wake_interval`.
    fn paced(server: Option<String>, wake_interval: Duration) -> Harness {
        let db = crate::bench::database::BenchDatabase::create(server.as_deref()).unwrap();
        let backend = Backend::from_url(&db.url).unwrap();
        let mut conn = backend.establish().unwrap();
        crate::db::migrate(&mut conn).unwrap();
        conn.batch_execute("CREATE TABLE t (n BIGINT NOT NULL)")
            .unwrap();
        let faults = Arc::new(FailurePoints::default());
        let (tx, rx) = mpsc::channel();
        let link = Link::new(conn, backend.clone(), faults.clone());
        let loop_faults = faults.clone();
        let published = Arc::new(Recorder::default());
        let publish = published.clone();
        let pacer = WakePacer::new(wake_interval);
        std::thread::spawn(move || {
            let meter = WriterMeter::default();
            write_loop(link, rx, 100, pacer, &loop_faults, &*publish, &meter)
        });
        Harness {
            tx,
            backend,
            faults,
            published,
            _db: db,
        }
    }

    /// What was published since the last call. The loop publishes a batch's effects
    /// after answering it and before it takes the next batch, so an answered op behind
    /// them all comes after every publication.
    fn published(&self) -> Vec<Effects> {
        let (behind, answer) = queue(Nothing);
        self.tx.send(behind).unwrap();
        answer.blocking_recv().unwrap().unwrap();
        std::mem::take(&mut *self.published.0.lock().unwrap())
    }

    /// Runs `ops` as one batch, arming `fault` just before, and answers what each got.
    fn batch(&self, ops: Vec<MakeOp>, fault: Option<FailurePoint>) -> Vec<StoreResult<()>> {
        let (queued, answers): (Vec<_>, Vec<_>) = ops.into_iter().map(|make| make()).unzip();
        self.gated(queued, fault);
        answers
            .into_iter()
            .map(|a| a.blocking_recv().unwrap())
            .collect()
    }

    /// Runs `ops` as one batch and answers what each got.
    fn answers<M: WriteOp>(&self, ops: Vec<M>) -> Vec<StoreResult<M::Output>> {
        let (queued, answers): (Vec<_>, Vec<_>) = ops.into_iter().map(queue).unzip();
        self.gated(queued, None);
        answers
            .into_iter()
            .map(|a| a.blocking_recv().unwrap())
            .collect()
    }

    /// Queues `queued` while the loop is held, so that they form one batch.
    fn gated(&self, queued: Vec<Box<dyn Pending>>, fault: Option<FailurePoint>) {
        let (reached, at_gate) = mpsc::channel();
        let (open, release) = mpsc::channel();
        let (gate, gate_answer) = queue(Gate { reached, release });
        self.tx.send(gate).unwrap();
        at_gate.recv().unwrap();
        for pending in queued {
            self.tx.send(pending).unwrap();
        }
        if let Some(point) = fault {
            self.faults.arm(point);
        }
        open.send(()).unwrap();
        assert_eq!(gate_answer.blocking_recv().unwrap(), Ok(()));
    }

    fn rows(&self) -> Vec<i64> {
        let mut conn = self.backend.establish().unwrap();
        diesel::sql_query("SELECT n FROM t ORDER BY n")
            .load::<Row>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|r| r.n)
            .collect()
    }
}

/// An op to queue, made when the batch is sent.
type MakeOp = Box<dyn FnOnce() -> (Box<dyn Pending>, Answer)>;

fn op<M: WriteOp<Output = ()>>(op: M) -> MakeOp {
    Box::new(move || queue(op))
}

/// An op as the writer queues it, and where its answer comes.
fn queue<M: WriteOp>(op: M) -> (Box<dyn Pending>, oneshot::Receiver<StoreResult<M::Output>>) {
    let (reply, answer) = oneshot::channel();
    let queued: Box<dyn Pending> = Box::new(Queued {
        op,
        outcome: None,
        reply,
    });
    (queued, answer)
}

/// Inserts a number, then fails on its own (as a unique violation would).
struct InsertThenFail(i64);

impl WriteOp for InsertThenFail {
    type Output = ();
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<()> {
        conn.batch_execute(&format!("INSERT INTO t VALUES ({})", self.0))?;
        Err(StoreError::Conflict("test-conflict"))
    }
}

#[test]
fn a_failing_op_answers_its_own_error_and_does_not_poison_its_batch() {
    let h = Harness::new();
    let answers = h.batch(
        vec![op(Insert(1)), op(InsertThenFail(5)), op(Insert(2))],
        None,
    );
    assert_eq!(
        answers,
        [Ok(()), Err(StoreError::Conflict("test-conflict")), Ok(())]
    );
    // Its own change is rolled back with it; the others' are committed.
    assert_eq!(h.rows(), [1, 2]);
}

/// Inserts a number and counts its runs.
struct Counted(i64, Arc<std::sync::atomic::AtomicUsize>);

impl WriteOp for Counted {
    type Output = ();
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<()> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        conn.batch_execute(&format!("INSERT INTO t VALUES ({})", self.0))?;
        Ok(())
    }
}

#[test]
fn a_failing_op_makes_its_batch_run_again_with_savepoints_and_only_then() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let h = Harness::new();
    let runs: Vec<Arc<AtomicUsize>> = (0..4).map(|_| Arc::default()).collect();
    let counted = |i: usize| op(Counted(i as i64 + 1, runs[i].clone()));
    // No op fails: each runs once.
    assert_eq!(
        h.batch(vec![counted(0), counted(1)], None),
        [Ok(()), Ok(())]
    );
    assert_eq!((runs[0].load(SeqCst), runs[1].load(SeqCst)), (1, 1));

    // The op before the failing one ran in the rolled-back first run and again in the
    // re-run; the one after it ran only in the re-run; the failing op ran once.
    let answers = h.batch(vec![counted(2), op(InsertThenFail(9)), counted(3)], None);
    assert_eq!(
        answers,
        [Ok(()), Err(StoreError::Conflict("test-conflict")), Ok(())]
    );
    assert_eq!((runs[2].load(SeqCst), runs[3].load(SeqCst)), (2, 1));
    // Nothing of the first run stands twice, nothing of the failing op stands at all.
    assert_eq!(h.rows(), [1, 2, 3, 4]);
}

/// Inserts a number; a run of them is one multi-row insert, and counts those runs. A
/// negative number fails on its own (as a constraint would), alone or in a run.
struct InsertAll(i64, Arc<std::sync::atomic::AtomicUsize>);

impl WriteOp for InsertAll {
    type Output = ();
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<()> {
        Self::apply_all(&[self], conn).map(|_| ())
    }
    fn apply_all(ops: &[&Self], conn: &mut DbConnection) -> StoreResult<Vec<()>> {
        if ops.len() > 1 {
            ops[0].1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        if ops.iter().any(|op| op.0 < 0) {
            return Err(StoreError::Conflict("negative"));
        }
        let values: Vec<String> = ops.iter().map(|op| format!("({})", op.0)).collect();
        conn.batch_execute(&format!("INSERT INTO t VALUES {}", values.join(", ")))?;
        Ok(vec![(); ops.len()])
    }
}

#[test]
fn a_run_of_one_op_type_is_applied_at_once_and_a_failure_in_it_stays_its_own() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let h = Harness::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let all = |n: i64| op(InsertAll(n, runs.clone()));
    // Two runs of the type, split by another op; the second run is a single op.
    let answers = h.batch(vec![all(1), all(2), all(3), op(Insert(10)), all(4)], None);
    assert_eq!(answers, [Ok(()), Ok(()), Ok(()), Ok(()), Ok(())]);
    assert_eq!(
        runs.load(SeqCst),
        1,
        "one multi-row insert for the first run"
    );
    assert_eq!(h.rows(), [1, 2, 3, 4, 10]);

    // A failing op in a run: the run fails, the batch runs again op by op, and only the
    // failing op answers an error.
    let answers = h.batch(vec![all(5), all(-1), all(6)], None);
    assert_eq!(
        answers,
        [Ok(()), Err(StoreError::Conflict("negative")), Ok(())]
    );
    assert_eq!(h.rows(), [1, 2, 3, 4, 5, 6, 10]);
}

/// A batch of submits: those without a key are one insert, those with a key answer one job
/// per key, in the batch and across batches; a job id taken fails its own op alone.
#[test]
fn a_batch_of_submits_answers_one_job_per_idempotency_key() {
    use super::super::{SubmitJob, Submitted};
    use diesel::QueryDsl;
    let h = Harness::new();
    let submit = |key: Option<&str>| SubmitJob {
        job: pending_job(),
        idempotency_key: key.map(str::to_string),
    };
    let run = |ops: Vec<SubmitJob>| h.answers(ops);
    let first = run(vec![submit(Some("old"))]).remove(0).unwrap();
    let ops = vec![
        submit(None),
        submit(Some("k")),
        submit(None),
        submit(Some("k")),
        submit(Some("old")),
        submit(Some("other")),
    ];
    let ids: Vec<String> = ops.iter().map(|op| op.job.id.clone()).collect();
    let answers: Vec<Submitted> = run(ops).into_iter().map(Result::unwrap).collect();
    let got: Vec<(&str, bool)> = answers
        .iter()
        .map(|a| (a.job_id.as_str(), a.created))
        .collect();
    assert_eq!(
        got,
        [
            (ids[0].as_str(), true),
            (ids[1].as_str(), true),
            (ids[2].as_str(), true),
            (ids[1].as_str(), false),
            (first.job_id.as_str(), false),
            (ids[5].as_str(), true),
        ]
    );
    // A job id already taken fails its own op (the handler retries it with a new id).
    let mut taken = submit(None);
    taken.job.id = ids[0].clone();
    let answers = run(vec![submit(None), taken, submit(Some("k"))]);
    assert!(answers[0].as_ref().is_ok_and(|a| a.created));
    assert_eq!(
        answers[1].as_ref().unwrap_err(),
        &StoreError::Conflict("job-insert-raced")
    );
    assert_eq!(answers[2].as_ref().unwrap().job_id, ids[1]);
    let mut conn = h.backend.establish().unwrap();
    let count: i64 = crate::db::schema::jobs::table
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(count, 1 + 4 + 1);
}

/// On PostgreSQL a batch of submits without idempotency keys is one statement that
/// commits by itself and wakes the other nodes from inside it: each batch's jobs are
/// committed when their answers come, a listener hears one `wake:snapshots` per batch,
/// and a job id taken in such a batch fails its own op alone (the batch runs again the
/// usual way and the rest commit, signalled once). An armed failure point is left to the
/// usual path, where the panicking op fails alone.
#[test]
fn postgres_a_batch_of_submits_without_keys_is_written_and_signalled_alone() {
    use super::super::SubmitJob;
    use crate::db::schema::jobs;
    use diesel::QueryDsl;
    let h = Harness::on(Some(crate::bench::database::test_server()));
    let DbConnection::Pg(mut listener) = h.backend.establish().unwrap() else {
        unreachable!("a PostgreSQL harness")
    };
    listener.batch_execute("LISTEN jobline").unwrap();
    let mut heard = || -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            // A statement reads what arrived; signals come only with a commit.
            listener.batch_execute("SELECT 1").unwrap();
            let got: Vec<String> = listener
                .notifications_iter()
                .map(|n| n.unwrap().payload)
                .collect();
            if !got.is_empty() || std::time::Instant::now() > deadline {
                return got;
            }
            std::thread::yield_now();
        }
    };
    let submit = || SubmitJob {
        job: pending_job(),
        idempotency_key: None,
    };
    let run = |ops: Vec<SubmitJob>| h.answers(ops);
    let count = || -> i64 {
        let mut conn = h.backend.establish().unwrap();
        jobs::table.count().get_result(&mut conn).unwrap()
    };
    let ops = vec![submit(), submit(), submit()];
    let ids: Vec<String> = ops.iter().map(|op| op.job.id.clone()).collect();
    let answers = run(ops);
    assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|a| a.created)));
    assert_eq!(count(), 3, "committed before the answers");
    assert_eq!(heard(), ["wake:snapshots"], "one signal for the batch");
    let mut taken = submit();
    taken.job.id = ids[1].clone();
    let answers = run(vec![submit(), taken, submit()]);
    assert!(answers[0].is_ok() && answers[2].is_ok());
    assert_eq!(
        answers[1].as_ref().unwrap_err(),
        &StoreError::Conflict("job-insert-raced")
    );
    assert_eq!(count(), 5);
    assert_eq!(heard(), ["wake:snapshots"]);
    let (q1, a1) = queue(submit());
    let (q2, a2) = queue(submit());
    h.gated(vec![q1, q2], Some(FailurePoint::SubmitWritePanics));
    let (a1, a2) = (a1.blocking_recv().unwrap(), a2.blocking_recv().unwrap());
    assert!(a1.is_err() && a2.is_ok(), "the first op panicked alone");
    assert_eq!(count(), 6);
    assert_eq!(heard(), ["wake:snapshots"]);
}

/// A pending snapshot job of e-shop 1.
fn pending_job() -> crate::db::jobs::Job {
    queued_in("snapshots")
}

/// A pending job of e-shop 1 in `queue`.
fn queued_in(queue: &str) -> crate::db::jobs::Job {
    crate::db::jobs::pending_for_tests(queue)
}

#[test]
fn one_batch_mixes_submits_completions_and_kills() {
    use super::super::{FinishJob, KillJob, QueueStep, SubmitJob};
    use crate::db::jobs::{self, Outcome};
    use crate::model::{time, Zone};
    let h = Harness::new();
    let mut conn = h.backend.establish().unwrap();
    let (to_kill, to_finish) = (pending_job(), pending_job());
    for job in [&to_kill, &to_finish] {
        jobs::insert(&mut conn, job, None, time::SECOND).unwrap();
    }
    let now = time::now();
    // Claims the oldest: `to_kill` was inserted first, so claim both and hand one back.
    let claimed = jobs::claim(
        &mut conn,
        "snapshots",
        "n",
        2,
        10,
        now + time::SECOND * 30,
        now,
    );
    assert_eq!(claimed.unwrap().len(), 2);
    assert!(jobs::release(&mut conn, &to_kill.id, 1, "")
        .unwrap()
        .is_some());

    let (new_job, other_new) = (pending_job(), pending_job());
    let zone = Zone::utc();
    let kill = |id: &str| KillJob {
        eshop_id: 1,
        id: id.to_string(),
        zone,
        cutoff: 0,
    };
    let finish = |attempt| {
        QueueStep::End(FinishJob {
            id: to_finish.id.clone(),
            eshop_id: 1,
            attempt,
            outcome: Outcome::Failed,
            log: "failed: test\n".into(),
            zone,
            result_ttl: time::SECOND,
            claim_next: None,
            handoff: None,
        })
    };
    let submit = |job: &jobs::Job| SubmitJob {
        job: job.clone(),
        idempotency_key: None,
    };
    let (q1, submitted) = queue(submit(&new_job));
    let (q2, killed) = queue(kill(&to_kill.id));
    let (q3, finished) = queue(finish(1));
    let (q4, stale) = queue(finish(1));
    let (q5, unknown) = queue(kill("nosuch1"));
    let (q6, submitted_too) = queue(submit(&other_new));
    h.gated(vec![q1, q2, q3, q4, q5, q6], None);

    assert!(submitted.blocking_recv().unwrap().unwrap().created);
    assert_eq!(killed.blocking_recv().unwrap().unwrap().status, "killed");
    assert!(finished.blocking_recv().unwrap().unwrap().ended().recorded);
    // The same attempt's second end, later in the same batch, is refused by the fence.
    assert!(!stale.blocking_recv().unwrap().unwrap().ended().recorded);
    assert_eq!(
        unknown.blocking_recv().unwrap().unwrap_err(),
        StoreError::NotFound
    );
    assert!(submitted_too.blocking_recv().unwrap().unwrap().created);

    let status = |conn: &mut DbConnection, id: &str| jobs::get(conn, 1, id, 0).unwrap().status;
    assert_eq!(status(&mut conn, &new_job.id), "pending");
    assert_eq!(status(&mut conn, &other_new.id), "pending");
    assert_eq!(status(&mut conn, &to_kill.id), "killed");
    assert_eq!(status(&mut conn, &to_finish.id), "failed");
    for id in [&to_kill.id, &to_finish.id] {
        let n = crate::db::notifications::count_for_instance(&mut conn, id).unwrap();
        assert_eq!(n, 1, "one job:finished for {id}");
    }

    // Published once for each transaction of the batch (the submits commit first, on
    // their own), each effect once: the two submits wake their queue once, the kill stops
    // and ends its job, the recorded end ends its job (their notifications, handed to no
    // dispatcher, are due for a claim); the refused end and the failed kill publish
    // nothing.
    let mut ended = vec![to_kill.id.clone(), to_finish.id.clone()];
    ended.sort();
    assert_eq!(
        h.published(),
        [
            Effects {
                queued: vec!["snapshots".into()],
                ..Effects::default()
            },
            Effects {
                killed: vec![to_kill.id.clone()],
                ended,
                notifications_due: true,
                ..Effects::default()
            }
        ]
    );
}

/// SQLite writes every lane on one thread: the submits of a batch commit first, on their
/// own, and are answered before the rest of the batch (job ends, webhook rounds) is
/// written, so that a 202 does not wait for them.
#[test]
fn sqlite_submits_are_answered_before_the_rest_of_their_batch() {
    use super::super::SubmitJob;
    let h = Harness::new();
    let (reached, at_gate) = mpsc::channel();
    let (open, release) = mpsc::channel();
    // Queued first, in the jobs' lane: it holds the rest of the batch until released.
    let (held, held_answer) = queue(Gate { reached, release });
    let (submit, submitted) = queue(SubmitJob {
        job: pending_job(),
        idempotency_key: None,
    });
    h.gated(vec![held, submit], None);
    at_gate.recv().unwrap();
    let mut submitted = submitted;
    let answer = submitted
        .try_recv()
        .expect("the submit is answered while the rest of its batch is held");
    assert!(answer.unwrap().created);
    open.send(()).unwrap();
    assert_eq!(held_answer.blocking_recv().unwrap(), Ok(()));
    assert_eq!(
        h.published(),
        [Effects {
            queued: vec!["snapshots".into()],
            ..Effects::default()
        }]
    );
}

/// A run of queue steps in one batch claims once for all the workers it serves: the
/// workers its ends free and the queue's idle ones. Each asking step gets its own jobs, in
/// the run's order and up to what it asked, none twice, and the per-e-shop cap holds over
/// the run.
#[test]
fn a_run_of_ends_and_claims_serves_each_worker_from_one_claim() {
    use super::super::{ClaimJobs, FinishJob, QueueStep};
    use crate::db::jobs::{self, Outcome};
    use crate::model::{time, Zone};
    let h = Harness::new();
    let mut conn = h.backend.establish().unwrap();
    let running: Vec<_> = (0..3).map(|_| pending_job()).collect();
    for job in &running {
        jobs::insert(&mut conn, job, None, time::SECOND).unwrap();
    }
    let now = time::now();
    let lease = now + 30 * time::SECOND;
    let claimed = jobs::claim(&mut conn, "snapshots", "n", 3, 10, lease, now).unwrap();
    assert_eq!(claimed.len(), 3);
    let waiting: Vec<_> = (0..6).map(|_| pending_job()).collect();
    for job in &waiting {
        jobs::insert(&mut conn, job, None, time::SECOND).unwrap();
    }
    // At most 4 running jobs of the e-shop: the 3 ends free 3 places, so 4 of the 6
    // waiting jobs start.
    let claim = |limit| ClaimJobs {
        queue: "snapshots".into(),
        node: "n".into(),
        limit,
        max_per_eshop: 4,
        lease: 30 * time::SECOND,
    };
    let end = |job: &crate::db::jobs::Job| {
        QueueStep::End(FinishJob {
            id: job.id.clone(),
            eshop_id: 1,
            attempt: 1,
            outcome: Outcome::Failed,
            log: "failed: test\n".into(),
            zone: Zone::utc(),
            result_ttl: time::SECOND,
            claim_next: Some(claim(1)),
            handoff: None,
        })
    };
    let steps = vec![
        end(&running[0]),
        QueueStep::Claim(claim(2)),
        end(&running[1]),
        end(&running[2]),
    ];
    let done: Vec<_> = h.answers(steps).into_iter().map(Result::unwrap).collect();
    let mut done = done.into_iter();
    let first = done.next().unwrap().ended();
    let idle = done.next().unwrap().claimed();
    let (second, third) = (done.next().unwrap().ended(), done.next().unwrap().ended());
    assert!(first.recorded && second.recorded && third.recorded);
    assert!(
        first.next.is_some(),
        "the first asking step is served first"
    );
    assert_eq!(
        idle.len(),
        2,
        "the queue's claim gets what it asked: {idle:?}"
    );
    assert!(second.next.is_some());
    assert!(
        third.next.is_none(),
        "the cap of 4 leaves nothing for the last"
    );
    let mut started: Vec<String> = idle.iter().map(|j| j.id.clone()).collect();
    started.extend(
        [&first, &second]
            .iter()
            .map(|f| f.next.as_ref().unwrap().id.clone()),
    );
    started.sort();
    started.dedup();
    assert_eq!(started.len(), 4, "no job twice");
    assert!(started.iter().all(|id| waiting.iter().any(|w| &w.id == id)));
    let pending = waiting
        .iter()
        .filter(|w| jobs::get(&mut conn, 1, &w.id, 0).unwrap().status == "pending")
        .count();
    assert_eq!(pending, 2);
}

#[test]
fn only_the_ops_that_commit_publish_their_effects() {
    use super::super::{KillJob, SubmitJob};
    let h = Harness::new();
    let submit = |queue: &str| SubmitJob {
        job: queued_in(queue),
        idempotency_key: None,
    };
    let kill_unknown = KillJob {
        eshop_id: 1,
        id: "nosuch1".into(),
        zone: crate::model::Zone::utc(),
        cutoff: 0,
    };
    // The kill fails after the first submit ran: the batch runs again with savepoints,
    // and what the first run did is not published twice.
    let (q1, a1) = queue(submit("snapshots"));
    let (q2, a2) = queue(kill_unknown);
    let (q3, a3) = queue(submit("images"));
    let (q4, a4) = queue(submit("snapshots"));
    h.gated(vec![q1, q2, q3, q4], None);
    assert!(a1.blocking_recv().unwrap().is_ok());
    assert_eq!(
        a2.blocking_recv().unwrap().unwrap_err(),
        StoreError::NotFound
    );
    assert!(a3.blocking_recv().unwrap().is_ok());
    assert!(a4.blocking_recv().unwrap().is_ok());
    assert_eq!(
        h.published(),
        [Effects {
            queued: vec!["snapshots".into(), "images".into()],
            ..Effects::default()
        }]
    );

    // A batch that does not commit publishes nothing.
    let (q5, a5) = queue(submit("snapshots"));
    h.gated(vec![q5], Some(FailurePoint::WriterConnectionLost));
    assert_eq!(
        a5.blocking_recv().unwrap().unwrap_err(),
        StoreError::Unavailable
    );
    // A panicking submit publishes nothing; a batch with no effects publishes nothing.
    let (q6, a6) = queue(submit("snapshots"));
    h.gated(vec![q6], Some(FailurePoint::SubmitWritePanics));
    assert!(a6.blocking_recv().unwrap().is_err());
    assert_eq!(h.batch(vec![op(Insert(1))], None), [Ok(())]);
    assert_eq!(h.published(), []);
}

#[test]
fn a_panicking_op_fails_alone_and_the_rest_of_its_batch_commits() {
    let h = Harness::new();
    let answers = h.batch(vec![op(Insert(1)), op(Panics), op(Insert(2))], None);
    assert_eq!(answers[0], Ok(()));
    assert!(
        matches!(&answers[1], Err(StoreError::Database(e)) if e.contains("panicked")),
        "{:?}",
        answers[1]
    );
    assert_eq!(answers[2], Ok(()));
    assert_eq!(h.batch(vec![op(Insert(3))], None), [Ok(())]);
    assert_eq!(h.rows(), [1, 2, 3]);
}

#[test]
fn a_panicking_op_alone_is_rolled_back_and_the_writer_goes_on() {
    let h = Harness::new();
    assert!(h.batch(vec![op(Panics)], None)[0].is_err());
    assert_eq!(
        h.batch(vec![op(Insert(1)), op(Insert(2))], None),
        [Ok(()), Ok(())]
    );
    assert_eq!(h.rows(), [1, 2]);
}

#[test]
fn a_lost_connection_answers_the_batch_unavailable_and_the_next_reconnects() {
    let h = Harness::new();
    let lost = h.batch(
        vec![op(Insert(1)), op(Insert(2))],
        Some(FailurePoint::WriterConnectionLost),
    );
    assert_eq!(
        lost,
        [Err(StoreError::Unavailable), Err(StoreError::Unavailable)]
    );
    assert_eq!(h.batch(vec![op(Insert(3))], None), [Ok(())]);
    assert_eq!(h.rows(), [3]);
}

/// Inserts a number on the submits' lane.
struct InsertOnSubmits(i64);

impl WriteOp for InsertOnSubmits {
    type Output = ();
    const LANE: Lane = Lane::Submits;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<()> {
        conn.batch_execute(&format!("INSERT INTO t VALUES ({})", self.0))?;
        Ok(())
    }
}

/// Holds the jobs' lane in a batch, then submits on the submits' lane. On PostgreSQL the
/// submit commits while the jobs' lane is still held (lanes commit side by side); on
/// SQLite it waits for the one writer, so nothing is committed until the gate opens. Each
/// writer counts its batches, their ops and its busy time (the held batch's included).
fn lanes_commit_side_by_side_only_on_postgres(server: Option<String>) {
    let db = crate::bench::database::BenchDatabase::create(server.as_deref()).unwrap();
    let backend = Backend::from_url(&db.url).unwrap();
    let mut conn = backend.establish().unwrap();
    crate::db::migrate(&mut conn).unwrap();
    conn.batch_execute("CREATE TABLE t (n BIGINT NOT NULL)")
        .unwrap();
    let publish: Arc<dyn Publish> = Arc::new(Recorder(Default::default()));
    let metrics = Metrics::new();
    let writer = StoreWriter::start(
        conn,
        backend.clone(),
        100,
        Duration::ZERO,
        Arc::default(),
        publish,
        &metrics,
    );
    let rows = || {
        let mut conn = backend.establish().unwrap();
        diesel::sql_query("SELECT n FROM t ORDER BY n")
            .load::<Row>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|r| r.n)
            .collect::<Vec<_>>()
    };
    let (reached, at_gate) = mpsc::channel();
    let (open, release) = mpsc::channel();
    let gated = {
        let writer = writer.clone();
        std::thread::spawn(move || run(writer.write(Gate { reached, release })))
    };
    at_gate.recv().unwrap();
    let held = Instant::now();
    let submit = {
        let writer = writer.clone();
        std::thread::spawn(move || run(writer.write(InsertOnSubmits(1))))
    };
    let held_for = if backend.is_postgres() {
        assert_eq!(submit.join().unwrap(), Ok(()));
        assert_eq!(rows(), [1], "committed while the jobs' lane is held");
        let held_for = held.elapsed().as_secs_f64();
        open.send(()).unwrap();
        held_for
    } else {
        assert_eq!(rows(), Vec::<i64>::new(), "the one writer is held");
        let held_for = held.elapsed().as_secs_f64();
        open.send(()).unwrap();
        assert_eq!(submit.join().unwrap(), Ok(()));
        assert_eq!(rows(), [1]);
        held_for
    };
    assert_eq!(gated.join().unwrap(), Ok(()));

    let counted = crate::bench::writers::parse(&metrics.render(None));
    let (busiest, others) = if backend.is_postgres() {
        (&counted["jobs"], Some(&counted["submits"]))
    } else {
        (&counted["all"], None)
    };
    assert!(busiest.busy_s >= held_for, "{busiest:?} held {held_for} s");
    match others {
        Some(submits) => {
            assert_eq!((busiest.batches, busiest.ops), (1, 1));
            assert_eq!((submits.batches, submits.ops), (1, 1));
            assert!(submits.busy_s < held_for, "{submits:?} held {held_for} s");
        }
        None => assert_eq!((busiest.batches, busiest.ops), (2, 2), "{counted:?}"),
    }
}

/// Runs a future to its end on a runtime of its own.
fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn sqlite_lanes_share_the_one_writer() {
    lanes_commit_side_by_side_only_on_postgres(None);
}

#[test]
fn postgres_lanes_commit_side_by_side() {
    lanes_commit_side_by_side_only_on_postgres(Some(crate::bench::database::test_server()));
}

/// Reads whether PostgreSQL may plan a table scan, on the deliveries' lane.
struct ScansOnDeliveries;

impl WriteOp for ScansOnDeliveries {
    type Output = String;
    const LANE: Lane = Lane::Deliveries;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<String> {
        scans_setting(conn)
    }
}

/// The same on the jobs' lane.
struct ScansOnJobs;

impl WriteOp for ScansOnJobs {
    type Output = String;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<String> {
        scans_setting(conn)
    }
}

fn scans_setting(conn: &mut DbConnection) -> StoreResult<String> {
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let DbConnection::Pg(c) = conn else {
        unreachable!("a PostgreSQL writer")
    };
    let s: Setting =
        diesel::sql_query("SELECT current_setting('enable_seqscan') AS value").get_result(c)?;
    Ok(s.value)
}

/// The deliveries' lane plans on indexes for its whole session, on its first connection
/// and on the one it opens after losing it; the other lanes plan as PostgreSQL likes.
#[test]
fn postgres_the_deliveries_lane_plans_on_indexes_on_every_connection() {
    let server = crate::bench::database::test_server();
    let db = crate::bench::database::BenchDatabase::create(Some(&server)).unwrap();
    let backend = Backend::from_url(&db.url).unwrap();
    let conn = backend.establish().unwrap();
    let faults = Arc::new(FailurePoints::default());
    let publish: Arc<dyn Publish> = Arc::new(Recorder(Default::default()));
    let writer = StoreWriter::start(
        conn,
        backend,
        100,
        Duration::ZERO,
        faults.clone(),
        publish,
        &Metrics::new(),
    );
    assert_eq!(run(writer.write(ScansOnDeliveries)).unwrap(), "off");
    assert_eq!(run(writer.write(ScansOnJobs)).unwrap(), "on");
    faults.arm(FailurePoint::WriterConnectionLost);
    assert_eq!(
        run(writer.write(ScansOnDeliveries)),
        Err(StoreError::Unavailable)
    );
    assert_eq!(run(writer.write(ScansOnDeliveries)).unwrap(), "off");
}

/// Writes nothing and reports jobs queued in queue `q`.
struct QueuesJobs;

impl WriteOp for QueuesJobs {
    type Output = ();
    fn apply(&self, _: &mut DbConnection) -> StoreResult<()> {
        Ok(())
    }
    fn effects(&self, _: &(), effects: &mut Effects) {
        effects.job_queued("q");
    }
}

/// Three batches that queue jobs, one right after another: other nodes hear the first at
/// once and the rest in one owed wake-up that the writer sends by itself when the interval
/// ends (no batch comes to carry it); this node hears every batch.
#[test]
fn postgres_other_nodes_are_woken_once_per_interval_and_an_owed_wake_up_goes_by_itself() {
    use diesel::PgConnection;
    let interval = Duration::from_millis(400);
    let h = Harness::paced(Some(crate::bench::database::test_server()), interval);
    let DbConnection::Pg(mut listener) = h.backend.establish().unwrap() else {
        unreachable!("a PostgreSQL harness")
    };
    listener
        .batch_execute(&format!("LISTEN {}", signals::CHANNEL))
        .unwrap();
    let mut heard: Vec<(String, Instant)> = Vec::new();
    let mut hear = |listener: &mut PgConnection, until: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while heard.len() < until && Instant::now() < deadline {
            for n in listener.notifications_iter() {
                heard.push((n.unwrap().payload, Instant::now()));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let first = Instant::now();
    for _ in 0..3 {
        assert_eq!(h.answers(vec![QueuesJobs]), [Ok(())]);
    }
    hear(&mut listener, 2);
    let payloads: Vec<&str> = heard.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        payloads,
        ["wake:q", "wake:q"],
        "the held-back wake-up never came"
    );
    assert!(
        heard[1].1.duration_since(first) >= interval - Duration::from_millis(50),
        "the second wake-up came {:?} after the first batch, within the interval",
        heard[1].1.duration_since(first)
    );
    // This node's own queues were woken by every batch.
    let published = h.published();
    assert_eq!(published.len(), 3);
    assert!(published.iter().all(|e| e.queued == ["q"]));
}
