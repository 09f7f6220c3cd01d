//! Bad input of every kind gets the contract's error in the envelope, changes nothing and
//! never yields a 500; tenants see only their own data.

use crate::common::{Backend, TestApp};
use serde_json::json;

async fn authentication_is_required(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let missing = t.send(t.client.get(t.url("/api/system/jobs"))).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.error_code(), "missing-access-token");
    assert!(missing.body["data"].is_null());
    assert!(missing.body["metadata"]["requestId"].is_string());
    let wrong = t.get_as("jl_nope", "/api/system/jobs").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.error_code(), "invalid-access-token");
    let basic = t
        .send(
            t.client
                .get(t.url("/api/system/jobs"))
                .header("Authorization", "Basic eDp5"),
        )
        .await;
    assert_eq!(basic.error_code(), "invalid-access-token");
    let lower = t
        .send(
            t.client
                .get(t.url("/api/system/jobs"))
                .header("Authorization", format!("bearer {}", t.token)),
        )
        .await;
    assert_eq!(lower.status, 200, "the auth scheme is case-insensitive");
    // Health endpoints need no token.
    assert_eq!(t.send(t.client.get(t.url("/healthz"))).await.status, 200);
    assert_eq!(t.send(t.client.get(t.url("/readyz"))).await.status, 200);
}

async fn tenants_see_only_their_own(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let other = t.add_eshop(222651);
    let product = t.create_product("MINE", "visible").await;
    let guid = product["guid"].as_str().unwrap();
    let job_id = t.submit_snapshot("").await;
    t.wait_finished(&job_id).await;

    let a = t.get_as(&other, &format!("/api/products/{guid}")).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.error_code(), "product-not-found");
    let a = t
        .get_as(&other, &format!("/api/system/jobs/{job_id}"))
        .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.error_code(), "job-not-found");
    let a = t
        .delete_as(&other, &format!("/api/system/jobs/{job_id}"))
        .await;
    assert_eq!(a.status, 404);
    let a = t.delete_as(&other, &format!("/api/products/{guid}")).await;
    assert_eq!(a.status, 404);
    let list = t.get_as(&other, "/api/system/jobs").await;
    assert_eq!(list.body["data"]["paginator"]["totalCount"], 0);
    let list = t.get_as(&other, "/api/products").await;
    assert_eq!(list.body["data"]["paginator"]["totalCount"], 0);
    // The other e-shop's snapshot does not contain our product.
    let their_job = t.submit_snapshot_as(&other, "").await;
    let a = t
        .get_as(&other, &format!("/api/system/jobs/{their_job}?wait=30"))
        .await;
    assert_eq!(a.body["data"]["status"], "completed");
    assert!(a.body["data"]["log"]
        .as_str()
        .unwrap()
        .contains("snapshot of 0 products"));
    // The same code may exist in two e-shops.
    let same = t
        .post_as(
            &other,
            "/api/products",
            json!({"data": {"code": "MINE", "name": "x"}}),
        )
        .await;
    assert_eq!(same.status, 201);
}

async fn products_crud(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let p = t.create_product("A-1", "hidden").await;
    let guid = p["guid"].as_str().unwrap().to_string();
    assert_eq!(p["visibility"], "hidden");
    assert_eq!(p["images"], json!([]));
    let dup = t
        .post(
            "/api/products",
            json!({"data": {"code": "A-1", "name": "again"}}),
        )
        .await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.error_code(), "product-code-exists");

    let changed = t
        .patch(
            &format!("/api/products/{guid}"),
            json!({"data": {"name": "Renamed", "visibility": "visible"}}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["data"]["name"], "Renamed");
    assert_eq!(changed.body["data"]["code"], "A-1");
    assert!(changed.body["data"]["changeTime"].as_str() >= p["changeTime"].as_str());

    let other = t.create_product("B-2", "visible").await;
    let clash = t
        .patch(
            &format!("/api/products/{}", other["guid"].as_str().unwrap()),
            json!({"data": {"code": "A-1"}}),
        )
        .await;
    assert_eq!(clash.status, 409);

    for i in 0..23 {
        t.create_product(&format!("C{i}"), "visible").await;
    }
    let page = t.get("/api/products?page=2&itemsPerPage=10").await;
    assert_eq!(page.body["data"]["products"].as_array().unwrap().len(), 10);
    assert_eq!(
        page.body["data"]["paginator"],
        json!({"totalCount": 25, "page": 2, "pageCount": 3, "itemsOnPage": 10, "itemsPerPage": 10})
    );
    let default = t.get("/api/products").await;
    assert_eq!(default.body["data"]["paginator"]["itemsPerPage"], 20);
    let too_many = t.get("/api/products?itemsPerPage=101").await;
    assert_eq!(too_many.status, 400);
    assert_eq!(too_many.error_instance(), "itemsPerPage");

    let gone = t.delete(&format!("/api/products/{guid}")).await;
    assert_eq!(gone.status, 200);
    assert_eq!(t.get(&format!("/api/products/{guid}")).await.status, 404);
    assert_eq!(t.delete(&format!("/api/products/{guid}")).await.status, 404);
}

async fn bad_bodies_get_clear_errors(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let post_raw = |body: &'static str, ctype: &'static str| {
        t.send(
            t.client
                .post(t.url("/api/products"))
                .bearer_auth(&t.token)
                .header("Content-Type", ctype)
                .body(body),
        )
    };
    let cases: Vec<(&str, &str, u16, &str, &str)> = vec![
        (
            "{\"data\":",
            "application/json",
            422,
            "invalid-request-data",
            "body",
        ),
        (
            "[]",
            "application/json",
            422,
            "invalid-request-data",
            "body",
        ),
        (
            "{\"data\":{\"code\":5,\"name\":\"x\"}}",
            "application/json",
            422,
            "invalid-request-data",
            "data.code",
        ),
        (
            "{\"data\":{\"name\":\"x\"}}",
            "application/json",
            422,
            "invalid-request-data",
            "data",
        ),
        (
            "{\"data\":{\"code\":\"x\",\"name\":\"y\",\"color\":1}}",
            "application/json",
            422,
            "invalid-request-data",
            "data.color",
        ),
        (
            "{\"data\":{\"code\":\" \",\"name\":\"y\"}}",
            "application/json",
            422,
            "invalid-request-data",
            "data.code",
        ),
        (
            "{\"data\":{\"code\":\"x\",\"name\":\"y\",\"visibility\":\"secret\"}}",
            "application/json",
            422,
            "invalid-request-data",
            "data.visibility",
        ),
        (
            "{\"data\":{\"code\":\"x\",\"name\":\"y\"}}",
            "text/plain",
            415,
            "unsupported-media-type",
            "",
        ),
    ];
    for (body, ctype, status, code, instance) in cases {
        let a = post_raw(body, ctype).await;
        assert_eq!(a.status, status, "{body}: {}", a.body);
        assert_eq!(a.error_code(), code, "{body}");
        assert_eq!(a.error_instance(), instance, "{body}: {}", a.body);
    }
    let huge = "x".repeat(2 << 20);
    let a = t
        .send(
            t.client
                .post(t.url("/api/products"))
                .bearer_auth(&t.token)
                .header("Content-Type", "application/json")
                .body(format!(
                    "{{\"data\":{{\"code\":\"{huge}\",\"name\":\"y\"}}}}"
                )),
        )
        .await;
    assert_eq!(a.status, 413);
    assert_eq!(a.error_code(), "request-too-large");
    let long = t
        .post(
            "/api/products",
            json!({"data": {"code": "c".repeat(65), "name": "y"}}),
        )
        .await;
    assert_eq!(long.status, 422);
    let empty_patch = t
        .patch(
            "/api/products/00000000-0000-4000-8000-000000000000",
            json!({"data": {}}),
        )
        .await;
    assert_eq!(empty_patch.status, 422);
    // Nothing was created by any of these.
    let list = t.get("/api/products").await;
    assert_eq!(list.body["data"]["paginator"]["totalCount"], 0);
}

async fn bad_snapshot_requests_create_no_job(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let many: Vec<String> = (0..51)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    let cases = vec![
        (format!("?productGuids={}", many.join(",")), "productGuids"),
        ("?productGuids=not-a-guid".to_string(), "productGuids"),
        ("?visibility=secret".to_string(), "visibility"),
        (
            "?creationTimeFrom=yesterday".to_string(),
            "creationTimeFrom",
        ),
        (
            "?changeTimeTo=2019-13-01T00:00:00%2B0100".to_string(),
            "changeTimeTo",
        ),
        (
            "?creationTimeFrom=2020-01-02T00:00:00Z&creationTimeTo=2020-01-01T00:00:00Z"
                .to_string(),
            "creationTimeFrom",
        ),
    ];
    for (query, instance) in cases {
        let a = t.get(&format!("/api/products/snapshot{query}")).await;
        assert_eq!(a.status, 400, "{query}: {}", a.body);
        assert_eq!(a.error_code(), "invalid-parameter");
        assert_eq!(a.error_instance(), instance, "{query}");
    }
    let fifty = t
        .get(&format!(
            "/api/products/snapshot?productGuids={}",
            many[..50].join(",")
        ))
        .await;
    assert_eq!(fifty.status, 202);
    let ok_times = t
        .get("/api/products/snapshot?creationTimeFrom=2019-01-08T15:13:39%2B0100&changeTimeTo=2030-01-01T00:00:00Z")
        .await;
    assert_eq!(ok_times.status, 202, "{}", ok_times.body);
    let list = t.get("/api/system/jobs").await;
    assert_eq!(list.body["data"]["paginator"]["totalCount"], 2);
}

async fn unknown_routes_and_methods(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let a = t.get("/api/nothing-here").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.error_code(), "not-found");
    let a = t
        .send(
            t.client
                .put(t.url("/api/system/jobs"))
                .bearer_auth(&t.token),
        )
        .await;
    assert_eq!(a.status, 405);
    assert_eq!(a.error_code(), "method-not-allowed");
    let a = t.get("/api/system/jobs/NOT-AN-ID").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.error_code(), "job-not-found");
    assert_eq!(a.error_instance(), "NOT-AN-ID");
}

async fn nul_characters_never_reach_the_database(backend: Backend) {
    // PostgreSQL text cannot hold U+0000: every way in answers a 4xx and changes nothing.
    let t = TestApp::spawn(backend).await;
    let a = t
        .post(
            "/api/products",
            json!({"data": {"code": "a\u{0}b", "name": "x"}}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.error_instance(), "data.code");
    for path in [
        "/api/products/%00",
        "/api/products/x/images/%00",
        "/api/webhooks/%00",
        "/api/system/jobs/%00",
        "/api-results/%00",
    ] {
        let a = t.get(path).await;
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        assert!(a.body["metadata"]["requestId"].is_string());
    }
    let a = t.get("/api/webhooks/notifications?event=%00").await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.error_instance(), "event");
    let list = t.get("/api/products").await;
    assert_eq!(list.body["data"]["paginator"]["totalCount"], 0);
}

crate::on_both_backends!(
    authentication_is_required,
    tenants_see_only_their_own,
    products_crud,
    bad_bodies_get_clear_errors,
    bad_snapshot_requests_create_no_job,
    unknown_routes_and_methods,
    nul_characters_never_reach_the_database,
);
