//! `jobline bench` end to end, small: it starts its own servers on a fresh database,
//! verifies every signed webhook and prints one JSON line with no errors.

use crate::common::node::BIN;
use crate::common::{pg_server_url, Backend};
use serde_json::Value;
use std::process::Command;

fn bench(args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .env_remove("JOBLINE_CONFIG")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "jobline bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().expect("one JSON line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn assert_figures(report: &Value, jobs: u64) {
    assert_eq!(report["jobs"], jobs, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["submit_only"], false, "{report}");
    for rate in ["submit_rate", "e2e_rate"] {
        assert!(report[rate].as_f64().unwrap() > 0.0, "{report}");
    }
    // The jobs cannot end faster than they are accepted, but the last webhook may reach
    // the receiver a moment before the client has read the last 202 (the job runs while
    // that answer is on its way), so the end-to-end rate may pass the submit rate by a hair.
    let (submit, e2e) = (
        report["submit_rate"].as_f64().unwrap(),
        report["e2e_rate"].as_f64().unwrap(),
    );
    assert!(e2e <= submit * 1.05, "{report}");
    let latency = &report["latency_ms"];
    let (p50, p95, p99) = (
        latency["p50"].as_f64().unwrap(),
        latency["p95"].as_f64().unwrap(),
        latency["p99"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p95 && p95 <= p99, "{report}");
    // The steps inside the servers: each took some time for some job, and none took
    // longer than a whole submit-to-webhook (they lie between the submit and the webhook).
    let whole = latency["max"].as_f64().unwrap();
    for step in ["waiting", "running", "notifying"] {
        let step = &report["latency_steps_ms"][step];
        let (p50, max) = (step["p50"].as_f64().unwrap(), step["max"].as_f64().unwrap());
        assert!(
            0.0 <= p50 && p50 <= max && 0.0 < max && max <= whole,
            "{report}"
        );
    }
    let rss = report["server_peak_rss_mb"].as_f64().unwrap();
    assert!(rss > 1.0 && rss < 1024.0, "{report}");
    assert!(report["server_cpu_s"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["bench_cpu_s"].as_f64().unwrap() > 0.0, "{report}");
}

async fn bench_reports_every_job_without_errors(backend: Backend) {
    let report = match backend {
        Backend::Sqlite => bench(&["--jobs", "200", "--concurrency", "8"]),
        Backend::Postgres => bench(&[
            "--jobs",
            "200",
            "--concurrency",
            "8",
            "--nodes",
            "2",
            "--database-url",
            &pg_server_url(),
            "--set",
            "queues.snapshots.workers=4",
        ]),
    };
    assert_figures(&report, 200);
    let (name, nodes) = match backend {
        Backend::Sqlite => ("sqlite", 1),
        Backend::Postgres => ("postgres", 2),
    };
    assert_eq!(report["backend"], name);
    assert_eq!(report["nodes"], nodes);
    assert_eq!(report["concurrency"], 8);
    // The database's CPU: none to count for SQLite (even with a PostgreSQL server running
    // beside it); something for a PostgreSQL server on this machine, which did the run's
    // writes.
    let database_cpu = &report["database_cpu_s"];
    match backend {
        Backend::Sqlite => assert!(database_cpu.is_null(), "{report}"),
        Backend::Postgres if server_is_here() => {
            assert!(database_cpu.as_f64().unwrap() > 0.0, "{report}")
        }
        Backend::Postgres => {}
    }
    // Whether the servers' connections were encrypted: what a connection to the same
    // server negotiates; nothing to say for SQLite.
    match backend {
        Backend::Sqlite => assert!(report["database_tls"].is_null(), "{report}"),
        Backend::Postgres => assert_eq!(report["database_tls"], server_encrypts(), "{report}"),
    }
    let every_writer: &[&str] = match backend {
        Backend::Sqlite => &["all"],
        Backend::Postgres => &["submits", "jobs", "deliveries"],
    };
    assert_writers(&report, backend, 200, every_writer);
}

/// The servers' database writers during the run: SQLite's one, PostgreSQL's three lanes.
/// Each is busy for a share of the time, with batches of at least one op, or idle with
/// none (with `--submit-only` a PostgreSQL node may write nothing but submits); those in
/// `worked` did write. The submits (all of them, on every node) are `submits` write ops,
/// one each.
fn assert_writers(report: &Value, backend: Backend, submits: u64, worked: &[&str]) {
    let writers = report["writers"].as_object().expect("writers");
    let names: Vec<&str> = writers.keys().map(String::as_str).collect();
    match backend {
        Backend::Sqlite => assert_eq!(names, ["all"], "{report}"),
        Backend::Postgres => assert_eq!(names, ["deliveries", "jobs", "submits"], "{report}"),
    }
    for (name, w) in writers {
        let busy = w["busy"].as_f64().unwrap();
        let batches = w["batches"].as_u64().unwrap();
        let ops_per_batch = w["ops_per_batch"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&busy), "{name}: {report}");
        if batches > 0 {
            assert!(busy > 0.0 && ops_per_batch >= 1.0, "{name}: {report}");
        } else {
            assert!(busy == 0.0 && ops_per_batch == 0.0, "{name}: {report}");
        }
    }
    for name in worked {
        assert!(
            writers[*name]["batches"].as_u64().unwrap() > 0,
            "{name}: {report}"
        );
    }
    if backend == Backend::Postgres {
        let w = &writers["submits"];
        let ops = w["batches"].as_u64().unwrap() as f64 * w["ops_per_batch"].as_f64().unwrap();
        // ops_per_batch is rounded to a tenth.
        let slack = w["batches"].as_u64().unwrap() as f64 * 0.05 + 0.5;
        assert!((ops - submits as f64).abs() <= slack, "{report}");
    }
}

/// Whether a connection to the tests' PostgreSQL server is encrypted (libpq negotiates TLS
/// whenever the server offers it).
fn server_encrypts() -> bool {
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Ssl {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ssl: bool,
    }
    let mut conn = diesel::PgConnection::establish(&pg_server_url()).expect("PostgreSQL");
    diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result::<Ssl>(&mut conn)
        .expect("pg_stat_ssl")
        .ssl
}

/// Whether the tests' PostgreSQL server runs on this machine (its processes are in /proc):
/// a loopback host, or none (the local socket).
fn server_is_here() -> bool {
    let url = url::Url::parse(&pg_server_url()).expect("TEST_POSTGRES_URL is a URL");
    matches!(
        url.host_str(),
        None | Some("" | "127.0.0.1" | "localhost" | "[::1]")
    )
}

async fn bench_offers_a_fixed_rate(backend: Backend) {
    let server = pg_server_url();
    let mut args = vec!["--jobs", "100", "--rate", "200"];
    if backend == Backend::Postgres {
        args.extend(["--database-url", &server]);
    }
    let report = bench(&args);
    assert_figures(&report, 100);
    assert_eq!(report["offered_rate"], 200.0);
    assert!(report["concurrency"].is_null());
    // 100 submits offered at 200/s take about half a second, not less.
    assert!(report["wall_s"].as_f64().unwrap() >= 0.45, "{report}");
}

async fn bench_submit_only_measures_the_accept_path(backend: Backend) {
    let server = pg_server_url();
    let mut args = vec!["--jobs", "300", "--concurrency", "8", "--submit-only"];
    if backend == Backend::Postgres {
        args.extend(["--database-url", &server]);
    }
    let report = bench(&args);
    assert_eq!(report["jobs"], 300, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["submit_only"], true, "{report}");
    // No worker ran and no webhook was awaited: there is no end-to-end rate, nor steps.
    assert!(report["e2e_rate"].is_null(), "{report}");
    assert!(report["latency_steps_ms"].is_null(), "{report}");
    assert!(report["submit_rate"].as_f64().unwrap() > 0.0, "{report}");
    // The latency is a submit's request to its 202: well under the run's wall time.
    let latency = &report["latency_ms"];
    let (p50, p99) = (
        latency["p50"].as_f64().unwrap(),
        latency["p99"].as_f64().unwrap(),
    );
    let wall_ms = report["wall_s"].as_f64().unwrap() * 1000.0;
    assert!(0.0 < p50 && p50 <= p99 && p99 <= wall_ms, "{report}");
    let submits_writer = match backend {
        Backend::Sqlite => "all",
        Backend::Postgres => "submits",
    };
    assert_writers(&report, backend, 300, &[submits_writer]);
}

#[test]
fn bench_refuses_several_nodes_on_sqlite() {
    let out = Command::new(BIN)
        .args(["bench", "--nodes", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--database-url"));
}

crate::on_both_backends!(
    bench_reports_every_job_without_errors,
    bench_offers_a_fixed_rate,
    bench_submit_only_measures_the_accept_path
);
