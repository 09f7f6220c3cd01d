//! The writer's guards, on the real write loop and a real SQLite file: a panicking op
//! fails alone and the rest of its batch commits; a lost connection answers the batch
//! `Unavailable` and the next batch runs on a new connection.

use super::*;
use diesel::connection::SimpleConnection;
use diesel::sql_types::BigInt;
use diesel::RunQueryDsl;

/// Inserts a number into the test table.
struct Insert(i64);

impl WriteOp for Insert {
    type Output = ();
    fn apply(self, conn: &mut DbConnection) -> StoreResult<()> {
        conn.batch_execute(&format!("INSERT INTO t VALUES ({})", self.0))?;
        Ok(())
    }
}

/// A write op with a bug.
struct Panics;

impl WriteOp for Panics {
    type Output = ();
    fn apply(self, _: &mut DbConnection) -> StoreResult<()> {
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
    fn apply(self, _: &mut DbConnection) -> StoreResult<()> {
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

/// A running write loop on a fresh database with table `t`.
struct Harness {
    tx: mpsc::Sender<Box<dyn Pending>>,
    backend: Backend,
    faults: Arc<FailurePoints>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::Sqlite(dir.path().join("w.db").display().to_string());
        let mut conn = backend.establish().unwrap();
        conn.batch_execute("CREATE TABLE t (n BIGINT NOT NULL)")
            .unwrap();
        let faults = Arc::new(FailurePoints::default());
        let (tx, rx) = mpsc::channel();
        let link = Link::new(conn, backend.clone(), faults.clone());
        let loop_faults = faults.clone();
        std::thread::spawn(move || write_loop(link, rx, 100, &loop_faults));
        Harness {
            tx,
            backend,
            faults,
            _dir: dir,
        }
    }

    /// Runs `ops` as one batch, arming `fault` just before, and answers what each got.
    fn batch(&self, ops: Vec<MakeOp>, fault: Option<FailurePoint>) -> Vec<StoreResult<()>> {
        let (reached, at_gate) = mpsc::channel();
        let (open, release) = mpsc::channel();
        let (gate, gate_answer) = op(Gate { reached, release })();
        self.tx.send(gate).unwrap();
        at_gate.recv().unwrap();
        let (queued, answers): (Vec<_>, Vec<_>) = ops.into_iter().map(|make| make()).unzip();
        for pending in queued {
            self.tx.send(pending).unwrap();
        }
        if let Some(point) = fault {
            self.faults.arm(point);
        }
        open.send(()).unwrap();
        assert_eq!(gate_answer.blocking_recv().unwrap(), Ok(()));
        answers
            .into_iter()
            .map(|a| a.blocking_recv().unwrap())
            .collect()
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
    Box::new(move || {
        let (reply, answer) = oneshot::channel();
        let queued: Box<dyn Pending> = Box::new(Queued {
            op: Some(op),
            outcome: None,
            reply,
        });
        (queued, answer)
    })
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
