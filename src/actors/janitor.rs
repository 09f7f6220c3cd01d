//! The janitor: every second, one maintenance pass (lost leases, result expiry,
//! retention), in bounded batches; on PostgreSQL only on the node holding the lock.

use super::Shared;
use crate::faults::FailurePoint;
use crate::model::{time, JobStatus};
use crate::store::Maintain;
use actix::prelude::*;
use std::time::Duration;

/// How often maintenance runs.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Rows per table per pass at most, so no pass holds the writer for long.
pub const BATCH: i64 = 500;

/// The maintenance actor.
pub struct Janitor {
    /// Persistence, configuration, and the events to wake queues when jobs came back to
    /// `pending`.
    shared: Shared,
    busy: bool,
}

impl Janitor {
    /// A janitor; it starts working when started.
    pub fn new(shared: Shared) -> Janitor {
        Janitor {
            shared,
            busy: false,
        }
    }

    fn pass(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.shared
            .faults
            .panic_if_armed(FailurePoint::JanitorPanics);
        self.busy = true;
        let config = &self.shared.config;
        let now = time::now();
        let op = Maintain {
            max_attempts: config.max_attempts as i32,
            zone: config.timezone,
            job_cutoff: now - time::micros(config.job_retention),
            notification_cutoff: now - time::micros(config.notification_retention),
            batch: BATCH,
            recover_all_running: false,
        };
        let store = self.shared.store.clone();
        async move { store.write(op).await }
            .into_actor(self)
            .map(|done, act, _| {
                act.busy = false;
                match done {
                    Ok(m) => {
                        let metrics = &act.shared.metrics;
                        for (_, endpoint) in &m.recovered.killed {
                            metrics.job_ended(endpoint, JobStatus::Killed.as_str());
                        }
                        for endpoint in &m.expired {
                            metrics.job_ended(endpoint, JobStatus::Expired.as_str());
                        }
                        if m.recovered.taken > 0 {
                            log::info!(
                                "took back {} jobs whose lease had ended",
                                m.recovered.taken
                            );
                        }
                    }
                    Err(e) => log::error!("maintenance failed: {e}"),
                }
            })
            .spawn(ctx);
    }
}

impl Actor for Janitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(INTERVAL, |act, ctx| act.pass(ctx));
    }
}
