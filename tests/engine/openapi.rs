//! The OpenAPI document against real answers: a walk through every operation, on both
//! backends, and each answer (status, content type, JSON body) must be one the document
//! describes for that operation, validated with its JSON Schema.

use crate::common::{set_workers, Answer, Backend, TestApp};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The served document, and what the walk checked against it.
struct Checker {
    doc: Value,
    covered: BTreeSet<(String, String)>,
}

impl Checker {
    /// Follows a `#/components/…` reference of the document.
    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => self
                .doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling {r}")),
            None => v,
        }
    }

    /// Asserts that `a` is a documented answer of `method path` (path as documented).
    fn check(&mut self, method: &str, path: &str, a: &Answer) {
        let op = &self.doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        let responses = &op["responses"];
        let status = a.status.to_string();
        let response = responses
            .get(&status)
            .or_else(|| responses.get("default"))
            .unwrap_or_else(|| panic!("{method} {path}: {status} is not documented: {}", a.body));
        let response = self.resolve(response).clone();
        let mime = a
            .header("content-type")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap()
            .trim()
            .to_string();
        let content = response["content"].as_object().cloned().unwrap_or_default();
        let media = content
            .iter()
            .find(|(k, _)| **k == mime || k.strip_suffix("/*").is_some_and(|p| mime.starts_with(p)))
            .unwrap_or_else(|| {
                panic!("{method} {path} {status}: content type {mime:?} not documented")
            });
        if mime == "application/json" {
            let mut schema = media.1["schema"].clone();
            schema["components"] = self.doc["components"].clone();
            let validator = jsonschema::validator_for(&schema)
                .unwrap_or_else(|e| panic!("{method} {path} {status}: bad schema: {e}"));
            let errors: Vec<String> = validator
                .iter_errors(&a.body)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{method} {path} {status} does not match the document: {errors:?}\n{}",
                a.body
            );
        }
        self.covered.insert((path.to_string(), method.to_string()));
    }

    /// Every documented operation the walk did not reach.
    fn uncovered(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let key = (path.clone(), method.clone());
                if !self.covered.contains(&key) {
                    all.push(key);
                }
            }
        }
        all
    }
}

async fn answers_match_the_document(backend: Backend) {
    // No image worker: an image import stays pending, to be killed.
    let t = TestApp::spawn_with(backend, |c| set_workers(c, "images", 0)).await;
    let doc = t.get("/api/openapi.json").await;
    assert_eq!(doc.status, 200);
    let mut c = Checker {
        doc: doc.body.clone(),
        covered: BTreeSet::new(),
    };
    c.check("get", "/api/openapi.json", &doc);
    let unauthenticated = t.send(t.client.get(t.url("/api/openapi.json"))).await;
    assert_eq!(unauthenticated.status, 200, "served without a token");

    for path in ["/healthz", "/readyz", "/metrics"] {
        let a = t.send(t.client.get(t.url(path))).await;
        c.check("get", path, &a);
    }

    // Products.
    let product = t.create_product("A1", "visible").await;
    let guid = product["guid"].as_str().unwrap().to_string();
    let one = format!("/api/products/{guid}");
    for body in [
        json!({"data": {"code": "B1", "name": "b"}}),
        json!({"data": {"code": "A1", "name": "dup"}}),
        json!({"data": {"code": 5}}),
    ] {
        c.check(
            "post",
            "/api/products",
            &t.post("/api/products", body).await,
        );
    }
    let not_json = t
        .send(
            t.client
                .post(t.url("/api/products"))
                .bearer_auth(&t.token)
                .body("x"),
        )
        .await;
    c.check("post", "/api/products", &not_json);
    c.check("get", "/api/products", &t.get("/api/products").await);
    c.check("get", "/api/products", &t.get("/api/products?page=0").await);
    c.check("get", "/api/products/{guid}", &t.get(&one).await);
    c.check(
        "get",
        "/api/products/{guid}",
        &t.get("/api/products/nope").await,
    );
    c.check(
        "get",
        "/api/products",
        &t.get_as("bad", "/api/products").await,
    );
    let patch = t.patch(&one, json!({"data": {"name": "renamed"}})).await;
    c.check("patch", "/api/products/{guid}", &patch);
    let empty = t.patch(&one, json!({"data": {}})).await;
    c.check("patch", "/api/products/{guid}", &empty);
    let image = t.get(&format!("{one}/images/none.png")).await;
    c.check("get", "/api/products/{guid}/images/{name}", &image);

    // Asynchronous endpoints and jobs.
    let submit = t.get("/api/products/snapshot").await;
    c.check("get", "/api/products/snapshot", &submit);
    let bad = t.get("/api/products/snapshot?visibility=x").await;
    c.check("get", "/api/products/snapshot", &bad);
    let job_id = submit.body["data"]["jobId"].as_str().unwrap().to_string();
    t.wait_finished(&job_id).await;
    let detail = format!("/api/system/jobs/{job_id}");
    c.check("get", "/api/system/jobs/{job_id}", &t.get(&detail).await);
    let shoptet = t
        .send(
            t.client
                .get(t.url(&detail))
                .header("Shoptet-Private-API-Token", &t.token),
        )
        .await;
    assert!(shoptet.body["data"]["job"].is_object());
    c.check("get", "/api/system/jobs/{job_id}", &shoptet);
    let wait = t.get(&format!("{detail}?wait=99")).await;
    c.check("get", "/api/system/jobs/{job_id}", &wait);
    let unknown = t.get("/api/system/jobs/zzzzzzz").await;
    c.check("get", "/api/system/jobs/{job_id}", &unknown);
    c.check(
        "delete",
        "/api/system/jobs/{job_id}",
        &t.delete(&detail).await,
    );
    c.check("get", "/api/system/jobs", &t.get("/api/system/jobs").await);
    let filtered = t.get("/api/system/jobs?status=nope").await;
    c.check("get", "/api/system/jobs", &filtered);
    c.check(
        "get",
        "/api/system/jobs/",
        &t.get("/api/system/jobs/").await,
    );
    let job = t.get(&detail).await;
    let result_url = job.body["data"]["resultUrl"].as_str().unwrap().to_string();
    let result_path = result_url.trim_start_matches(&t.base).to_string();
    let download = t.send(t.client.get(&result_url)).await;
    c.check("get", "/api-results/{file}", &download);
    let wrong = t
        .send(
            t.client
                .get(t.url(&result_path.replace(".jsonl.gz", ".json"))),
        )
        .await;
    c.check("get", "/api-results/{file}", &wrong);

    let images = t
        .post(
            &format!("{one}/images"),
            json!({"data": {"images": [{"name": "a.png", "downloadUrl": "https://example.com/a.png"}]}}),
        )
        .await;
    c.check("post", "/api/products/{guid}/images", &images);
    let no_images = t
        .post(&format!("{one}/images"), json!({"data": {"images": []}}))
        .await;
    c.check("post", "/api/products/{guid}/images", &no_images);
    let pending = format!(
        "/api/system/jobs/{}",
        images.body["data"]["jobId"].as_str().unwrap()
    );
    let killed = t.delete(&pending).await;
    assert_eq!(killed.status, 200, "{}", killed.body);
    c.check("delete", "/api/system/jobs/{job_id}", &killed);
    c.check("delete", "/api/products/{guid}", &t.delete(&one).await);
    c.check("delete", "/api/products/{guid}", &t.delete(&one).await);

    // Webhooks.
    let created = t
        .post(
            "/api/webhooks",
            json!({"data": [{"event": "job:finished", "url": "https://example.com/hook"}]}),
        )
        .await;
    c.check("post", "/api/webhooks", &created);
    let invalid = t
        .post(
            "/api/webhooks",
            json!({"data": [{"event": "x", "url": "y"}]}),
        )
        .await;
    c.check("post", "/api/webhooks", &invalid);
    let id = created.body["data"]["webhooks"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let hook = format!("/api/webhooks/{id}");
    c.check("get", "/api/webhooks", &t.get("/api/webhooks").await);
    c.check("get", "/api/webhooks/{id}", &t.get(&hook).await);
    let shoptet_hook = t
        .send(
            t.client
                .get(t.url(&hook))
                .header("Shoptet-Access-Token", &t.token),
        )
        .await;
    c.check("get", "/api/webhooks/{id}", &shoptet_hook);
    let patched = t.patch(&hook, json!({"data": {"active": false}})).await;
    c.check("patch", "/api/webhooks/{id}", &patched);
    c.check(
        "get",
        "/api/webhooks/{id}",
        &t.get("/api/webhooks/wh_x").await,
    );
    let key = t.get("/api/webhooks/signature-key").await;
    c.check("get", "/api/webhooks/signature-key", &key);
    let renewed = t.post("/api/webhooks/renew-signature-key", json!({})).await;
    c.check("post", "/api/webhooks/renew-signature-key", &renewed);
    let notifications = t.get("/api/webhooks/notifications").await;
    c.check("get", "/api/webhooks/notifications", &notifications);
    let shoptet_notifications = t
        .send(
            t.client
                .get(t.url("/api/webhooks/notifications"))
                .header("Accept", "application/vnd.shoptet.v1.0"),
        )
        .await;
    c.check("get", "/api/webhooks/notifications", &shoptet_notifications);
    let n = notifications.body["data"]["notifications"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let redeliver = "/api/webhooks/notifications/{id}/redeliver";
    let again = t
        .post(
            &format!("/api/webhooks/notifications/{n}/redeliver"),
            json!({}),
        )
        .await;
    c.check("post", redeliver, &again);
    let missing = t
        .post("/api/webhooks/notifications/msg_x/redeliver", json!({}))
        .await;
    c.check("post", redeliver, &missing);
    c.check("delete", "/api/webhooks/{id}", &t.delete(&hook).await);

    assert_eq!(c.uncovered(), Vec::<(String, String)>::new());
}

crate::on_both_backends!(answers_match_the_document);
