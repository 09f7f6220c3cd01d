//! A worker runs one job at a time: the job kind's future under `max_run_time`, panics
//! caught, then the fenced completion. It can be told to drop the job (killed elsewhere,
//! lease lost) or to hand it back at shutdown without spending the attempt.

use super::store::{FinishJob, ReleaseJob};
use super::Shared;
use crate::db::jobs::{log_line, ClaimedJob, Outcome};
use crate::jobs::JobContext;
use crate::model::time;
use actix::prelude::*;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

/// Runs a claimed job.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunJob(pub ClaimedJob);

/// Drops the current job: someone else ended it or holds it now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AbandonJob;

/// Stops the current job and hands it back to `pending` without spending the attempt.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandBack;

/// Tells the queue a worker is free again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerDone {
    /// The worker's index in its queue.
    pub worker: usize,
    /// The job it ran.
    pub id: String,
}

struct Current {
    job: ClaimedJob,
    handle: SpawnHandle,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

/// One worker of a queue's pool.
pub struct Worker {
    /// Index in the queue's pool (how the queue knows which worker is free).
    index: usize,
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
        done: Recipient<WorkerDone>,
        max_run_time: Duration,
        shared: Shared,
    ) -> Worker {
        Worker {
            index,
            done,
            max_run_time,
            shared,
            current: None,
        }
    }

    fn free(&mut self) {
        if let Some(cur) = self.current.take() {
            self.done.do_send(WorkerDone {
                worker: self.index,
                id: cur.job.id,
            });
        }
    }
}

impl Actor for Worker {
    type Context = Context<Self>;
}

impl Handler<RunJob> for Worker {
    type Result = ();

    fn handle(&mut self, RunJob(job): RunJob, ctx: &mut Context<Self>) {
        let jctx = JobContext::new(
            job.clone(),
            self.shared.store.clone(),
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
        let handle = ctx.spawn(run.into_actor(self).then(|(outcome, last), act, _| {
            let cur = act.current.as_ref().expect("a running job");
            let mut lines = cur.log.lock().expect("job log lock").clone();
            lines.push_str(&log_line(&act.shared.config.timezone, time::now(), &last));
            let finish = FinishJob {
                id: cur.job.id.clone(),
                attempt: cur.job.attempt,
                outcome,
                log: lines,
                zone: act.shared.config.timezone,
                result_ttl: time::micros(act.shared.config.result_ttl),
            };
            let store = act.shared.store.clone();
            async move { store.write(finish).await }
                .into_actor(act)
                .map(|written, act, _| {
                    match written {
                        Ok(true) => {
                            if let Some(cur) = &act.current {
                                act.shared.events.job_ended(&cur.job.id);
                            }
                        }
                        Ok(false) => log::info!("a stale attempt's completion was refused"),
                        Err(e) => log::error!("recording a job's end failed: {e}"),
                    }
                    act.free();
                })
        }));
        self.current = Some(Current { job, handle, log });
    }
}

impl Handler<AbandonJob> for Worker {
    type Result = ();

    fn handle(&mut self, _: AbandonJob, ctx: &mut Context<Self>) {
        if let Some(cur) = &self.current {
            ctx.cancel_future(cur.handle);
            self.free();
        }
    }
}

impl Handler<HandBack> for Worker {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: HandBack, ctx: &mut Context<Self>) -> Self::Result {
        let Some(cur) = &self.current else {
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
                    act.free();
                }),
        )
    }
}
