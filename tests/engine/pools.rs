//! Worker pools: a burst grows a queue's pool to `max_workers` and idle time shrinks it
//! back, a job seen waiting grows it without a backlog query, a pinned `workers` never
//! moves, bad bounds stop the start, a shrink never touches a running job, and on
//! PostgreSQL several nodes scale from the shared backlog while the per-e-shop cap holds
//! cluster-wide. Every wait polls `/metrics` with a deadline.

use crate::common::{eventually, test_config, Backend, TestApp, TestDb};
use crate::metrics::value;
use futures_util::future::join_all;
use jobline::config::{Config, QueueConfig};
use std::time::{Duration, Instant};

/// One queue's pool on one node, as `/metrics` shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pool {
    size: f64,
    min: f64,
    max: f64,
    busy: f64,
}

async fn pool_at(client: &reqwest::Client, base: &str, queue: &str) -> Pool {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let get = |name: &str| {
        value(&text, &format!("jobline_pool_{name}{{queue=\"{queue}\"}}"))
            .unwrap_or_else(|| panic!("jobline_pool_{name} of {queue} missing in\n{text}"))
    };
    Pool {
        size: get("workers"),
        min: get("min_workers"),
        max: get("max_workers"),
        busy: get("busy_workers"),
    }
}

async fn pool(t: &TestApp, queue: &str) -> Pool {
    pool_at(&t.client, &t.base, queue).await
}

/// Waits until `queue`'s pool on `t` satisfies `ok`.
async fn until_pool(t: &TestApp, queue: &str, what: &str, ok: impl Fn(Pool) -> bool) {
    eventually(Duration::from_secs(20), what, || async {
        ok(pool(t, queue).await)
    })
    .await;
}

/// A snapshots pool of `min..=max` workers whose idle workers leave after `idle`.
fn scaling(c: &mut Config, min: usize, max: usize, idle: Duration) {
    c.queues.insert(
        "snapshots".into(),
        QueueConfig {
            min_workers: Some(min),
            max_workers: Some(max),
            idle_timeout: Some(idle),
            ..QueueConfig::default()
        },
    );
}

/// The job's log shows one attempt, started once.
async fn ran_once(t: &TestApp, id: &str) {
    let job = t.get(&format!("/api/system/jobs/{id}")).await;
    let log = job.body["data"]["log"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(log.matches("attempt 1 started").count(), 1, "{log}");
    assert!(!log.contains("attempt 2"), "{log}");
    assert_eq!(t.notifications_for(id), 1, "job {id}");
}

async fn a_burst_grows_the_pool_to_max_and_idle_time_shrinks_it(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| {
        c.max_running_per_eshop = 10;
        scaling(c, 1, 4, Duration::from_millis(300));
    })
    .await;
    let quiet = Pool {
        size: 1.0,
        min: 1.0,
        max: 4.0,
        busy: 0.0,
    };
    assert_eq!(pool(&t, "snapshots").await, quiet);
    // Every job is held inside its run: the pool can only grow because jobs wait.
    let hold = t.breakpoints().arm("snapshot:page");
    let jobs: Vec<String> = join_all((0..8).map(|_| t.submit_snapshot(""))).await;
    until_pool(
        &t,
        "snapshots",
        "the pool grows to max_workers, all busy",
        |p| p.size == 4.0 && p.busy == 4.0,
    )
    .await;
    hold.release();
    for id in &jobs {
        assert_eq!(t.wait_finished(id).await["status"], "completed");
    }
    until_pool(
        &t,
        "snapshots",
        "idle workers leave down to min_workers",
        |p| p == quiet,
    )
    .await;
    for id in &jobs {
        ran_once(&t, id).await;
    }
}

/// The backlog queries the snapshots pool's rule has run.
async fn backlog_reads(t: &TestApp) -> f64 {
    let text = crate::metrics::scrape(t).await;
    value(
        &text,
        "jobline_pool_backlog_reads_total{queue=\"snapshots\"}",
    )
    .unwrap_or_else(|| panic!("jobline_pool_backlog_reads_total missing in\n{text}"))
}

async fn a_job_seen_waiting_grows_the_pool_without_a_backlog_query(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| {
        c.max_running_per_eshop = 10;
        scaling(c, 1, 2, Duration::from_secs(60));
    })
    .await;
    let hold = t.breakpoints().arm("snapshot:page");
    let first = t.submit_snapshot("").await;
    until_pool(&t, "snapshots", "the one worker runs the first job", |p| {
        p.size == 1.0 && p.busy == 1.0
    })
    .await;
    // Its claim filled the pool with nothing seen waiting: only a read can tell whether
    // more wait, and it finds none.
    eventually(
        Duration::from_secs(20),
        "the rule reads the backlog once",
        || async { backlog_reads(&t).await >= 1.0 },
    )
    .await;
    let reads = backlog_reads(&t).await;
    assert_eq!(pool(&t, "snapshots").await.size, 1.0);
    // The second job's wake-up finds every worker busy: that is enough to grow.
    let second = t.submit_snapshot("").await;
    until_pool(
        &t,
        "snapshots",
        "a second worker runs the second job",
        |p| p.size == 2.0 && p.busy == 2.0,
    )
    .await;
    assert_eq!(backlog_reads(&t).await, reads);
    hold.release();
    for id in [&first, &second] {
        assert_eq!(t.wait_finished(id).await["status"], "completed");
        ran_once(&t, id).await;
    }
}

async fn a_pinned_pool_never_changes(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| {
        c.max_running_per_eshop = 10;
        c.queues.insert(
            "snapshots".into(),
            QueueConfig {
                workers: Some(2),
                idle_timeout: Some(Duration::from_millis(100)),
                ..QueueConfig::default()
            },
        );
    })
    .await;
    let pinned = |busy| Pool {
        size: 2.0,
        min: 2.0,
        max: 2.0,
        busy,
    };
    let hold = t.breakpoints().arm("snapshot:page");
    let jobs: Vec<String> = join_all((0..5).map(|_| t.submit_snapshot(""))).await;
    // Jobs wait far longer than a scalable pool would let them (scale_up_after is
    // 100 ms): the pool stays at 2 all along.
    eventually(
        Duration::from_secs(20),
        "jobs wait half a second",
        || async {
            let text = crate::metrics::scrape(&t).await;
            assert_eq!(pool(&t, "snapshots").await.size, 2.0);
            value(
                &text,
                "jobline_queue_oldest_pending_age_seconds{queue=\"snapshots\"}",
            )
            .is_some_and(|age| age >= 0.5)
        },
    )
    .await;
    assert_eq!(pool(&t, "snapshots").await, pinned(2.0));
    hold.release();
    for id in &jobs {
        assert_eq!(t.wait_finished(id).await["status"], "completed");
    }
    // Idle for five idle timeouts: still 2 workers.
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        assert_eq!(pool(&t, "snapshots").await, pinned(0.0));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_shrink_never_drops_or_duplicates_a_running_job(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| {
        c.max_running_per_eshop = 10;
        scaling(c, 1, 4, Duration::from_millis(200));
    })
    .await;
    let hold = t.breakpoints().arm("snapshot:page");
    let jobs: Vec<String> = join_all((0..4).map(|_| t.submit_snapshot(""))).await;
    until_pool(&t, "snapshots", "four workers, all busy", |p| {
        p.size == 4.0 && p.busy == 4.0
    })
    .await;
    // Two workers are freed (their jobs killed) while two stay held inside their jobs:
    // the idle ones leave after the idle time, the busy ones stay.
    for id in &jobs[..2] {
        assert_eq!(
            t.delete(&format!("/api/system/jobs/{id}")).await.status,
            200
        );
    }
    until_pool(
        &t,
        "snapshots",
        "the idle workers left, the busy stayed",
        |p| p.size == 2.0 && p.busy == 2.0,
    )
    .await;
    hold.release();
    for id in &jobs[2..] {
        assert_eq!(t.wait_finished(id).await["status"], "completed");
        ran_once(&t, id).await;
    }
    for id in &jobs[..2] {
        assert_eq!(t.wait_finished(id).await["status"], "killed");
        assert_eq!(t.notifications_for(id), 1);
    }
    until_pool(&t, "snapshots", "back to min_workers", |p| {
        p.size == 1.0 && p.busy == 0.0
    })
    .await;
}

/// A claim asks for as many jobs as the pool has idle workers; the idle workers may leave
/// (idle timeout) before it answers. Its jobs still run at once, each once: before, the
/// queue actor panicked handing out a job with no idle worker left, and that job sat
/// `running` until its lease ran out (a 30.6 s job in a `jobline bench --rate` run).
async fn a_claim_answered_after_its_idle_workers_left_still_runs_its_jobs(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| {
        c.max_running_per_eshop = 10;
        scaling(c, 0, 1, Duration::from_secs(2));
    })
    .await;
    let first = t.submit_snapshot("").await;
    assert_eq!(t.wait_finished(&first).await["status"], "completed");
    // The next claim gets the new job and is held before it hands it out, while the idle
    // worker's time runs out and it leaves.
    let claimed = t.breakpoints().arm("queue:claimed");
    let second = t.submit_snapshot("").await;
    claimed.reached().await;
    until_pool(&t, "snapshots", "the idle worker left meanwhile", |p| {
        p.size == 0.0
    })
    .await;
    claimed.release();
    assert_eq!(t.wait_finished(&second).await["status"], "completed");
    ran_once(&t, &second).await;
}

async fn shutdown_reaches_every_worker_of_a_grown_pool(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| {
        c.max_running_per_eshop = 10;
        c.shutdown_grace = Duration::from_millis(200);
        scaling(c, 1, 4, Duration::from_secs(60));
    })
    .await;
    let _hold = t.breakpoints().arm("snapshot:page");
    let jobs: Vec<String> = join_all((0..4).map(|_| t.submit_snapshot(""))).await;
    until_pool(&t, "snapshots", "four workers, all busy", |p| {
        p.size == 4.0 && p.busy == 4.0
    })
    .await;
    // The jobs never finish: at the end of the grace every worker hands its job back.
    let db = t.stop().await;
    let mut conn = db.connect();
    let states = job_states(&mut conn);
    assert_eq!(states.len(), 4);
    for (id, status, attempt) in states {
        assert!(jobs.contains(&id));
        assert_eq!((status.as_str(), attempt), ("pending", 0), "job {id}");
    }
}

async fn bad_bounds_stop_the_start(backend: Backend) {
    let db = TestDb::new(backend);
    let start = |tune: &dyn Fn(&mut Config)| {
        let mut c = test_config(&db);
        tune(&mut c);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        async move {
            match jobline::run(c, listener).await {
                Ok(_) => panic!("jobline started with an impossible pool"),
                Err(e) => e,
            }
        }
    };
    let e = start(&|c| {
        c.queues.insert(
            "images".into(),
            QueueConfig {
                min_workers: Some(5),
                max_workers: Some(2),
                ..QueueConfig::default()
            },
        );
    })
    .await;
    assert!(
        e.contains(
            "`queues.images.min_workers` (5) must not exceed `queues.images.max_workers` (2)"
        ),
        "{e}"
    );
    let e = start(&|c| {
        c.db_pool_size = 1;
        c.queues.insert(
            "snapshots".into(),
            QueueConfig {
                max_workers: Some(40),
                ..QueueConfig::default()
            },
        );
    })
    .await;
    assert!(e.contains("`db_pool_size` = 1"), "{e}");
    assert!(e.contains("`queues.snapshots.max_workers` 40"), "{e}");
    let e = start(&|c| {
        c.queues.insert("videos".into(), QueueConfig::default());
    })
    .await;
    assert!(
        e.contains("`queues.videos` is not a queue of jobline"),
        "{e}"
    );
    // Refused before anything touched the database.
    if let Some(path) = db.url.strip_prefix("sqlite://") {
        assert!(!std::path::Path::new(path).exists());
    }
}

crate::on_both_backends!(
    a_burst_grows_the_pool_to_max_and_idle_time_shrinks_it,
    a_job_seen_waiting_grows_the_pool_without_a_backlog_query,
    a_pinned_pool_never_changes,
    a_shrink_never_drops_or_duplicates_a_running_job,
    a_claim_answered_after_its_idle_workers_left_still_runs_its_jobs,
    shutdown_reaches_every_worker_of_a_grown_pool,
    bad_bounds_stop_the_start,
);

#[actix_rt::test]
async fn postgres_nodes_scale_from_the_shared_backlog_within_the_eshop_cap() {
    // Two nodes, pools of 1 to 4 each (8 workers in all), 3 e-shops with a cap of 2
    // running jobs each: 6 jobs can run at once in the cluster, whatever the pools.
    let tune = |c: &mut Config| {
        c.max_running_per_eshop = 2;
        scaling(c, 1, 4, Duration::from_millis(300));
    };
    let a = TestApp::spawn_with(Backend::Postgres, tune).await;
    let mut config = test_config(&a.db);
    tune(&mut config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = jobline::run(config, listener).await.unwrap();
    let b_base = format!("http://{}", b.addr);
    let holds = [
        a.breakpoints().arm("snapshot:page"),
        b.breakpoints.arm("snapshot:page"),
    ];
    let tokens = [a.token.clone(), a.add_eshop(2), a.add_eshop(3)];
    let mut jobs = Vec::new();
    for token in &tokens {
        jobs.extend(join_all((0..8).map(|_| a.submit_snapshot_as(token, ""))).await);
    }
    let busy = || async {
        pool(&a, "snapshots").await.busy + pool_at(&a.client, &b_base, "snapshots").await.busy
    };
    eventually(
        Duration::from_secs(20),
        "six jobs run across the nodes",
        || async { busy().await == 6.0 },
    )
    .await;
    // Watch for a while: never more than the cap per e-shop, nor more than 6 in all,
    // though 18 jobs wait and the pools could hold 8.
    let until = Instant::now() + Duration::from_millis(800);
    while Instant::now() < until {
        let mut conn = a.db.connect();
        let per_eshop = running_per_eshop(&mut conn);
        assert_eq!(per_eshop, vec![(1, 2), (2, 2), (3, 2)]);
        assert_eq!(busy().await, 6.0);
        for p in [
            pool(&a, "snapshots").await,
            pool_at(&a.client, &b_base, "snapshots").await,
        ] {
            assert!(p.size <= 4.0, "{p:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for hold in &holds {
        hold.release();
    }
    for id in &jobs {
        let token = &tokens[jobs.iter().position(|j| j == id).unwrap() / 8];
        let done = a
            .get_as(token, &format!("/api/system/jobs/{id}?wait=30"))
            .await;
        assert_eq!(done.body["data"]["status"], "completed");
        assert_eq!(a.notifications_for(id), 1);
    }
    b.shutdown().await;
}

/// Running jobs per e-shop, on any node.
fn running_per_eshop(conn: &mut jobline::db::DbConnection) -> Vec<(i64, i64)> {
    use diesel::dsl::count_star;
    use diesel::prelude::*;
    use jobline::db::schema::jobs;
    jobs::table
        .filter(jobs::status.eq("running"))
        .group_by(jobs::eshop_id)
        .select((jobs::eshop_id, count_star()))
        .order(jobs::eshop_id)
        .load(conn)
        .unwrap()
}

/// Every job's id, stored status and attempt.
fn job_states(conn: &mut jobline::db::DbConnection) -> Vec<(String, String, i32)> {
    use diesel::prelude::*;
    use jobline::db::schema::jobs;
    jobs::table
        .select((jobs::id, jobs::status, jobs::attempt))
        .load(conn)
        .unwrap()
}
