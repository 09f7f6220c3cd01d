//! The bookkeeping of one queue's worker pool: which workers exist, which are idle and
//! since when, on which arbiter thread each runs. The queue actor owns it and decides
//! (with [`super::rule`]) when it grows or shrinks; only idle workers are ever stopped.

use super::rule::ScaleRule;
use super::settings::QueueSettings;
use crate::actors::worker::{Retire, Worker, WorkerDone};
use crate::actors::Shared;
use crate::metrics::pools::{PoolGauges, PoolSnapshot};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One queue's workers on this node.
pub struct Pool {
    /// The queue's name (each worker claims its next job in this queue).
    queue: String,
    /// Bounds and pace.
    rule: ScaleRule,
    /// A job running longer is killed (handed to each worker).
    max_run_time: Duration,
    /// The threads workers run on, assigned round-robin by index.
    threads: Vec<ArbiterHandle>,
    /// Every worker by index.
    workers: HashMap<usize, Addr<Worker>>,
    /// Idle workers and since when, most recently idle last: the queue hands jobs out
    /// from the end, so under a light load the same few workers stay busy and the
    /// surplus stays idle long enough to leave.
    idle: Vec<(usize, Instant)>,
    /// The next new worker's index (never reused, so a late message cannot reach a
    /// newer worker by mistake).
    next_index: usize,
    /// Shared with every worker: while set they claim no next job.
    draining: Arc<AtomicBool>,
    /// Where workers say they are free.
    done: Recipient<WorkerDone>,
    /// What every engine actor shares.
    shared: Shared,
    /// Published size, bounds and busy workers.
    gauges: PoolGauges,
}

impl Pool {
    /// An empty pool for `settings` whose workers will run on `threads` (at least one);
    /// [`Pool::grow`] starts workers.
    pub fn new(
        settings: &QueueSettings,
        threads: Vec<ArbiterHandle>,
        draining: Arc<AtomicBool>,
        done: Recipient<WorkerDone>,
        shared: Shared,
    ) -> Pool {
        assert!(!threads.is_empty(), "a pool needs a thread");
        let gauges = shared.metrics.pool(&settings.name);
        let pool = Pool {
            queue: settings.name.clone(),
            rule: settings.rule,
            max_run_time: settings.max_run_time,
            threads,
            workers: HashMap::new(),
            idle: Vec::new(),
            next_index: 0,
            draining,
            done,
            shared,
            gauges,
        };
        pool.publish();
        pool
    }

    /// Workers in the pool.
    pub fn size(&self) -> usize {
        self.workers.len()
    }

    /// Workers without a job.
    pub fn idle(&self) -> usize {
        self.idle.len()
    }

    /// Idle workers that have been idle for at least `idle_timeout` at `now`.
    pub fn idle_expired(&self, now: Instant) -> usize {
        self.idle
            .iter()
            .filter(|(_, since)| now.duration_since(*since) >= self.rule.idle_timeout)
            .count()
    }

    /// Starts `n` idle workers.
    pub fn grow(&mut self, n: usize) {
        let now = Instant::now();
        for _ in 0..n {
            let index = self.next_index;
            self.next_index += 1;
            let worker = Worker::new(
                index,
                self.queue.clone(),
                self.draining.clone(),
                self.done.clone(),
                self.max_run_time,
                self.shared.clone(),
            );
            let thread = &self.threads[index % self.threads.len()];
            self.workers
                .insert(index, Worker::start_in_arbiter(thread, |_| worker));
            self.idle.push((index, now));
        }
        self.publish();
    }

    /// Stops up to `n` of the workers idle longest (only idle ones: no job is touched).
    pub fn retire(&mut self, n: usize) -> usize {
        let n = n.min(self.idle.len());
        for (index, _) in self.idle.drain(..n) {
            if let Some(worker) = self.workers.remove(&index) {
                worker.do_send(Retire);
            }
        }
        self.publish();
        n
    }

    /// The most recently idle worker, now counted busy.
    pub fn take_idle(&mut self) -> Option<usize> {
        let taken = self.idle.pop().map(|(index, _)| index);
        self.publish();
        taken
    }

    /// A worker that has become free.
    pub fn put_idle(&mut self, index: usize) {
        if self.workers.contains_key(&index) {
            self.idle.push((index, Instant::now()));
        }
        self.publish();
    }

    /// Counts a backlog query of the scaling rule (published as a counter).
    pub fn backlog_read(&self) {
        self.gauges.backlog_read();
    }

    /// The worker with this index, if it is in the pool.
    pub fn worker(&self, index: usize) -> Option<&Addr<Worker>> {
        self.workers.get(&index)
    }

    fn publish(&self) {
        self.gauges.set(PoolSnapshot {
            size: self.size(),
            min: self.rule.min_workers,
            max: self.rule.max_workers,
            busy: self.size() - self.idle(),
        });
    }
}
