//! Job kinds: what a job of each asynchronous endpoint does. Every kind implements
//! [`JobKind`] and is listed once in [`Registry::standard`]; a worker looks the kind up by
//! the job's endpoint and runs it with a [`JobContext`].

pub mod breakpoints;
mod context;
mod image_download;
pub mod images;
mod result_writer;
pub mod snapshot;

pub use breakpoints::Breakpoints;
pub use context::JobContext;
pub use result_writer::ResultWriter;

use crate::db::jobs::ResultMeta;
use futures_util::future::LocalBoxFuture;
use std::sync::Arc;

/// What a job kind's run ends with: its stored result, or why it failed (for the log).
pub type JobRun = LocalBoxFuture<'static, Result<ResultMeta, String>>;

/// A kind of asynchronous job.
pub trait JobKind: Send + Sync + 'static {
    /// The endpoint whose requests create these jobs (the job's `endpoint`).
    fn endpoint(&self) -> &'static str;
    /// The queue whose workers run them.
    fn queue(&self) -> &'static str;
    /// Runs one attempt. The future runs on the worker's arbiter; it may be dropped at any
    /// await point (kill, lost lease, shutdown), and its writes are fenced by the attempt.
    fn run(&self, ctx: JobContext) -> JobRun;
}

/// The job kinds jobline knows, by endpoint.
#[derive(Clone)]
pub struct Registry {
    kinds: Vec<Arc<dyn JobKind>>,
}

impl Registry {
    /// Every job kind of jobline.
    pub fn standard() -> Registry {
        Registry {
            kinds: vec![Arc::new(snapshot::SnapshotJob), Arc::new(images::ImagesJob)],
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
}
