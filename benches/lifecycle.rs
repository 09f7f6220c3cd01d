//! End-to-end benchmark of the asynchronous life cycle, printed as figures:
//! the submit rate (202s per second) and the end-to-end rate (jobs submitted and completed
//! per second, from the first submit to the last completion), on SQLite and PostgreSQL.
//!
//!     cargo bench --bench lifecycle                 # both backends, 2000 jobs
//!     JOBS=5000 CONCURRENCY=32 cargo bench --bench lifecycle
//!     WORKERS=16 cargo bench --bench lifecycle      # snapshot pool pinned at 16 workers
//!
//! The app runs in this process on port 0 (as the tests boot it); the client is reqwest
//! with CONCURRENCY requests in flight. Jobs are products snapshots of a 10-product
//! catalogue spread over 8 e-shops so the per-e-shop fairness cap does not serialise them.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use futures_util::stream::{self, StreamExt};
use jobline::config::Config;
use std::time::{Duration, Instant};

const ESHOPS: i64 = 8;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unfinished(url: &str) -> i64 {
    use jobline::db::schema::jobs::dsl;
    let mut conn = jobline::db::Backend::from_url(url)
        .unwrap()
        .establish()
        .unwrap();
    dsl::jobs
        .filter(dsl::status.eq_any(["pending", "running"]))
        .count()
        .get_result(&mut conn)
        .unwrap()
}

async fn run(label: &str, database_url: String, jobs: usize, concurrency: usize) {
    let mut config = Config {
        database_url: database_url.clone(),
        rate_limit_capacity: 0,
        ..Config::default()
    };
    if let Ok(workers) = std::env::var("WORKERS") {
        config.queues.entry("snapshots".into()).or_default().workers =
            Some(workers.parse().expect("WORKERS is a number"));
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = jobline::run(config, listener).await.unwrap();
    let mut tokens = vec![app.demo_token.clone().unwrap()];
    {
        let mut conn = jobline::db::Backend::from_url(&database_url)
            .unwrap()
            .establish()
            .unwrap();
        for id in 2..=ESHOPS {
            tokens.push(jobline::db::eshops::create(&mut conn, id, "bench").unwrap());
        }
    }
    let client = reqwest::Client::new();
    for (i, token) in tokens.iter().enumerate() {
        for p in 0..10 {
            let body =
                serde_json::json!({"data": {"code": format!("P{i}-{p}"), "name": "Bench product"}});
            let res = client
                .post(format!("{base}/api/products"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 201);
        }
    }
    let started = Instant::now();
    let accepted = stream::iter(0..jobs)
        .map(|i| {
            let req = client
                .get(format!("{base}/api/products/snapshot"))
                .bearer_auth(&tokens[i % tokens.len()]);
            async move {
                req.send()
                    .await
                    .map(|r| r.status().as_u16() == 202)
                    .unwrap_or(false)
            }
        })
        .buffer_unordered(concurrency)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    let submitted = started.elapsed();
    while unfinished(&database_url) > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let finished = started.elapsed();
    assert_eq!(accepted, jobs);
    println!(
        "{label:<10} jobs={jobs} concurrency={concurrency}  submit: {:>7.0} jobs/s ({:.2} s)  end-to-end: {:>7.0} jobs/s ({:.2} s)",
        jobs as f64 / submitted.as_secs_f64(),
        submitted.as_secs_f64(),
        jobs as f64 / finished.as_secs_f64(),
        finished.as_secs_f64(),
    );
    app.shutdown().await;
}

fn main() {
    let jobs = env_usize("JOBS", 2000);
    let concurrency = env_usize("CONCURRENCY", 32);
    let only = std::env::var("BACKEND").unwrap_or_default();
    actix_rt::System::new().block_on(async move {
        if only.is_empty() || only == "sqlite" {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/bench.db", dir.path().display());
            run("sqlite", url, jobs, concurrency).await;
        }
        if only.is_empty() || only == "postgres" {
            let server = std::env::var("TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
            let name = format!("jobline_bench_{}", std::process::id());
            let mut admin = diesel::PgConnection::establish(&format!("{server}/postgres")).unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap();
            run("postgres", format!("{server}/{name}"), jobs, concurrency).await;
            admin
                .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .unwrap();
        }
    });
}
