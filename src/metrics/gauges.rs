//! The gauges read from the database at scrape time: unfinished (pending and running) jobs
//! by endpoint and status, and per queue the pending depth, the age of the oldest pending
//! job and the running jobs. They describe the whole cluster (every node reads the same
//! database), unlike the per-node counters of [`super::Metrics`] (finished jobs among them).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

/// One queue's gauges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueGauges {
    /// Jobs waiting (`pending`).
    pub pending: i64,
    /// Seconds since the oldest pending job was accepted; 0 when none waits.
    pub oldest_pending_age: f64,
    /// Jobs `running` on any node.
    pub running: i64,
}

/// What one scrape read from the database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DbGauges {
    /// Pending and running jobs, by (endpoint, status).
    pub jobs: BTreeMap<(String, String), i64>,
    /// Gauges by queue name.
    pub queues: BTreeMap<String, QueueGauges>,
}

impl DbGauges {
    /// Zero for every known endpoint and status and every queue, so each series exists
    /// (and reads 0) before the first job that would make it appear.
    pub fn zeroed<'a>(
        endpoints: impl IntoIterator<Item = &'a str>,
        statuses: impl IntoIterator<Item = &'a str> + Clone,
        queues: impl IntoIterator<Item = &'a str>,
    ) -> DbGauges {
        let mut jobs = BTreeMap::new();
        for endpoint in endpoints {
            for status in statuses.clone() {
                jobs.insert((endpoint.to_string(), status.to_string()), 0);
            }
        }
        DbGauges {
            jobs,
            queues: queues
                .into_iter()
                .map(|q| (q.to_string(), QueueGauges::default()))
                .collect(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    endpoint: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

/// A registry holding one scrape's database gauges under `prefix`, and
/// `<prefix>_database_up` (1 when `db` was read, 0 when the database did not answer).
pub fn registry(prefix: &str, db: Option<&DbGauges>) -> Registry {
    let mut registry = Registry::with_prefix(prefix);
    let up: Gauge = Gauge::default();
    up.set(i64::from(db.is_some()));
    registry.register(
        "database_up",
        "Whether this scrape could read the database gauges (1) or not (0)",
        up,
    );
    let Some(db) = db else {
        return registry;
    };
    let jobs = Family::<JobLabels, Gauge>::default();
    for ((endpoint, status), n) in &db.jobs {
        jobs.get_or_create(&JobLabels {
            endpoint: endpoint.clone(),
            status: status.clone(),
        })
        .set(*n);
    }
    registry.register(
        "jobs",
        "Unfinished (pending, running) jobs in the database (whole cluster), by endpoint and status",
        jobs,
    );
    let pending = Family::<QueueLabels, Gauge>::default();
    let oldest = Family::<QueueLabels, Gauge<f64, AtomicU64>>::default();
    let running = Family::<QueueLabels, Gauge>::default();
    for (queue, g) in &db.queues {
        let labels = QueueLabels {
            queue: queue.clone(),
        };
        pending.get_or_create(&labels).set(g.pending);
        oldest.get_or_create(&labels).set(g.oldest_pending_age);
        running.get_or_create(&labels).set(g.running);
    }
    registry.register(
        "queue_pending_jobs",
        "Jobs waiting in each queue (whole cluster)",
        pending,
    );
    registry.register(
        "queue_oldest_pending_age_seconds",
        "Age of each queue's oldest pending job, 0 when none waits (whole cluster)",
        oldest,
    );
    registry.register(
        "queue_running_jobs",
        "Jobs running from each queue on any node (whole cluster)",
        running,
    );
    registry
}
