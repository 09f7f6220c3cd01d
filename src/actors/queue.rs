//! A queue actor owns one queue's worker pool on this node. It claims as many due jobs as
//! it has idle workers, in one batch with a lease, and hands them out; it wakes on a
//! committed submit, on a worker becoming free, and on a slow poll as a backstop (jobs
//! submitted on another node, jobs whose lease was taken back). Every `heartbeat` it renews
//! the leases of all jobs it runs in one statement and drops those it no longer holds.
//! Every [`SCALE_INTERVAL`] it applies its pool's scaling rule (`super::pool::rule`) to
//! what its claims and wake-ups showed of jobs waiting (`super::pool::shortage`), and reads
//! the backlog only when they cannot tell.

use super::pool::rule::{Change, Observation, SCALE_INTERVAL};
use super::pool::shortage::Shortage;
use super::pool::workers::Pool;
use super::pool::QueueSettings;
use super::worker::{Abandon, AbandonJob, HandBack, Worker, WorkerDone};
use super::Shared;
use crate::db::backlog::Backlog;
use crate::db::jobs::ClaimedJob;
use crate::faults::FailurePoint;
use crate::model::time;
use crate::store::events::{StopJob, Wake};
use crate::store::{ClaimJobs, QueueStep, ReadBacklog, RenewLeases, StepDone};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Stops claiming; answers once no job of this queue runs on this node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Hands every running job back to `pending` (end of the shutdown grace).
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandBackAll;

/// One queue on this node.
pub struct Queue {
    name: String,
    settings: QueueSettings,
    shared: Shared,
    /// The workers, their idle times and threads.
    pool: Pool,
    /// Jobs running here: id → (attempt, worker index).
    running: HashMap<String, (i32, usize)>,
    claiming: bool,
    wake_again: bool,
    /// Jobs seen waiting for a worker here, as claims and wake-ups tell.
    shortage: Shortage,
    /// When the pool last grew: a sighting may grow it at once, but one step per
    /// [`SCALE_INTERVAL`] at most.
    grown_at: Option<Instant>,
    /// A backlog read for the scaling rule is under way (one at a time).
    reading_backlog: bool,
    draining: bool,
    /// Shared with the workers: while set they claim no next job.
    draining_flag: Arc<AtomicBool>,
    drained: Vec<oneshot::Sender<()>>,
}

/// A queue that is gone (panicked) tells its workers to claim no next job: they finish
/// what they run and stop, and the queue the supervisor starts in its place has its own.
impl Drop for Queue {
    fn drop(&mut self) {
        self.draining_flag.store(true, Ordering::Relaxed);
    }
}

impl Queue {
    /// Starts the queue with its settings; its pool starts at `min_workers`, its workers
    /// run on `threads` (the supervisor's, kept across restarts).
    pub fn start(
        settings: QueueSettings,
        shared: Shared,
        threads: Vec<ArbiterHandle>,
    ) -> Addr<Queue> {
        Queue::create(|ctx| {
            let draining_flag = Arc::<AtomicBool>::default();
            let pool = Pool::new(
                &settings,
                threads,
                draining_flag.clone(),
                ctx.address().recipient(),
                shared.clone(),
            );
            Queue {
                name: settings.name.clone(),
                settings,
                shared,
                pool,
                running: HashMap::new(),
                claiming: false,
                wake_again: false,
                shortage: Shortage::default(),
                grown_at: None,
                reading_backlog: false,
                draining: false,
                draining_flag,
                drained: Vec::new(),
            }
        })
    }

    fn claim(&mut self, ctx: &mut Context<Self>) {
        if self.draining || self.pool.idle() == 0 {
            return;
        }
        self.shared.faults.panic_if_armed(FailurePoint::QueuePanics);
        if self.claiming {
            self.wake_again = true;
            return;
        }
        self.claiming = true;
        self.wake_again = false;
        let limit = self.pool.idle();
        let op = QueueStep::Claim(ClaimJobs {
            queue: self.name.clone(),
            node: self.shared.node.clone(),
            limit: limit as i64,
            max_per_eshop: i64::from(self.shared.config.max_running_per_eshop),
            lease: time::micros(self.shared.config.lease),
        });
        let store = self.shared.store.clone();
        let breakpoints = self.shared.breakpoints.clone();
        async move {
            let claimed = store.write(op).await.map(StepDone::claimed);
            if claimed.as_ref().is_ok_and(|jobs| !jobs.is_empty()) {
                // Where a test holds a claim's answer while the pool changes.
                breakpoints.pass("queue:claimed").await;
            }
            claimed
        }
        .into_actor(self)
        .map(move |claimed, act, ctx| {
            act.claiming = false;
            match claimed {
                Ok(jobs) => {
                    act.shortage.claimed(jobs.len(), limit);
                    let full = jobs.len() == limit;
                    for job in jobs {
                        act.dispatch(job);
                    }
                    if full || act.wake_again {
                        act.claim(ctx);
                    }
                }
                Err(e) => log::error!("claiming jobs of queue {} failed: {e}", act.name),
            }
            act.check_drained();
        })
        .spawn(ctx);
    }

    /// Hands a claimed job to an idle worker. A claim asks for as many jobs as there were
    /// idle workers when it was sent; if some of them left the pool (idle timeout) before
    /// it answered, a worker is started again for the job: the pool is then no larger than
    /// when the claim was sent.
    fn dispatch(&mut self, job: ClaimedJob) {
        let worker = self.pool.take_idle().unwrap_or_else(|| {
            self.pool.grow(1);
            self.pool.take_idle().expect("a worker just started")
        });
        self.running.insert(job.id.clone(), (job.attempt, worker));
        if let Some(w) = self.pool.worker(worker) {
            w.do_send(super::worker::RunJob(job));
        }
    }

    /// One step of the scaling rule. What the claims showed decides; the backlog is read
    /// only when a busy pool with room could grow and the claims cannot tell whether jobs
    /// wait (the last claim filled every worker and none has been seen waiting since).
    fn scale(&mut self, ctx: &mut Context<Self>) {
        if self.draining || self.reading_backlog {
            return;
        }
        let may_grow = self
            .settings
            .rule
            .may_grow(self.pool.size(), self.pool.idle());
        if !may_grow || !self.shortage.needs_read() {
            self.apply_rule(ctx);
            return;
        }
        self.reading_backlog = true;
        self.pool.backlog_read();
        let op = ReadBacklog {
            queue: self.name.clone(),
            max_per_eshop: i64::from(self.shared.config.max_running_per_eshop),
        };
        let store = self.shared.store.clone();
        async move { store.read(op).await }
            .into_actor(self)
            .map(|read, act, ctx| {
                act.reading_backlog = false;
                match read {
                    Ok(backlog) => {
                        let (jobs, oldest) = waiting(backlog);
                        act.shortage.read(jobs, oldest, Instant::now());
                        act.apply_rule(ctx);
                    }
                    Err(e) => log::warn!("reading the backlog of queue {} failed: {e}", act.name),
                }
            })
            .spawn(ctx);
    }

    /// A job found no idle worker (told by a wake-up, or by a worker's end-of-job claim):
    /// the pool grows as soon as the wait is long enough, without waiting for the next
    /// interval.
    fn seen_waiting(&mut self, by_wake_up: bool, ctx: &mut Context<Self>) {
        if self.draining || self.settings.rule.is_pinned() {
            return;
        }
        let now = Instant::now();
        if by_wake_up {
            self.shortage.woken(now);
        } else {
            self.shortage.waited(now);
        }
        let due = self
            .shortage
            .waiting(now)
            .is_some_and(|w| w.oldest >= self.settings.rule.scale_up_after);
        if due && self.paced(now) && !self.reading_backlog {
            self.apply_rule(ctx);
        }
    }

    /// Whether the pool may take another growth step at `now`.
    fn paced(&self, now: Instant) -> bool {
        self.grown_at
            .is_none_or(|t| now.duration_since(t) >= SCALE_INTERVAL)
    }

    fn apply_rule(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        let now = Instant::now();
        let before = self.pool.size();
        // Between two growth steps the rule sees no waiting jobs: it may only shrink.
        let waiting = self.shortage.waiting(now).filter(|_| self.paced(now));
        let seen = Observation {
            size: before,
            idle: self.pool.idle(),
            idle_expired: self.pool.idle_expired(now),
            waiting,
        };
        match self.settings.rule.decide(&seen) {
            Change::Grow(n) => {
                self.pool.grow(n);
                self.shortage.grew(n);
                self.grown_at = Some(now);
                let (jobs, oldest) = waiting.map_or((0, Duration::ZERO), |w| (w.jobs, w.oldest));
                log::debug!(
                    "queue {}: pool grows {before} → {} workers ({jobs} jobs seen waiting, the first for {} ms)",
                    self.name,
                    self.pool.size(),
                    oldest.as_millis()
                );
                self.claim(ctx);
            }
            Change::Shrink(n) => {
                self.pool.retire(n);
                log::debug!(
                    "queue {}: pool shrinks {before} → {} workers (idle for {:?})",
                    self.name,
                    self.pool.size(),
                    self.settings.rule.idle_timeout
                );
            }
            Change::Hold => {}
        }
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.running.is_empty() {
            return;
        }
        let asked: Vec<(String, i32)> = self
            .running
            .iter()
            .map(|(id, (attempt, _))| (id.clone(), *attempt))
            .collect();
        let op = RenewLeases {
            node: self.shared.node.clone(),
            ids: asked.iter().map(|(id, _)| id.clone()).collect(),
            lease: time::micros(self.shared.config.lease),
        };
        let store = self.shared.store.clone();
        async move { store.write(op).await }
            .into_actor(self)
            .map(move |held, act, _| match held {
                Ok(held) => {
                    // Only the jobs this renewal asked about: one claimed meanwhile is not lost.
                    let held: HashMap<String, i32> = held.into_iter().collect();
                    let lost: Vec<String> = asked
                        .into_iter()
                        .filter(|(id, attempt)| {
                            held.get(id) != Some(attempt)
                                && act.running.get(id).is_some_and(|(a, _)| a == attempt)
                        })
                        .map(|(id, _)| id)
                        .collect();
                    for id in lost {
                        act.abandon(&id, Abandon::NotHeld);
                    }
                }
                Err(e) => log::error!("renewing leases of queue {} failed: {e}", act.name),
            })
            .spawn(ctx);
    }

    fn abandon(&mut self, id: &str, why: Abandon) {
        if let Some(w) = self.running.get(id).and_then(|(_, i)| self.pool.worker(*i)) {
            w.do_send(AbandonJob {
                id: id.to_string(),
                why,
            });
        }
    }

    fn check_drained(&mut self) {
        if self.draining && self.running.is_empty() && !self.claiming {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

impl Actor for Queue {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.pool.grow(self.settings.rule.min_workers);
        if !self.settings.rule.is_pinned() {
            ctx.run_interval(SCALE_INTERVAL, |act, ctx| act.scale(ctx));
        }
        self.shared.events.register_queue(
            &self.name,
            ctx.address().recipient(),
            ctx.address().recipient(),
        );
        ctx.run_interval(self.shared.config.poll_interval, |act, ctx| act.claim(ctx));
        ctx.run_interval(self.shared.config.heartbeat, |act, ctx| act.heartbeat(ctx));
        self.claim(ctx);
    }
}

impl Handler<Wake> for Queue {
    type Result = ();
    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        if self.pool.idle() == 0 {
            // Jobs were committed and no worker here is free to take them.
            self.seen_waiting(true, ctx);
        }
        self.claim(ctx);
    }
}

impl Handler<StopJob> for Queue {
    type Result = ();
    fn handle(&mut self, msg: StopJob, _: &mut Context<Self>) {
        self.abandon(&msg.id, Abandon::Killed);
    }
}

impl Handler<WorkerDone> for Queue {
    type Result = ();
    fn handle(&mut self, msg: WorkerDone, ctx: &mut Context<Self>) {
        if self
            .running
            .get(&msg.id)
            .is_some_and(|(_, w)| *w == msg.worker)
        {
            self.running.remove(&msg.id);
        }
        match msg.next {
            Some(next) => {
                self.running.insert(next.id, (next.attempt, msg.worker));
                if self.pool.idle() == 0 {
                    // The next job was pending while every worker was busy.
                    self.seen_waiting(false, ctx);
                }
            }
            None => {
                if !self.draining {
                    self.shortage.none_left();
                }
                self.pool.put_idle(msg.worker);
                self.check_drained();
                self.claim(ctx);
            }
        }
    }
}

impl Handler<Drain> for Queue {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        self.draining_flag.store(true, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.drained.push(tx);
        self.check_drained();
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<HandBackAll> for Queue {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: HandBackAll, _: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        self.draining_flag.store(true, Ordering::Relaxed);
        let busy: Vec<Addr<Worker>> = self
            .running
            .values()
            .filter_map(|(_, w)| self.pool.worker(*w).cloned())
            .collect();
        Box::pin(async move {
            for w in busy {
                let _ = w.send(HandBack).await;
            }
        })
    }
}

/// A backlog read as jobs waiting and the oldest one's wait.
fn waiting(backlog: Backlog) -> (usize, Duration) {
    let age = backlog.oldest.map_or(0, |t| (time::now() - t).max(0));
    (
        usize::try_from(backlog.claimable).unwrap_or(0),
        Duration::from_micros(u64::try_from(age).unwrap_or(0)),
    )
}
