//! The worker pool gauges of this node: per queue, the pool's current size, its bounds
//! and its busy workers, and how often its scaling rule had to read the backlog. Each queue
//! actor holds a [`PoolGauges`] and sets it whenever its pool changes; a scrape (and
//! anything else holding [`super::Metrics`], such as a dashboard) reads the same atomics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

/// The four gauge families and the backlog read counter, registered once.
#[derive(Clone, Default)]
pub(super) struct PoolFamilies {
    size: Family<QueueLabels, Gauge>,
    min: Family<QueueLabels, Gauge>,
    max: Family<QueueLabels, Gauge>,
    busy: Family<QueueLabels, Gauge>,
    backlog_reads: Family<QueueLabels, Counter>,
}

impl PoolFamilies {
    /// Registers the families in `registry`.
    pub(super) fn register(registry: &mut Registry) -> PoolFamilies {
        let f = PoolFamilies::default();
        registry.register(
            "pool_workers",
            "Workers in each queue's pool on this node",
            f.size.clone(),
        );
        registry.register(
            "pool_min_workers",
            "Lower bound of each queue's pool on this node (min_workers)",
            f.min.clone(),
        );
        registry.register(
            "pool_max_workers",
            "Upper bound of each queue's pool on this node (max_workers)",
            f.max.clone(),
        );
        registry.register(
            "pool_busy_workers",
            "Workers of each queue's pool running a job on this node",
            f.busy.clone(),
        );
        registry.register(
            "pool_backlog_reads",
            "Backlog queries the scaling rule of each queue's pool ran on this node \
             (when its claims could not tell whether jobs wait)",
            f.backlog_reads.clone(),
        );
        f
    }

    /// The gauges of one queue.
    pub(super) fn of(&self, queue: &str) -> PoolGauges {
        let labels = QueueLabels {
            queue: queue.to_string(),
        };
        PoolGauges {
            size: self.size.get_or_create(&labels).clone(),
            min: self.min.get_or_create(&labels).clone(),
            max: self.max.get_or_create(&labels).clone(),
            busy: self.busy.get_or_create(&labels).clone(),
            backlog_reads: self.backlog_reads.get_or_create(&labels).clone(),
        }
    }
}

/// One queue's pool gauges (handles on shared atomics).
#[derive(Clone, Debug)]
pub struct PoolGauges {
    size: Gauge,
    min: Gauge,
    max: Gauge,
    busy: Gauge,
    backlog_reads: Counter,
}

/// A pool's numbers at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSnapshot {
    /// Workers in the pool.
    pub size: usize,
    /// `min_workers`.
    pub min: usize,
    /// `max_workers`.
    pub max: usize,
    /// Workers running a job.
    pub busy: usize,
}

impl PoolGauges {
    /// Publishes the pool's numbers.
    pub fn set(&self, s: PoolSnapshot) {
        self.size.set(s.size as i64);
        self.min.set(s.min as i64);
        self.max.set(s.max as i64);
        self.busy.set(s.busy as i64);
    }

    /// Counts one backlog query of the scaling rule.
    pub fn backlog_read(&self) {
        self.backlog_reads.inc();
    }

    /// The numbers last published.
    pub fn get(&self) -> PoolSnapshot {
        PoolSnapshot {
            size: self.size.get() as usize,
            min: self.min.get() as usize,
            max: self.max.get() as usize,
            busy: self.busy.get() as usize,
        }
    }
}
