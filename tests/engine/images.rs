//! Product images: the import job against a real image server started in the test
//! (valid PNG, JPEG, GIF and WebP bytes, a text file, a 404, redirect chains, a slow and an
//! oversized source), validation, serving the bytes, replacement, deletion, snapshots.

use crate::common::{is_api_time, Backend, TestApp};
use actix_web::{web, HttpResponse};
use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// A 1×1 PNG.
fn png() -> Vec<u8> {
    b64("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
}

/// A 1×1 baseline JPEG.
fn jpeg() -> Vec<u8> {
    b64("/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQABPxA=")
}

/// A 1×1 GIF.
fn gif() -> Vec<u8> {
    b64("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
}

/// A 1×1 lossless WebP.
fn webp() -> Vec<u8> {
    b64("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// The body limit the tests configure (`image_max_bytes`).
const MAX_BYTES: u64 = 4096;

/// Serves test images. Every image is sent as `text/plain`: the type must come from the
/// bytes. The text file claims to be a PNG.
async fn image_source(path: web::Path<String>) -> HttpResponse {
    let bytes = match path.as_str() {
        "png" => png(),
        "jpeg" => jpeg(),
        "gif" => gif(),
        "webp" => webp(),
        "text" => {
            return HttpResponse::Ok()
                .content_type("image/png")
                .body("just some text")
        }
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok().content_type("text/plain").body(bytes)
}

/// `/redirect/{n}`: n redirects, then a PNG.
async fn redirect(n: web::Path<u32>) -> HttpResponse {
    let n = n.into_inner();
    if n == 0 {
        return HttpResponse::Ok().body(png());
    }
    HttpResponse::Found()
        .insert_header(("Location", format!("/redirect/{}", n - 1)))
        .finish()
}

/// Answers long after the tests' `image_download_timeout`.
async fn slow() -> HttpResponse {
    tokio::time::sleep(Duration::from_secs(30)).await;
    HttpResponse::Ok().body(png())
}

/// A PNG-looking body over `MAX_BYTES`, with its length declared.
async fn big() -> HttpResponse {
    let mut body = png();
    body.resize(MAX_BYTES as usize * 2, 0);
    HttpResponse::Ok().body(body)
}

/// The same without a length: chunks until over the limit.
async fn big_stream() -> HttpResponse {
    let chunks = (0..8).map(|i| {
        let mut chunk = if i == 0 { png() } else { Vec::new() };
        chunk.resize(1024, 0);
        Ok::<_, actix_web::Error>(web::Bytes::from(chunk))
    });
    HttpResponse::Ok().streaming(futures_util::stream::iter(chunks))
}

/// Requests `/counted` is answering now, and the most it ever answered at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

/// A PNG after a pause, counting how many such requests overlap.
async fn counted(in_flight: web::Data<InFlight>) -> HttpResponse {
    let now = in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
    in_flight.max.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    in_flight.now.fetch_sub(1, Ordering::SeqCst);
    HttpResponse::Ok().body(png())
}

/// Starts the image server on 127.0.0.1:0; answers its base URL.
fn start_image_server() -> String {
    start_counting_image_server().0
}

/// Starts the image server; answers its base URL and the `/counted` overlap counter.
fn start_counting_image_server() -> (String, Arc<InFlight>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let in_flight = web::Data::new(InFlight::default());
    let counter = in_flight.clone().into_inner();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(in_flight.clone())
            .route("/counted", web::get().to(counted))
            .route("/img/{kind}", web::get().to(image_source))
            .route("/redirect/{n}", web::get().to(redirect))
            .route("/slow", web::get().to(slow))
            .route("/big", web::get().to(big))
            .route("/big-stream", web::get().to(big_stream))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_rt::spawn(server);
    (format!("http://{addr}"), counter)
}

async fn spawn(backend: Backend, allow_private: bool) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        c.allow_private_targets = allow_private;
        c.image_download_timeout = Duration::from_millis(300);
        c.image_max_bytes = MAX_BYTES;
    })
    .await
}

/// Submits an images request; answers the job id.
async fn submit(t: &TestApp, guid: &str, images: Value) -> String {
    let a = t
        .post(
            &format!("/api/products/{guid}/images"),
            json!({"data": {"images": images}}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.body);
    let job_id = a.body["data"]["jobId"].as_str().unwrap().to_string();
    assert_eq!(
        a.header("location").as_deref(),
        Some(format!("/api/system/jobs/{job_id}").as_str())
    );
    job_id
}

async fn result_of(t: &TestApp, job: &Value) -> Value {
    let url = job["resultUrl"].as_str().unwrap();
    assert!(url.ends_with(".json"), "{url}");
    let a = t.send(t.client.get(url)).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("content-type").as_deref(),
        Some("application/json")
    );
    a.body
}

async fn contract_example_imports_every_type(backend: Backend) {
    let src = start_image_server();
    let t = spawn(backend, true).await;
    let p = t.create_product("IMG1", "visible").await;
    let guid = p["guid"].as_str().unwrap();
    let job_id = submit(
        &t,
        guid,
        json!([
            {"priority": 1, "name": "front.jpg", "description": "Špičkový design", "downloadUrl": format!("{src}/img/jpeg")},
            {"priority": 2, "name": "back side.png", "description": null, "downloadUrl": format!("{src}/img/png")},
            {"priority": 2, "name": "anim.gif", "downloadUrl": format!("{src}/img/gif")},
            {"priority": 0, "name": "nový.webp", "description": "WebP", "downloadUrl": format!("{src}/img/webp")}
        ]),
    )
    .await;
    let job = t.wait_finished(&job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["endpoint"], "/api/products/images");
    let log = job["log"].as_str().unwrap();
    for name in ["front.jpg", "back side.png", "anim.gif", "nový.webp"] {
        assert!(log.contains(&format!("`{name}`: stored")), "{log}");
    }

    let result = result_of(&t, &job).await;
    assert!(result["errors"].is_null(), "{result}");
    let stored = result["data"]["images"].as_array().unwrap();
    let expected = [
        ("front.jpg", jpeg(), "image/jpeg", "jpeg"),
        ("back side.png", png(), "image/png", "png"),
        ("anim.gif", gif(), "image/gif", "gif"),
        ("nový.webp", webp(), "image/webp", "webp"),
    ];
    assert_eq!(stored.len(), 4);
    for (i, (name, bytes, content_type, kind)) in expected.iter().enumerate() {
        let s = &stored[i];
        assert_eq!(s["index"], i, "{s}");
        assert_eq!(s["name"], *name);
        assert_eq!(s["md5"], md5_hex(bytes));
        assert_eq!(s["size"], bytes.len());
        assert_eq!(s["contentType"], *content_type);
        assert_eq!(s["sourceUrl"], format!("{src}/img/{kind}"));
        assert!(is_api_time(s["created"].as_str().unwrap()));
    }

    // The product lists them by priority, then name, each with a URL serving its bytes.
    let a = t.get(&format!("/api/products/{guid}")).await;
    assert_eq!(a.status, 200);
    let images = a.body["data"]["images"].as_array().unwrap().clone();
    let names: Vec<&str> = images.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["nový.webp", "front.jpg", "anim.gif", "back side.png"]
    );
    assert_eq!(images[1]["description"], "Špičkový design");
    assert_eq!(images[1]["priority"], 1);
    assert!(images[3]["description"].is_null());
    assert_eq!(
        images[3]["url"],
        format!("{}/api/products/{guid}/images/back%20side.png", t.base)
    );
    for image in &images {
        let (_, bytes, content_type, _) = expected
            .iter()
            .find(|e| e.0 == image["name"])
            .unwrap()
            .clone();
        assert_eq!(image["contentType"], content_type);
        assert_eq!(image["size"], bytes.len());
        assert_eq!(image["md5"], md5_hex(&bytes));
        assert!(is_api_time(image["created"].as_str().unwrap()));
        let served = t.get(image["url"].as_str().unwrap()).await;
        assert_eq!(served.status, 200, "{}", image["url"]);
        assert_eq!(served.header("content-type").as_deref(), Some(content_type));
        assert_eq!(served.bytes, bytes);
        assert_eq!(md5_hex(&served.bytes), image["md5"]);
        let head = t
            .send(
                t.client
                    .head(image["url"].as_str().unwrap())
                    .bearer_auth(&t.token),
            )
            .await;
        assert_eq!(head.status, 200, "HEAD {}", image["url"]);
        assert!(head.bytes.is_empty());
        assert_eq!(head.header("content-type").as_deref(), Some(content_type));
        assert_eq!(head.header("content-length"), Some(bytes.len().to_string()));
    }

    // Serving needs the token.
    let anonymous = t
        .send(t.client.get(images[0]["url"].as_str().unwrap()))
        .await;
    assert_eq!(anonymous.status, 401);

    // A snapshot line is the product as GET shows it, images included.
    let snap = t.submit_snapshot("").await;
    let job = t.wait_finished(&snap).await;
    let gz = t
        .send(t.client.get(job["resultUrl"].as_str().unwrap()))
        .await
        .bytes;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text).unwrap();
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line, a.body["data"]);
    assert_eq!(line["images"].as_array().unwrap().len(), 4);
}

async fn each_bad_source_fails_only_its_image(backend: Backend) {
    let src = start_image_server();
    let t = spawn(backend, true).await;
    let p = t.create_product("IMG2", "visible").await;
    let guid = p["guid"].as_str().unwrap();
    let sources = [
        ("ok", "/img/png", None),
        ("text", "/img/text", Some("not-an-image")),
        ("missing", "/img/nothing", Some("download-failed")),
        ("five-redirects", "/redirect/5", None),
        ("six-redirects", "/redirect/6", Some("too-many-redirects")),
        ("slow", "/slow", Some("download-timeout")),
        ("big", "/big", Some("too-large")),
        ("big-stream", "/big-stream", Some("too-large")),
    ];
    let images: Vec<Value> = sources
        .iter()
        .map(|(name, path, _)| json!({"name": name, "downloadUrl": format!("{src}{path}")}))
        .collect();
    let job_id = submit(&t, guid, Value::Array(images)).await;
    let job = t.wait_finished(&job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    let log = job["log"].as_str().unwrap();
    let result = result_of(&t, &job).await;
    let stored: Vec<&str> = result["data"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(stored, ["ok", "five-redirects"], "{result}");
    assert_eq!(result["data"]["images"][1]["index"], 3);
    let errors = result["errors"].as_array().unwrap();
    let failing: Vec<(usize, &str)> = sources
        .iter()
        .enumerate()
        .filter_map(|(i, (_, _, code))| code.map(|c| (i, c)))
        .collect();
    assert_eq!(errors.len(), failing.len(), "{result}");
    for (e, (i, code)) in errors.iter().zip(&failing) {
        assert_eq!(e["errorCode"], *code, "{e}");
        assert_eq!(e["instance"], format!("data.images[{i}]"));
        assert!(!e["message"].as_str().unwrap().is_empty());
        let name = sources[*i].0;
        assert!(log.contains(&format!("`{name}`: {code}")), "{log}");
    }
    assert!(log.contains("stored 2 of 8 images"), "{log}");
    let a = t.get(&format!("/api/products/{guid}")).await;
    assert_eq!(a.body["data"]["images"].as_array().unwrap().len(), 2);
}

async fn private_targets_are_refused(backend: Backend) {
    let src = start_image_server();
    let t = spawn(backend, false).await;
    let p = t.create_product("IMG3", "visible").await;
    let guid = p["guid"].as_str().unwrap();
    let by_name = src.replace("127.0.0.1", "localhost");
    let job_id = submit(
        &t,
        guid,
        json!([
            {"name": "literal", "downloadUrl": format!("{src}/img/png")},
            {"name": "by-name", "downloadUrl": format!("{by_name}/img/png")}
        ]),
    )
    .await;
    let job = t.wait_finished(&job_id).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["resultUrl"].is_null());
    let log = job["log"].as_str().unwrap();
    assert!(log.contains("`literal`: target-not-allowed"), "{log}");
    assert!(log.contains("`by-name`: target-not-allowed"), "{log}");
    assert!(
        log.contains("none of the 2 images could be stored"),
        "{log}"
    );
    assert_eq!(t.notifications_for(&job_id), 1);
    let a = t.get(&format!("/api/products/{guid}")).await;
    assert_eq!(a.body["data"]["images"], json!([]));
}

async fn same_name_replaces_and_delete_removes(backend: Backend) {
    let src = start_image_server();
    let t = spawn(backend, true).await;
    let p = t.create_product("IMG4", "visible").await;
    let guid = p["guid"].as_str().unwrap();
    let first = submit(
        &t,
        guid,
        json!([{"priority": 5, "name": "main", "downloadUrl": format!("{src}/img/png")}]),
    )
    .await;
    assert_eq!(t.wait_finished(&first).await["status"], "completed");
    let second = submit(
        &t,
        guid,
        json!([{"priority": 1, "name": "main", "description": "new", "downloadUrl": format!("{src}/img/gif")}]),
    )
    .await;
    assert_eq!(t.wait_finished(&second).await["status"], "completed");
    let a = t.get(&format!("/api/products/{guid}")).await;
    let images = a.body["data"]["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{}", a.body);
    assert_eq!(images[0]["contentType"], "image/gif");
    assert_eq!(images[0]["priority"], 1);
    assert_eq!(images[0]["description"], "new");
    assert_eq!(images[0]["md5"], md5_hex(&gif()));
    let path = format!("/api/products/{guid}/images/main");
    assert_eq!(t.get(&path).await.bytes, gif());

    // Another e-shop sees nothing.
    let other = t.add_eshop(2);
    let hidden = t.get_as(&other, &path).await;
    assert_eq!(hidden.status, 404);
    assert_eq!(hidden.error_code(), "image-not-found");
    let unknown = t.get(&format!("/api/products/{guid}/images/nope")).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "image-not-found");

    // The images go with their product.
    assert_eq!(t.delete(&format!("/api/products/{guid}")).await.status, 200);
    let gone = t.get(&path).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.error_code(), "image-not-found");
    let mut conn = t.db.connect();
    let left = jobline::db::images::attach(
        &mut conn,
        vec![jobline::db::products::Product {
            guid: guid.to_string(),
            eshop_id: 1,
            code: "IMG4".into(),
            name: String::new(),
            visibility: "visible".into(),
            creation_time: 0,
            change_time: 0,
        }],
    )
    .unwrap();
    assert!(left[0].images.is_empty());
}

async fn downloads_are_bounded_by_the_concurrency_setting(backend: Backend) {
    let (src, in_flight) = start_counting_image_server();
    let t = TestApp::spawn_with(backend, |c| {
        c.allow_private_targets = true;
        c.image_download_concurrency = 2;
    })
    .await;
    let p = t.create_product("IMG6", "visible").await;
    let guid = p["guid"].as_str().unwrap();
    let images: Vec<Value> = (0..6)
        .map(|i| json!({"name": format!("n{i}"), "downloadUrl": format!("{src}/counted?i={i}")}))
        .collect();
    let job_id = submit(&t, guid, Value::Array(images)).await;
    let job = t.wait_finished(&job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert!(job["log"]
        .as_str()
        .unwrap()
        .contains("stored 6 of 6 images"));
    assert_eq!(in_flight.max.load(Ordering::SeqCst), 2);
}

async fn invalid_requests_create_no_job(backend: Backend) {
    let t = spawn(backend, true).await;
    let p = t.create_product("IMG5", "visible").await;
    let guid = p["guid"].as_str().unwrap();
    let path = format!("/api/products/{guid}/images");
    let good = |name: &str| json!({"name": name, "downloadUrl": "https://cdn.example.com/a.png"});
    let many: Vec<Value> = (0..101).map(|i| good(&format!("i{i}"))).collect();
    let cases = [
        (json!({"data": {}}), "data.images"),
        (json!({"data": {"images": []}}), "data.images"),
        (json!({"data": {"images": many}}), "data.images"),
        (
            json!({"data": {"images": [good("a"), {"downloadUrl": "https://x.example/b.png"}]}}),
            "data.images[1].name",
        ),
        (
            json!({"data": {"images": [good("a"), good("b"), good("a")]}}),
            "data.images[2].name",
        ),
        (
            json!({"data": {"images": [good("a"), good("b"), good("c"), {"name": "d", "downloadUrl": "ftp://x.example/d.png"}]}}),
            "data.images[3].downloadUrl",
        ),
        (
            json!({"data": {"images": [{"name": "a", "downloadUrl": "/relative.png"}]}}),
            "data.images[0].downloadUrl",
        ),
        (
            json!({"data": {"images": [{"name": "a"}]}}),
            "data.images[0].downloadUrl",
        ),
        (
            json!({"data": {"images": [{"name": "a/b", "downloadUrl": "https://x.example/a"}]}}),
            "data.images[0].name",
        ),
        (
            json!({"data": {"images": [{"name": "", "downloadUrl": "https://x.example/a"}]}}),
            "data.images[0].name",
        ),
        (
            json!({"data": {"images": [{"name": "x".repeat(256), "downloadUrl": "https://x.example/a"}]}}),
            "data.images[0].name",
        ),
        (
            json!({"data": {"images": [good("a"), {"name": "b", "priority": "high", "downloadUrl": "https://x.example/a"}]}}),
            "data.images[1].priority",
        ),
        (
            json!({"data": {"images": [{"name": "b", "priority": 1.5, "downloadUrl": "https://x.example/a"}]}}),
            "data.images[0].priority",
        ),
        (
            json!({"data": {"images": [{"name": 7, "downloadUrl": "https://x.example/a"}]}}),
            "data.images[0].name",
        ),
        (
            json!({"data": {"images": [{"name": "a", "description": "d".repeat(2001), "downloadUrl": "https://x.example/a"}]}}),
            "data.images[0].description",
        ),
        (
            json!({"data": {"images": [{"name": "a", "url": "https://x.example/a", "downloadUrl": "https://x.example/a"}]}}),
            "data.images[0].url",
        ),
    ];
    for (body, instance) in cases {
        let a = t.post(&path, body.clone()).await;
        assert_eq!(a.status, 422, "{body}: {}", a.body);
        assert_eq!(a.error_code(), "invalid-request-data", "{body}");
        assert_eq!(a.error_instance(), instance, "{body}: {}", a.body);
    }
    let images = json!({"data": {"images": [good("a")]}});
    let unknown = t
        .post(
            "/api/products/00000000-0000-0000-0000-000000000000/images",
            images.clone(),
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "product-not-found");
    let other = t.add_eshop(2);
    let foreign = t.post_as(&other, &path, images).await;
    assert_eq!(foreign.status, 404);
    assert_eq!(foreign.error_code(), "product-not-found");
    let not_json = t
        .send(
            t.client
                .post(t.url(&path))
                .bearer_auth(&t.token)
                .body("images"),
        )
        .await;
    assert_eq!(not_json.status, 415);

    let jobs = t.get("/api/system/jobs").await;
    assert_eq!(
        jobs.body["data"]["paginator"]["totalCount"], 0,
        "{}",
        jobs.body
    );
}

crate::on_both_backends!(
    contract_example_imports_every_type,
    each_bad_source_fails_only_its_image,
    private_targets_are_refused,
    same_name_replaces_and_delete_removes,
    downloads_are_bounded_by_the_concurrency_setting,
    invalid_requests_create_no_job,
);
