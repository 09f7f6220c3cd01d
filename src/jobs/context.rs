//! What a running job may use: its claim, its narrow store handle, the configuration, its
//! log.

use super::{Breakpoints, ResultWriter};
use crate::config::Config;
use crate::db::jobs::{log_line, ClaimedJob};
use crate::model::time;
use crate::store::AttemptStore;
use std::sync::{Arc, Mutex};

/// The context of one attempt of one job.
#[derive(Clone)]
pub struct JobContext {
    /// The claimed job (id, e-shop, params, attempt).
    pub job: ClaimedJob,
    /// What the attempt may read and write (its e-shop's products, images, its result).
    pub store: AttemptStore,
    /// The configuration.
    pub config: Arc<Config>,
    /// Points where tests can hold the job.
    pub breakpoints: Arc<Breakpoints>,
    log: Arc<Mutex<String>>,
}

impl JobContext {
    /// A context for one attempt.
    pub fn new(
        job: ClaimedJob,
        store: AttemptStore,
        config: Arc<Config>,
        breakpoints: Arc<Breakpoints>,
    ) -> JobContext {
        JobContext {
            job,
            store,
            config,
            breakpoints,
            log: Arc::default(),
        }
    }

    /// Adds a line to the job's log (written with the attempt's end).
    pub fn log(&self, message: &str) {
        self.log.lock().expect("job log lock").push_str(&log_line(
            &self.config.timezone,
            time::now(),
            message,
        ));
    }

    /// The lines logged so far (shared: the worker reads them after the run).
    pub fn log_handle(&self) -> Arc<Mutex<String>> {
        self.log.clone()
    }

    /// A writer for this attempt's result file.
    pub fn result_writer(&self, ext: &str, content_type: &str) -> ResultWriter {
        ResultWriter::new(self.store.clone(), ext, content_type)
    }
}
