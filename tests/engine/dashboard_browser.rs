//! The dashboard in a real headless Chromium: an operator signs in, finds a job submitted
//! through the API, opens it, kills it, sees it `killed` and sees the webhook delivery
//! appear without reloading; hostile text stays inert; the pages fit a phone.
//! With `JOBLINE_SCREENSHOTS=<dir>` the test saves its screenshots there (docs/img).

use crate::common::browser::{self, Browser};
use crate::common::{Backend, TestApp};
use crate::dashboard::receiver;
use crate::on_both_backends;
use serde_json::json;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The whole browser test must end within this.
const LIMIT: Duration = Duration::from_secs(150);
/// How long one page may take to show what the test waits for.
const WAIT: Duration = Duration::from_secs(20);

async fn save(b: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("JOBLINE_SCREENSHOTS") {
        let png = b.screenshot().await;
        std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
    }
}

/// In the image's name (no `/` allowed there), hence in the job's log and request.
const HOSTILE: &str =
    "<svg onload=window.__pwned=3><img src=x onerror=window.__pwned=2><script>window.__pwned=1";
/// In the image's description, hence in the job's request.
const HOSTILE_SCRIPT: &str = "<script>window.__pwned=1</script>";

async fn an_operator_kills_a_job_in_a_browser(backend: Backend) {
    assert!(
        browser::available(),
        "the browser tests need Debian's chromium and chromium-driver (.ci/run installs them)"
    );
    tokio::time::timeout(LIMIT, scenario(backend))
        .await
        .expect("the browser test ends in time");
}

async fn scenario(backend: Backend) {
    let (hook, hits) = receiver(Arc::new(AtomicU16::new(200)));
    let t = TestApp::spawn_with(backend, |c| c.allow_private_targets = true).await;
    let a = t
        .post(
            "/api/webhooks",
            json!({"data": [{"event": "job:finished", "url": hook}]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);

    // A job whose log and request hold hostile text: an image that cannot be downloaded.
    let product = t.create_product("evil", "visible").await;
    let evil = t
        .post(
            &format!("/api/products/{}/images", product["guid"].as_str().unwrap()),
            json!({"data": {"images": [{"priority": 1, "name": HOSTILE, "description": HOSTILE_SCRIPT,
                "downloadUrl": "http://127.0.0.1:9/none.png"}]}}),
        )
        .await;
    assert_eq!(evil.status, 202, "{}", evil.body);
    let evil = evil.body["data"]["jobId"].as_str().unwrap().to_string();
    t.wait_finished(&evil).await;
    let delivered = hits.load(Ordering::SeqCst);

    // A job held running at its first page, so the operator can kill it.
    let hold = t.breakpoints().arm("snapshot:page");
    let job = t.submit_snapshot("").await;
    hold.reached().await;

    let b = Browser::start(1280, 900).await;
    b.goto(&t.url("/dashboard/jobs")).await;
    assert!(
        b.url().await.ends_with("/dashboard/login"),
        "no session: the sign-in page"
    );
    let field = b.wait_for("#token", WAIT).await;
    b.type_into(&field, &t.operator_token()).await;
    b.click(&b.wait_for("form.signin button", WAIT).await).await;
    b.wait_for_text("Nodes alive (1)", WAIT).await;
    b.wait_for_text("snapshots", WAIT).await;
    b.wait_for_text("0 completed, 1 failed or killed", WAIT)
        .await;
    assert_eq!(
        b.run("return document.querySelectorAll('svg.chart rect.bad[height=\"60\"]').length")
            .await,
        json!(1),
        "the images job that failed is this minute's bar"
    );
    save(&b, "dashboard-overview.png").await;

    b.goto(&t.url("/dashboard/jobs")).await;
    let link = b
        .wait_for(&format!("a[href='/dashboard/jobs/{job}']"), WAIT)
        .await;
    save(&b, "dashboard-jobs.png").await;
    b.click(&link).await;
    b.wait_for_text("lease held by", WAIT).await;
    assert!(b.text().await.contains("running"), "{}", b.text().await);
    // The live part is replaced every 2 s: click in the page's own turn.
    b.run("document.querySelector('button.danger').click()")
        .await;
    b.wait_for_text("killed on request", WAIT).await;
    assert!(b.url().await.ends_with(&format!("/dashboard/jobs/{job}")));
    hold.release();

    // The delivery shows up by itself: the page is not reloaded (the marker survives).
    b.run("window.__stay = 42").await;
    b.wait_for(".notification td.num + td + td.num", WAIT).await;
    b.wait_for_text("success", WAIT).await;
    assert_eq!(b.run("return window.__stay").await, json!(42), "no reload");
    assert!(
        hits.load(Ordering::SeqCst) > delivered,
        "the receiver got the delivery"
    );
    save(&b, "dashboard-job.png").await;

    // Hostile text is shown as text and runs nothing.
    b.goto(&t.url(&format!("/dashboard/jobs/{evil}"))).await;
    b.wait_for_text("window.__pwned=1", WAIT).await;
    let shown = b.text().await;
    assert!(shown.contains(HOSTILE), "shown literally: {shown}");
    assert!(shown.contains(HOSTILE_SCRIPT), "shown literally: {shown}");
    assert_eq!(
        b.run("return typeof window.__pwned").await,
        json!("undefined")
    );
    assert_eq!(b.run("return document.scripts.length").await, json!(1));
    assert_eq!(
        b.run("return document.querySelectorAll('main img, main svg').length")
            .await,
        json!(0)
    );

    // A phone: nothing wider than the screen but the tables, which scroll inside.
    b.resize(390, 844).await;
    b.goto(&t.url("/dashboard")).await;
    b.wait_for_text("Nodes alive", WAIT).await;
    assert_eq!(
        b.run("return document.documentElement.scrollWidth <= window.innerWidth + 1")
            .await,
        json!(true)
    );
    save(&b, "dashboard-phone.png").await;
}

on_both_backends!(an_operator_kills_a_job_in_a_browser);
