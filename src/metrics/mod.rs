//! The numbers `GET /metrics` exposes, in the Prometheus text format (0.0.4).
//!
//! Two kinds of series live here. Counters and histograms ([`Metrics`]) are kept in this
//! process's memory: they count what *this node* did since it started (jobs it ended,
//! webhook attempts it made, HTTP requests it answered), so with several nodes Prometheus
//! sums them across scrape targets. The gauges of [`gauges::DbGauges`] are read from the
//! database at scrape time: they describe the whole cluster, and every node reports the
//! same values. The worker pool gauges ([`pools`]) are per node too: each queue actor sets
//! its own as its pool changes.

pub mod gauges;
pub mod minutes;
pub mod pools;
pub mod writers;

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The `Content-Type` of a scrape's answer.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The prefix of every series name.
const PREFIX: &str = "jobline";

/// Bucket bounds of the job duration histogram, in seconds: from a small snapshot to the
/// default `max_run_time` (10 min) and beyond.
const JOB_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0,
];

/// Bucket bounds of the HTTP latency histogram, in seconds.
const HTTP_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The route label of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Labels of a finished job's duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    endpoint: String,
    status: String,
}

/// Labels of a webhook delivery attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    outcome: String,
}

/// Labels of an engine actor restarted by the supervisor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActorLabels {
    actor: String,
}

/// Labels of an answered HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

/// Labels of an HTTP request's latency (no status: fewer series, and the counter has it).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    method: String,
    route: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn job_histogram() -> Histogram {
    Histogram::new(JOB_BUCKETS)
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

/// This node's counters and histograms, shared by the workers, the webhook dispatcher and
/// the HTTP middleware (through `Arc`), and rendered with the database gauges on a scrape.
/// They are per node and start from zero when the process starts.
pub struct Metrics {
    /// Every series below, registered once.
    registry: Registry,
    /// `jobline_job_duration_seconds{endpoint,status}`.
    job_duration: HistogramFamily<JobLabels>,
    /// `jobline_jobs_finished_total{endpoint,status}`.
    jobs_finished: Family<JobLabels, Counter>,
    /// `jobline_webhook_attempts_total{outcome}`.
    webhook_attempts: Family<AttemptLabels, Counter>,
    /// `jobline_http_requests_total{method,route,status}`.
    http_requests: Family<RequestLabels, Counter>,
    /// `jobline_http_request_duration_seconds{method,route}`.
    http_latency: HistogramFamily<LatencyLabels>,
    /// Jobs this node ended per minute (the dashboard's chart, written with the heartbeat).
    pub minutes: minutes::Minutes,
    /// `jobline_actor_restarts_total{actor}`.
    actor_restarts: Family<ActorLabels, Counter>,
    /// `jobline_pool_{workers,min_workers,max_workers,busy_workers}{queue}` and
    /// `jobline_pool_backlog_reads_total{queue}`.
    pools: pools::PoolFamilies,
    /// `jobline_writer_{busy_seconds,batches,ops}_total{writer}`.
    writers: writers::WriterFamilies,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Empty series, registered under the `jobline_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let job_duration = HistogramFamily::new_with_constructor(job_histogram as fn() -> _);
        registry.register(
            "job_duration_seconds",
            "Processing time of jobs this node ended, by endpoint and final status",
            job_duration.clone(),
        );
        let jobs_finished = Family::default();
        registry.register(
            "jobs_finished",
            "Jobs whose end this node recorded, by endpoint and final status (expired: the result lapsed); sum over nodes for the cluster",
            jobs_finished.clone(),
        );
        let webhook_attempts = Family::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts this node made, by outcome",
            webhook_attempts.clone(),
        );
        let http_requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests this node answered, by method, route pattern and status",
            http_requests.clone(),
        );
        let http_latency = HistogramFamily::new_with_constructor(http_histogram as fn() -> _);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (until the response starts), by method and route pattern",
            http_latency.clone(),
        );
        let actor_restarts = Family::default();
        registry.register(
            "actor_restarts",
            "Engine actors this node's supervisor restarted after they stopped unexpectedly",
            actor_restarts.clone(),
        );
        let pools = pools::PoolFamilies::register(&mut registry);
        let writers = writers::WriterFamilies::register(&mut registry);
        Metrics {
            registry,
            job_duration,
            jobs_finished,
            webhook_attempts,
            http_requests,
            http_latency,
            minutes: minutes::Minutes::default(),
            actor_restarts,
            pools,
            writers,
        }
    }

    /// The pool gauges of `queue` on this node (set by its queue actor; readable by
    /// anyone holding the metrics, e.g. a dashboard).
    pub fn pool(&self, queue: &str) -> pools::PoolGauges {
        self.pools.of(queue)
    }

    /// The counters of this node's database writer `writer` (held by its thread).
    pub fn writer(&self, writer: &str) -> writers::WriterMeter {
        self.writers.of(writer)
    }

    /// A worker recorded the end of a job of `endpoint` with final `status` after `took`.
    pub fn job_finished(&self, endpoint: &str, status: &str, took: Duration) {
        self.job_duration
            .get_or_create(&JobLabels {
                endpoint: endpoint.to_string(),
                status: status.to_string(),
            })
            .observe(took.as_secs_f64());
        let minute = crate::model::time::now() / (60 * crate::model::time::SECOND);
        self.minutes.record(minute, status == "completed");
        self.job_ended(endpoint, status);
    }

    /// This node recorded that a job of `endpoint` reached the final `status` (a worker's
    /// end, a kill, the janitor's kill after a lost lease, or `expired` when the janitor
    /// expired its result).
    pub fn job_ended(&self, endpoint: &str, status: &str) {
        self.jobs_finished
            .get_or_create(&JobLabels {
                endpoint: endpoint.to_string(),
                status: status.to_string(),
            })
            .inc();
    }

    /// The webhook dispatcher made a delivery attempt that ended with `outcome`.
    pub fn webhook_attempt(&self, outcome: &str) {
        self.webhook_attempts
            .get_or_create(&AttemptLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// An HTTP request of `method` to `route` (a route pattern, or [`UNMATCHED_ROUTE`]) was
    /// answered `status` after `took`.
    pub fn http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.http_latency
            .get_or_create(&LatencyLabels {
                method: method.to_string(),
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// The supervisor restarted `actor` (`queue`, `webhook_dispatcher`, `janitor`,
    /// `pg_listener`) after it stopped unexpectedly.
    pub fn actor_restarted(&self, actor: &str) {
        self.actor_restarts
            .get_or_create(&ActorLabels {
                actor: actor.to_string(),
            })
            .inc();
    }

    /// The scrape's body: this node's series, then the database gauges (`None` when the
    /// database did not answer: then only `jobline_database_up 0` stands for them).
    pub fn render(&self, db: Option<&gauges::DbGauges>) -> String {
        let mut out = String::new();
        let scraped = gauges::registry(PREFIX, db);
        prometheus_text::encode(&mut out, &self.registry)
            .and_then(|()| prometheus_text::encode(&mut out, &scraped))
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_observed_series() {
        let m = Metrics::new();
        m.job_finished(
            "/api/products/snapshot",
            "completed",
            Duration::from_millis(20),
        );
        m.webhook_attempt("success");
        m.http_request("GET", "/healthz", 200, Duration::from_millis(3));
        m.actor_restarted("janitor");
        let pool = pools::PoolSnapshot {
            size: 5,
            min: 1,
            max: 16,
            busy: 4,
        };
        m.pool("snapshots").set(pool);
        m.pool("snapshots").backlog_read();
        assert_eq!(m.pool("snapshots").get(), pool);
        let text = m.render(None);
        for line in [
            "jobline_job_duration_seconds_count{endpoint=\"/api/products/snapshot\",status=\"completed\"} 1",
            "jobline_job_duration_seconds_bucket{endpoint=\"/api/products/snapshot\",status=\"completed\",le=\"0.05\"} 1",
            "jobline_webhook_attempts_total{outcome=\"success\"} 1",
            "jobline_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1",
            "jobline_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\"} 1",
            "jobline_actor_restarts_total{actor=\"janitor\"} 1",
            "jobline_database_up 0",
            "jobline_pool_workers{queue=\"snapshots\"} 5",
            "jobline_pool_min_workers{queue=\"snapshots\"} 1",
            "jobline_pool_max_workers{queue=\"snapshots\"} 16",
            "jobline_pool_busy_workers{queue=\"snapshots\"} 4",
            "jobline_pool_backlog_reads_total{queue=\"snapshots\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
