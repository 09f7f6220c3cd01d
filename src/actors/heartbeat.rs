//! The node heartbeat: every `heartbeat`, this node writes its row in `node_heartbeats`
//! (with the jobs it ended per minute), so the dashboard of any node lists the nodes alive
//! and charts the cluster's throughput without reading the jobs table.

use crate::metrics::Metrics;
use crate::model::{time, Micros};
use crate::store::{Beat, Store};
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// A node silent this long is dropped from the table.
const FORGET_AFTER: Micros = 3600 * time::SECOND;

/// Writes this node's heartbeat.
pub struct Heartbeat {
    /// Persistence.
    pub store: Store,
    /// This node's id.
    pub node: String,
    /// Where the per-minute counts come from.
    pub metrics: Arc<Metrics>,
    /// How often to beat.
    pub every: Duration,
    /// When this node started.
    pub started_at: Micros,
}

impl Heartbeat {
    fn beat(&mut self, ctx: &mut Context<Self>) {
        let now = time::now();
        let op = Beat {
            node: self.node.clone(),
            started_at: self.started_at,
            now,
            minutes: self.metrics.minutes.encode(now / (60 * time::SECOND)),
            forget_before: now - FORGET_AFTER,
        };
        let store = self.store.clone();
        ctx.spawn(
            async move {
                if let Err(e) = store.write(op).await {
                    log::warn!("recording this node's heartbeat failed: {e}");
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for Heartbeat {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.beat(ctx);
        ctx.run_interval(self.every, |act, ctx| act.beat(ctx));
    }
}
