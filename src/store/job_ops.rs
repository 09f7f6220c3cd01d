//! Messages about jobs and their results.

use super::Handoff;
use super::{Effects, Lane, ReadOp, WriteOp};
use crate::db::deliveries::{self, ClaimedDelivery};
use crate::db::ends;
use crate::db::jobs::{self, ClaimedJob, End, Job, JobFilter, Outcome};
use crate::db::notifications::JOB_FINISHED;
use crate::db::signals::Signal;
use crate::db::{notifications, results, DbConnection};
use crate::error::{StoreError, StoreResult};
use crate::faults::FailurePoint;
use crate::model::{time, Micros, Zone};
use diesel::prelude::*;

/// Commits a new job (or finds the one its idempotency key already created).
pub struct SubmitJob {
    /// The job, status `pending`.
    pub job: Job,
    /// The client's `Idempotency-Key`, if any.
    pub idempotency_key: Option<String>,
}

/// How long an idempotency key answers the same job.
pub const IDEMPOTENCY_WINDOW: Micros = 24 * 3600 * time::SECOND;

/// The answer to [`SubmitJob`].
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The job's id.
    pub job_id: String,
    /// Its queue.
    pub queue: String,
    /// False when an idempotency key answered an existing job.
    pub created: bool,
}

impl WriteOp for SubmitJob {
    type Output = Submitted;
    const LANE: Lane = Lane::Submits;
    const FAILURE_POINT: Option<FailurePoint> = Some(FailurePoint::SubmitWritePanics);
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<Submitted> {
        let queue = self.job.queue.clone();
        let (job_id, created) = jobs::insert(
            conn,
            &self.job,
            self.idempotency_key.as_deref(),
            IDEMPOTENCY_WINDOW,
        )?;
        Ok(Submitted {
            job_id,
            queue,
            created,
        })
    }
    /// The run's jobs without an idempotency key in one insert ([`jobs::insert_all`]), then
    /// those with a key one by one in the run's order, so that a key sent twice in one
    /// batch answers the job of its first op, as in two batches.
    fn apply_all(ops: &[&Self], conn: &mut DbConnection) -> StoreResult<Vec<Submitted>> {
        let fresh: Vec<&Job> = ops
            .iter()
            .filter(|op| op.idempotency_key.is_none())
            .map(|op| &op.job)
            .collect();
        jobs::insert_all(conn, &fresh)?;
        ops.iter()
            .map(|op| match op.idempotency_key {
                None => Ok(Submitted {
                    job_id: op.job.id.clone(),
                    queue: op.job.queue.clone(),
                    created: true,
                }),
                Some(_) => op.apply(conn),
            })
            .collect()
    }
    /// A run without idempotency keys (the usual batch of submits) is one statement that
    /// inserts the jobs and wakes the queues of other nodes, committed by itself
    /// ([`jobs::insert_all_signalling`]; PostgreSQL). A key needs its own look-up first.
    fn apply_all_alone(
        ops: &[&Self],
        conn: &mut DbConnection,
        signals: &dyn Fn(&[Submitted]) -> Vec<Signal>,
    ) -> Option<StoreResult<Vec<Submitted>>> {
        let keyed = ops.iter().any(|op| op.idempotency_key.is_some());
        if keyed || !matches!(conn, DbConnection::Pg(_)) {
            return None;
        }
        let submitted: Vec<Submitted> = ops
            .iter()
            .map(|op| Submitted {
                job_id: op.job.id.clone(),
                queue: op.job.queue.clone(),
                created: true,
            })
            .collect();
        let batch: Vec<&Job> = ops.iter().map(|op| &op.job).collect();
        let written = jobs::insert_all_signalling(conn, &batch, &signals(&submitted))?;
        Some(written.map(|()| submitted))
    }
    fn effects(&self, submitted: &Submitted, effects: &mut Effects) {
        if submitted.created {
            effects.job_queued(&submitted.queue);
        }
    }
}

/// Reads one job of an e-shop.
pub struct GetJob {
    /// Owner.
    pub eshop_id: i64,
    /// Job id.
    pub id: String,
    /// Jobs created before this are gone (retention).
    pub cutoff: Micros,
}

impl ReadOp for GetJob {
    type Output = Job;
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Job> {
        jobs::get(conn, self.eshop_id, &self.id, self.cutoff)
    }
}

/// Reads a job by id alone (result downloads, where the URL secret is the credential).
pub struct GetJobForResult {
    /// Job id.
    pub id: String,
    /// Jobs created before this are gone (retention).
    pub cutoff: Micros,
}

impl ReadOp for GetJobForResult {
    type Output = Job;
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Job> {
        jobs::get_unscoped(conn, &self.id, self.cutoff)
    }
}

/// One page of an e-shop's jobs.
pub struct ListJobs {
    /// Owner.
    pub eshop_id: i64,
    /// Filters.
    pub filter: JobFilter,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
    /// Jobs created before this are gone (retention).
    pub cutoff: Micros,
}

impl ReadOp for ListJobs {
    type Output = (Vec<Job>, i64);
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Self::Output> {
        jobs::list(
            conn,
            self.eshop_id,
            &self.filter,
            self.offset,
            self.limit,
            time::now(),
            self.cutoff,
        )
    }
}

/// A claim of pending jobs of a queue for this node's workers: the queue's for its idle
/// workers ([`QueueStep::Claim`]), or a worker's for its next job along with its end
/// ([`FinishJob::claim_next`]).
#[derive(Clone)]
pub struct ClaimJobs {
    /// Queue name.
    pub queue: String,
    /// This node's id (the lease owner).
    pub node: String,
    /// How many jobs at most (the idle workers waiting).
    pub limit: i64,
    /// `max_running_per_eshop`.
    pub max_per_eshop: i64,
    /// Lease length.
    pub lease: Micros,
}

/// Renews the leases of this node's running jobs; answers those it still holds.
pub struct RenewLeases {
    /// This node.
    pub node: String,
    /// The jobs its workers run.
    pub ids: Vec<String>,
    /// Lease length.
    pub lease: Micros,
}

impl WriteOp for RenewLeases {
    type Output = Vec<(String, i32)>;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<Self::Output> {
        jobs::renew_leases(conn, &self.node, &self.ids, time::now() + self.lease)
    }
}

/// Ends a running attempt (fenced by id and attempt) and records `job:finished`; written
/// as a [`QueueStep::End`]. Clone: a worker sends it again when the database was
/// unreachable.
#[derive(Clone)]
pub struct FinishJob {
    /// Job id.
    pub id: String,
    /// Its e-shop (named by the `job:finished` body).
    pub eshop_id: i64,
    /// The attempt that ran.
    pub attempt: i32,
    /// How it ended.
    pub outcome: Outcome,
    /// Log lines of the attempt.
    pub log: String,
    /// Zone of the event time.
    pub zone: Zone,
    /// `result_ttl`.
    pub result_ttl: Micros,
    /// Claim the worker's next job in the same transaction (one commit per job, not two).
    pub claim_next: Option<ClaimJobs>,
    /// This node's webhook dispatcher, to which the `job:finished` notification is handed
    /// at birth when it has room ([`Handoff`]).
    pub handoff: Option<Handoff>,
}

/// The answer to [`FinishJob`].
#[derive(Debug)]
pub struct Finished {
    /// Whether this attempt's end was recorded (false: a stale attempt, refused).
    pub recorded: bool,
    /// The worker's next job, if one was claimed.
    pub next: Option<ClaimedJob>,
    /// The `job:finished` notification, claimed at birth for this node's dispatcher.
    pub handed: Option<ClaimedDelivery>,
}

/// A step of a queue's work on the jobs' lane: a worker's end, with the claim of its next
/// job, or the queue's claim for its idle workers. One op type for both so that the steps
/// that follow each other in a batch form one run ([`WriteOp::apply_all`]): their ends
/// are written together, then one claim per queue serves every worker that wants a job,
/// ends' and idle ones alike. Below saturation a batch often held a run of ends and the
/// queue's claim of a wake-up: two claims, each the costly statement (a lock, the claim and
/// a reset on PostgreSQL), where one does (docs/benchmarks.md, fourteenth session).
#[derive(Clone)]
pub enum QueueStep {
    /// A worker's end.
    End(FinishJob),
    /// The queue's claim for its idle workers.
    Claim(ClaimJobs),
}

/// The answer to a [`QueueStep`], of its kind.
#[derive(Debug)]
pub enum StepDone {
    /// The answer to [`QueueStep::End`] (boxed: ten times the size of a claim's answer).
    Ended(Box<Finished>),
    /// The jobs claimed for [`QueueStep::Claim`], at most its limit.
    Claimed(Vec<ClaimedJob>),
}

impl StepDone {
    /// The answer of an end.
    pub fn ended(self) -> Finished {
        match self {
            StepDone::Ended(finished) => *finished,
            StepDone::Claimed(_) => unreachable!("an end is answered Ended"),
        }
    }

    /// The answer of a claim.
    pub fn claimed(self) -> Vec<ClaimedJob> {
        match self {
            StepDone::Claimed(jobs) => jobs,
            StepDone::Ended(_) => unreachable!("a claim is answered Claimed"),
        }
    }
}

impl WriteOp for QueueStep {
    type Output = StepDone;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<StepDone> {
        let mut done = Self::apply_all(&[self], conn)?;
        Ok(done.remove(0))
    }
    /// The run's ends in one go ([`FinishJob::end_all`]), then one claim per queue for all
    /// that the run's steps ask (an end's worker one job, a queue's claim its limit)
    /// instead of one claim each: the claim is the costly statement, and one claim of N
    /// is fair across e-shops as N claims of one are. The claimed jobs go to the steps in
    /// the run's order, each up to what it asked.
    fn apply_all(ops: &[&Self], conn: &mut DbConnection) -> StoreResult<Vec<StepDone>> {
        let ends: Vec<&FinishJob> = ops
            .iter()
            .filter_map(|op| match op {
                QueueStep::End(end) => Some(end),
                QueueStep::Claim(_) => None,
            })
            .collect();
        let mut ended = FinishJob::end_all(&ends, conn)?.into_iter();
        let asks: Vec<Option<&ClaimJobs>> = ops
            .iter()
            .map(|op| match op {
                QueueStep::End(end) => end.claim_next.as_ref(),
                QueueStep::Claim(claim) => Some(claim),
            })
            .collect();
        let mut claimed = claim_for(&asks, conn)?.into_iter();
        Ok(ops
            .iter()
            .map(|op| {
                let jobs = claimed.next().expect("one answer per step");
                match op {
                    QueueStep::End(_) => {
                        let (recorded, handed) = ended.next().expect("one end per end");
                        StepDone::Ended(Box::new(Finished {
                            recorded,
                            next: jobs.into_iter().next(),
                            handed,
                        }))
                    }
                    QueueStep::Claim(_) => StepDone::Claimed(jobs),
                }
            })
            .collect())
    }
    fn effects(&self, done: &StepDone, effects: &mut Effects) {
        if let (QueueStep::End(end), StepDone::Ended(finished)) = (self, done) {
            if finished.recorded {
                effects.job_ended(&end.id);
                match &finished.handed {
                    Some(delivery) => effects.handed(delivery.clone()),
                    None => effects.notification_due(),
                }
            }
        }
    }
}

/// Claims what `asks` ask, one claim per queue (in the order the queues first appear),
/// and answers each ask its jobs, in order, up to its limit (none for `None`).
fn claim_for(
    asks: &[Option<&ClaimJobs>],
    conn: &mut DbConnection,
) -> StoreResult<Vec<Vec<ClaimedJob>>> {
    let mut answers: Vec<Vec<ClaimedJob>> = asks.iter().map(|_| Vec::new()).collect();
    let mut unclaimed: Vec<usize> = (0..asks.len()).filter(|&i| asks[i].is_some()).collect();
    while let Some(&first) = unclaimed.first() {
        let claim = asks[first].expect("asks");
        let (same, rest): (Vec<usize>, Vec<usize>) = unclaimed
            .iter()
            .partition(|&&i| asks[i].is_some_and(|c| c.queue == claim.queue));
        let limit = same.iter().map(|&i| asks[i].map_or(0, |c| c.limit)).sum();
        let now = time::now();
        let mut jobs = jobs::claim(
            conn,
            &claim.queue,
            &claim.node,
            limit,
            claim.max_per_eshop,
            now + claim.lease,
            now,
        )?
        .into_iter();
        for i in same {
            let wants = asks[i].map_or(0, |c| c.limit) as usize;
            answers[i] = jobs.by_ref().take(wants).collect();
        }
        unclaimed = rest;
    }
    Ok(answers)
}

impl FinishJob {
    /// Writes the ends of a run in one go ([`ends::finish_all`]); answers for each whether
    /// it was recorded and the notification handed to this node's dispatcher, if any.
    /// The notifications of the run are born claimed as far as the dispatcher's room goes;
    /// their targets are read in one statement after the ends.
    fn end_all(
        ops: &[&FinishJob],
        conn: &mut DbConnection,
    ) -> StoreResult<Vec<(bool, Option<ClaimedDelivery>)>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let now = time::now();
        let run: Vec<End> = ops
            .iter()
            .map(|op| End {
                id: &op.id,
                eshop_id: op.eshop_id,
                attempt: op.attempt,
                outcome: &op.outcome,
                log: &op.log,
                zone: &op.zone,
                result_ttl: op.result_ttl,
                claim: op
                    .handoff
                    .as_ref()
                    .filter(|h| h.take(1) == 1)
                    .map(|h| h.claim(now)),
            })
            .collect();
        let written = ends::finish_all(conn, &run)?;
        let mut shops: Vec<i64> = run
            .iter()
            .zip(&written)
            .filter(|(end, w)| end.claim.is_some() && w.is_some())
            .map(|(end, _)| end.eshop_id)
            .collect();
        shops.sort_unstable();
        shops.dedup();
        let targets = deliveries::targets(conn, &shops, JOB_FINISHED, now)?;
        Ok(run
            .iter()
            .zip(written)
            .map(|(end, w)| {
                let handed = match (end.claim, &w) {
                    (Some(claim), Some(w)) => Some(ClaimedDelivery::born(
                        w.clone(),
                        claim.until,
                        targets.get(&end.eshop_id).cloned(),
                    )),
                    _ => None,
                };
                (w.is_some(), handed)
            })
            .collect())
    }
}

/// Kills a pending or running job of an e-shop.
pub struct KillJob {
    /// Owner.
    pub eshop_id: i64,
    /// Job id.
    pub id: String,
    /// Zone of the event time.
    pub zone: Zone,
    /// Jobs created before this are gone (retention).
    pub cutoff: Micros,
}

impl WriteOp for KillJob {
    type Output = Job;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<Job> {
        jobs::kill(conn, self.eshop_id, &self.id, &self.zone, self.cutoff)
    }
    fn effects(&self, _: &Job, effects: &mut Effects) {
        effects.job_killed(&self.id);
        effects.job_ended(&self.id);
        effects.notification_due();
    }
}

/// Hands a running attempt back to `pending` without spending it (shutdown, or the
/// database was unreachable during the attempt). Clone: sent again while unreachable.
#[derive(Clone)]
pub struct ReleaseJob {
    /// Job id.
    pub id: String,
    /// The attempt being handed back.
    pub attempt: i32,
    /// Log line saying why.
    pub log: String,
}

impl WriteOp for ReleaseJob {
    /// The queue the job went back to, or `None` when the attempt no longer held it.
    type Output = Option<String>;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<Option<String>> {
        jobs::release(conn, &self.id, self.attempt, &self.log)
    }
    fn effects(&self, queue: &Option<String>, effects: &mut Effects) {
        if let Some(queue) = queue {
            effects.job_queued(queue);
        }
    }
}

/// Whether attempt `attempt` of job `id` still runs: every write a job makes is fenced by it.
pub(super) fn holds(conn: &mut DbConnection, id: &str, attempt: i32) -> StoreResult<()> {
    use crate::db::schema::jobs::dsl;
    let n: i64 = dsl::jobs
        .filter(dsl::id.eq(id))
        .filter(dsl::attempt.eq(attempt))
        .filter(dsl::status.eq("running"))
        .count()
        .get_result(conn)?;
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::InvalidState("attempt-no-longer-holds-job"))
    }
}

/// Appends a chunk of a job's result, only while the attempt still holds the job. Chunk 0
/// first removes whatever an earlier attempt left.
pub struct AppendResultChunk {
    /// Job id.
    pub id: String,
    /// The attempt writing.
    pub attempt: i32,
    /// Chunk number, from 0.
    pub seq: i32,
    /// The bytes.
    pub data: Vec<u8>,
}

impl WriteOp for AppendResultChunk {
    type Output = ();
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<()> {
        holds(conn, &self.id, self.attempt)?;
        if self.seq == 0 {
            results::delete(conn, &self.id)?;
        }
        results::append(conn, &self.id, self.seq, &self.data)
    }
}

/// Reads one chunk of a result.
pub struct ReadResultChunk {
    /// Job id.
    pub id: String,
    /// Chunk number.
    pub seq: i32,
}

impl ReadOp for ReadResultChunk {
    type Output = Option<Vec<u8>>;
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Option<Vec<u8>>> {
        results::chunk(conn, &self.id, self.seq)
    }
}

/// One pass of maintenance: lost leases, expiry, retention, in bounded batches. On
/// PostgreSQL only the node that gets the advisory lock does it.
pub struct Maintain {
    /// `max_attempts`.
    pub max_attempts: i32,
    /// Zone of log lines and events.
    pub zone: Zone,
    /// Jobs created before this are deleted.
    pub job_cutoff: Micros,
    /// Notifications created before this are deleted.
    pub notification_cutoff: Micros,
    /// Rows per table per pass at most.
    pub batch: i64,
    /// Take back every running job regardless of its lease (a single node's restart).
    pub recover_all_running: bool,
}

/// What a maintenance pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Maintained {
    /// Whether this node did the pass (it holds the cluster's maintenance lock).
    pub ran: bool,
    /// Running jobs taken back, and the endpoints of those killed (out of attempts).
    pub recovered: jobs::Recovered,
    /// The endpoint of each job whose result expired.
    pub expired: Vec<String>,
    /// Jobs deleted.
    pub purged_jobs: usize,
    /// Notifications deleted.
    pub purged_notifications: usize,
}

impl WriteOp for Maintain {
    type Output = Maintained;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<Maintained> {
        if let DbConnection::Pg(c) = conn {
            #[derive(QueryableByName)]
            struct Locked {
                #[diesel(sql_type = diesel::sql_types::Bool)]
                locked: bool,
            }
            let got: Locked = diesel::sql_query(
                "SELECT pg_try_advisory_xact_lock(7308339535425250818) AS locked",
            )
            .get_result(c)?;
            if !got.locked {
                return Ok(Maintained::default());
            }
        }
        let now = time::now();
        Ok(Maintained {
            ran: true,
            recovered: jobs::recover_lost(
                conn,
                now,
                self.max_attempts,
                &self.zone,
                self.batch,
                self.recover_all_running,
            )?,
            expired: jobs::expire(conn, now, self.batch)?,
            purged_jobs: jobs::purge(conn, self.job_cutoff, now - IDEMPOTENCY_WINDOW, self.batch)?,
            purged_notifications: notifications::purge(conn, self.notification_cutoff, self.batch)?,
        })
    }
    fn effects(&self, done: &Maintained, effects: &mut Effects) {
        for queue in &done.recovered.requeued {
            effects.job_queued(queue);
        }
        for (id, _) in &done.recovered.killed {
            effects.job_ended(id);
            effects.notification_due();
        }
    }
}
