//! Shoptet API clients against jobline, unchanged: each test sends requests shaped as one
//! real client sends them (its headers and content types) and reads the answers the way
//! that client reads them (keboola's extractor `src/client.py`, Orchesty's Shoptet
//! connectors, Shoptet's PHP SDK). Shoptet shapes are chosen per request; jobline's own
//! shapes stay the default.

use crate::common::{set_workers, Backend, TestApp};
use flate2::read::GzDecoder;
use serde_json::{json, Value};
use std::io::Read;
use std::time::{Duration, Instant};

const VENDOR: &str = "application/vnd.shoptet.v1.0";
const PRIVATE: &str = "Shoptet-Private-API-Token";
const ACCESS: &str = "Shoptet-Access-Token";

/// keboola's `_decompress`: gunzip when the bytes start with the gzip magic.
fn keboola_decompress(payload: &[u8]) -> String {
    assert_eq!(&payload[..2], b"\x1f\x8b", "the result is gzip");
    let mut text = String::new();
    GzDecoder::new(payload).read_to_string(&mut text).unwrap();
    text
}

/// keboola's `_throttle` reading of `X-RateLimit-Bucket-Filling: <current>/<max>`.
fn bucket(a: &crate::common::Answer) -> (f64, f64) {
    let raw = a
        .header("x-ratelimit-bucket-filling")
        .expect("bucket header");
    let (current, max) = raw.split_once('/').expect("current/max");
    (current.parse().unwrap(), max.parse().unwrap())
}

/// A request as Orchesty's connectors and the PHP SDK send every call: the private token
/// header and the vendor media type.
fn vendor_request(t: &TestApp, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    t.client
        .request(method, t.url(path))
        .header(PRIVATE, &t.token)
        .header("Content-Type", VENDOR)
}

async fn token_headers_authenticate_like_bearer(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    for header in [PRIVATE, ACCESS] {
        let a = t
            .send(
                t.client
                    .get(t.url("/api/system/jobs"))
                    .header(header, &t.token),
            )
            .await;
        assert_eq!(a.status, 200, "{header}: {}", a.body);
        let a = t
            .send(
                t.client
                    .get(t.url("/api/system/jobs"))
                    .header(header, "jl_unknown"),
            )
            .await;
        assert_eq!(a.status, 401, "{header}");
        assert_eq!(a.error_code(), "invalid-access-token");
        let a = t
            .send(t.client.get(t.url("/api/system/jobs")).header(header, " "))
            .await;
        assert_eq!(a.error_code(), "invalid-access-token", "{header}: empty");
    }
    let a = t.send(t.client.get(t.url("/api/system/jobs"))).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.error_code(), "missing-access-token");
    // Tenancy holds whatever header carries the token.
    let other = t.add_eshop(2);
    let job_id = t.submit_snapshot("").await;
    let a = t
        .send(
            t.client
                .get(t.url(&format!("/api/system/jobs/{job_id}")))
                .header(PRIVATE, &other),
        )
        .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.error_code(), "job-not-found");
}

/// keboola's extractor: `Shoptet-Private-API-Token` and `Content-Type: application/json` on
/// every call; submit, poll `data.job` until a final status, download the result without a
/// token and read it as gzip JSON Lines; throttle on the bucket header, wait `Retry-After`.
async fn keboola_extractor(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    for i in 0..5 {
        t.create_product(&format!("K{i}"), "visible").await;
    }
    let get = |path: &str| {
        t.client
            .get(t.url(path))
            .header(PRIVATE, &t.token)
            .header("Content-Type", "application/json")
            .header("User-Agent", "keboola-ex-shoptet-api/1.0")
    };
    let submit = t.send(get("/api/products/snapshot")).await;
    assert_eq!(submit.status, 202, "{}", submit.body);
    let job_id = submit.body["data"]["jobId"].as_str().unwrap().to_string();
    let (current, max) = bucket(&submit);
    assert!(current >= 1.0 && max == 200.0, "{current}/{max}");

    // _await_job: poll get_single(path, "job") until a final status.
    let path = format!("/api/system/jobs/{job_id}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let a = t.send(get(&path)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let job = a.body["data"]["job"].clone();
        let status = job["status"].as_str().expect("data.job.status");
        assert!(!["failed", "expired", "killed"].contains(&status), "{job}");
        if status == "completed" {
            break job;
        }
        assert!(Instant::now() < deadline, "job {job_id} did not complete");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["jobId"], job_id.as_str());
    assert!(job["duration"].is_string(), "{job}");
    let result_url = job["resultUrl"].as_str().unwrap();
    // Fetched without any header first, as keboola does.
    let download = t.send(t.client.get(result_url)).await;
    assert_eq!(download.status, 200);
    let records: Vec<Value> = keboola_decompress(&download.bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| r["guid"].is_string()));

    // iter_paginated over data.jobs with paginator.pageCount.
    let list = t.send(get("/api/system/jobs?page=1")).await;
    assert_eq!(list.body["data"]["jobs"][0]["jobId"], job_id.as_str());
    assert_eq!(list.body["data"]["paginator"]["pageCount"], 1);

    // Over the bucket: 429 with a Retry-After that `_parse_retry_after` reads as seconds.
    let mut refused = None;
    for _ in 0..400 {
        let a = t.send(get("/api/system/jobs")).await;
        if a.status == 429 {
            refused = Some(a);
            break;
        }
    }
    let refused = refused.expect("a 429 once the bucket is full");
    let wait: f64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(wait >= 1.0, "{wait}");
    let (current, max) = bucket(&refused);
    assert_eq!(current, max);
}

/// Orchesty's connectors: `Shoptet-Private-API-Token` and
/// `Content-Type: application/vnd.shoptet.v1.0` on every request, bodies included; the
/// job:finished body names the job, its detail is `data.job`, the result is gunzipped and
/// split into JSON lines.
async fn orchesty_connectors(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let request = |method, path: &str| vendor_request(&t, method, path);
    // ShoptetSubscribeWebhooks posts with the vendor type.
    let subscribe = t
        .send(
            request(reqwest::Method::POST, "/api/webhooks").body(
                json!({"data": [{"event": "job:finished", "url": "https://example.com/hook"}]})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(subscribe.status, 201, "{}", subscribe.body);
    // Products are created with the vendor type as well.
    for i in 0..3 {
        let a = t
            .send(
                request(reqwest::Method::POST, "/api/products")
                    .body(json!({"data": {"code": format!("O{i}"), "name": "o"}}).to_string()),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
    }
    let submit = t
        .send(request(reqwest::Method::GET, "/api/products/snapshot"))
        .await;
    let job_id = submit.body["data"]["jobId"].as_str().unwrap().to_string();
    t.wait_finished(&job_id).await;

    // The job:finished body, as sent (the notification's `data`).
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let a = t
            .send(request(reqwest::Method::GET, "/api/webhooks/notifications"))
            .await;
        let found = a.body["data"]["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["eventInstance"] == job_id.as_str())
            .map(|n| n["data"].clone());
        if let Some(body) = found {
            break body;
        }
        assert!(Instant::now() < deadline, "no notification for {job_id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body["event"], "job:finished");
    assert_eq!(body["eshopId"], 1);
    // ShoptetJobFinishedWebhook: GET api/system/jobs/{eventInstance} → data.job.
    let instance = body["eventInstance"].as_str().unwrap();
    let detail = t
        .send(request(
            reqwest::Method::GET,
            &format!("/api/system/jobs/{instance}"),
        ))
        .await;
    let job = &detail.body["data"]["job"];
    assert_eq!(job["status"], "completed", "{}", detail.body);
    // ShoptetParseJsonLines: the result with the same headers, gunzip, split on \n.
    let result = t
        .send(
            t.client
                .get(job["resultUrl"].as_str().unwrap())
                .header(PRIVATE, &t.token)
                .header("Content-Type", VENDOR),
        )
        .await;
    assert_eq!(result.status, 200);
    let mut text = String::new();
    GzDecoder::new(&result.bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    let lines: Vec<Value> = text
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
}

/// Shoptet's PHP SDK: the vendor type on every call; `getJobDetail()` reads `data.job`,
/// `getListOfJobs()` reads `data.jobs[]` + `data.paginator`; webhooks are registered with
/// `sendPayload`, read back in `data.webhook`; renew-signature-key answers the key.
async fn php_sdk_endpoints(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let request = |method, path: &str| vendor_request(&t, method, path);
    let job_id = t.submit_snapshot("").await;
    t.wait_finished(&job_id).await;
    let detail = t
        .send(request(
            reqwest::Method::GET,
            &format!("/api/system/jobs/{job_id}"),
        ))
        .await;
    let job = detail.body["data"]["job"].as_object().expect("data.job");
    for key in [
        "jobId",
        "endpoint",
        "creationTime",
        "completionTime",
        "duration",
        "status",
        "resultUrl",
        "validUntil",
        "log",
    ] {
        assert!(job.contains_key(key), "{key} in {}", detail.body);
    }
    let list = t
        .send(request(reqwest::Method::GET, "/api/system/jobs"))
        .await;
    let item = &list.body["data"]["jobs"][0];
    for key in [
        "jobId",
        "endpoint",
        "creationTime",
        "completionTime",
        "status",
        "validUntil",
    ] {
        assert!(item.get(key).is_some(), "{key} in {}", list.body);
    }
    assert_eq!(list.body["data"]["paginator"]["totalCount"], 1);

    let created = t
        .send(
            request(reqwest::Method::POST, "/api/webhooks").body(
                json!({"data": [{"event": "job:finished", "url": "https://example.com/h", "sendPayload": null}]})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let hook = &created.body["data"]["webhooks"][0];
    assert!(hook["sendPayload"].is_null() && hook.get("sendPayload").is_some());
    let id = hook["id"].as_str().unwrap();
    let one = t
        .send(request(
            reqwest::Method::GET,
            &format!("/api/webhooks/{id}"),
        ))
        .await;
    assert_eq!(one.body["data"]["webhook"]["id"], id, "{}", one.body);
    let patched = t
        .send(
            request(reqwest::Method::PATCH, &format!("/api/webhooks/{id}")).body(
                json!({"data": {"url": "https://example.com/new", "sendPayload": "full"}})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(
        patched.body["data"]["webhook"]["url"],
        "https://example.com/new"
    );
    let bad = t
        .send(
            request(reqwest::Method::PATCH, &format!("/api/webhooks/{id}"))
                .body(json!({"data": {"sendPayload": "some"}}).to_string()),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.error_instance(), "data.sendPayload");

    let renewed = t
        .send(request(
            reqwest::Method::POST,
            "/api/webhooks/renew-signature-key",
        ))
        .await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    assert!(renewed.body["data"]["signatureKey"].is_string());
    let notifications = t
        .send(request(reqwest::Method::GET, "/api/webhooks/notifications"))
        .await;
    let n = &notifications.body["data"]["notifications"][0];
    for key in ["webhookUrl", "eventCreated", "attempted", "active"] {
        assert!(n.get(key).is_some(), "{key} in {n}");
    }
    assert_eq!(n["eventCreated"], n["data"]["eventCreated"]);
}

/// jobline's shapes stay the default; the vendor type in `Accept` or `Content-Type` alone
/// (with a bearer token) asks for Shoptet's; other media types are still 415.
async fn shapes_follow_the_request(backend: Backend) {
    // No snapshot worker: the job stays pending until it is killed.
    let t = TestApp::spawn_with(backend, |c| set_workers(c, "snapshots", 0)).await;
    let job_id = t.submit_snapshot("").await;
    let path = format!("/api/system/jobs/{job_id}");
    let plain = t.get(&path).await;
    assert_eq!(plain.body["data"]["jobId"], job_id.as_str());
    assert!(plain.body["data"].get("job").is_none());
    let accept = t
        .send(
            t.client
                .get(t.url(&path))
                .bearer_auth(&t.token)
                .header("Accept", VENDOR),
        )
        .await;
    assert_eq!(accept.body["data"]["job"]["jobId"], job_id.as_str());
    let killed = t
        .send(
            t.client
                .delete(t.url(&path))
                .bearer_auth(&t.token)
                .header("Content-Type", format!("{VENDOR}; charset=utf-8")),
        )
        .await;
    assert_eq!(killed.status, 200, "{}", killed.body);
    assert_eq!(killed.body["data"]["job"]["status"], "killed");
    for (content_type, status) in [
        (format!("{VENDOR}; charset=utf-8"), 201),
        ("application/vnd.shoptet.v2.0".to_string(), 415),
        ("text/plain".to_string(), 415),
    ] {
        let a = t
            .send(
                t.client
                    .post(t.url("/api/products"))
                    .bearer_auth(&t.token)
                    .header("Content-Type", &content_type)
                    .body(json!({"data": {"code": content_type, "name": "x"}}).to_string()),
            )
            .await;
        assert_eq!(a.status, status, "{content_type}: {}", a.body);
    }
    let hooks = t
        .post(
            "/api/webhooks",
            json!({"data": [{"event": "job:finished", "url": "https://example.com/h"}]}),
        )
        .await;
    let hook = &hooks.body["data"]["webhooks"][0];
    assert!(hook.get("sendPayload").is_none(), "{hook}");
    let one = t
        .get(&format!("/api/webhooks/{}", hook["id"].as_str().unwrap()))
        .await;
    assert_eq!(one.body["data"]["id"], hook["id"]);
}

crate::on_both_backends!(
    token_headers_authenticate_like_bearer,
    keboola_extractor,
    orchesty_connectors,
    php_sdk_endpoints,
    shapes_follow_the_request,
);
