//! The engine actors that move each job through its life: a queue per queue with its
//! worker pool, the webhook dispatcher, the janitor, the PostgreSQL listener, and the
//! supervisor that starts them from configuration and runs shutdown. The persistence
//! actors they talk to are the layer below, [`crate::store`].

pub mod heartbeat;
pub mod janitor;
pub mod pg_listener;
pub mod pool;
pub mod queue;
pub mod supervisor;
pub mod webhooks;
pub mod worker;

use crate::config::Config;
use crate::jobs::{Breakpoints, Registry};
use std::sync::Arc;

/// What every engine actor shares: handed down from the supervisor to queues and workers.
#[derive(Clone)]
pub struct Shared {
    /// Persistence actors.
    pub store: crate::store::Store,
    /// Configuration.
    pub config: Arc<Config>,
    /// In-process signals.
    pub events: Arc<crate::store::events::Events>,
    /// Job kinds by endpoint.
    pub registry: Registry,
    /// Points where tests can hold running jobs.
    pub breakpoints: Arc<Breakpoints>,
    /// Points where tests make an actor panic.
    pub faults: Arc<crate::faults::FailurePoints>,
    /// This node's counters and histograms (job durations, webhook attempts).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This node's id: the owner of its leases.
    pub node: String,
    /// The webhook dispatcher's offer to take `job:finished` notifications at birth.
    pub handoff: crate::store::Handoff,
}
