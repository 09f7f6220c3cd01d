//! The servers' database writers over a run, from their `/metrics` (`jobline_writer_*`)
//! read just before the first submit and again once every job has settled: the share of
//! the time each writer was busy writing and committing (the mean over the nodes), its
//! batches and the write ops per batch. A share near 1 names the writer that bounds the
//! run's rate.

use super::report::round;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// One writer's counters as one scrape showed them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Counters {
    /// `jobline_writer_busy_seconds_total`.
    pub(crate) busy_s: f64,
    /// `jobline_writer_batches_total`.
    pub(crate) batches: u64,
    /// `jobline_writer_ops_total`.
    pub(crate) ops: u64,
}

/// The writers of one node at one moment, by their `writer` label.
pub(crate) type Scrape = HashMap<String, Counters>;

/// The writer counters in a `/metrics` body.
pub(crate) fn parse(text: &str) -> Scrape {
    let mut writers = Scrape::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("jobline_writer_") else {
            continue;
        };
        let Some((series, value)) = rest.split_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once("{writer=\"") else {
            continue;
        };
        let Some(writer) = labels.strip_suffix("\"}") else {
            continue;
        };
        let c = writers.entry(writer.to_string()).or_default();
        match name {
            "busy_seconds_total" => c.busy_s = value.parse().unwrap_or(0.0),
            "batches_total" => c.batches = value.parse().unwrap_or(0),
            "ops_total" => c.ops = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    writers
}

/// Every node's writers now.
pub(crate) struct Snapshot {
    at: Instant,
    nodes: Vec<Scrape>,
}

impl Snapshot {
    /// Reads `/metrics` of each node of `bases`.
    pub(crate) async fn take(
        client: &reqwest::Client,
        bases: &[String],
    ) -> Result<Snapshot, String> {
        let mut nodes = Vec::with_capacity(bases.len());
        for base in bases {
            let url = format!("{base}/metrics");
            let text = client
                .get(&url)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| format!("GET {url}: {e}"))?
                .text()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            nodes.push(parse(&text));
        }
        Ok(Snapshot {
            at: Instant::now(),
            nodes,
        })
    }
}

/// One writer's load between two snapshots.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct WriterLoad {
    /// Share of the time it was busy, the mean over the nodes (0 to 1).
    pub(crate) busy: f64,
    /// Transactions it ran, on all nodes.
    pub(crate) batches: u64,
    /// Write ops per transaction.
    pub(crate) ops_per_batch: f64,
}

/// Each writer's load from `before` to `after`, by its label.
pub(crate) fn load(before: &Snapshot, after: &Snapshot) -> BTreeMap<String, WriterLoad> {
    let secs = after.at.duration_since(before.at).as_secs_f64();
    let nodes = after.nodes.len().max(1) as f64;
    let mut sums: BTreeMap<String, Counters> = BTreeMap::new();
    for (i, node) in after.nodes.iter().enumerate() {
        for (writer, now) in node {
            let then = before
                .nodes
                .get(i)
                .and_then(|n| n.get(writer))
                .copied()
                .unwrap_or_default();
            let sum = sums.entry(writer.clone()).or_default();
            sum.busy_s += now.busy_s - then.busy_s;
            sum.batches += now.batches.saturating_sub(then.batches);
            sum.ops += now.ops.saturating_sub(then.ops);
        }
    }
    sums.into_iter()
        .map(|(writer, c)| {
            let load = WriterLoad {
                busy: round(
                    if secs > 0.0 {
                        c.busy_s / secs / nodes
                    } else {
                        0.0
                    },
                    3,
                ),
                batches: c.batches,
                ops_per_batch: round(c.ops as f64 / c.batches.max(1) as f64, 1),
            };
            (writer, load)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SCRAPE: &str = "\
# HELP jobline_writer_busy_seconds Time each database writer …
# TYPE jobline_writer_busy_seconds counter
jobline_writer_busy_seconds_total{writer=\"jobs\"} 1.5
jobline_writer_batches_total{writer=\"jobs\"} 30
jobline_writer_ops_total{writer=\"jobs\"} 900
jobline_writer_busy_seconds_total{writer=\"submits\"} 0.25
jobline_pool_workers{queue=\"snapshots\"} 64
";

    #[test]
    fn reads_the_writer_series_and_nothing_else() {
        let s = parse(SCRAPE);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s["jobs"],
            Counters {
                busy_s: 1.5,
                batches: 30,
                ops: 900
            }
        );
        assert_eq!(s["submits"].busy_s, 0.25);
    }

    #[test]
    fn load_is_the_difference_per_node_averaged_over_the_nodes() {
        let at = Instant::now();
        let node = |busy_s, batches, ops| {
            Scrape::from([(
                "jobs".to_string(),
                Counters {
                    busy_s,
                    batches,
                    ops,
                },
            )])
        };
        let before = Snapshot {
            at,
            nodes: vec![node(1.0, 10, 100), node(0.0, 0, 0)],
        };
        let after = Snapshot {
            at: at + Duration::from_secs(2),
            nodes: vec![node(2.0, 30, 700), node(1.0, 20, 400)],
        };
        let load = load(&before, &after);
        assert_eq!(
            load["jobs"],
            WriterLoad {
                busy: 0.5,
                batches: 40,
                ops_per_batch: 25.0
            }
        );
    }
}
