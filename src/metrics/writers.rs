//! The load of this node's database writers: for each writer thread, the time it spent
//! writing and committing batches, the batches and the write ops in them. A writer whose
//! busy time grows as fast as the clock is saturated: its lane, not the workers or the
//! HTTP server, then bounds the node's rate (PostgreSQL's `jobs` lane in a closed loop,
//! docs/benchmarks.md, "Nineteenth session"); ops per batch show how well it batches.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriterLabels {
    writer: String,
}

/// The three counter families, registered once.
#[derive(Clone, Default)]
pub(super) struct WriterFamilies {
    busy: Family<WriterLabels, Counter<f64, AtomicU64>>,
    batches: Family<WriterLabels, Counter>,
    ops: Family<WriterLabels, Counter>,
}

impl WriterFamilies {
    /// Registers the families in `registry`.
    pub(super) fn register(registry: &mut Registry) -> WriterFamilies {
        let f = WriterFamilies::default();
        registry.register(
            "writer_busy_seconds",
            "Time each database writer of this node spent writing and committing batches \
             (PostgreSQL: submits, jobs, deliveries; SQLite: all)",
            f.busy.clone(),
        );
        registry.register(
            "writer_batches",
            "Transactions each database writer of this node ran (committed or not)",
            f.batches.clone(),
        );
        registry.register(
            "writer_ops",
            "Write operations (a submit, a job's end, a claim, a webhook round, …) in them",
            f.ops.clone(),
        );
        f
    }

    /// The counters of the writer `writer`.
    pub(super) fn of(&self, writer: &str) -> WriterMeter {
        let labels = WriterLabels {
            writer: writer.to_string(),
        };
        WriterMeter {
            busy: self.busy.get_or_create(&labels).clone(),
            batches: self.batches.get_or_create(&labels).clone(),
            ops: self.ops.get_or_create(&labels).clone(),
        }
    }
}

/// One writer's counters (handles on shared atomics), held by its thread.
#[derive(Clone, Debug, Default)]
pub struct WriterMeter {
    busy: Counter<f64, AtomicU64>,
    batches: Counter,
    ops: Counter,
}

impl WriterMeter {
    /// The writer ran a batch of `ops` write ops in `took` (its statements and commit).
    pub fn batch(&self, ops: usize, took: Duration) {
        self.busy.inc_by(took.as_secs_f64());
        self.batches.inc();
        self.ops.inc_by(ops as u64);
    }
}
