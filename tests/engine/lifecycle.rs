//! The asynchronous life cycle: submit, run, read, download, expire, kill, idempotency.

use crate::common::{eventually, is_api_time, Backend, TestApp};
use flate2::read::GzDecoder;
use futures_util::future::join_all;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::time::{Duration, Instant};

fn gunzip_lines(bytes: &[u8]) -> Vec<Value> {
    std::io::BufReader::new(GzDecoder::new(bytes))
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

async fn snapshot_life_cycle(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut created = Vec::new();
    for i in 0..30 {
        let vis = if i % 3 == 0 { "hidden" } else { "visible" };
        created.push(t.create_product(&format!("P{i:03}"), vis).await);
    }
    let submit = t.get("/api/products/snapshot").await;
    assert_eq!(submit.status, 202, "{}", submit.body);
    let job_id = submit.body["data"]["jobId"].as_str().unwrap().to_string();
    assert!(jobline::model::ids::is_job_id(&job_id));
    assert_eq!(
        submit.header("location").as_deref(),
        Some(format!("/api/system/jobs/{job_id}").as_str())
    );
    assert_eq!(
        submit.header("x-request-id").as_deref(),
        submit.body["metadata"]["requestId"].as_str()
    );

    let job = t.wait_finished(&job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["jobId"], job_id.as_str());
    assert_eq!(job["endpoint"], "/api/products/snapshot");
    for key in ["creationTime", "completionTime", "validUntil"] {
        assert!(
            is_api_time(job[key].as_str().unwrap()),
            "{key}: {}",
            job[key]
        );
    }
    let duration = job["duration"].as_str().unwrap();
    let (_, decimals) = duration.split_once('.').unwrap();
    assert_eq!(decimals.len(), 3, "{duration}");
    assert!(job["log"]
        .as_str()
        .unwrap()
        .contains("snapshot of 30 products"));
    let url = job["resultUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/api-results/{job_id}-", t.base)),
        "{url}"
    );
    assert!(url.ends_with(".jsonl.gz"));
    let secret = url
        .rsplit_once('-')
        .unwrap()
        .1
        .trim_end_matches(".jsonl.gz");
    assert!(secret.len() * 4 >= 128, "{secret}");

    // The result needs no token and holds every product in the shape of GET /products/{guid}.
    let download = t.send(t.client.get(url)).await;
    assert_eq!(download.status, 200);
    assert_eq!(
        download.header("content-type").as_deref(),
        Some("application/gzip")
    );
    let lines = gunzip_lines(&download.bytes);
    assert_eq!(lines.len(), 30);
    let one = t
        .get(&format!(
            "/api/products/{}",
            created[5]["guid"].as_str().unwrap()
        ))
        .await;
    assert!(lines.contains(&one.body["data"]), "{}", one.body["data"]);

    // Filters reach the job.
    let hidden = t.submit_snapshot("?visibility=hidden").await;
    let job = t.wait_finished(&hidden).await;
    let lines = gunzip_lines(
        &t.send(t.client.get(job["resultUrl"].as_str().unwrap()))
            .await
            .bytes,
    );
    assert_eq!(lines.len(), 10);
    assert!(lines.iter().all(|p| p["visibility"] == "hidden"));

    let guids = format!(
        "?productGuids={},{}",
        created[1]["guid"].as_str().unwrap(),
        created[2]["guid"].as_str().unwrap()
    );
    let picked = t.submit_snapshot(&guids).await;
    let job = t.wait_finished(&picked).await;
    let lines = gunzip_lines(
        &t.send(t.client.get(job["resultUrl"].as_str().unwrap()))
            .await
            .bytes,
    );
    assert_eq!(lines.len(), 2);

    // Exactly one job:finished per ended job.
    assert_eq!(t.notifications_for(&job_id), 1);
}

/// 1 234 products: the snapshot reads the catalogue in pages (500 each) and every product
/// reaches the result exactly once, in catalogue order, page boundaries included.
async fn snapshot_reads_every_page_of_a_large_catalogue(backend: Backend) {
    use diesel::connection::SimpleConnection;
    let t = TestApp::spawn(backend).await;
    let n = 1_234;
    let series = match backend {
        Backend::Sqlite => format!(
            "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) \
             SELECT i FROM s)"
        ),
        Backend::Postgres => format!("(SELECT i FROM generate_series(1::bigint, {n}) AS g(i))"),
    };
    // Ten products share each creation time, so pages also break inside equal times.
    t.db.connect()
        .batch_execute(&format!(
            "INSERT INTO products (guid, eshop_id, code, name, visibility, creation_time, \
             change_time) SELECT 'g' || (100000 + i), 1, 'C' || i, 'N' || i, 'visible', \
             1700000000000000 + (i / 10), 1700000000000000 FROM {series} AS s"
        ))
        .unwrap();
    let job_id = t.submit_snapshot("").await;
    let job = t.wait_finished(&job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    let lines = gunzip_lines(
        &t.send(t.client.get(job["resultUrl"].as_str().unwrap()))
            .await
            .bytes,
    );
    let guids: Vec<&str> = lines.iter().map(|p| p["guid"].as_str().unwrap()).collect();
    let expected: Vec<String> = (1..=n).map(|i| format!("g{}", 100000 + i)).collect();
    assert_eq!(guids, expected);
}

/// Snapshots of several e-shops held at their first page and let go together, so that
/// their pages are read at once (one statement on PostgreSQL): each result holds its own
/// e-shop's products, all of them, in catalogue order, and no other e-shop's.
async fn snapshots_read_together_keep_to_their_eshop(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| {
        crate::common::set_workers(c, "snapshots", 12);
        c.max_running_per_eshop = 4;
    })
    .await;
    let tokens = [t.token.clone(), t.add_eshop(2), t.add_eshop(3)];
    let mut codes: Vec<Vec<String>> = Vec::new();
    for (n, token) in tokens.iter().enumerate() {
        let mut own = Vec::new();
        for i in 0..=n * 2 {
            let code = format!("shop{n}-p{i}");
            let body =
                serde_json::json!({"data": {"code": code, "name": code, "visibility": "visible"}});
            assert_eq!(t.post_as(token, "/api/products", body).await.status, 201);
            own.push(code);
        }
        codes.push(own);
    }
    let hold = t.breakpoints().arm("snapshot:page");
    let mut jobs = Vec::new();
    for (n, token) in tokens.iter().enumerate() {
        for _ in 0..4 {
            jobs.push((n, t.submit_snapshot_as(token, "").await));
        }
    }
    eventually(Duration::from_secs(30), "12 snapshots running", || async {
        use diesel::prelude::*;
        use jobline::db::schema::jobs;
        let running: i64 = jobs::table
            .filter(jobs::status.eq("running"))
            .count()
            .get_result(&mut t.db.connect())
            .unwrap();
        running == 12
    })
    .await;
    hold.release();
    for (n, id) in jobs {
        let job = loop {
            let a = t
                .get_as(&tokens[n], &format!("/api/system/jobs/{id}?wait=10"))
                .await;
            if a.body["data"]["status"] != "running" {
                break a.body["data"].clone();
            }
        };
        assert_eq!(job["status"], "completed", "{job}");
        let lines = gunzip_lines(
            &t.send(t.client.get(job["resultUrl"].as_str().unwrap()))
                .await
                .bytes,
        );
        let got: Vec<&str> = lines.iter().map(|p| p["code"].as_str().unwrap()).collect();
        assert_eq!(got, codes[n], "snapshot {id} of e-shop {}", n + 1);
    }
}

async fn results_are_guarded(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let job_id = t.submit_snapshot("").await;
    let job = t.wait_finished(&job_id).await;
    let url = job["resultUrl"].as_str().unwrap().to_string();
    let wrong_secret = format!(
        "{}/api-results/{job_id}-{}.jsonl.gz",
        t.base,
        "0".repeat(40)
    );
    assert_eq!(t.send(t.client.get(&wrong_secret)).await.status, 404);
    let wrong_ext = url.replace(".jsonl.gz", ".json");
    assert_eq!(t.send(t.client.get(&wrong_ext)).await.status, 404);
    let unknown = t
        .send(t.client.get(t.url("/api-results/zzzzzzz-abc.jsonl.gz")))
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "job-not-found");
    assert_eq!(
        t.send(t.client.get(t.url("/api-results/garbage")))
            .await
            .status,
        404
    );
}

async fn wait_answers_when_the_job_ends(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let job_id = t.submit_snapshot("").await;
    let started = Instant::now();
    let a = t.get(&format!("/api/system/jobs/{job_id}?wait=30")).await;
    assert_eq!(a.body["data"]["status"], "completed", "{}", a.body);
    assert!(started.elapsed() < Duration::from_secs(20));
}

async fn wait_gives_up_after_n_seconds(backend: Backend) {
    // No snapshot workers on this node: the job stays pending.
    let t = TestApp::spawn_with(backend, |c| {
        crate::common::set_workers(c, "snapshots", 0);
    })
    .await;
    let job_id = t.submit_snapshot("").await;
    let started = Instant::now();
    let a = t.get(&format!("/api/system/jobs/{job_id}?wait=1")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["data"]["status"], "pending");
    for key in [
        "completionTime",
        "duration",
        "resultUrl",
        "validUntil",
        "log",
    ] {
        assert!(
            a.body["data"][key].is_null(),
            "{key} should be null: {}",
            a.body
        );
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
    let bad = t.get(&format!("/api/system/jobs/{job_id}?wait=61")).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_code(), "invalid-parameter");
    assert_eq!(bad.error_instance(), "wait");
}

fn no_snapshot_workers(c: &mut jobline::config::Config) {
    crate::common::set_workers(c, "snapshots", 0);
}

async fn kill_pending_job(backend: Backend) {
    let t = TestApp::spawn_with(backend, no_snapshot_workers).await;
    let job_id = t.submit_snapshot("").await;
    let a = t.delete(&format!("/api/system/jobs/{job_id}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["data"]["status"], "killed");
    assert!(is_api_time(
        a.body["data"]["completionTime"].as_str().unwrap()
    ));
    let again = t.delete(&format!("/api/system/jobs/{job_id}")).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.error_code(), "job-already-finished");
    assert_eq!(t.notifications_for(&job_id), 1);
    let unknown = t.delete("/api/system/jobs/zzzzzzz").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "job-not-found");
}

async fn kill_running_job(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let hold = t.breakpoints().arm("snapshot:page");
    let job_id = t.submit_snapshot("").await;
    hold.reached().await;
    assert_eq!(
        t.get(&format!("/api/system/jobs/{job_id}")).await.body["data"]["status"],
        "running"
    );
    let a = t.delete(&format!("/api/system/jobs/{job_id}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["data"]["status"], "killed");
    hold.release();
    // The worker was stopped: the job stays killed and a new job runs on a free worker.
    let next = t.submit_snapshot("").await;
    assert_eq!(t.wait_finished(&next).await["status"], "completed");
    let job = t.get(&format!("/api/system/jobs/{job_id}")).await;
    assert_eq!(job.body["data"]["status"], "killed");
    assert!(job.body["data"]["resultUrl"].is_null());
    assert_eq!(t.notifications_for(&job_id), 1);
    let done = t.delete(&format!("/api/system/jobs/{next}")).await;
    assert_eq!(done.status, 409);
}

async fn job_past_max_run_time_is_killed(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| {
        c.queues.insert(
            "snapshots".into(),
            jobline::config::QueueConfig {
                max_run_time: Some(Duration::from_millis(300)),
                ..Default::default()
            },
        );
    })
    .await;
    let _hold = t.breakpoints().arm("snapshot:page");
    let job_id = t.submit_snapshot("").await;
    let job = t.wait_finished(&job_id).await;
    assert_eq!(job["status"], "killed");
    assert!(
        job["log"].as_str().unwrap().contains("max_run_time"),
        "{job}"
    );
    assert_eq!(t.notifications_for(&job_id), 1);
}

async fn idempotency_key_answers_the_same_job(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let submit = |key: &'static str, token: String| {
        let req = t
            .client
            .get(t.url("/api/products/snapshot"))
            .bearer_auth(token)
            .header("Idempotency-Key", key);
        t.send(req)
    };
    let a = submit("order-1", t.token.clone()).await;
    let b = submit("order-1", t.token.clone()).await;
    let c = submit("order-2", t.token.clone()).await;
    assert_eq!(a.status, 202);
    assert_eq!(b.status, 202);
    assert_eq!(a.body["data"]["jobId"], b.body["data"]["jobId"]);
    assert_ne!(a.body["data"]["jobId"], c.body["data"]["jobId"]);
    let other = t.add_eshop(2);
    let d = submit("order-1", other).await;
    assert_ne!(a.body["data"]["jobId"], d.body["data"]["jobId"]);
    let bad = submit("", t.token.clone()).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_code(), "invalid-parameter");
    assert_eq!(bad.error_instance(), "Idempotency-Key");
    let list = t.get("/api/system/jobs").await;
    assert_eq!(list.body["data"]["paginator"]["totalCount"], 2);
}

/// Submits sent together land in one batch of the writer, where the jobs without a key
/// are one insert and those with a key go one by one: each key still answers one job,
/// and a key sent before answers its earlier job.
async fn concurrent_submits_with_and_without_keys(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let submit = |key: Option<&'static str>| {
        let mut req = t
            .client
            .get(t.url("/api/products/snapshot"))
            .bearer_auth(t.token.clone());
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        t.send(req)
    };
    let earlier = submit(Some("earlier")).await;
    assert_eq!(earlier.status, 202, "{}", earlier.body);
    let keys = [None, Some("dup-1"), Some("dup-2"), Some("earlier")];
    let sent: Vec<Option<&str>> = (0..32).map(|i| keys[i % keys.len()]).collect();
    let answers = join_all(sent.iter().map(|&key| submit(key))).await;
    let mut by_key: HashMap<Option<&str>, HashSet<String>> = HashMap::new();
    for (key, answer) in sent.iter().zip(&answers) {
        assert_eq!(answer.status, 202, "{}", answer.body);
        let id = answer.body["data"]["jobId"].as_str().unwrap().to_string();
        by_key.entry(*key).or_default().insert(id);
    }
    assert_eq!(by_key[&None].len(), 8, "a job per submit without a key");
    for key in ["dup-1", "dup-2"] {
        assert_eq!(by_key[&Some(key)].len(), 1, "one job for {key}");
    }
    let earlier_id = earlier.body["data"]["jobId"].as_str().unwrap();
    assert_eq!(
        by_key[&Some("earlier")],
        HashSet::from([earlier_id.to_string()])
    );
    let all: HashSet<&String> = by_key.values().flatten().collect();
    assert_eq!(all.len(), 8 + 3, "no job id answered for two keys");
    let list = t.get("/api/system/jobs").await;
    assert_eq!(list.body["data"]["paginator"]["totalCount"], 8 + 3);
}

async fn result_expires_after_valid_until(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.result_ttl = Duration::from_millis(500)).await;
    let job_id = t.submit_snapshot("").await;
    let job = t.wait_finished(&job_id).await;
    let url = job["resultUrl"].as_str().unwrap().to_string();
    let stored = |conn: &mut jobline::db::DbConnection| {
        jobline::db::results::chunk(conn, &job_id, 0).unwrap()
    };
    let mut conn = t.db.connect();
    assert!(stored(&mut conn).is_some(), "a result until it expires");
    eventually(Duration::from_secs(10), "the job reads expired", || async {
        t.get(&format!("/api/system/jobs/{job_id}")).await.body["data"]["status"] == "expired"
    })
    .await;
    // Kept in the job's row (a small snapshot) or in chunks, the bytes go with the
    // janitor's next pass (the job reads expired from `valid_until` on).
    eventually(Duration::from_secs(10), "the result is deleted", || async {
        stored(&mut t.db.connect()).is_none()
    })
    .await;
    let gone = t.send(t.client.get(&url)).await;
    assert_eq!(gone.status, 410);
    assert_eq!(gone.error_code(), "result-expired");
    let job = t.get(&format!("/api/system/jobs/{job_id}")).await.body["data"].clone();
    assert!(job["resultUrl"].is_null());
    assert!(job["validUntil"].is_string());
    // Expiry is not a second job end.
    assert_eq!(t.notifications_for(&job_id), 1);
    let list = t.get("/api/system/jobs?status=expired").await;
    assert_eq!(list.body["data"]["paginator"]["totalCount"], 1);
}

async fn jobs_are_gone_after_retention(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.job_retention = Duration::from_millis(800)).await;
    let job_id = t.submit_snapshot("").await;
    t.wait_finished(&job_id).await;
    eventually(Duration::from_secs(10), "the job is gone", || async {
        t.get(&format!("/api/system/jobs/{job_id}")).await.status == 404
    })
    .await;
    let a = t.get(&format!("/api/system/jobs/{job_id}")).await;
    assert_eq!(a.error_code(), "job-not-found");
}

async fn times_use_the_configured_zone(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.timezone = "+05:30".parse().unwrap()).await;
    let p = t.create_product("TZ", "visible").await;
    assert!(
        p["creationTime"].as_str().unwrap().ends_with("+0530"),
        "{p}"
    );
    let job_id = t.submit_snapshot("").await;
    let job = t.wait_finished(&job_id).await;
    assert!(job["creationTime"].as_str().unwrap().ends_with("+0530"));
}

crate::on_both_backends!(
    snapshot_life_cycle,
    snapshot_reads_every_page_of_a_large_catalogue,
    snapshots_read_together_keep_to_their_eshop,
    results_are_guarded,
    wait_answers_when_the_job_ends,
    wait_gives_up_after_n_seconds,
    kill_pending_job,
    kill_running_job,
    job_past_max_run_time_is_killed,
    idempotency_key_answers_the_same_job,
    concurrent_submits_with_and_without_keys,
    result_expires_after_valid_until,
    jobs_are_gone_after_retention,
    times_use_the_configured_zone,
);
