//! A worker runs one job at a time: the job kind's future under `max_run_time`, panics
//! caught, then the fenced completion. It can be told to drop the job (killed elsewhere,
//! lease lost) or to hand it back at shutdown without spending the attempt.

use super::Shared;
use crate::db::backoff::Backoff;
use crate::db::jobs::{log_line, ClaimedJob, Outcome};
use crate::error::StoreResult;
use crate::jobs::JobContext;
use crate::model::time;
use crate::store::{AttemptStore, ClaimJobs, FinishJob, QueueStep, ReleaseJob, Store, WriteOp};
use actix::prelude::*;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs a claimed job.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunJob(pub ClaimedJob);

/// Drops the current job: someone else ended it or holds it now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AbandonJob {
    /// The job to drop: by the time this arrives the worker may already run another one
    /// (claimed with the end of the last), which must not be touched.
    pub id: String,
    /// Why, for the log line written when the job is in fact dropped.
    pub why: Abandon,
}

/// Why a worker is told to drop its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandon {
    /// The job was killed.
    Killed,
    /// The lease renewal found the attempt no longer held by this node (taken over after
    /// its lease ran out). A job whose end is being recorded is not held any more either,
    /// and is not dropped: the warning is only written for a job that was still running.
    NotHeld,
}

/// Stops the current job and hands it back to `pending` without spending the attempt.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandBack;

/// Stops an idle worker: its pool shrinks. The queue sends it only to a worker it counts
/// idle, so no job is ever cut short by it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

/// Tells the queue a worker has ended a job: it is free again, or already runs the next
/// job it claimed together with the end of the last one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerDone {
    /// The worker's index in its queue.
    pub worker: usize,
    /// The job it ran.
    pub id: String,
    /// The job it runs now, if it claimed one.
    pub next: Option<ClaimedJob>,
}

struct Current {
    job: ClaimedJob,
    handle: SpawnHandle,
    log: Arc<std::sync::Mutex<String>>,
    /// The end of the job is being written: too late to abandon or hand it back.
    finishing: bool,
    /// When this worker started the attempt (the job duration metric).
    started: Instant,
    /// The store's count of `Unavailable` answers when the attempt started: if it moved
    /// and the job failed, the failure may be the database's absence, not the job's.
    unavailable_at_start: u64,
}

/// One worker of a queue's pool.
pub struct Worker {
    /// Index in the queue's pool (how the queue knows which worker is free).
    index: usize,
    /// The queue's name (to claim the next job with the end of the last).
    queue: String,
    /// Set by the queue when it drains: then no next job is claimed.
    draining: Arc<AtomicBool>,
    /// Where to say it is free.
    done: Recipient<WorkerDone>,
    /// The queue's `max_run_time`.
    max_run_time: Duration,
    /// What every engine actor shares.
    shared: Shared,
    current: Option<Current>,
}

impl Worker {
    /// A new idle worker.
    pub fn new(
        index: usize,
        queue: String,
        draining: Arc<AtomicBool>,
        done: Recipient<WorkerDone>,
        max_run_time: Duration,
        shared: Shared,
    ) -> Worker {
        Worker {
            index,
            queue,
            draining,
            done,
            max_run_time,
            shared,
            current: None,
        }
    }

    fn free(&mut self, next: Option<ClaimedJob>) {
        if let Some(cur) = self.current.take() {
            self.done.do_send(WorkerDone {
                worker: self.index,
                id: cur.job.id,
                next,
            });
        }
    }

    fn start(&mut self, job: ClaimedJob, ctx: &mut Context<Self>) {
        let jctx = JobContext::new(
            job.clone(),
            AttemptStore::new(self.shared.store.clone(), &job),
            self.shared.config.clone(),
            self.shared.breakpoints.clone(),
        );
        jctx.log(&format!(
            "attempt {} started on {}",
            job.attempt, self.shared.node
        ));
        let log = jctx.log_handle();
        let kind = self.shared.registry.get(&job.endpoint);
        let max_run_time = self.max_run_time;
        let run = async move {
            let Some(kind) = kind else {
                return (
                    Outcome::Failed,
                    "no job kind handles this endpoint".to_string(),
                );
            };
            let guarded = AssertUnwindSafe(kind.run(jctx)).catch_unwind();
            match tokio::time::timeout(max_run_time, guarded).await {
                Err(_) => (
                    Outcome::Killed,
                    format!(
                        "killed: ran past max_run_time ({} s)",
                        max_run_time.as_secs()
                    ),
                ),
                Ok(Err(_)) => (Outcome::Failed, "failed: the job panicked".to_string()),
                Ok(Ok(Err(why))) => (Outcome::Failed, format!("failed: {why}")),
                Ok(Ok(Ok(meta))) => (Outcome::Completed(meta), "completed".to_string()),
            }
        };
        let attempt = (job.id.clone(), job.attempt);
        let handle = ctx.spawn(run.into_actor(self).then(
            move |(outcome, last), act, _| -> ResponseActFuture<Self, ()> {
                // A kill may have abandoned this attempt in the tick its run ended, before the
                // cancellation took: then there is nothing left to finish.
                let held = act
                    .current
                    .as_ref()
                    .is_some_and(|c| (&c.job.id, c.job.attempt) == (&attempt.0, attempt.1));
                if held {
                    Box::pin(act.finish(outcome, last))
                } else {
                    Box::pin(fut::ready(()))
                }
            },
        ));
        self.current = Some(Current {
            job,
            handle,
            log,
            finishing: false,
            started: Instant::now(),
            unavailable_at_start: self.shared.store.unavailable_answers(),
        });
    }

    fn finish(&mut self, outcome: Outcome, last: String) -> impl ActorFuture<Self, Output = ()> {
        let cur = self.current.as_mut().expect("a running job");
        cur.finishing = true;
        let mut lines = cur.log.lock().expect("job log lock").clone();
        lines.push_str(&log_line(&self.shared.config.timezone, time::now(), &last));
        let config = &self.shared.config;
        let claim_next = (!self.draining.load(Ordering::Relaxed)).then(|| ClaimJobs {
            queue: self.queue.clone(),
            node: self.shared.node.clone(),
            limit: 1,
            max_per_eshop: i64::from(config.max_running_per_eshop),
            lease: time::micros(config.lease),
        });
        let status = outcome.status();
        let outage = outcome == Outcome::Failed
            && self.shared.store.unavailable_answers() != cur.unavailable_at_start;
        let release = outage.then(|| ReleaseJob {
            id: cur.job.id.clone(),
            attempt: cur.job.attempt,
            log: log_line(
                &config.timezone,
                time::now(),
                "the database was unreachable during the attempt; handed back, the attempt is not counted",
            ),
        });
        let finish = FinishJob {
            id: cur.job.id.clone(),
            eshop_id: cur.job.eshop_id,
            attempt: cur.job.attempt,
            outcome,
            log: lines,
            zone: config.timezone,
            result_ttl: time::micros(config.result_ttl),
            claim_next,
            handoff: Some(self.shared.handoff.clone()),
        };
        let store = self.shared.store.clone();
        let lease = config.lease;
        let written = async move {
            match release {
                Some(release) => write_with_retries(&store, release, lease)
                    .await
                    .map(|_| None),
                None => write_with_retries(&store, QueueStep::End(finish), lease)
                    .await
                    .map(|done| Some(done.ended())),
            }
        };
        written.into_actor(self).map(move |written, act, ctx| {
            let next = match written {
                Ok(None) => {
                    log::warn!("a job failed while the database was unreachable: handed back");
                    None
                }
                Ok(Some(finished)) => {
                    if finished.recorded {
                        if let Some(cur) = &act.current {
                            act.shared.metrics.job_finished(
                                &cur.job.endpoint,
                                status.as_str(),
                                cur.started.elapsed(),
                            );
                        }
                    } else {
                        log::info!("a stale attempt's completion was refused");
                    }
                    finished.next
                }
                Err(e) => {
                    log::error!(
                        "recording a job's end failed for good (its lease will expire): {e}"
                    );
                    None
                }
            };
            act.free(next.clone());
            if let Some(job) = next {
                act.start(job, ctx);
            }
        })
    }
}

/// Writes a job's end (or its hand-back), again and again with backoff while the database
/// cannot be reached, for up to one `lease`: the lease may still hold, so the finished work
/// is kept. Sending it twice is safe: both writes are fenced by attempt, so a second one
/// that finds the first committed is refused, and only one `job:finished` exists. After
/// that the lease takes the job back as usual.
async fn write_with_retries<M: WriteOp + Clone>(
    store: &Store,
    op: M,
    lease: Duration,
) -> StoreResult<M::Output> {
    let give_up = Instant::now() + lease;
    let mut backoff = Backoff::default();
    loop {
        match store.write(op.clone()).await {
            Err(e) if Instant::now() < give_up => {
                let delay = backoff.next_delay();
                log::warn!("recording the end of a job failed ({e}); again in {delay:?}");
                tokio::time::sleep(delay).await;
            }
            written => return written,
        }
    }
}

impl Actor for Worker {
    type Context = Context<Self>;
}

impl Handler<RunJob> for Worker {
    type Result = ();

    fn handle(&mut self, RunJob(job): RunJob, ctx: &mut Context<Self>) {
        self.start(job, ctx);
    }
}

impl Handler<AbandonJob> for Worker {
    type Result = ();

    fn handle(&mut self, msg: AbandonJob, ctx: &mut Context<Self>) {
        let current = self.current.as_ref();
        if let Some(cur) = current.filter(|c| !c.finishing && c.job.id == msg.id) {
            match msg.why {
                Abandon::Killed => log::info!("job {} was killed; stopped it", msg.id),
                Abandon::NotHeld => {
                    log::warn!("job {} is no longer held by this node; stopped it", msg.id)
                }
            }
            ctx.cancel_future(cur.handle);
            self.free(None);
        }
    }
}

impl Handler<Retire> for Worker {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        debug_assert!(self.current.is_none(), "only idle workers retire");
        ctx.stop();
    }
}

impl Handler<HandBack> for Worker {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: HandBack, ctx: &mut Context<Self>) -> Self::Result {
        let Some(cur) = self.current.as_ref().filter(|c| !c.finishing) else {
            return Box::pin(fut::ready(()));
        };
        ctx.cancel_future(cur.handle);
        let release = ReleaseJob {
            id: cur.job.id.clone(),
            attempt: cur.job.attempt,
            log: log_line(
                &self.shared.config.timezone,
                time::now(),
                "handed back at shutdown; the attempt is not counted",
            ),
        };
        let store = self.shared.store.clone();
        Box::pin(
            async move { store.write(release).await }
                .into_actor(self)
                .map(|released, act, _| {
                    if let Err(e) = released {
                        log::error!("handing a job back failed (its lease will expire): {e}");
                    }
                    act.free(None);
                }),
        )
    }
}
