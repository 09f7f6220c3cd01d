//! Nothing accepted is ever lost, on one node or many: real processes killed with -9 under
//! load, SIGTERM with running jobs, cross-node wake-up, fairness between e-shops, the rate
//! limit. Every test counts: jobs accepted, jobs ended, terminal statuses, notifications.

use crate::common::node::Node;
use crate::common::{Backend, TestApp, TestDb};
use diesel::dsl::count_star;
use diesel::prelude::*;
use futures_util::future::join_all;
use jobline::db::schema::{jobs, notifications};
use jobline::db::DbConnection;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Requests [`submit`] keeps in flight.
const PARALLEL: usize = 16;

/// Submits `n` snapshot jobs, [`PARALLEL`] at a time, round-robin over `bases`; answers the
/// ids of the accepted ones (a request to a dead node is simply not accepted).
async fn submit(client: &reqwest::Client, bases: &[String], token: &str, n: usize) -> Vec<String> {
    let mut accepted = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(PARALLEL) {
        let requests = chunk.iter().map(|i| {
            let url = format!("{}/api/products/snapshot", bases[i % bases.len()]);
            client.get(url).bearer_auth(token).send()
        });
        for res in join_all(requests).await.into_iter().flatten() {
            if res.status().as_u16() == 202 {
                let body: serde_json::Value = res.json().await.unwrap();
                accepted.push(body["data"]["jobId"].as_str().unwrap().to_string());
            }
        }
    }
    accepted
}

/// (status, attempt) of every job.
fn job_states(conn: &mut DbConnection) -> HashMap<String, (String, i32)> {
    jobs::table
        .select((jobs::id, jobs::status, jobs::attempt))
        .load::<(String, String, i32)>(conn)
        .unwrap()
        .into_iter()
        .map(|(id, st, a)| (id, (st, a)))
        .collect()
}

fn notification_counts(conn: &mut DbConnection) -> HashMap<String, i64> {
    notifications::table
        .group_by(notifications::event_instance)
        .select((notifications::event_instance, count_star()))
        .load::<(String, i64)>(conn)
        .unwrap()
        .into_iter()
        .collect()
}

fn unfinished(conn: &mut DbConnection) -> i64 {
    jobs::table
        .filter(jobs::status.eq_any(["pending", "running"]))
        .count()
        .get_result(conn)
        .unwrap()
}

/// Waits until no job is pending or running.
pub(crate) async fn until_all_ended(db: &TestDb, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut conn = db.connect();
    loop {
        let left = unfinished(&mut conn);
        if left == 0 {
            return;
        }
        if Instant::now() >= deadline {
            #[allow(clippy::type_complexity)]
            let stuck: Vec<(String, String, i32, Option<String>, Option<i64>, String)> =
                jobs::table
                    .filter(jobs::status.eq_any(["pending", "running"]))
                    .select((
                        jobs::id,
                        jobs::status,
                        jobs::attempt,
                        jobs::lease_owner,
                        jobs::lease_expires,
                        jobs::log,
                    ))
                    .limit(5)
                    .load(&mut conn)
                    .unwrap();
            panic!("{left} jobs never ended, e.g. {stuck:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every accepted job ended exactly once: one terminal status, one notification.
pub(crate) fn assert_exactly_once(
    db: &TestDb,
    accepted: &[String],
) -> HashMap<String, (String, i32)> {
    let mut conn = db.connect();
    let states = job_states(&mut conn);
    let notes = notification_counts(&mut conn);
    let mut ended = 0;
    for id in accepted {
        let (status, _) = states
            .get(id)
            .unwrap_or_else(|| panic!("accepted job {id} is lost"));
        if status != "completed" {
            let log: String = jobs::table
                .find(id)
                .select(jobs::log)
                .first(&mut conn)
                .unwrap();
            panic!("job {id} ended {status}, not completed; its log:\n{log}");
        }
        assert_eq!(notes.get(id), Some(&1), "notifications of job {id}");
        ended += 1;
    }
    assert_eq!(ended, accepted.len());
    assert_eq!(
        notes.values().sum::<i64>(),
        states.len() as i64,
        "one notification per job"
    );
    states
}

/// Waits until `owner_pid`'s node holds a running job (so a kill really interrupts work)
/// and more jobs exist than one round of [`submit`] sends, so that round's answers, at
/// least, have reached the client (a job may start before its own 202 arrives).
async fn until_running_on(db: &TestDb, owner_pid: u32) {
    let mut conn = db.connect();
    let pattern = format!("%-{owner_pid}-%");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let submitted: i64 = jobs::table.count().get_result(&mut conn).unwrap();
        if submitted <= 2 * PARALLEL as i64 {
            assert!(Instant::now() < deadline, "the load never got going");
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        let running: i64 = jobs::table
            .filter(jobs::status.eq("running"))
            .filter(jobs::lease_owner.like(&pattern))
            .count()
            .get_result(&mut conn)
            .unwrap();
        if running > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {owner_pid} never ran a job"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Submits in the background while the test waits for the right moment to kill a node.
fn submit_in_background(
    bases: Vec<String>,
    token: String,
    n: usize,
) -> actix_rt::task::JoinHandle<Vec<String>> {
    actix_rt::spawn(async move { submit(&reqwest::Client::new(), &bases, &token, n).await })
}

#[actix_rt::test]
async fn sqlite_kill_9_under_load_loses_nothing() {
    let db = TestDb::new(Backend::Sqlite);
    let unlimited = [("JOBLINE_RATE_LIMIT_CAPACITY", "0")];
    let node = Node::start(&db.url, true, &unlimited);
    let token = node.token.clone().unwrap();
    let load = submit_in_background(vec![node.url("")], token.clone(), 1200);
    until_running_on(&db, node.pid()).await;
    node.signal("-KILL");
    drop(node);
    let mut accepted = load.await.unwrap();
    assert!(!accepted.is_empty());
    let node = Node::start(&db.url, false, &unlimited);
    let rest = 2000 - accepted.len();
    accepted.extend(submit(&reqwest::Client::new(), &[node.url("")], &token, rest).await);
    assert_eq!(accepted.len(), 2000);
    until_all_ended(&db, Duration::from_secs(120)).await;
    assert_exactly_once(&db, &accepted);
}

#[actix_rt::test]
async fn postgres_three_nodes_survive_a_kill_9() {
    let db = TestDb::new(Backend::Postgres);
    let fast_lease = [
        ("JOBLINE_LEASE", "2s"),
        ("JOBLINE_HEARTBEAT", "500ms"),
        ("JOBLINE_RATE_LIMIT_CAPACITY", "0"),
        // One e-shop: let it use every node's workers.
        ("JOBLINE_MAX_RUNNING_PER_ESHOP", "10"),
    ];
    let first = Node::start(&db.url, true, &fast_lease);
    let token = first.token.clone().unwrap();
    let second = Node::start(&db.url, false, &fast_lease);
    let third = Node::start(&db.url, false, &fast_lease);
    let all = vec![first.url(""), second.url(""), third.url("")];
    let load = submit_in_background(all, token.clone(), 900);
    until_running_on(&db, second.pid()).await;
    let dead_pid = second.pid();
    second.signal("-KILL");
    drop(second);
    let mut accepted = load.await.unwrap();
    assert!(accepted.len() >= 300, "{}", accepted.len());
    let survivors = [first.url(""), third.url("")];
    accepted.extend(submit(&reqwest::Client::new(), &survivors, &token, 200).await);
    until_all_ended(&db, Duration::from_secs(120)).await;
    let states = assert_exactly_once(&db, &accepted);
    // The dead node's running jobs were taken over: they ran again as attempt 2.
    let mut conn = db.connect();
    let taken_over: Vec<String> = jobs::table
        .filter(jobs::log.like(format!("%-{dead_pid}-% lost its lease%")))
        .select(jobs::id)
        .load(&mut conn)
        .unwrap();
    assert!(
        !taken_over.is_empty(),
        "no job of the dead node was taken over"
    );
    for id in &taken_over {
        assert!(states[id].1 >= 2, "job {id} ran again");
    }
}

async fn new_job_wakes_a_worker_on_another_node(backend: Backend) {
    // Nothing polls (1 h): only a wake-up signal can start the job, and only the `ended:`
    // signal can answer the `?wait` before its 20 s run out (the waiting request re-reads
    // every `poll_interval`). On PostgreSQL the job is submitted to node A, which has no
    // snapshot workers, runs on node B, and A hears of its end by B's `NOTIFY`; SQLite is
    // one node, where the submit wakes the local queue and the end the waiting request.
    let no_poll = |c: &mut jobline::config::Config| c.poll_interval = Duration::from_secs(3600);
    let a = TestApp::spawn_with(backend, |c| {
        no_poll(c);
        if backend == Backend::Postgres {
            crate::common::set_workers(c, "snapshots", 0);
        }
    })
    .await;
    let b = if backend == Backend::Postgres {
        let mut config = crate::common::test_config(&a.db);
        no_poll(&mut config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Some(jobline::run(config, listener).await.unwrap())
    } else {
        None
    };
    let job = a.submit_snapshot("").await;
    let asked = Instant::now();
    let done = a.get(&format!("/api/system/jobs/{job}?wait=20")).await;
    assert_eq!(done.body["data"]["status"], "completed", "{}", done.body);
    // A run that took the whole wait read the job once its 20 s ran out: no signal came.
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "the ?wait answered after {:?}: its end was not signalled",
        asked.elapsed()
    );
    if let Some(b) = b {
        b.shutdown().await;
    }
}

#[actix_rt::test]
async fn postgres_kill_stops_the_job_on_the_node_running_it() {
    // Node A accepts the kill; node B runs the job (A has no snapshot workers).
    let a = TestApp::spawn_with(Backend::Postgres, |c| {
        crate::common::set_workers(c, "snapshots", 0);
    })
    .await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = crate::common::test_config(&a.db);
    crate::common::set_workers(&mut config, "snapshots", 1);
    // No heartbeat within the test: only the kill signal can reach B in time.
    config.lease = Duration::from_secs(600);
    config.heartbeat = Duration::from_secs(300);
    let b = jobline::run(config, listener).await.unwrap();
    let first_hold = b.breakpoints.arm("snapshot:page");
    let job = a.submit_snapshot("").await;
    first_hold.reached().await;
    let killed = a.delete(&format!("/api/system/jobs/{job}")).await;
    assert_eq!(killed.status, 200);
    // B's only worker is still held inside the killed job unless the kill reached it.
    // A second job can only reach the (re-armed) point if that worker was freed.
    let second_hold = b.breakpoints.arm("snapshot:page");
    let next = a.submit_snapshot("").await;
    tokio::time::timeout(Duration::from_secs(10), second_hold.reached())
        .await
        .expect("the kill freed node B's worker");
    second_hold.release();
    first_hold.release();
    assert_eq!(a.wait_finished(&next).await["status"], "completed");
    let job = a.get(&format!("/api/system/jobs/{job}")).await;
    assert_eq!(job.body["data"]["status"], "killed");
    assert_eq!(
        a.notifications_for(job.body["data"]["jobId"].as_str().unwrap()),
        1
    );
    b.shutdown().await;
}

async fn one_eshop_cannot_starve_another(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| {
        c.max_running_per_eshop = 2;
        crate::common::set_workers(c, "snapshots", 3);
    })
    .await;
    let hold = t.breakpoints().arm("snapshot:page");
    let flood: Vec<String> = join_all((0..40).map(|_| t.submit_snapshot(""))).await;
    hold.reached().await;
    let other = t.add_eshop(2);
    let their_job = t.submit_snapshot_as(&other, "").await;
    // The third worker is free for e-shop 2 even though e-shop 1 has 38 jobs waiting.
    crate::common::eventually(Duration::from_secs(10), "e-shop 2's job runs", || async {
        t.get_as(&other, &format!("/api/system/jobs/{their_job}"))
            .await
            .body["data"]["status"]
            == "running"
    })
    .await;
    let running = t.get("/api/system/jobs?status=running").await;
    assert_eq!(running.body["data"]["paginator"]["totalCount"], 2);
    let pending = t.get("/api/system/jobs?status=pending").await;
    assert_eq!(pending.body["data"]["paginator"]["totalCount"], 38);
    hold.release();
    for id in flood.iter().chain([&their_job]) {
        let status = if id == &their_job {
            t.get_as(&other, &format!("/api/system/jobs/{id}?wait=30"))
                .await
        } else {
            t.get(&format!("/api/system/jobs/{id}?wait=30")).await
        };
        assert_eq!(status.body["data"]["status"], "completed");
    }
}

async fn sigterm_lets_running_jobs_finish(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.shutdown_grace = Duration::from_secs(30)).await;
    let hold = t.breakpoints().arm("snapshot:page");
    let job = t.submit_snapshot("").await;
    hold.reached().await;
    let TestApp { app, db, .. } = t;
    let shutdown = actix_rt::spawn(app.unwrap().shutdown());
    // The job is still running when shutdown starts; it may finish within the grace.
    hold.release();
    shutdown.await.unwrap();
    let mut conn = db.connect();
    let states = job_states(&mut conn);
    assert_eq!(states[&job], ("completed".to_string(), 1));
    assert_eq!(notification_counts(&mut conn).get(&job), Some(&1));
}

async fn sigterm_hands_back_what_does_not_finish(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.shutdown_grace = Duration::from_millis(300)).await;
    let hold = t.breakpoints().arm("snapshot:page");
    let job = t.submit_snapshot("").await;
    hold.reached().await;
    let db = t.stop().await;
    {
        let mut conn = db.connect();
        // Handed back without spending the attempt, and no job:finished.
        assert_eq!(job_states(&mut conn)[&job], ("pending".to_string(), 0));
        assert_eq!(notification_counts(&mut conn).get(&job), None);
    }
    // The next start runs it to the end.
    let config = crate::common::test_config(&db);
    let t = TestApp::boot(db, config).await;
    let done = t.wait_finished(&job).await;
    assert_eq!(done["status"], "completed");
    assert!(done["log"]
        .as_str()
        .unwrap()
        .contains("handed back at shutdown"));
    assert_eq!(t.notifications_for(&job), 1);
}

async fn rate_limit_per_token(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| {
        c.rate_limit_capacity = 5;
        c.rate_limit_refill_per_sec = 1;
    })
    .await;
    for n in 1..=5 {
        let a = t.get("/api/system/jobs").await;
        assert_eq!(a.status, 200);
        let filling = a.header("x-ratelimit-bucket-filling").unwrap();
        let level: u32 = filling.split('/').next().unwrap().parse().unwrap();
        assert!(
            level >= n.min(5) - 1 && filling.ends_with("/5"),
            "{filling}"
        );
    }
    let refused = t.get("/api/system/jobs").await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.error_code(), "too-many-requests");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    assert!(refused.body["metadata"]["requestId"].is_string());
    // Another token has its own bucket; a refused request created nothing.
    let other = t.add_eshop(2);
    let a = t.get_as(&other, "/api/products/snapshot").await;
    assert_eq!(a.status, 202);
    assert_eq!(
        a.header("x-ratelimit-bucket-filling").as_deref(),
        Some("1/5")
    );
    assert_eq!(t.send(t.client.get(t.url("/healthz"))).await.status, 200);
}

crate::on_both_backends!(
    new_job_wakes_a_worker_on_another_node,
    one_eshop_cannot_starve_another,
    sigterm_lets_running_jobs_finish,
    sigterm_hands_back_what_does_not_finish,
    rate_limit_per_token,
);
