//! Webhooks: registration and its validation, signed `job:finished` deliveries to a real
//! receiver, retries, 410, timeouts, redirects, redelivery, private targets, the readable
//! signing key, key renewal, and Shoptet's signature header as its PHP SDK checks it.

use crate::common::{eventually, is_api_time, Backend, RecordingServer, TestApp};
use actix_web::{web, HttpRequest, HttpResponse};
use jobline::config::Config;
use jobline::outbound::signing;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// How the receiver answers its n-th request (from 0).
#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    /// Answers nothing for longer than any test's `webhook_timeout`.
    Hang,
    /// A 302 to another path of the receiver.
    Redirect,
    /// 429 with `Retry-After: <seconds>`.
    TooMany(u64),
    /// 200 once the test lets one more request through ([`Receiver::release`]).
    Held,
}

/// One request the receiver got.
#[derive(Debug)]
struct Hit {
    path: String,
    headers: HashMap<String, String>,
    body: String,
    at: std::time::Instant,
    /// The client's address: one per connection, so it shows keep-alive reuse.
    peer: Option<std::net::SocketAddr>,
}

struct ReceiverState {
    seen: AtomicUsize,
    /// Requests being answered now, and the most there were at once.
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// Permits for [`Reply::Held`] requests.
    gate: tokio::sync::Semaphore,
    hits: mpsc::UnboundedSender<Hit>,
    script: Box<dyn Fn(usize) -> Reply + Send + Sync>,
}

/// A real HTTP receiver on 127.0.0.1:0 that reports every request through a channel.
struct Receiver {
    url: String,
    hits: mpsc::UnboundedReceiver<Hit>,
    state: web::Data<ReceiverState>,
}

async fn receive(req: HttpRequest, body: web::Bytes, st: web::Data<ReceiverState>) -> HttpResponse {
    let n = st.seen.fetch_add(1, Ordering::SeqCst);
    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let reply = answer(&st, n, &req, body).await;
    st.in_flight.fetch_sub(1, Ordering::SeqCst);
    reply
}

async fn answer(st: &ReceiverState, n: usize, req: &HttpRequest, body: web::Bytes) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let _ = st.hits.send(Hit {
        path: req.path().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: std::time::Instant::now(),
        peer: req.peer_addr(),
    });
    match (st.script)(n) {
        Reply::Status(code) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
                .body(format!("answer {n}"))
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            HttpResponse::Ok().finish()
        }
        Reply::TooMany(secs) => HttpResponse::TooManyRequests()
            .insert_header(("retry-after", secs.to_string()))
            .finish(),
        Reply::Redirect => HttpResponse::Found()
            .insert_header(("location", "/elsewhere"))
            .finish(),
        Reply::Held => {
            st.gate.acquire().await.expect("gate open").forget();
            HttpResponse::Ok().finish()
        }
    }
}

impl Receiver {
    fn start(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = web::Data::new(ReceiverState {
            seen: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            gate: tokio::sync::Semaphore::new(0),
            hits: tx,
            script: Box::new(script),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = state.clone();
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(shared.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        actix_rt::spawn(server);
        Receiver {
            url: format!("http://{addr}/hook"),
            hits: rx,
            state,
        }
    }

    /// Lets one more [`Reply::Held`] request be answered.
    fn release(&self) {
        self.state.gate.add_permits(1);
    }

    /// The most requests this receiver was answering at once.
    fn most_in_flight(&self) -> usize {
        self.state.most_in_flight.load(Ordering::SeqCst)
    }

    fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    async fn next(&mut self) -> Hit {
        tokio::time::timeout(Duration::from_secs(20), self.hits.recv())
            .await
            .expect("a delivery within 20 s")
            .expect("receiver running")
    }

    /// Every request received so far without waiting.
    fn drain(&mut self) -> Vec<Hit> {
        let mut all = Vec::new();
        while let Ok(h) = self.hits.try_recv() {
            all.push(h);
        }
        all
    }
}

fn fast(c: &mut Config) {
    c.allow_private_targets = true;
    c.webhook_retry_schedule = vec![Duration::from_millis(100); 3];
    c.webhook_timeout = Duration::from_secs(5);
}

async fn spawn(backend: Backend, tune: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        fast(c);
        tune(c);
    })
    .await
}

async fn register(t: &TestApp, url: &str) -> Value {
    let a = t
        .post(
            "/api/webhooks",
            json!({"data": [{"event": "job:finished", "url": url}]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["data"]["webhooks"][0].clone()
}

/// The e-shop's signing secrets, newest first.
fn secrets(t: &TestApp, eshop: i64) -> Vec<String> {
    let mut conn = t.db.connect();
    jobline::db::signature_keys::valid(&mut conn, eshop, jobline::model::time::now()).unwrap()
}

fn verify(secret: &str, hit: &Hit) -> Result<(), signing::SigningError> {
    signing::verify(
        secret,
        &hit.headers["webhook-id"],
        &hit.headers["webhook-timestamp"],
        &hit.headers["webhook-signature"],
        hit.body.as_bytes(),
        chrono::Utc::now().timestamp(),
        signing::DEFAULT_TOLERANCE_SECS,
    )
}

async fn notification_of(t: &TestApp, job_id: &str) -> Option<Value> {
    let a = t.get("/api/webhooks/notifications").await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["data"]["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["eventInstance"] == job_id)
        .cloned()
}

/// Waits until the job's notification has `status`; answers it.
async fn wait_notification(t: &TestApp, job_id: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = notification_of(t, job_id).await;
        match n {
            Some(n) if n["status"] == status => return n,
            other => assert!(
                std::time::Instant::now() < deadline,
                "notification of {job_id} never became {status}: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn attempts(t: &TestApp, id: &str) -> Vec<jobline::db::deliveries::AttemptSummary> {
    let mut conn = t.db.connect();
    jobline::db::deliveries::attempts_of(&mut conn, id).unwrap()
}

async fn delivers_signed_job_finished(backend: Backend) {
    let t = spawn(backend, |_| {}).await;
    let mut rx = Receiver::start(|_| Reply::Status(204));
    let hook = register(&t, &rx.url).await;
    let job_id = t.submit_snapshot("").await;
    t.wait_finished(&job_id).await;

    let hit = rx.next().await;
    assert_eq!(hit.path, "/hook");
    assert_eq!(hit.headers["content-type"], "application/json");
    let secret = &secrets(&t, 1)[0];
    assert_eq!(verify(secret, &hit), Ok(()));
    let sent: Value = serde_json::from_str(&hit.body).unwrap();
    let created = sent["eventCreated"].as_str().unwrap();
    assert!(is_api_time(created), "{created}");
    assert_eq!(
        hit.body,
        jobline::db::notifications::job_finished_body(1, created, &job_id)
    );
    let id = hit.headers["webhook-id"].clone();
    assert!(id.starts_with("msg_"), "{id}");

    let n = wait_notification(&t, &job_id, "success").await;
    assert_eq!(n["id"], id.as_str());
    assert_eq!(n["webhookId"], hook["id"]);
    assert_eq!(n["url"], rx.url.as_str());
    assert_eq!(n["event"], "job:finished");
    assert_eq!(n["attempts"], 1);
    assert_eq!(n["lastAttempt"]["statusCode"], 204);
    assert!(n["lastAttempt"]["error"].is_null());
    assert!(n["lastAttempt"]["durationMs"].is_number());
    assert!(is_api_time(n["lastAttempt"]["time"].as_str().unwrap()));
    assert_eq!(n["data"], sent);

    // Filters.
    for (query, expected) in [
        ("?status=success", 1),
        ("?status=failed", 0),
        ("?event=job:finished", 1),
        ("?from=2999-01-01T00:00:00%2B0000", 0),
    ] {
        let a = t.get(&format!("/api/webhooks/notifications{query}")).await;
        assert_eq!(a.status, 200, "{query}: {}", a.body);
        assert_eq!(
            a.body["data"]["paginator"]["totalCount"], expected,
            "{query}"
        );
    }
    assert_eq!(
        t.get("/api/webhooks/notifications?status=done")
            .await
            .status,
        400
    );
    assert_eq!(
        t.get("/api/webhooks/notifications?event=job:started")
            .await
            .status,
        400
    );
}

/// A delivery that ends while the node stops is recorded before it exits, although its
/// record may wait for others to share a round (`RECORD_DELAY` in the dispatcher).
async fn a_delivered_attempt_is_recorded_before_the_node_stops(backend: Backend) {
    let t = spawn(backend, |_| {}).await;
    let mut rx = Receiver::start(|_| Reply::Status(204));
    register(&t, &rx.url).await;
    let job_id = t.submit_snapshot("").await;
    let hit = rx.next().await;
    let id = hit.headers["webhook-id"].clone();
    // Stop as soon as the receiver has the request: the answer is still on its way back.
    let db = t.stop().await;
    let mut conn = db.connect();
    let recorded = jobline::db::deliveries::attempts_of(&mut conn, &id).unwrap();
    assert_eq!(recorded.len(), 1, "{job_id}: {recorded:?}");
    assert_eq!(recorded[0].1, Some(204), "{recorded:?}");
}

/// A delivery that finishes alone is recorded by itself soon after (`RECORD_DELAY` in the
/// dispatcher), not left for a round that claims: with the poll an hour away nothing else
/// would start one.
async fn a_lone_attempt_is_recorded_without_waiting_for_the_poll(backend: Backend) {
    let t = spawn(backend, |c| c.poll_interval = Duration::from_secs(3600)).await;
    let mut rx = Receiver::start(|_| Reply::Status(204));
    register(&t, &rx.url).await;
    let job_id = t.submit_snapshot("").await;
    rx.next().await;
    let n = wait_notification(&t, &job_id, "success").await;
    assert_eq!(n["attempts"], 1);
    assert_eq!(n["lastAttempt"]["statusCode"], 204);
}

async fn retries_until_success(backend: Backend) {
    let t = spawn(backend, |_| {}).await;
    let mut rx = Receiver::start(|n| Reply::Status(if n < 2 { 500 } else { 200 }));
    register(&t, &rx.url).await;
    let job_id = t.submit_snapshot("").await;
    let first = rx.next().await;
    let second = rx.next().await;
    let third = rx.next().await;
    assert_eq!(first.headers["webhook-id"], second.headers["webhook-id"]);
    assert_eq!(first.headers["webhook-id"], third.headers["webhook-id"]);
    assert_eq!(first.body, third.body);
    let n = wait_notification(&t, &job_id, "success").await;
    assert_eq!(n["attempts"], 3);
    assert_eq!(n["lastAttempt"]["statusCode"], 200);
    let tried = attempts(&t, n["id"].as_str().unwrap());
    let codes: Vec<Option<i32>> = tried.iter().map(|a| a.1).collect();
    assert_eq!(codes, [Some(500), Some(500), Some(200)]);
    assert_eq!(tried[0].2.as_deref(), Some("answered HTTP 500"));
    assert_eq!(tried[2].2, None);

    // Retention takes the attempts with their notification.
    let mut conn = t.db.connect();
    let future = jobline::model::time::now() + 1_000_000;
    let purged = jobline::db::notifications::purge(&mut conn, future, 100).unwrap();
    assert_eq!(purged, 1);
    assert!(attempts(&t, n["id"].as_str().unwrap()).is_empty());
}

async fn retry_after_is_honoured(backend: Backend) {
    let t = spawn(backend, |_| {}).await;
    let mut rx = Receiver::start(|n| {
        if n == 0 {
            Reply::TooMany(1)
        } else {
            Reply::Status(200)
        }
    });
    register(&t, &rx.url).await;
    let job_id = t.submit_snapshot("").await;
    let first = rx.next().await;
    let second = rx.next().await;
    let waited = second.at - first.at;
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    let n = wait_notification(&t, &job_id, "success").await;
    assert_eq!(n["attempts"], 2);
}

async fn gone_disables_the_webhook(backend: Backend) {
    let t = spawn(backend, |_| {}).await;
    let mut rx = Receiver::start(|_| Reply::Status(410));
    let hook = register(&t, &rx.url).await;
    let job_id = t.submit_snapshot("").await;
    rx.next().await;
    let n = wait_notification(&t, &job_id, "failed").await;
    assert_eq!(n["attempts"], 1);
    assert_eq!(n["lastAttempt"]["statusCode"], 410);
    let a = t
        .get(&format!("/api/webhooks/{}", hook["id"].as_str().unwrap()))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["data"]["active"], false);
}

async fn timeouts_are_recorded(backend: Backend) {
    let t = spawn(backend, |c| {
        c.webhook_timeout = Duration::from_millis(300);
        c.webhook_retry_schedule = vec![Duration::from_millis(100)];
    })
    .await;
    let mut rx = Receiver::start(|_| Reply::Hang);
    register(&t, &rx.url).await;
    let job_id = t.submit_snapshot("").await;
    rx.next().await;
    let n = wait_notification(&t, &job_id, "failed").await;
    assert_eq!(n["attempts"], 2);
    assert!(n["lastAttempt"]["statusCode"].is_null());
    let error = n["lastAttempt"]["error"].as_str().unwrap();
    assert!(error.contains("timed out"), "{error}");
    assert!(n["lastAttempt"]["durationMs"].as_i64().unwrap() >= 250);
}

async fn redirects_are_not_followed(backend: Backend) {
    let t = spawn(backend, |c| {
        c.webhook_retry_schedule = vec![Duration::from_millis(100)];
    })
    .await;
    let mut rx = Receiver::start(|_| Reply::Redirect);
    register(&t, &rx.url).await;
    let job_id = t.submit_snapshot("").await;
    let n = wait_notification(&t, &job_id, "failed").await;
    assert_eq!(n["attempts"], 2);
    assert_eq!(n["lastAttempt"]["statusCode"], 302);
    let error = n["lastAttempt"]["error"].as_str().unwrap();
    assert!(error.contains("redirects are not followed"), "{error}");
    let hits = rx.drain();
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|h| h.path == "/hook"), "{hits:?}");
}

async fn failed_notifications_can_be_redelivered(backend: Backend) {
    let t = spawn(backend, |c| {
        c.webhook_retry_schedule = vec![Duration::from_millis(100)];
    })
    .await;
    let mut rx = Receiver::start(|n| Reply::Status(if n < 2 { 503 } else { 200 }));
    register(&t, &rx.url).await;
    let job_id = t.submit_snapshot("").await;
    let n = wait_notification(&t, &job_id, "failed").await;
    assert_eq!(n["attempts"], 2);
    let id = n["id"].as_str().unwrap().to_string();
    let other = t.add_eshop(2);
    let path = format!("/api/webhooks/notifications/{id}/redeliver");
    let a = t.post_as(&other, &path, json!({})).await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(a.error_code(), "notification-not-found");
    let a = t
        .post("/api/webhooks/notifications/msg_nope/redeliver", json!({}))
        .await;
    assert_eq!(a.status, 404);

    let a = t.post(&path, json!({})).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let n = wait_notification(&t, &job_id, "success").await;
    assert_eq!(n["attempts"], 3);
    let hits = [rx.next().await, rx.next().await, rx.next().await];
    assert!(hits.iter().all(|h| h.headers["webhook-id"] == id));
}

async fn failed_and_killed_jobs_notify_too(backend: Backend) {
    let t = spawn(backend, |_| {}).await;
    let mut rx = Receiver::start(|_| Reply::Status(200));
    register(&t, &rx.url).await;

    let held = t.breakpoints().arm("snapshot:page");
    let killed = t.submit_snapshot("").await;
    held.reached().await;
    let a = t.delete(&format!("/api/system/jobs/{killed}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    held.release();

    let failed = "zzfail1".to_string();
    let mut conn = t.db.connect();
    let now = jobline::model::time::now();
    jobline::db::jobs::insert(
        &mut conn,
        &jobline::db::jobs::Job {
            id: failed.clone(),
            eshop_id: 1,
            endpoint: "/api/products/snapshot".into(),
            queue: "snapshots".into(),
            status: "pending".into(),
            params: "not json".into(),
            creation_time: now,
            started_time: None,
            completion_time: None,
            attempt: 0,
            lease_owner: None,
            lease_expires: None,
            result_secret: "0".repeat(40),
            result_ext: None,
            result_content_type: None,
            result_size: None,
            valid_until: None,
            log: String::new(),
        },
        None,
        0,
    )
    .unwrap();
    assert_eq!(t.wait_finished(&failed).await["status"], "failed");

    let mut instances = Vec::new();
    for _ in 0..2 {
        let hit = rx.next().await;
        let body: Value = serde_json::from_str(&hit.body).unwrap();
        instances.push(body["eventInstance"].as_str().unwrap().to_string());
    }
    instances.sort();
    let mut expected = vec![killed.clone(), failed.clone()];
    expected.sort();
    assert_eq!(instances, expected);
    wait_notification(&t, &killed, "success").await;
    wait_notification(&t, &failed, "success").await;
}

async fn private_targets_are_refused(backend: Backend) {
    let t = spawn(backend, |c| {
        c.allow_private_targets = false;
        c.webhook_retry_schedule = vec![Duration::from_millis(100)];
    })
    .await;
    let mut rx = Receiver::start(|_| Reply::Status(200));
    register(&t, &rx.url).await;
    let job_id = t.submit_snapshot("").await;
    let n = wait_notification(&t, &job_id, "failed").await;
    let error = n["lastAttempt"]["error"].as_str().unwrap();
    assert!(error.contains("not a public address"), "{error}");
    assert!(rx.drain().is_empty());
}

async fn a_configured_proxy_does_not_bypass_the_guard(backend: Backend) {
    // Stands in for a proxy: answers 200 in place of every target.
    let proxy = RecordingServer::start();
    let t = spawn(backend, |c| {
        c.allow_private_targets = false;
        c.outbound_proxy = Some(proxy.url.clone());
        c.webhook_retry_schedule = vec![Duration::from_millis(100)];
    })
    .await;
    // A name that resolves to loopback, then a loopback literal: refused before sending.
    let hook = register(&t, "http://localhost:9/hook").await;
    let path = format!("/api/webhooks/{}", hook["id"].as_str().unwrap());
    let job_id = t.submit_snapshot("").await;
    let n = wait_notification(&t, &job_id, "failed").await;
    let error = n["lastAttempt"]["error"].as_str().unwrap();
    assert!(
        error.contains("localhost") && error.contains("not a public address"),
        "{error}"
    );
    let redeliver = format!(
        "/api/webhooks/notifications/{}/redeliver",
        n["id"].as_str().unwrap()
    );
    let attempts = n["attempts"].as_i64().unwrap();
    let a = t
        .patch(&path, json!({"data": {"url": "http://127.0.0.1:9/hook"}}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(t.post(&redeliver, json!({})).await.status, 202);
    eventually(
        Duration::from_secs(20),
        "one more refused attempt",
        || async {
            let n = notification_of(&t, &job_id).await.unwrap();
            n["status"] == "failed" && n["attempts"].as_i64().unwrap() > attempts
        },
    )
    .await;
    let n = notification_of(&t, &job_id).await.unwrap();
    let error = n["lastAttempt"]["error"].as_str().unwrap();
    assert!(
        error.contains("127.0.0.1 is not a public address"),
        "{error}"
    );
    assert!(
        proxy.lines.try_recv().is_err(),
        "a private target reached the proxy"
    );
    // A public target goes through the proxy (which answers in its place here).
    let a = t
        .patch(&path, json!({"data": {"url": "http://93.184.216.34/hook"}}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(t.post(&redeliver, json!({})).await.status, 202);
    wait_notification(&t, &job_id, "success").await;
    let line = proxy.lines.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(line, "POST http://93.184.216.34/hook HTTP/1.1");
}

async fn webhook_urls_are_parsed_and_normalised(backend: Backend) {
    let t = spawn(backend, |_| {}).await;
    let malformed = [
        "https://example.com/a\r\nX-Injected: 1".to_string(),
        "https://example.com/\n".to_string(),
        "http:///nohost".to_string(),
        "http:\\\\evil.example/".to_string(),
        "http://example.com:0/".to_string(),
        "http://example.com:65536/".to_string(),
        "https://example.com/a b".to_string(),
        " https://example.com/".to_string(),
        "https://exa\tmple.com/".to_string(),
        format!("https://example.com/{}", "a".repeat(1981)),
    ];
    for url in &malformed {
        let a = t
            .post(
                "/api/webhooks",
                json!({"data": [{"event": "job:finished", "url": url}]}),
            )
            .await;
        assert_eq!(a.status, 422, "{url:?}: {}", a.body);
        assert_eq!(a.error_code(), "invalid-request-data");
        assert_eq!(a.error_instance(), "data[0].url", "{url:?}");
    }
    assert_eq!(
        t.get("/api/webhooks").await.body["data"]["paginator"]["totalCount"],
        0
    );
    let hook = register(&t, "HTTPS://Example.COM:443/a/../hook").await;
    assert_eq!(hook["url"], "https://example.com/hook");
    let path = format!("/api/webhooks/{}", hook["id"].as_str().unwrap());
    for url in &malformed {
        let a = t.patch(&path, json!({"data": {"url": url}})).await;
        assert_eq!(a.status, 422, "{url:?}: {}", a.body);
        assert_eq!(a.error_instance(), "data.url", "{url:?}");
    }
    assert_eq!(
        t.get(&path).await.body["data"]["url"],
        "https://example.com/hook"
    );
    let a = t
        .patch(&path, json!({"data": {"url": "http://EXAMPLE.org:80"}}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["data"]["url"], "http://example.org/");
}

async fn without_a_webhook_the_notification_is_retried(backend: Backend) {
    let t = spawn(backend, |c| {
        c.webhook_retry_schedule = vec![Duration::from_millis(300); 3];
    })
    .await;
    // No webhook at all: every attempt of the schedule is made, then `failed`.
    let job_id = t.submit_snapshot("").await;
    let n = wait_notification(&t, &job_id, "failed").await;
    assert_eq!(
        n["lastAttempt"]["error"], "no active job:finished webhook",
        "{n}"
    );
    assert_eq!(n["attempts"], 4, "the first attempt and 3 retries: {n}");
    assert!(n["webhookId"].is_null());
    // A webhook registered while a notification is still being retried gets it, with no
    // redelivery asked.
    let second = t.submit_snapshot("?visibility=hidden").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while notification_of(&t, &second)
        .await
        .is_none_or(|n| n["attempts"] == 0)
    {
        assert!(std::time::Instant::now() < deadline, "no first attempt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut rx = Receiver::start(|_| Reply::Status(200));
    register(&t, &rx.url).await;
    let hit = rx.next().await;
    assert_eq!(
        serde_json::from_str::<Value>(&hit.body).unwrap()["eventInstance"],
        second.as_str()
    );
    wait_notification(&t, &second, "success").await;
    // The failed one is redelivered on request.
    let id = n["id"].as_str().unwrap();
    let a = t
        .post(
            &format!("/api/webhooks/notifications/{id}/redeliver"),
            json!({}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(rx.next().await.headers["webhook-id"], id);
    wait_notification(&t, &job_id, "success").await;
}

/// Shoptet's PHP SDK `SignatureValidator::isValid($signatureKey, $body, $signature)`:
/// `hash_equals(hash_hmac('sha1', $body, $signatureKey), $signature)`.
fn php_sdk_signature_is_valid(signature_key: &str, body: &str, signature: &str) -> bool {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(signature_key.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes()) == signature
}

async fn the_first_delivery_verifies_with_the_readable_key(backend: Backend) {
    let t = spawn(backend, |_| {}).await;
    let mut rx = Receiver::start(|_| Reply::Status(200));
    register(&t, &rx.url).await;
    // Never renewed: the key the e-shop can read signs.
    let a = t.get("/api/webhooks/signature-key").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let key = a.body["data"]["signatureKey"].as_str().unwrap().to_string();
    assert_eq!(secrets(&t, 1), vec![key.clone()]);
    let other = t.add_eshop(2);
    let theirs = t.get_as(&other, "/api/webhooks/signature-key").await;
    assert_ne!(theirs.body["data"]["signatureKey"], key.as_str());
    assert_eq!(
        t.get_as("", "/api/webhooks/signature-key").await.status,
        401
    );

    t.submit_snapshot("").await;
    let hit = rx.next().await;
    assert_eq!(verify(&key, &hit), Ok(()));
    let shoptet = &hit.headers["shoptet-webhook-signature"];
    assert_eq!(shoptet.len(), 40, "{shoptet}");
    assert_eq!(shoptet, &shoptet.to_ascii_lowercase());
    assert!(php_sdk_signature_is_valid(&key, &hit.body, shoptet));
    assert!(!php_sdk_signature_is_valid(
        &key,
        &format!("{} ", hit.body),
        shoptet
    ));
}

async fn renewals_sign_with_every_key_of_the_last_day(backend: Backend) {
    let t = spawn(backend, |_| {}).await;
    let mut rx = Receiver::start(|_| Reply::Status(200));
    register(&t, &rx.url).await;
    let first = t.get("/api/webhooks/signature-key").await.body["data"]["signatureKey"]
        .as_str()
        .unwrap()
        .to_string();
    let mut renewed = Vec::new();
    for _ in 0..3 {
        let a = t.post("/api/webhooks/renew-signature-key", json!({})).await;
        assert_eq!(a.status, 200, "{}", a.body);
        renewed.push(a.body["data"]["signatureKey"].as_str().unwrap().to_string());
    }
    let current = renewed.last().unwrap();
    let read = t.get("/api/webhooks/signature-key").await;
    assert_eq!(read.body["data"]["signatureKey"], current.as_str());

    t.submit_snapshot("").await;
    let hit = rx.next().await;
    // Standard Webhooks: one signature per key of the last 24 h, the replaced ones too.
    assert_eq!(hit.headers["webhook-signature"].split(' ').count(), 4);
    for key in renewed.iter().chain([&first]) {
        assert_eq!(verify(key, &hit), Ok(()), "{key}");
    }
    // Shoptet: only the current key, as renew-signature-key returned it.
    let shoptet = &hit.headers["shoptet-webhook-signature"];
    assert!(php_sdk_signature_is_valid(current, &hit.body, shoptet));
    assert!(!php_sdk_signature_is_valid(&first, &hit.body, shoptet));
    assert!(!php_sdk_signature_is_valid(&renewed[1], &hit.body, shoptet));
}

async fn crud_validation_and_tenant_scoping(backend: Backend) {
    let t = spawn(backend, |_| {}).await;
    let app = &t;
    let bad = |data: Value| async move {
        let a = app.post("/api/webhooks", json!({ "data": data })).await;
        assert_eq!(a.status, 422, "{}", a.body);
        assert_eq!(a.error_code(), "invalid-request-data");
        a.error_instance().to_string()
    };
    let long = format!("https://example.com/{}", "a".repeat(2000));
    assert_eq!(
        bad(json!([{"event": "job:started", "url": "https://example.com/"}])).await,
        "data[0].event"
    );
    assert_eq!(
        bad(json!([{"event": "job:finished", "url": "ftp://example.com/"}])).await,
        "data[0].url"
    );
    assert_eq!(
        bad(json!([{"event": "job:finished", "url": "/relative"}])).await,
        "data[0].url"
    );
    assert_eq!(
        bad(json!([{"event": "job:finished", "url": long}])).await,
        "data[0].url"
    );
    assert_eq!(
        bad(json!([{"event": "job:finished", "url": 5}])).await,
        "data[0].url"
    );
    assert_eq!(
        bad(json!([
            {"event": "job:finished", "url": "https://example.com/a"},
            {"event": "job:finished", "url": "https://example.com/b"}
        ]))
        .await,
        "data[1].event"
    );
    assert_eq!(bad(json!([])).await, "data");
    let a = t
        .send(
            t.client
                .post(t.url("/api/webhooks"))
                .bearer_auth(&t.token)
                .body("x"),
        )
        .await;
    assert_eq!(a.status, 415);

    let hook = register(&t, "https://example.com/hook").await;
    let id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(hook["event"], "job:finished");
    assert_eq!(hook["active"], true);
    assert!(is_api_time(hook["created"].as_str().unwrap()));
    assert_eq!(hook["created"], hook["updated"]);
    assert_eq!(
        bad(json!([{"event": "job:finished", "url": "https://example.com/again"}])).await,
        "data[0].event"
    );

    let list = t.get("/api/webhooks").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["data"]["paginator"]["totalCount"], 1);
    assert_eq!(list.body["data"]["webhooks"][0], hook);
    let one = t.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(one.body["data"], hook);

    let path = format!("/api/webhooks/{id}");
    let a = t
        .patch(
            &path,
            json!({"data": {"url": "https://example.org/new", "active": false}}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["data"]["url"], "https://example.org/new");
    assert_eq!(a.body["data"]["active"], false);
    let a = t.patch(&path, json!({"data": {"url": "nope"}})).await;
    assert_eq!(a.status, 422);
    assert_eq!(a.error_instance(), "data.url");
    let a = t
        .patch(&path, json!({"data": {"event": "job:finished"}}))
        .await;
    assert_eq!(a.status, 422);

    // Another e-shop sees none of it.
    let other = t.add_eshop(2);
    let a = t.get_as(&other, &path).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.error_code(), "webhook-not-found");
    assert_eq!(t.delete_as(&other, &path).await.status, 404);
    let a = t
        .send(
            t.client
                .patch(t.url(&path))
                .bearer_auth(&other)
                .json(&json!({"data": {"active": true}})),
        )
        .await;
    assert_eq!(a.status, 404);
    let a = t.get_as(&other, "/api/webhooks").await;
    assert_eq!(a.body["data"]["paginator"]["totalCount"], 0);
    // The e-shop can register its own for the same event.
    let a = t
        .post_as(
            &other,
            "/api/webhooks",
            json!({"data": [{"event": "job:finished", "url": "https://example.com/2"}]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);

    // Fixed paths are not taken for ids.
    let a = t.get("/api/webhooks/notifications").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body["data"]["notifications"].is_array());
    assert_eq!(t.get("/api/webhooks/renew-signature-key").await.status, 405);

    assert_eq!(t.delete(&path).await.status, 200);
    assert_eq!(t.get(&path).await.status, 404);
    assert_eq!(t.delete(&path).await.status, 404);
    assert_eq!(t.get_as("", "/api/webhooks").await.status, 401);
}

async fn renewed_keys_sign_together_during_the_grace(backend: Backend) {
    let t = spawn(backend, |_| {}).await;
    let mut rx = Receiver::start(|_| Reply::Status(200));
    register(&t, &rx.url).await;
    let old = secrets(&t, 1);
    assert_eq!(old.len(), 1);
    let a = t.post("/api/webhooks/renew-signature-key", json!({})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let new = a.body["data"]["signatureKey"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_"), "{new}");
    assert!(signing::secret_bytes(&new).unwrap().len() >= 24);
    assert_ne!(new, old[0]);

    let job_id = t.submit_snapshot("").await;
    let hit = rx.next().await;
    assert_eq!(hit.headers["webhook-signature"].split(' ').count(), 2);
    assert_eq!(verify(&old[0], &hit), Ok(()));
    assert_eq!(verify(&new, &hit), Ok(()));
    let stranger = format!("whsec_{}", "A".repeat(32));
    assert!(verify(&stranger, &hit).is_err());
    wait_notification(&t, &job_id, "success").await;
}

async fn claims_keep_two_nodes_apart(backend: Backend) {
    use jobline::db::deliveries::{claim, record_attempts, Attempt};
    use jobline::model::time::{now, SECOND};
    let t = spawn(backend, |_| {}).await;
    let mut conn = t.db.connect();
    // Due in an hour: this app's own dispatcher leaves it alone.
    let due = now() + 3600 * SECOND;
    let zone = jobline::model::Zone::utc();
    jobline::db::notifications::record_job_finished(&mut conn, 1, "zzclaim", &zone, due).unwrap();
    let a = claim(&mut conn, "node-a", 10, due + 30 * SECOND, due).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].attempt, 1);
    assert!(a[0].target.is_none());
    let during = claim(&mut conn, "node-b", 10, due + 31 * SECOND, due + SECOND).unwrap();
    assert!(during.is_empty(), "{during:?}");
    let b = claim(
        &mut conn,
        "node-b",
        10,
        due + 90 * SECOND,
        due + 31 * SECOND,
    )
    .unwrap();
    assert_eq!(b.len(), 1);
    let attempt = |node: &str| Attempt {
        notification_id: b[0].id.clone(),
        node: node.to_string(),
        attempt: 1,
        at: due,
        webhook_id: None,
        url: None,
        status_code: None,
        duration_ms: 0,
        error: Some("no active job:finished webhook".into()),
        response_excerpt: None,
        status: "failed",
        next_attempt_at: None,
        disable_webhook: false,
    };
    // The node whose claim ran out cannot record; the one holding it can, once.
    let record = |conn: &mut _, node: &str| record_attempts(conn, &[attempt(node)]).unwrap();
    assert!(record(&mut conn, "node-a").is_empty());
    assert_eq!(record(&mut conn, "node-b"), vec![b[0].id.clone()]);
    assert!(record(&mut conn, "node-b").is_empty());
    assert_eq!(attempts(&t, &b[0].id).len(), 1);
}

/// Writes `count` due `job:finished` notifications of `eshop` in one transaction, as jobs
/// ending on another node would (nothing wakes this node: its poll finds them all due).
fn outbox(conn: &mut jobline::db::DbConnection, batches: &[(i64, usize)]) {
    use diesel::Connection;
    let zone = jobline::model::Zone::utc();
    let now = jobline::model::time::now();
    conn.transaction::<_, jobline::error::StoreError, _>(|c| {
        for &(eshop, count) in batches {
            for i in 0..count {
                let job = format!("j{eshop}x{i:04}");
                jobline::db::notifications::record_job_finished(c, eshop, &job, &zone, now)?;
            }
        }
        Ok(())
    })
    .unwrap();
}

async fn a_batch_for_many_targets_is_delivered_once_each(backend: Backend) {
    const SHOPS: i64 = 4;
    const EACH: usize = 25;
    let t = spawn(backend, |c| c.webhook_workers = 8).await;
    let mut receivers = Vec::new();
    for shop in 1..=SHOPS {
        let rx = Receiver::start(|_| Reply::Status(200));
        register_for(&t, shop, &rx.url).await;
        receivers.push(rx);
    }
    let mut conn = t.db.connect();
    outbox(
        &mut conn,
        &(1..=SHOPS).map(|s| (s, EACH)).collect::<Vec<_>>(),
    );

    for (shop, rx) in (1..=SHOPS).zip(receivers.iter_mut()) {
        let secret = secrets(&t, shop)[0].clone();
        let mut ids = std::collections::HashSet::new();
        let mut peers = std::collections::HashSet::new();
        for _ in 0..EACH {
            let hit = rx.next().await;
            assert_eq!(verify(&secret, &hit), Ok(()), "shop {shop}");
            let body: Value = serde_json::from_str(&hit.body).unwrap();
            assert_eq!(body["eshopId"], shop, "{}", hit.body);
            assert!(ids.insert(hit.headers["webhook-id"].clone()), "a duplicate");
            peers.insert(hit.peer.expect("a peer address"));
        }
        // Keep-alive: the deliveries to one target reuse their connections. Not "at most
        // one per slot": under load the client's pool may open a connection in a race with
        // one that is about to come back idle (CI saw 9 for 8 slots).
        assert!(
            peers.len() < EACH,
            "shop {shop}: {} connections",
            peers.len()
        );
    }
    use jobline::db::deliveries::{list, NotificationFilter};
    let success = NotificationFilter {
        status: Some("success".into()),
        ..Default::default()
    };
    let mut conn = t.db.connect();
    eventually(Duration::from_secs(20), "every attempt recorded", || {
        let done = (1..=SHOPS)
            .all(|shop| list(&mut conn, shop, &success, 0, 1, 0).unwrap().1 == EACH as i64);
        std::future::ready(done)
    })
    .await;
    for shop in 1..=SHOPS {
        let (all, _) = list(&mut conn, shop, &Default::default(), 0, 100, 0).unwrap();
        assert_eq!(all.len(), EACH);
        for n in all {
            assert_eq!(n.attempts, 1, "{n:?}");
            assert_eq!(attempts(&t, &n.id).len(), 1, "{n:?}");
        }
    }
    for rx in receivers.iter_mut() {
        assert!(rx.drain().is_empty(), "a second delivery");
    }
}

/// Every hit of `receivers`, tagged with the receiver's index, on one channel.
fn merged(receivers: &mut [Receiver]) -> mpsc::UnboundedReceiver<(usize, Hit)> {
    let (tx, all) = mpsc::unbounded_channel();
    for (i, rx) in receivers.iter_mut().enumerate() {
        let mut hits = std::mem::replace(&mut rx.hits, mpsc::unbounded_channel().1);
        let tx = tx.clone();
        actix_rt::spawn(async move {
            while let Some(hit) = hits.recv().await {
                let _ = tx.send((i, hit));
            }
        });
    }
    all
}

/// The next of `hits` (within 20 s): which receiver, and the delivery's `webhook-id`.
async fn next_hit(hits: &mut mpsc::UnboundedReceiver<(usize, Hit)>) -> (usize, String) {
    let (i, hit) = tokio::time::timeout(Duration::from_secs(20), hits.recv())
        .await
        .expect("a delivery within 20 s")
        .expect("receivers running");
    (i, hit.headers["webhook-id"].clone())
}

/// The dispatcher claims more notifications than it has slots (so that a slot that frees
/// starts the next at once), yet never has more than `webhook_workers` requests under way
/// nor more than half of them to one webhook, and delivers each claimed notification once.
/// Three e-shops with two notifications each, whose receivers answer only when the test
/// lets them, and 4 slots (2 to a webhook): whichever four start first, two wait for a slot
/// though one of them at least is under its webhook's share, and the fifth starts only when
/// one of the first four is answered.
async fn deliveries_stay_within_webhook_workers(backend: Backend) {
    const SLOTS: usize = 4;
    const SHOPS: i64 = 3;
    const EACH: usize = 2;
    let t = spawn(backend, |c| {
        c.webhook_workers = SLOTS;
        // No attempt times out while it is held.
        c.webhook_timeout = Duration::from_secs(60);
    })
    .await;
    let mut receivers = Vec::new();
    for shop in 1..=SHOPS {
        let rx = Receiver::start(|_| Reply::Held);
        register_for(&t, shop, &rx.url).await;
        receivers.push(rx);
    }
    let mut hits = merged(&mut receivers);
    outbox(
        &mut t.db.connect(),
        &(1..=SHOPS).map(|s| (s, EACH)).collect::<Vec<_>>(),
    );
    let mut ids = std::collections::HashSet::new();
    let within_bounds = |receivers: &[Receiver]| {
        let each: Vec<usize> = receivers.iter().map(Receiver::in_flight).collect();
        assert!(each.iter().all(|n| *n <= SLOTS / 2), "{each:?}");
        each.iter().sum::<usize>()
    };

    for _ in 0..SLOTS {
        let (_, id) = next_hit(&mut hits).await;
        assert!(ids.insert(id), "a duplicate");
    }
    assert_eq!(within_bounds(&receivers), SLOTS, "every slot is taken");
    // One answered: one of the two waiting starts, and the slots are full again.
    let answered = receivers.iter().position(|rx| rx.in_flight() > 0).unwrap();
    receivers[answered].release();
    let (_, id) = next_hit(&mut hits).await;
    assert!(ids.insert(id), "a duplicate");
    assert_eq!(
        within_bounds(&receivers),
        SLOTS,
        "one answered, one started"
    );
    for rx in &receivers {
        for _ in 0..EACH {
            rx.release();
        }
    }
    let (_, id) = next_hit(&mut hits).await;
    assert!(ids.insert(id), "a duplicate");
    let most: Vec<usize> = receivers.iter().map(Receiver::most_in_flight).collect();
    assert!(most.iter().all(|m| *m <= SLOTS / 2), "{most:?}");

    use jobline::db::deliveries::{list, NotificationFilter};
    let success = NotificationFilter {
        status: Some("success".into()),
        ..Default::default()
    };
    let mut conn = t.db.connect();
    eventually(Duration::from_secs(20), "every attempt recorded", || {
        let done = (1..=SHOPS)
            .all(|shop| list(&mut conn, shop, &success, 0, 1, 0).unwrap().1 == EACH as i64);
        std::future::ready(done)
    })
    .await;
    assert!(hits.try_recv().is_err(), "a second delivery");
}

/// Waits until `rx` holds `n` requests.
async fn held(rx: &Receiver, n: usize, what: &str) {
    eventually(Duration::from_secs(10), what, || {
        std::future::ready(rx.in_flight() == n)
    })
    .await;
}

/// A webhook alone uses every slot but one; the one left serves another e-shop whose
/// notifications came later; and as the first webhook's attempts end, the freed slots go
/// to the others until each has its half. E-shop 1's endpoint does not answer (until
/// released), e-shop 2's answers at once, e-shop 3's is held too.
async fn a_webhook_that_hangs_leaves_a_slot_and_gives_back_half(backend: Backend) {
    const SLOTS: usize = 4;
    let t = spawn(backend, |c| {
        c.webhook_workers = SLOTS;
        // No attempt times out while it is held.
        c.webhook_timeout = Duration::from_secs(60);
    })
    .await;
    let mut stuck = Receiver::start(|_| Reply::Held);
    register_for(&t, 1, &stuck.url).await;
    let mut fine = Receiver::start(|_| Reply::Status(200));
    register_for(&t, 2, &fine.url).await;
    let mut slow = Receiver::start(|_| Reply::Held);
    register_for(&t, 3, &slow.url).await;

    outbox(&mut t.db.connect(), &[(1, 10)]);
    held(&stuck, SLOTS - 1, "e-shop 1 alone takes all slots but one").await;
    outbox(&mut t.db.connect(), &[(2, 5)]);
    let mut ids = std::collections::HashSet::new();
    for _ in 0..5 {
        let hit = fine.next().await;
        assert!(ids.insert(hit.headers["webhook-id"].clone()), "a duplicate");
    }
    assert_eq!(
        stuck.in_flight(),
        SLOTS - 1,
        "e-shop 2 went through the slot left"
    );

    outbox(&mut t.db.connect(), &[(3, 3)]);
    held(&slow, 1, "e-shop 3 takes the slot left").await;
    // One of e-shop 1's is answered: its slot goes to e-shop 3, under its half.
    stuck.release();
    held(&slow, SLOTS / 2, "e-shop 3 gets its half").await;
    held(&stuck, SLOTS / 2, "e-shop 1 keeps its half").await;

    for _ in 0..10 {
        stuck.release();
    }
    for _ in 0..3 {
        slow.release();
    }
    for _ in 0..10 {
        let hit = stuck.next().await;
        assert!(ids.insert(hit.headers["webhook-id"].clone()), "a duplicate");
    }
    for _ in 0..3 {
        let hit = slow.next().await;
        assert!(ids.insert(hit.headers["webhook-id"].clone()), "a duplicate");
    }
    assert_eq!(stuck.most_in_flight(), SLOTS - 1);
    assert_eq!(slow.most_in_flight(), SLOTS / 2);
    assert!(
        fine.drain().is_empty() && stuck.drain().is_empty() && slow.drain().is_empty(),
        "a second delivery"
    );
}

/// Registers a `job:finished` webhook to `url` for a new e-shop `shop` (or e-shop 1);
/// answers the webhook's id.
async fn register_for(t: &TestApp, shop: i64, url: &str) -> String {
    let token = if shop == 1 {
        t.token.clone()
    } else {
        t.add_eshop(shop)
    };
    let a = t
        .post_as(
            &token,
            "/api/webhooks",
            json!({"data": [{"event": "job:finished", "url": url}]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["data"]["webhooks"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn webhook_active(t: &TestApp, shop: i64, id: &str) -> bool {
    let mut conn = t.db.connect();
    jobline::db::webhooks::get(&mut conn, shop, id)
        .unwrap()
        .active
}

async fn mixed_outcomes_each_get_their_own_record(backend: Backend) {
    const EACH: usize = 6;
    let t = spawn(backend, |c| {
        c.webhook_workers = 32;
        c.webhook_retry_schedule = vec![Duration::from_millis(200); 3];
    })
    .await;
    let ok = Receiver::start(|_| Reply::Status(200));
    // Every first attempt fails with a 500, every retry succeeds.
    let flaky = Receiver::start(|n| Reply::Status(if n < EACH { 500 } else { 200 }));
    let gone = Receiver::start(|_| Reply::Status(410));
    let ok_hook = register_for(&t, 1, &ok.url).await;
    let flaky_hook = register_for(&t, 2, &flaky.url).await;
    let gone_hook = register_for(&t, 3, &gone.url).await;
    let mut conn = t.db.connect();
    outbox(&mut conn, &[(1, EACH), (2, EACH), (3, 1)]);

    use jobline::db::deliveries::{list, Notification, NotificationFilter};
    let ended = |conn: &mut jobline::db::DbConnection, shop: i64| -> Vec<Notification> {
        let (all, _) = list(conn, shop, &NotificationFilter::default(), 0, 100, 0).unwrap();
        all.into_iter().filter(|n| n.status != "pending").collect()
    };
    eventually(Duration::from_secs(20), "every notification ended", || {
        let done = ended(&mut conn, 1).len() == EACH
            && ended(&mut conn, 2).len() == EACH
            && ended(&mut conn, 3).len() == 1;
        std::future::ready(done)
    })
    .await;
    for n in ended(&mut conn, 1) {
        assert_eq!((n.status.as_str(), n.attempts), ("success", 1), "{n:?}");
        assert_eq!(attempts(&t, &n.id), vec![(1, Some(200), None)]);
    }
    for n in ended(&mut conn, 2) {
        assert_eq!((n.status.as_str(), n.attempts), ("success", 2), "{n:?}");
        let tried = attempts(&t, &n.id);
        assert_eq!(tried.len(), 2, "{tried:?}");
        assert_eq!(tried[0].1, Some(500));
        assert!(
            tried[0].2.as_deref().unwrap_or("").contains("500"),
            "{tried:?}"
        );
        assert_eq!(tried[1], (2, Some(200), None));
    }
    let n = &ended(&mut conn, 3)[0];
    assert_eq!((n.status.as_str(), n.attempts), ("failed", 1), "{n:?}");
    assert_eq!(n.last_status_code, Some(410));
    assert!(!webhook_active(&t, 3, &gone_hook));
    assert!(webhook_active(&t, 1, &ok_hook));
    assert!(webhook_active(&t, 2, &flaky_hook));
}

async fn one_recorded_batch_gives_each_attempt_its_outcome(backend: Backend) {
    use jobline::db::deliveries::{claim, list, record_attempts, Attempt};
    use jobline::model::time::{now, SECOND};
    let t = spawn(backend, |_| {}).await;
    let hooks = [
        register_for(&t, 1, "http://127.0.0.1:9/a").await,
        register_for(&t, 2, "http://127.0.0.1:9/b").await,
        register_for(&t, 3, "http://127.0.0.1:9/c").await,
    ];
    let mut conn = t.db.connect();
    // Due in an hour: this app's own dispatcher leaves them alone.
    let due = now() + 3600 * SECOND;
    let zone = jobline::model::Zone::utc();
    for (shop, job) in [(1, "mixa"), (1, "mixb"), (2, "mixc"), (3, "mixd")] {
        jobline::db::notifications::record_job_finished(&mut conn, shop, job, &zone, due).unwrap();
    }
    let claimed = claim(&mut conn, "node-a", 10, due + 30 * SECOND, due).unwrap();
    assert_eq!(claimed.len(), 4);
    let shop_of = |d: &jobline::db::deliveries::ClaimedDelivery| {
        serde_json::from_str::<Value>(&d.payload).unwrap()["eshopId"]
            .as_i64()
            .unwrap()
    };
    // One statement brought each its e-shop's webhook and keys.
    for d in &claimed {
        let target = d.target.as_ref().expect("a target");
        assert_eq!(target.webhook_id, hooks[shop_of(d) as usize - 1]);
        assert_eq!(target.secrets, secrets(&t, shop_of(d)));
    }
    let attempt = |i: usize, code: i32, status: &'static str| Attempt {
        notification_id: claimed[i].id.clone(),
        node: "node-a".into(),
        attempt: 1,
        at: due,
        webhook_id: claimed[i].target.as_ref().map(|t| t.webhook_id.clone()),
        url: claimed[i].target.as_ref().map(|t| t.url.clone()),
        status_code: Some(code),
        duration_ms: 3,
        error: (code != 200).then(|| format!("answered HTTP {code}")),
        response_excerpt: Some(format!("answer {i}")),
        status,
        next_attempt_at: (status == "pending").then_some(due + 5 * SECOND),
        disable_webhook: code == 410,
    };
    let order: Vec<usize> = {
        let mut o: Vec<usize> = (0..4).collect();
        o.sort_by_key(|&i| (shop_of(&claimed[i]), claimed[i].id.clone()));
        o
    };
    let (first, second, third, gone) = (order[0], order[1], order[2], order[3]);
    let mut stale = attempt(second, 200, "success");
    stale.attempt = 2; // not the claimed attempt: fenced out
    let batch = vec![
        attempt(first, 200, "success"),
        stale,
        attempt(third, 503, "pending"),
        attempt(gone, 410, "failed"),
    ];
    let mut recorded = record_attempts(&mut conn, &batch).unwrap();
    recorded.sort();
    let mut expected = vec![
        claimed[first].id.clone(),
        claimed[third].id.clone(),
        claimed[gone].id.clone(),
    ];
    expected.sort();
    assert_eq!(recorded, expected);

    let all: Vec<_> = (1..=3)
        .flat_map(|shop| {
            list(&mut conn, shop, &Default::default(), 0, 10, 0)
                .unwrap()
                .0
        })
        .collect();
    let row = |i: usize| all.iter().find(|n| n.id == claimed[i].id).unwrap().clone();
    let r = row(first);
    assert_eq!(
        (r.status.as_str(), r.attempts, r.last_status_code),
        ("success", 1, Some(200))
    );
    let r = row(second);
    assert_eq!(
        (r.status.as_str(), r.attempts),
        ("pending", 0),
        "still claimed: {r:?}"
    );
    let r = row(third);
    assert_eq!(
        (r.status.as_str(), r.attempts, r.last_status_code),
        ("pending", 1, Some(503))
    );
    assert_eq!(r.last_error.as_deref(), Some("answered HTTP 503"));
    let r = row(gone);
    assert_eq!(
        (r.status.as_str(), r.attempts, r.last_status_code),
        ("failed", 1, Some(410))
    );
    assert_eq!(attempts(&t, &claimed[first].id), vec![(1, Some(200), None)]);
    assert!(attempts(&t, &claimed[second].id).is_empty());
    assert_eq!(
        attempts(&t, &claimed[third].id),
        vec![(1, Some(503), Some("answered HTTP 503".into()))]
    );
    assert!(webhook_active(&t, 1, &hooks[0]));
    assert!(webhook_active(&t, 2, &hooks[1]));
    assert!(!webhook_active(&t, 3, &hooks[2]));
    // The retry comes due at its time, and only then.
    assert!(
        claim(&mut conn, "node-a", 10, due + 60 * SECOND, due + SECOND)
            .unwrap()
            .is_empty()
    );
    let again = claim(
        &mut conn,
        "node-a",
        10,
        due + 90 * SECOND,
        due + 31 * SECOND,
    )
    .unwrap();
    let ids: Vec<_> = again.iter().map(|d| (d.id.clone(), d.attempt)).collect();
    assert!(ids.contains(&(claimed[third].id.clone(), 2)), "{ids:?}");
    assert!(ids.contains(&(claimed[second].id.clone(), 1)), "{ids:?}");
    assert_eq!(ids.len(), 2, "{ids:?}");
}

crate::on_both_backends!(
    a_delivered_attempt_is_recorded_before_the_node_stops,
    a_lone_attempt_is_recorded_without_waiting_for_the_poll,
    mixed_outcomes_each_get_their_own_record,
    one_recorded_batch_gives_each_attempt_its_outcome,
    a_batch_for_many_targets_is_delivered_once_each,
    deliveries_stay_within_webhook_workers,
    a_webhook_that_hangs_leaves_a_slot_and_gives_back_half,
    claims_keep_two_nodes_apart,
    delivers_signed_job_finished,
    retries_until_success,
    retry_after_is_honoured,
    gone_disables_the_webhook,
    timeouts_are_recorded,
    redirects_are_not_followed,
    failed_notifications_can_be_redelivered,
    failed_and_killed_jobs_notify_too,
    private_targets_are_refused,
    a_configured_proxy_does_not_bypass_the_guard,
    webhook_urls_are_parsed_and_normalised,
    without_a_webhook_the_notification_is_retried,
    the_first_delivery_verifies_with_the_readable_key,
    renewals_sign_with_every_key_of_the_last_day,
    crud_validation_and_tenant_scoping,
    renewed_keys_sign_together_during_the_grace,
);
