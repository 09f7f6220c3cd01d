//! Job kinds: what a job of each asynchronous endpoint does. A kind is declared in its own
//! file as a serde struct of its parameters implementing [`Job`] (endpoint, queue, pool
//! defaults, run), as crates.io's background jobs do, and is listed once in
//! [`Registry::standard`]. The registry deserialises a claimed job's parameters once and
//! hands the typed value to the kind; the queues and their pools follow from the kinds, so
//! a new kind with a new queue gets workers without another list to update.

pub mod breakpoints;
mod context;
mod gzip;
mod image_download;
pub mod images;
mod result_writer;
pub mod snapshot;

pub use breakpoints::Breakpoints;
pub use context::JobContext;
pub use result_writer::ResultWriter;

use crate::db::jobs::ResultMeta;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::Arc;

/// What a job kind's run ends with: its stored result, or why it failed (for the log).
pub type JobRun = LocalBoxFuture<'static, Result<ResultMeta, String>>;

/// How large a queue's worker pool is by default on this machine, declared by the kinds
/// of that queue: what their run time is spent on decides how many workers per CPU pay off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolDefaults {
    /// Workers kept even when the queue is empty (a job starts without waiting for the
    /// pool to grow).
    pub min_workers: usize,
    /// Most workers per CPU this process may use: few for CPU-bound work, more for work
    /// that mostly waits (on the database's round trips and commits, on remote servers).
    pub max_workers_per_cpu: usize,
}

/// A kind of asynchronous job: a serde struct of its parameters (validated by the API
/// before the job is accepted, stored as the job's `params`), with what it is.
pub trait Job: Serialize + DeserializeOwned + 'static {
    /// The endpoint whose requests create these jobs (the job's `endpoint`).
    const ENDPOINT: &'static str;
    /// The queue whose workers run them: the one place this kind's queue is named.
    const QUEUE: &'static str;
    /// The queue's default pool bounds (when several kinds share a queue, the first
    /// registered kind's defaults apply).
    const POOL: PoolDefaults;
    /// Runs one attempt with the parameters. The future runs on a worker's arbiter; it
    /// may be dropped at any await point (kill, lost lease, shutdown), and its writes are
    /// fenced by the attempt.
    fn run(self, ctx: JobContext) -> JobRun;
}

/// A registered kind as the workers see it: the parameters are still the stored JSON.
pub trait JobKind: Send + Sync + 'static {
    /// [`Job::ENDPOINT`].
    fn endpoint(&self) -> &'static str;
    /// [`Job::QUEUE`].
    fn queue(&self) -> &'static str;
    /// [`Job::POOL`].
    fn pool(&self) -> PoolDefaults;
    /// Deserialises the job's parameters once and runs the attempt.
    fn run(&self, ctx: JobContext) -> JobRun;
}

/// The [`JobKind`] of a [`Job`] type.
struct Kind<J>(PhantomData<fn() -> J>);

impl<J: Job> JobKind for Kind<J> {
    fn endpoint(&self) -> &'static str {
        J::ENDPOINT
    }

    fn queue(&self) -> &'static str {
        J::QUEUE
    }

    fn pool(&self) -> PoolDefaults {
        J::POOL
    }

    fn run(&self, ctx: JobContext) -> JobRun {
        match serde_json::from_str::<J>(&ctx.job.params) {
            Ok(params) => params.run(ctx),
            Err(e) => {
                let why = format!("invalid job parameters: {e}");
                Box::pin(async move { Err(why) })
            }
        }
    }
}

fn kind<J: Job>() -> Arc<dyn JobKind> {
    Arc::new(Kind::<J>(PhantomData))
}

/// A queue and the pool defaults its kinds declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueKind {
    /// The queue's name.
    pub name: &'static str,
    /// Its default pool bounds.
    pub pool: PoolDefaults,
}

/// The job kinds jobline knows, by endpoint.
#[derive(Clone)]
pub struct Registry {
    kinds: Vec<Arc<dyn JobKind>>,
}

impl Registry {
    /// Every job kind of jobline: one line per kind.
    pub fn standard() -> Registry {
        Registry {
            kinds: vec![kind::<snapshot::SnapshotJob>(), kind::<images::ImagesJob>()],
        }
    }

    /// The kind of an endpoint.
    pub fn get(&self, endpoint: &str) -> Option<Arc<dyn JobKind>> {
        self.kinds
            .iter()
            .find(|k| k.endpoint() == endpoint)
            .cloned()
    }

    /// Every endpoint (the jobs list's `endpoint` filter accepts exactly these).
    pub fn endpoints(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.endpoint()).collect()
    }

    /// Every queue some kind runs on, once, in registration order: each gets a pool.
    pub fn queues(&self) -> Vec<QueueKind> {
        let mut queues: Vec<QueueKind> = Vec::new();
        for k in &self.kinds {
            if !queues.iter().any(|q| q.name == k.queue()) {
                queues.push(QueueKind {
                    name: k.queue(),
                    pool: k.pool(),
                });
            }
        }
        queues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_queue_of_the_standard_kinds_is_listed_once() {
        let names: Vec<&str> = Registry::standard()
            .queues()
            .iter()
            .map(|q| q.name)
            .collect();
        assert_eq!(names, ["snapshots", "images"]);
    }
}
