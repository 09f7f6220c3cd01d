//! The one JSON line a benchmark prints.

use super::writers::WriterLoad;
use serde::Serialize;
use std::collections::BTreeMap;

/// Submit-to-webhook latency percentiles, in milliseconds.
#[derive(Debug, Serialize, Default)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

impl Latency {
    /// Percentiles of `samples` (sorted here).
    pub(crate) fn of(mut samples: Vec<f64>) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            round(samples[i], 1)
        };
        Latency {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// Where a job's time went between its creation and its webhook's request, from the times
/// the servers wrote (milliseconds): waiting (created → started: the submit's commit, the
/// wake-up, the claim), running (started → completed: the job, the wait for its end's
/// transaction), notifying (completed → the first attempt of its `job:finished` started:
/// the rest of that transaction, its commit, the hand-over to the dispatcher).
#[derive(Debug, Serialize)]
pub(crate) struct Steps {
    /// Created → started.
    pub(crate) waiting: Latency,
    /// Started → completed.
    pub(crate) running: Latency,
    /// Completed → its webhook's first attempt started.
    pub(crate) notifying: Latency,
}

/// What went wrong, by kind; the sum is `errors`.
#[derive(Debug, Serialize, Default)]
pub(crate) struct Errors {
    /// Submits not answered 202.
    pub(crate) non_202: usize,
    /// Deliveries whose signature did not verify.
    pub(crate) bad_signatures: usize,
    /// Accepted jobs whose `job:finished` never arrived.
    pub(crate) missing_webhooks: usize,
    /// Deliveries of a job already announced, and notifications that needed a retry.
    pub(crate) duplicate_webhooks: usize,
    /// Accepted jobs not `completed` at the end (or webhooks for jobs never accepted);
    /// with `--submit-only`, accepted jobs missing from the database.
    pub(crate) jobs_not_completed: usize,
    /// Servers that did not exit with status 0 after SIGTERM (a crash as they stopped).
    pub(crate) bad_exits: usize,
}

impl Errors {
    /// The total.
    pub(crate) fn total(&self) -> usize {
        self.non_202
            + self.bad_signatures
            + self.missing_webhooks
            + self.duplicate_webhooks
            + self.jobs_not_completed
            + self.bad_exits
    }
}

/// The result line.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) backend: &'static str,
    pub(crate) nodes: usize,
    pub(crate) eshops: usize,
    pub(crate) jobs: usize,
    /// Requests in flight (closed loop); null with `--rate`.
    pub(crate) concurrency: Option<usize>,
    /// The offered rate (`--rate`); null in a closed loop.
    pub(crate) offered_rate: Option<f64>,
    /// `--submit-only`: no workers, no webhooks; the latency is request to 202.
    pub(crate) submit_only: bool,
    /// 202 answers per second, first submit to last answer.
    pub(crate) submit_rate: f64,
    /// Jobs per second, first submit to last webhook; null with `--submit-only`.
    pub(crate) e2e_rate: Option<f64>,
    /// Submit sent to webhook arrived (with `--submit-only`: submit sent to its 202).
    pub(crate) latency_ms: Latency,
    /// The latency's steps inside the servers; null with `--submit-only`.
    pub(crate) latency_steps_ms: Option<Steps>,
    /// The largest peak RSS of a server process.
    pub(crate) server_peak_rss_mb: f64,
    /// CPU time of all server processes.
    pub(crate) server_cpu_s: f64,
    /// CPU time of the bench itself (client and receiver).
    pub(crate) bench_cpu_s: f64,
    /// CPU time of the PostgreSQL server from the first submit to the end (every
    /// `postgres` process on this machine, so other work on the server counts too); null
    /// for SQLite or a server on another machine.
    pub(crate) database_cpu_s: Option<f64>,
    /// Whether the servers' connections to PostgreSQL are encrypted (TLS); null for
    /// SQLite. On a server on the same machine TLS costs about a tenth of a node's rate.
    pub(crate) database_tls: Option<bool>,
    /// Each database writer's load from the first submit to the end, by its `writer` label
    /// (`submits`, `jobs`, `deliveries` on PostgreSQL; `all`, SQLite's one writer): the
    /// share of the time it was busy (mean over the nodes), its transactions and the
    /// write ops per transaction, from the servers' `jobline_writer_*` counters.
    pub(crate) writers: BTreeMap<String, WriterLoad>,
    /// Seconds from the first submit to the last webhook (with `--submit-only`: to the
    /// last answer).
    pub(crate) wall_s: f64,
    /// Must be 0.
    pub(crate) errors: usize,
    pub(crate) error_detail: Errors,
}

/// `x` rounded to `digits` decimals.
pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::Latency;

    #[test]
    fn percentiles_take_the_sample_at_or_above_the_rank() {
        let l = Latency::of((1..=100).rev().map(f64::from).collect());
        assert_eq!((l.p50, l.p95, l.p99, l.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(Latency::of(vec![]).p99, 0.0);
        assert_eq!(Latency::of(vec![3.0]).p50, 3.0);
    }
}
