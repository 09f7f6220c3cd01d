//! A queue actor owns one queue's worker pool on this node. It claims as many due jobs as
//! it has idle workers, in one batch with a lease, and hands them out; it wakes on a
//! committed submit, on a worker becoming free, and on a slow poll as a backstop (jobs
//! submitted on another node, jobs whose lease was taken back). Every `heartbeat` it renews
//! the leases of all jobs it runs in one statement and drops those it no longer holds.

use super::events::{StopJob, Wake};
use super::store::{ClaimJobs, RenewLeases};
use super::worker::{AbandonJob, HandBack, Worker, WorkerDone};
use super::Shared;
use crate::config::QueueSettings;
use crate::db::jobs::ClaimedJob;
use crate::faults::FailurePoint;
use crate::model::time;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
    workers: Vec<Addr<Worker>>,
    idle: Vec<usize>,
    /// Jobs running here: id → (attempt, worker index).
    running: HashMap<String, (i32, usize)>,
    claiming: bool,
    wake_again: bool,
    draining: bool,
    /// Shared with the workers: while set they claim no next job.
    draining_flag: Arc<AtomicBool>,
    drained: Vec<oneshot::Sender<()>>,
    /// The thread the workers run on (the supervisor's, kept across restarts).
    arbiter: ArbiterHandle,
}

/// A queue that is gone (panicked) tells its workers to claim no next job: they finish
/// what they run and stop, and the queue the supervisor starts in its place has its own.
impl Drop for Queue {
    fn drop(&mut self) {
        self.draining_flag.store(true, Ordering::Relaxed);
    }
}

impl Queue {
    /// A queue with its settings; workers start with the actor, on `arbiter`.
    pub fn new(
        name: String,
        settings: QueueSettings,
        shared: Shared,
        arbiter: ArbiterHandle,
    ) -> Queue {
        Queue {
            name,
            settings,
            shared,
            workers: Vec::new(),
            idle: Vec::new(),
            running: HashMap::new(),
            claiming: false,
            wake_again: false,
            draining: false,
            draining_flag: Arc::default(),
            drained: Vec::new(),
            arbiter,
        }
    }

    fn claim(&mut self, ctx: &mut Context<Self>) {
        if self.draining || self.idle.is_empty() {
            return;
        }
        self.shared.faults.panic_if_armed(FailurePoint::QueuePanics);
        if self.claiming {
            self.wake_again = true;
            return;
        }
        self.claiming = true;
        self.wake_again = false;
        let limit = self.idle.len();
        let op = ClaimJobs {
            queue: self.name.clone(),
            node: self.shared.node.clone(),
            limit: limit as i64,
            max_per_eshop: i64::from(self.shared.config.max_running_per_eshop),
            lease: time::micros(self.shared.config.lease),
        };
        let store = self.shared.store.clone();
        async move { store.write(op).await }
            .into_actor(self)
            .map(move |claimed, act, ctx| {
                act.claiming = false;
                match claimed {
                    Ok(jobs) => {
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

    fn dispatch(&mut self, job: ClaimedJob) {
        let worker = self.idle.pop().expect("claimed no more than idle workers");
        self.running.insert(job.id.clone(), (job.attempt, worker));
        self.workers[worker].do_send(super::worker::RunJob(job));
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
                        log::warn!("job {id} is no longer held by this node; stopping it");
                        act.abandon(&id);
                    }
                }
                Err(e) => log::error!("renewing leases of queue {} failed: {e}", act.name),
            })
            .spawn(ctx);
    }

    fn abandon(&mut self, id: &str) {
        if let Some((_, worker)) = self.running.get(id) {
            self.workers[*worker].do_send(AbandonJob { id: id.to_string() });
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
        let done = ctx.address().recipient::<WorkerDone>();
        for index in 0..self.settings.workers {
            let worker = Worker::new(
                index,
                self.name.clone(),
                self.draining_flag.clone(),
                done.clone(),
                self.settings.max_run_time,
                self.shared.clone(),
            );
            self.workers
                .push(Worker::start_in_arbiter(&self.arbiter, |_| worker));
            self.idle.push(index);
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
        self.claim(ctx);
    }
}

impl Handler<StopJob> for Queue {
    type Result = ();
    fn handle(&mut self, msg: StopJob, _: &mut Context<Self>) {
        self.abandon(&msg.id);
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
            }
            None => {
                self.idle.push(msg.worker);
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
            .map(|(_, w)| self.workers[*w].clone())
            .collect();
        Box::pin(async move {
            for w in busy {
                let _ = w.send(HandBack).await;
            }
        })
    }
}
