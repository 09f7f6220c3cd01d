//! The janitor: every second, one maintenance pass (lost leases, result expiry,
//! retention), in bounded batches; on PostgreSQL only on the node holding the lock.

use super::events::Events;
use super::store::{Maintain, Store};
use crate::config::Config;
use crate::model::time;
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// How often maintenance runs.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Rows per table per pass at most, so no pass holds the writer for long.
pub const BATCH: i64 = 500;

/// The maintenance actor.
pub struct Janitor {
    /// Persistence.
    pub store: Store,
    /// Configuration.
    pub config: Arc<Config>,
    /// To wake queues when jobs came back to `pending`.
    pub events: Arc<Events>,
    busy: bool,
}

impl Janitor {
    /// A janitor; it starts working when started.
    pub fn new(store: Store, config: Arc<Config>, events: Arc<Events>) -> Janitor {
        Janitor {
            store,
            config,
            events,
            busy: false,
        }
    }

    fn pass(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let now = time::now();
        let op = Maintain {
            max_attempts: self.config.max_attempts as i32,
            zone: self.config.timezone,
            job_cutoff: now - time::micros(self.config.job_retention),
            notification_cutoff: now - time::micros(self.config.notification_retention),
            batch: BATCH,
            recover_all_running: false,
        };
        let store = self.store.clone();
        async move { store.write(op).await }
            .into_actor(self)
            .map(|done, act, _| {
                act.busy = false;
                match done {
                    Ok(m) if m.recovered > 0 => {
                        log::info!("took back {} jobs whose lease had ended", m.recovered);
                        act.events.wake_all();
                    }
                    Ok(_) => {}
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
