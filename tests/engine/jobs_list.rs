//! The jobs list: newest first, every filter, the paginator, bad values.

use crate::common::{Backend, TestApp};
use serde_json::json;

async fn list_filters_and_paginates(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let id = t.submit_snapshot("").await;
        t.wait_finished(&id).await;
        ids.push(id);
    }
    let all = t.get("/api/system/jobs").await;
    assert_eq!(all.status, 200);
    let jobs = all.body["data"]["jobs"].as_array().unwrap();
    let listed: Vec<&str> = jobs.iter().map(|j| j["jobId"].as_str().unwrap()).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    let keys: Vec<&String> = jobs[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    assert_eq!(
        all.body["data"]["paginator"],
        json!({"totalCount": 5, "page": 1, "pageCount": 1, "itemsOnPage": 5, "itemsPerPage": 100})
    );
    let slash = t.get("/api/system/jobs/").await;
    assert_eq!(slash.body["data"], all.body["data"]);

    let page = t.get("/api/system/jobs?page=2&itemsPerPage=2").await;
    let on_page: Vec<&str> = page.body["data"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(on_page, newest_first[2..4].to_vec());
    assert_eq!(page.body["data"]["paginator"]["pageCount"], 3);

    let killed_id = {
        let hold = t.breakpoints().arm("snapshot:page");
        let id = t.submit_snapshot("").await;
        hold.reached().await;
        assert_eq!(
            t.delete(&format!("/api/system/jobs/{id}")).await.status,
            200
        );
        hold.release();
        id
    };
    let killed = t.get("/api/system/jobs?status=killed").await;
    assert_eq!(killed.body["data"]["jobs"][0]["jobId"], killed_id.as_str());
    assert_eq!(killed.body["data"]["paginator"]["totalCount"], 1);
    let completed = t.get("/api/system/jobs?status=completed").await;
    assert_eq!(completed.body["data"]["paginator"]["totalCount"], 5);
    let both = t.get("/api/system/jobs?status=completed,killed").await;
    assert_eq!(both.body["data"]["paginator"]["totalCount"], 6);
    let by_endpoint = t
        .get("/api/system/jobs?endpoint=/api/products/snapshot")
        .await;
    assert_eq!(by_endpoint.body["data"]["paginator"]["totalCount"], 6);

    let created = all.body["data"]["jobs"][2]["creationTime"]
        .as_str()
        .unwrap()
        .replace('+', "%2B");
    let from = t
        .get(&format!("/api/system/jobs?creationTimeFrom={created}"))
        .await;
    let n = from.body["data"]["paginator"]["totalCount"]
        .as_i64()
        .unwrap();
    assert!((3..=6).contains(&n), "{n}");
    let future = t
        .get("/api/system/jobs?completionTimeFrom=2100-01-01T00:00:00Z")
        .await;
    assert_eq!(future.body["data"]["paginator"]["totalCount"], 0);
    let past = t
        .get("/api/system/jobs?completionTimeTo=2000-01-01T00:00:00%2B0000")
        .await;
    assert_eq!(past.body["data"]["paginator"]["totalCount"], 0);

    for (query, instance) in [
        ("status=done", "status"),
        ("endpoint=/api/nothing", "endpoint"),
        ("creationTimeFrom=x", "creationTimeFrom"),
        ("completionTimeTo=2020", "completionTimeTo"),
        ("page=0", "page"),
        ("itemsPerPage=501", "itemsPerPage"),
        ("itemsPerPage=abc", "itemsPerPage"),
    ] {
        let a = t.get(&format!("/api/system/jobs?{query}")).await;
        assert_eq!(a.status, 400, "{query}");
        assert_eq!(a.error_code(), "invalid-parameter", "{query}");
        assert_eq!(a.error_instance(), instance, "{query}");
    }
}

/// Inserts `n` finished jobs of e-shop 1 with one statement (ids `s000001`…).
fn seed_jobs(t: &TestApp, backend: Backend, n: i64) {
    use diesel::connection::SimpleConnection;
    let now = jobline::model::time::now();
    let (series, id) = match backend {
        Backend::Sqlite => (
            format!("(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s)"),
            "printf('s%06d', i)",
        ),
        Backend::Postgres => (
            format!("(SELECT i FROM generate_series(1::bigint, {n}) AS g(i))"),
            "'s' || lpad(i::text, 6, '0')",
        ),
    };
    t.db.connect()
        .batch_execute(&format!(
            "INSERT INTO jobs (id, eshop_id, endpoint, queue, status, params, creation_time, \
             completion_time, attempt, result_secret, log) \
             SELECT {id}, 1, '/api/products/snapshot', 'snapshots', 'failed', '{{}}', \
             {now} - i, {now} - i, 1, 'x', '' FROM {series} AS s"
        ))
        .unwrap();
}

async fn the_count_is_exact_up_to_ten_thousand_past_the_page(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    seed_jobs(&t, backend, 10_050);
    let exact = t.get("/api/system/jobs?itemsPerPage=100&page=2").await;
    assert_eq!(
        exact.body["data"]["paginator"]["totalCount"], 10_050,
        "within the window"
    );
    let first = t.get("/api/system/jobs?itemsPerPage=10").await;
    let p = &first.body["data"]["paginator"];
    assert_eq!(
        p["totalCount"], 10_010,
        "a lower bound: the page plus 10,000"
    );
    assert_eq!(p["pageCount"], 1_001);
    assert_eq!(
        first.body["data"]["jobs"][0]["jobId"], "s000001",
        "newest first"
    );
    let none = t.get("/api/system/jobs?status=killed").await;
    assert_eq!(none.body["data"]["paginator"]["totalCount"], 0);
}

crate::on_both_backends!(
    list_filters_and_paginates,
    the_count_is_exact_up_to_ten_thousand_past_the_page
);
