//! The node recovers by itself: from its database connections being cut (PostgreSQL
//! backends terminated under load, the database refusing connections for a while, the
//! writer's connection lost on either backend, reads on connections the server closed), from a write op that panics, and from an
//! engine actor that panics. Every test checks that the node serves again without a
//! restart and that every accepted job ends `completed` with exactly one notification.

use crate::common::{eventually, pg_server_url, Backend, TestApp, TestDb};
use crate::reliability::{assert_exactly_once, until_all_ended};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use futures_util::future::join_all;
use jobline::db::schema::jobs;
use jobline::faults::FailurePoint;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Unlimited rate, and leases short enough that a job lost mid-outage comes back soon.
fn tuned(c: &mut jobline::config::Config) {
    c.rate_limit_capacity = 0;
    c.lease = Duration::from_secs(3);
    c.heartbeat = Duration::from_secs(1);
    c.max_running_per_eshop = 10;
}

/// What a load of submits was answered.
#[derive(Default)]
struct Tally {
    accepted: Vec<String>,
    unavailable: usize,
    /// Any other status: none is expected.
    other: Vec<(u16, String)>,
}

/// Submits snapshots, `parallel` at a time, until `stop` is set.
async fn load(base: String, token: String, stop: Arc<AtomicBool>) -> Tally {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/products/snapshot");
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let answers = join_all((0..8).map(|_| client.get(&url).bearer_auth(&token).send())).await;
        for res in answers {
            let res = res.expect("the node answers");
            let status = res.status().as_u16();
            let retry_after = res.headers().get("retry-after").cloned();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            match status {
                202 => tally
                    .accepted
                    .push(body["data"]["jobId"].as_str().unwrap().to_string()),
                503 => {
                    assert_eq!(body["errors"][0]["errorCode"], "service-unavailable");
                    assert!(retry_after.is_some(), "a 503 without Retry-After");
                    tally.unavailable += 1;
                }
                other => tally.other.push((other, body.to_string())),
            }
        }
    }
    tally
}

fn admin() -> diesel::PgConnection {
    diesel::PgConnection::establish(&format!("{}/postgres", pg_server_url())).unwrap()
}

fn db_name(db: &TestDb) -> String {
    db.url.rsplit('/').next().unwrap().to_string()
}

/// Cuts every connection to this test's database (what a failover or restart does).
fn terminate_backends(db: &TestDb) {
    admin()
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            db_name(db)
        ))
        .unwrap();
}

/// Submits until one is accepted; answers how long that took.
async fn until_accepted(t: &TestApp, limit: Duration) -> Duration {
    let started = Instant::now();
    eventually(limit, "a submit is accepted again", || async {
        t.get("/api/products/snapshot").await.status == 202
    })
    .await;
    started.elapsed()
}

#[actix_rt::test]
async fn postgres_backends_terminated_under_load_recover() {
    let t = TestApp::spawn_with(Backend::Postgres, tuned).await;
    let stop = Arc::new(AtomicBool::new(false));
    let submits = actix_rt::spawn(load(t.base.clone(), t.token.clone(), stop.clone()));
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        terminate_backends(&t.db);
    }
    let back = until_accepted(&t, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let tally = submits.await.unwrap();
    eprintln!(
        "accepted {}, 503 {}, served again {back:?} after the last termination",
        tally.accepted.len(),
        tally.unavailable
    );
    assert!(
        tally.other.is_empty(),
        "unexpected answers: {:?}",
        tally.other
    );
    assert!(tally.accepted.len() > 20, "{}", tally.accepted.len());
    assert_eq!(t.get("/readyz").await.status, 200);
    until_all_ended(&t.db, Duration::from_secs(60)).await;
    assert_exactly_once(&t.db, &tally.accepted);
}

/// The pool lends its connections without testing them first; a read whose connection the
/// server has closed runs again on another. After every backend of the test's database is
/// terminated, reads on the pooled (now dead) connections are answered at once, none 503.
#[actix_rt::test]
async fn postgres_reads_on_terminated_connections_are_answered() {
    let t = TestApp::spawn_with(Backend::Postgres, tuned).await;
    let id = t.submit_snapshot("").await;
    t.wait_finished(&id).await;
    let path = format!("/api/system/jobs/{id}");
    // Fill the pool: reads at once hold several connections.
    for answer in join_all((0..8).map(|_| t.get(&path))).await {
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    terminate_backends(&t.db);
    for answer in join_all((0..8).map(|_| t.get(&path))).await {
        assert_eq!(
            answer.status, 200,
            "a read after the terminations: {}",
            answer.body
        );
        assert_eq!(answer.body["data"]["jobId"], id.as_str());
    }
    assert_eq!(t.get("/readyz").await.status, 200);
}

/// The database refuses connections for a while. Submits and `/readyz` answer 503 with
/// `Retry-After`; a job running meanwhile, whose reads are refused, is handed back without
/// spending its attempt (the hand-back itself retried until the database is back) and
/// completes on its next run.
#[actix_rt::test]
async fn postgres_unreachable_database_answers_503_until_it_is_back() {
    let t = TestApp::spawn_with(Backend::Postgres, |c| {
        tuned(c);
        // Longer than the outage: the running job's hand-back is retried, not given up.
        c.lease = Duration::from_secs(30);
        c.heartbeat = Duration::from_secs(10);
    })
    .await;
    let hold = t.breakpoints().arm("snapshot:page");
    let running = t.submit_snapshot("").await;
    hold.reached().await;
    let name = db_name(&t.db);
    admin()
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .unwrap();
    terminate_backends(&t.db);
    hold.release();
    let refused = t.get("/api/products/snapshot").await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.error_code(), "service-unavailable");
    assert_eq!(refused.header("retry-after").as_deref(), Some("2"));
    let ready = t.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.header("retry-after").is_some());
    admin()
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .unwrap();
    let back = until_accepted(&t, Duration::from_secs(5)).await;
    eprintln!("served again {back:?} after the database allowed connections");
    assert_eq!(t.get("/readyz").await.status, 200);
    let after = t.submit_snapshot("").await;
    until_all_ended(&t.db, Duration::from_secs(60)).await;
    for id in [&running, &after] {
        assert_eq!(t.wait_finished(id).await["status"], "completed");
        assert_eq!(t.notifications_for(id), 1);
    }
    let job = t.get(&format!("/api/system/jobs/{running}")).await;
    let log = job.body["data"]["log"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(log.contains("database was unreachable"), "{}", job.body);
    let attempt: i32 = jobs::table
        .find(&running)
        .select(jobs::attempt)
        .first(&mut t.db.connect())
        .unwrap();
    assert_eq!(attempt, 1, "the handed-back attempt is not counted");
}

/// The writer loses its connection (the failure point stands in for a restart, so this
/// runs on SQLite too): the batch that meets it answers 503, the next one reconnects.
async fn writer_reconnects_after_losing_its_connection(backend: Backend) {
    let t = TestApp::spawn_with(backend, tuned).await;
    let faults = t.app.as_ref().unwrap().faults.clone();
    let mut accepted = Vec::new();
    let mut refused = None;
    // Background writes (janitor, polls) may meet the point first: arm it again then.
    for _ in 0..20 {
        faults.arm(FailurePoint::WriterConnectionLost);
        let a = t.get("/api/products/snapshot").await;
        match a.status {
            202 => accepted.push(a.body["data"]["jobId"].as_str().unwrap().to_string()),
            _ => {
                refused = Some(a);
                break;
            }
        }
    }
    let refused = refused.expect("a submit met the lost connection");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.error_code(), "service-unavailable");
    assert_eq!(refused.header("retry-after").as_deref(), Some("2"));
    for _ in 0..10 {
        accepted.push(t.submit_snapshot("").await);
    }
    until_all_ended(&t.db, Duration::from_secs(60)).await;
    assert_exactly_once(&t.db, &accepted);
}

/// A write op panics inside a batch of concurrent submits: its caller gets a 500, every
/// other submit of the batch is committed, and the writer goes on.
async fn write_op_panic_fails_only_its_own_submit(backend: Backend) {
    let t = TestApp::spawn_with(backend, tuned).await;
    t.app
        .as_ref()
        .unwrap()
        .faults
        .arm(FailurePoint::SubmitWritePanics);
    let answers = join_all((0..20).map(|_| t.get("/api/products/snapshot"))).await;
    let failed: Vec<_> = answers.iter().filter(|a| a.status != 202).collect();
    assert_eq!(failed.len(), 1, "exactly the panicking submit fails");
    assert_eq!(failed[0].status, 500, "{}", failed[0].body);
    assert_eq!(failed[0].error_code(), "internal-error");
    let mut accepted: Vec<String> = answers
        .iter()
        .filter(|a| a.status == 202)
        .map(|a| a.body["data"]["jobId"].as_str().unwrap().to_string())
        .collect();
    for _ in 0..5 {
        accepted.push(t.submit_snapshot("").await);
    }
    until_all_ended(&t.db, Duration::from_secs(60)).await;
    assert_exactly_once(&t.db, &accepted);
}

/// `jobline_actor_restarts_total{actor}` as scraped.
async fn restarts(t: &TestApp, actor: &str) -> u64 {
    let text = String::from_utf8(t.get("/metrics").await.bytes).unwrap();
    let series = format!("jobline_actor_restarts_total{{actor=\"{actor}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.parse().unwrap())
}

/// Webhook attempts made by this node, whatever their outcome.
async fn webhook_attempts(t: &TestApp) -> u64 {
    let text = String::from_utf8(t.get("/metrics").await.bytes).unwrap();
    text.lines()
        .filter(|l| l.starts_with("jobline_webhook_attempts_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// Each engine actor panics once; the supervisor restarts it, counts it, and the node
/// goes on serving: jobs are submitted, run, end, and their notifications are attempted.
async fn supervisor_restarts_panicked_actors(backend: Backend) {
    let t = TestApp::spawn_with(backend, tuned).await;
    let faults = t.app.as_ref().unwrap().faults.clone();
    let mut actors = vec![
        (FailurePoint::QueuePanics, "queue"),
        (FailurePoint::WebhookDispatcherPanics, "webhook_dispatcher"),
        (FailurePoint::JanitorPanics, "janitor"),
    ];
    if backend == Backend::Postgres {
        actors.push((FailurePoint::ListenerPanics, "pg_listener"));
    }
    let mut accepted = Vec::new();
    for (point, actor) in actors {
        faults.arm(point);
        let armed = Instant::now();
        // A submit wakes the queue, a job's end wakes the dispatcher; the janitor and the
        // listener meet their point on their own.
        let job = t.submit_snapshot("").await;
        eventually(Duration::from_secs(10), actor, || async {
            restarts(&t, actor).await == 1
        })
        .await;
        eprintln!("{actor} restarted {:?} after arming", armed.elapsed());
        assert_eq!(t.wait_finished(&job).await["status"], "completed");
        accepted.push(job);
        accepted.push(t.submit_snapshot("").await);
    }
    until_all_ended(&t.db, Duration::from_secs(60)).await;
    assert_exactly_once(&t.db, &accepted);
    eventually(
        Duration::from_secs(10),
        "every notification is attempted",
        || async { webhook_attempts(&t).await >= accepted.len() as u64 },
    )
    .await;
}

crate::on_both_backends!(
    writer_reconnects_after_losing_its_connection,
    write_op_panic_fails_only_its_own_submit,
    supervisor_restarts_panicked_actors,
);
