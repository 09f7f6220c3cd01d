//! `GET /metrics`: Prometheus text without a token, with the database gauges, the finished
//! jobs and job duration of this node, webhook attempts and HTTP requests by route pattern.

use crate::common::{eventually, Backend, TestApp};
use std::time::Duration;

const SNAPSHOT: &str = "/api/products/snapshot";
const IMAGES: &str = "/api/products/images";

pub async fn scrape(t: &TestApp) -> String {
    let a = t.send(t.client.get(t.url("/metrics"))).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    String::from_utf8(a.bytes).unwrap()
}

/// The value of the series written exactly `series` (name and labels), if present.
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(s, _)| *s == series)
        .map(|(_, v)| v.parse().unwrap())
}

fn assert_series(text: &str, series: &str, expected: f64) {
    assert_eq!(value(text, series), Some(expected), "{series} in\n{text}");
}

async fn metrics_after_jobs_and_calls(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| {
        // One attempt per notification while the test runs.
        c.webhook_retry_schedule = vec![Duration::from_secs(3600)];
    })
    .await;
    t.create_product("M1", "visible").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(t.submit_snapshot("").await);
    }
    for id in &ids {
        assert_eq!(t.wait_finished(id).await["status"], "completed");
    }
    assert_eq!(t.get("/nowhere").await.status, 404);
    // No token needed; every node's counters are in process memory, so wait until the
    // worker and the webhook dispatcher have observed every job's end.
    eventually(Duration::from_secs(10), "job ends and attempts observed", || async {
        let text = scrape(&t).await;
        value(&text, &format!("jobline_job_duration_seconds_count{{endpoint=\"{SNAPSHOT}\",status=\"completed\"}}")) == Some(3.0)
            && value(&text, "jobline_webhook_attempts_total{outcome=\"no_webhook\"}") == Some(3.0)
    })
    .await;

    let before = scrape(&t).await;
    let job_route =
        "jobline_http_requests_total{method=\"GET\",route=\"/api/system/jobs/{job_id}\",status=\"200\"}";
    let waited = value(&before, job_route).unwrap();
    assert!(waited >= 3.0, "{before}");
    for id in &ids[..2] {
        assert_eq!(t.get(&format!("/api/system/jobs/{id}")).await.status, 200);
    }
    let text = scrape(&t).await;

    // Jobs by endpoint and status: the unfinished ones from the database (every endpoint,
    // 0 when none), the finished ones as this node recorded their end.
    assert_series(
        &text,
        &format!("jobline_jobs_finished_total{{endpoint=\"{SNAPSHOT}\",status=\"completed\"}}"),
        3.0,
    );
    assert_eq!(
        value(
            &text,
            &format!("jobline_jobs{{endpoint=\"{SNAPSHOT}\",status=\"completed\"}}")
        ),
        None,
        "a scrape does not count history"
    );
    for status in ["pending", "running"] {
        assert_series(
            &text,
            &format!("jobline_jobs{{endpoint=\"{SNAPSHOT}\",status=\"{status}\"}}"),
            0.0,
        );
        assert_series(
            &text,
            &format!("jobline_jobs{{endpoint=\"{IMAGES}\",status=\"{status}\"}}"),
            0.0,
        );
    }
    // Queues: nothing waits or runs.
    for queue in ["snapshots", "images"] {
        assert_series(
            &text,
            &format!("jobline_queue_pending_jobs{{queue=\"{queue}\"}}"),
            0.0,
        );
        assert_series(
            &text,
            &format!("jobline_queue_oldest_pending_age_seconds{{queue=\"{queue}\"}}"),
            0.0,
        );
        assert_series(
            &text,
            &format!("jobline_queue_running_jobs{{queue=\"{queue}\"}}"),
            0.0,
        );
    }
    assert_series(&text, "jobline_database_up", 1.0);
    // The duration histogram, observed by the workers.
    assert_series(
        &text,
        &format!(
            "jobline_job_duration_seconds_count{{endpoint=\"{SNAPSHOT}\",status=\"completed\"}}"
        ),
        3.0,
    );
    assert_series(&text, &format!("jobline_job_duration_seconds_bucket{{endpoint=\"{SNAPSHOT}\",status=\"completed\",le=\"+Inf\"}}"), 3.0);
    // Webhook attempts: the demo e-shop has no webhook, so each notification's one attempt.
    assert_series(
        &text,
        "jobline_webhook_attempts_total{outcome=\"no_webhook\"}",
        3.0,
    );
    assert_eq!(
        value(&text, "jobline_webhook_attempts_total{outcome=\"success\"}"),
        None
    );
    // HTTP requests by route pattern (ids do not appear), status and method.
    assert_series(&text, job_route, waited + 2.0);
    assert_series(
        &text,
        "jobline_http_requests_total{method=\"POST\",route=\"/api/products\",status=\"201\"}",
        1.0,
    );
    assert_series(
        &text,
        &format!(
            "jobline_http_requests_total{{method=\"GET\",route=\"{SNAPSHOT}\",status=\"202\"}}"
        ),
        3.0,
    );
    assert_series(
        &text,
        "jobline_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}",
        1.0,
    );
    assert!(
        !text.contains(ids[0].as_str()),
        "a job id in a label:\n{text}"
    );
    let scrapes = value(
        &before,
        "jobline_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}",
    )
    .unwrap();
    assert_series(
        &text,
        "jobline_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}",
        scrapes + 1.0,
    );
    // The latency histogram counts the same requests (labelled without status).
    assert_series(
        &text,
        &format!(
            "jobline_http_request_duration_seconds_count{{method=\"GET\",route=\"{SNAPSHOT}\"}}"
        ),
        3.0,
    );
    // The database writers: PostgreSQL's three lanes (the three submits on their own, the
    // product, claims and ends on the jobs' lane), SQLite's one writer for all of it.
    let writer = |name: &str, writer: &str| {
        value(
            &text,
            &format!("jobline_writer_{name}{{writer=\"{writer}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let writers: &[&str] = match backend {
        Backend::Sqlite => &["all"],
        Backend::Postgres => &["submits", "jobs", "deliveries"],
    };
    for w in writers {
        assert!(writer("busy_seconds_total", w) > 0.0, "{w} in\n{text}");
        assert!(
            writer("ops_total", w) >= writer("batches_total", w)
                && writer("batches_total", w) > 0.0,
            "{w} in\n{text}"
        );
    }
    match backend {
        Backend::Sqlite => assert!(writer("ops_total", "all") >= 7.0, "{text}"),
        Backend::Postgres => {
            assert_series(&text, "jobline_writer_ops_total{writer=\"submits\"}", 3.0)
        }
    }
}

async fn pending_jobs_show_depth_and_age(backend: Backend) {
    // No snapshot workers: submitted jobs wait.
    let t = TestApp::spawn_with(backend, |c| {
        crate::common::set_workers(c, "snapshots", 0);
    })
    .await;
    t.submit_snapshot("").await;
    t.submit_snapshot("").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let text = scrape(&t).await;
    assert_series(
        &text,
        "jobline_queue_pending_jobs{queue=\"snapshots\"}",
        2.0,
    );
    assert_series(&text, "jobline_queue_pending_jobs{queue=\"images\"}", 0.0);
    assert_series(
        &text,
        &format!("jobline_jobs{{endpoint=\"{SNAPSHOT}\",status=\"pending\"}}"),
        2.0,
    );
    let age = value(
        &text,
        "jobline_queue_oldest_pending_age_seconds{queue=\"snapshots\"}",
    )
    .unwrap();
    assert!((1.0..60.0).contains(&age), "{age}");
}

async fn kills_and_expiries_are_counted_where_recorded(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let lapsed = t.submit_snapshot("").await;
    t.wait_finished(&lapsed).await;
    {
        use diesel::prelude::*;
        use jobline::db::schema::jobs;
        let mut conn = t.db.connect();
        diesel::update(jobs::table.find(&lapsed))
            .set(jobs::valid_until.eq(Some(1_i64)))
            .execute(&mut conn)
            .unwrap();
    }
    // The janitor expires the result and counts it; the completion stays counted.
    let finished = |status: &str| {
        format!("jobline_jobs_finished_total{{endpoint=\"{SNAPSHOT}\",status=\"{status}\"}}")
    };
    eventually(Duration::from_secs(10), "the expiry is counted", || async {
        value(&scrape(&t).await, &finished("expired")) == Some(1.0)
    })
    .await;
    let text = scrape(&t).await;
    assert_series(&text, &finished("completed"), 1.0);
    assert_eq!(value(&text, &finished("killed")), None, "{text}");
}

async fn a_kill_is_counted_by_the_node_that_records_it(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| crate::common::set_workers(c, "snapshots", 0)).await;
    let job = t.submit_snapshot("").await;
    let killed = t.delete(&format!("/api/system/jobs/{job}")).await;
    assert_eq!(killed.status, 200, "{}", killed.body);
    let text = scrape(&t).await;
    assert_series(
        &text,
        &format!("jobline_jobs_finished_total{{endpoint=\"{SNAPSHOT}\",status=\"killed\"}}"),
        1.0,
    );
    assert_series(
        &text,
        &format!("jobline_jobs{{endpoint=\"{SNAPSHOT}\",status=\"pending\"}}"),
        0.0,
    );
}

crate::on_both_backends!(
    metrics_after_jobs_and_calls,
    pending_jobs_show_depth_and_age,
    kills_and_expiries_are_counted_where_recorded,
    a_kill_is_counted_by_the_node_that_records_it,
);
