//! The operator dashboard over HTTP: who may look (sessions, sign-in failures, CSRF, expiry,
//! e-shop and operator tokens kept apart), the pages and the actions.

use crate::common::{eventually, set_workers, Backend, TestApp};
use crate::on_both_backends;
use serde_json::json;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A webhook receiver that answers the status held in `code` and counts the deliveries.
pub fn receiver(code: Arc<AtomicU16>) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = actix_web::HttpServer::new(move || {
        let (seen, code) = (seen.clone(), code.clone());
        actix_web::App::new().default_service(actix_web::web::to(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            let status = code.load(Ordering::SeqCst);
            async move {
                actix_web::HttpResponse::build(
                    actix_web::http::StatusCode::from_u16(status).unwrap(),
                )
                .finish()
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_rt::spawn(server);
    (format!("http://{addr}/hook"), hits)
}

/// A browser-like client of the dashboard: keeps the session cookie by hand (no cookie
/// store, so every test sees exactly what the server set).
pub struct Dash {
    pub session: String,
    pub csrf: String,
}

/// The value of a form's hidden `csrf` field in a page.
pub fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

/// The `Set-Cookie` header that sets `name`.
fn set_cookie(a: &crate::common::Answer, name: &str) -> Option<String> {
    a.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

fn text(a: &crate::common::Answer) -> String {
    String::from_utf8_lossy(&a.bytes).into_owned()
}

impl TestApp {
    pub fn operator_token(&self) -> String {
        self.app
            .as_ref()
            .unwrap()
            .operator_token
            .clone()
            .expect("a fresh database's first start adds an operator")
    }

    /// Posts the sign-in form with `token`; answers the response.
    async fn post_sign_in(&self, token: &str) -> crate::common::Answer {
        let form = self
            .send(self.client.get(self.url("/dashboard/login")))
            .await;
        assert_eq!(form.status, 200);
        let login = set_cookie(&form, "jobline_login").expect("a sign-in form cookie");
        let csrf = csrf_of(&text(&form));
        assert_eq!(cookie_value(&login), csrf);
        self.send(
            self.client
                .post(self.url("/dashboard/login"))
                .header("cookie", format!("jobline_login={csrf}"))
                .form(&[("token", token), ("csrf", &csrf)]),
        )
        .await
    }

    /// Signs in with the operator token; answers the session.
    pub async fn sign_in(&self) -> Dash {
        let a = self.post_sign_in(&self.operator_token()).await;
        assert_eq!(a.status, 303, "{}", text(&a));
        assert_eq!(a.header("location").as_deref(), Some("/dashboard"));
        let session = cookie_value(&set_cookie(&a, "jobline_session").expect("a session cookie"));
        let page = self.dash_get(&session, "/dashboard").await;
        assert_eq!(page.status, 200);
        Dash {
            csrf: csrf_of(&text(&page)),
            session,
        }
    }

    pub async fn dash_get(&self, session: &str, path: &str) -> crate::common::Answer {
        self.send(
            self.client
                .get(self.url(path))
                .header("cookie", format!("jobline_session={session}")),
        )
        .await
    }

    pub async fn dash_post(
        &self,
        session: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> crate::common::Answer {
        self.send(
            self.client
                .post(self.url(path))
                .header("cookie", format!("jobline_session={session}"))
                .form(form),
        )
        .await
    }
}

async fn every_dashboard_url_needs_a_session(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    for path in [
        "/dashboard",
        "/dashboard/jobs",
        "/dashboard/jobs/abcdefg",
        "/dashboard/webhooks",
        "/dashboard/anything/else",
    ] {
        let a = t.send(t.client.get(t.url(path))).await;
        assert_eq!(a.status, 303, "{path}");
        assert_eq!(
            a.header("location").as_deref(),
            Some("/dashboard/login"),
            "{path}"
        );
        let forged = t.dash_get("not-a-session", path).await;
        assert_eq!(forged.status, 303, "{path} with a made-up session");
    }
    let post = t
        .dash_post("nope", "/dashboard/jobs/abcdefg/kill", &[("csrf", "x")])
        .await;
    assert_eq!(post.status, 303);
    let login = t.send(t.client.get(t.url("/dashboard/login"))).await;
    assert_eq!(login.status, 200);
    let page = text(&login);
    assert_eq!(
        page.matches("<input").count(),
        2,
        "a token field and the hidden csrf: {page}"
    );
    assert!(page.contains("type=\"password\""));
    assert!(login
        .header("content-security-policy")
        .unwrap()
        .contains("script-src 'self'"));
}

async fn sign_in_failures_and_cookie_flags(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let wrong = t.post_sign_in("jlop_not-a-real-token").await;
    assert_eq!(wrong.status, 401);
    assert!(text(&wrong).contains("not an operator token"));
    assert!(set_cookie(&wrong, "jobline_session").is_none());

    let eshop = t.post_sign_in(&t.token).await;
    assert_eq!(
        eshop.status, 401,
        "an e-shop token never opens the dashboard"
    );
    assert!(set_cookie(&eshop, "jobline_session").is_none());

    let no_form_cookie = t
        .send(
            t.client
                .post(t.url("/dashboard/login"))
                .form(&[("token", t.operator_token().as_str()), ("csrf", "forged")]),
        )
        .await;
    assert_eq!(
        no_form_cookie.status, 403,
        "a cross-site sign-in is refused"
    );

    let ok = t.post_sign_in(&t.operator_token()).await;
    assert_eq!(ok.status, 303);
    let cookie = set_cookie(&ok, "jobline_session").unwrap();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    let api = t.get_as(&t.operator_token(), "/api/system/jobs").await;
    assert_eq!(api.status, 401, "an operator token is not an API token");
    assert_eq!(api.error_code(), "invalid-access-token");
}

async fn the_cookie_is_secure_behind_https(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| {
        c.public_url = Some("https://jobs.example.com".into())
    })
    .await;
    let ok = t.post_sign_in(&t.operator_token()).await;
    assert_eq!(ok.status, 303);
    assert!(set_cookie(&ok, "jobline_session")
        .unwrap()
        .contains("; Secure"));
}

async fn changes_need_the_csrf_token(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| set_workers(c, "snapshots", 0)).await;
    let job = t.submit_snapshot("").await;
    let d = t.sign_in().await;
    let path = format!("/dashboard/jobs/{job}/kill");
    for forged in ["", "0000", &"a".repeat(64)] {
        let a = t.dash_post(&d.session, &path, &[("csrf", forged)]).await;
        assert_eq!(a.status, 403, "csrf `{forged}`");
    }
    let still = t.get(&format!("/api/system/jobs/{job}")).await;
    assert_eq!(still.body["data"]["status"], "pending");

    let killed = t.dash_post(&d.session, &path, &[("csrf", &d.csrf)]).await;
    assert_eq!(killed.status, 303);
    let now = t.get(&format!("/api/system/jobs/{job}")).await;
    assert_eq!(now.body["data"]["status"], "killed");
    assert_eq!(killed_count(&t).await, Some(1.0), "the kill is counted");
    let again = t.dash_post(&d.session, &path, &[("csrf", &d.csrf)]).await;
    assert_eq!(again.status, 409, "a finished job cannot be killed");

    let out = t
        .dash_post(&d.session, "/dashboard/logout", &[("csrf", "wrong")])
        .await;
    assert_eq!(out.status, 403);
    let out = t
        .dash_post(&d.session, "/dashboard/logout", &[("csrf", &d.csrf)])
        .await;
    assert_eq!(out.status, 303);
    assert_eq!(
        t.dash_get(&d.session, "/dashboard").await.status,
        303,
        "signed out"
    );
}

async fn sessions_expire(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| {
        c.dashboard_session_ttl = Duration::from_secs(1)
    })
    .await;
    let d = t.sign_in().await;
    eventually(Duration::from_secs(10), "the session expires", || async {
        t.dash_get(&d.session, "/dashboard/jobs").await.status == 303
    })
    .await;
}

async fn pages_list_search_and_bulk_kill(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| set_workers(c, "snapshots", 0)).await;
    let other = t.add_eshop(77);
    let mine = [
        t.submit_snapshot("").await,
        t.submit_snapshot("").await,
        t.submit_snapshot("").await,
    ];
    let theirs = t.submit_snapshot_as(&other, "").await;
    let d = t.sign_in().await;

    let overview = text(&t.dash_get(&d.session, "/dashboard").await);
    assert!(overview.contains("snapshots"), "{overview}");
    assert!(overview.contains("Nodes alive (1)"), "{overview}");

    let all = text(&t.dash_get(&d.session, "/dashboard/jobs").await);
    for id in mine.iter().chain([&theirs]) {
        assert!(all.contains(id.as_str()), "{id} listed");
    }
    let shop1 = text(&t.dash_get(&d.session, "/dashboard/jobs?q=1").await);
    assert!(mine.iter().all(|id| shop1.contains(id.as_str())));
    assert!(!shop1.contains(theirs.as_str()), "only e-shop 1's jobs");
    let one = text(
        &t.dash_get(&d.session, &format!("/dashboard/jobs?q={}", mine[1]))
            .await,
    );
    assert!(one.contains(mine[1].as_str()) && !one.contains(mine[0].as_str()));
    let killed = text(
        &t.dash_get(&d.session, "/dashboard/jobs?status=killed")
            .await,
    );
    assert!(!killed.contains(mine[0].as_str()));
    let bad = t
        .dash_get(&d.session, "/dashboard/jobs?status=nonsense")
        .await;
    assert_eq!(bad.status, 400);

    let detail = text(
        &t.dash_get(&d.session, &format!("/dashboard/jobs/{theirs}"))
            .await,
    );
    assert!(detail.contains("/api/products/snapshot") && detail.contains("Kill this job"));
    let missing = t.dash_get(&d.session, "/dashboard/jobs/zzzzzzz").await;
    assert_eq!(missing.status, 404);

    let confirm = t
        .dash_post(
            &d.session,
            "/dashboard/jobs/kill-pending",
            &[("csrf", &d.csrf), ("eshop", "1")],
        )
        .await;
    assert_eq!(confirm.status, 200);
    let page = text(&confirm);
    assert!(
        page.contains("<strong class=\"count\">3</strong>"),
        "{page}"
    );
    for id in &mine {
        let j = t.get(&format!("/api/system/jobs/{id}")).await;
        assert_eq!(
            j.body["data"]["status"], "pending",
            "nothing done before confirming"
        );
    }
    let done = t
        .dash_post(
            &d.session,
            "/dashboard/jobs/kill-pending",
            &[("csrf", &d.csrf), ("eshop", "1"), ("confirm", "1")],
        )
        .await;
    assert_eq!(done.status, 200);
    assert!(text(&done).contains("<strong class=\"count\">3</strong>"));
    for id in &mine {
        let j = t.get(&format!("/api/system/jobs/{id}")).await;
        assert_eq!(j.body["data"]["status"], "killed");
        assert_eq!(
            t.notifications_for(id),
            1,
            "each kill records its job:finished"
        );
    }
    assert_eq!(killed_count(&t).await, Some(3.0), "each kill is counted");
    let j = t
        .get_as(&other, &format!("/api/system/jobs/{theirs}"))
        .await;
    assert_eq!(
        j.body["data"]["status"], "pending",
        "another e-shop's job is untouched"
    );
}

/// This node's count of killed snapshot jobs, as `/metrics` shows it.
async fn killed_count(t: &TestApp) -> Option<f64> {
    let text = crate::metrics::scrape(t).await;
    crate::metrics::value(
        &text,
        "jobline_jobs_finished_total{endpoint=\"/api/products/snapshot\",status=\"killed\"}",
    )
}

/// The status of the only notification of a job, as the API lists it.
async fn notification_of(t: &TestApp, job: &str) -> (String, String) {
    let a = t.get("/api/webhooks/notifications").await;
    let n = a.body["data"]["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["eventInstance"] == job)
        .cloned()
        .unwrap_or_default();
    (
        n["id"].as_str().unwrap_or("").to_string(),
        n["status"].as_str().unwrap_or("").to_string(),
    )
}

async fn webhook_actions(backend: Backend) {
    let code = Arc::new(AtomicU16::new(500));
    let (hook, hits) = receiver(code.clone());
    let t = TestApp::spawn_with(backend, |c| {
        c.allow_private_targets = true;
        c.webhook_retry_schedule = vec![Duration::from_millis(50)];
    })
    .await;
    let a = t
        .post(
            "/api/webhooks",
            json!({"data": [{"event": "job:finished", "url": hook}]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let webhook = a.body["data"]["webhooks"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = t.submit_snapshot("").await;
    t.wait_finished(&job).await;
    eventually(Duration::from_secs(20), "the delivery fails", || async {
        notification_of(&t, &job).await.1 == "failed"
    })
    .await;
    let d = t.sign_in().await;

    // The job's page lists its attempt (node, start, outcome) as the log records it.
    let api = t.get(&format!("/api/system/jobs/{job}")).await;
    let log = api.body["data"]["log"].as_str().unwrap_or_default();
    let (start, node) = log
        .lines()
        .find_map(|l| l.split_once(" attempt 1 started on "))
        .unwrap_or_else(|| panic!("the log records the attempt's start: {log}"));
    let detail = text(
        &t.dash_get(&d.session, &format!("/dashboard/jobs/{job}"))
            .await,
    );
    let row = format!("<tr><td class=\"num\">1</td><td>{node}</td><td>{start}</td>");
    assert!(detail.contains(&row), "{row} in {detail}");
    assert!(detail.contains("<td>completed</td></tr>"), "{detail}");

    let page = text(&t.dash_get(&d.session, "/dashboard/webhooks").await);
    assert!(
        page.contains("0 % of 1") && page.contains("Redeliver failed"),
        "{page}"
    );
    assert!(
        page.contains("<td class=\"error\">20"),
        "the last error, with its time: {page}"
    );

    code.store(200, Ordering::SeqCst);
    let path = format!("/dashboard/webhooks/{webhook}/redeliver-failed");
    let confirm = t.dash_post(&d.session, &path, &[("csrf", &d.csrf)]).await;
    assert!(text(&confirm).contains("<strong class=\"count\">1</strong>"));
    assert_eq!(
        notification_of(&t, &job).await.1,
        "failed",
        "not before confirming"
    );
    let done = t
        .dash_post(&d.session, &path, &[("csrf", &d.csrf), ("confirm", "1")])
        .await;
    assert!(text(&done).contains("<strong class=\"count\">1</strong>"));
    eventually(
        Duration::from_secs(20),
        "the redelivery succeeds",
        || async { notification_of(&t, &job).await.1 == "success" },
    )
    .await;

    // One notification again, from the job's page.
    let (id, _) = notification_of(&t, &job).await;
    let before = hits.load(Ordering::SeqCst);
    let again = t
        .dash_post(
            &d.session,
            &format!("/dashboard/notifications/{id}/redeliver"),
            &[("csrf", &d.csrf), ("eshop", "1"), ("back", &job)],
        )
        .await;
    assert_eq!(again.status, 303);
    assert_eq!(
        again.header("location"),
        Some(format!("/dashboard/jobs/{job}"))
    );
    eventually(Duration::from_secs(20), "one more delivery", || async {
        hits.load(Ordering::SeqCst) > before
    })
    .await;

    // 410 disables the webhook; the dashboard turns it back on.
    code.store(410, Ordering::SeqCst);
    let second = t.submit_snapshot("").await;
    t.wait_finished(&second).await;
    eventually(
        Duration::from_secs(20),
        "the webhook is disabled",
        || async {
            t.get(&format!("/api/webhooks/{webhook}")).await.body["data"]["active"] == false
        },
    )
    .await;
    let page = text(&t.dash_get(&d.session, "/dashboard/webhooks").await);
    assert!(
        page.contains("disabled") && page.contains("Re-enable"),
        "{page}"
    );
    let enable = format!("/dashboard/webhooks/{webhook}/enable");
    assert_eq!(
        t.dash_post(&d.session, &enable, &[("csrf", "no")])
            .await
            .status,
        403
    );
    assert_eq!(
        t.dash_post(&d.session, &enable, &[("csrf", &d.csrf)])
            .await
            .status,
        303
    );
    assert_eq!(
        t.get(&format!("/api/webhooks/{webhook}")).await.body["data"]["active"],
        true
    );
}

on_both_backends!(
    webhook_actions,
    every_dashboard_url_needs_a_session,
    sign_in_failures_and_cookie_flags,
    the_cookie_is_secure_behind_https,
    changes_need_the_csrf_token,
    sessions_expire,
    pages_list_search_and_bulk_kill,
);

/// Two nodes on one PostgreSQL database: a session made on one is accepted by the other,
/// both nodes are listed, and a kill on one node's dashboard shows on the other's.
#[actix_rt::test]
async fn a_postgres_cluster_shares_sessions_and_state() {
    let t = TestApp::spawn_with(Backend::Postgres, |c| set_workers(c, "snapshots", 0)).await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = format!("http://{}", listener.local_addr().unwrap());
    let mut config = crate::common::test_config(&t.db);
    config.bind = listener.local_addr().unwrap().to_string();
    set_workers(&mut config, "snapshots", 0);
    let second = jobline::run(config, listener)
        .await
        .expect("a second node starts");

    let d = t.sign_in().await;
    let on_other = |path: &str| {
        t.client
            .get(format!("{other}{path}"))
            .header("cookie", format!("jobline_session={}", d.session))
    };
    let overview = t.send(on_other("/dashboard")).await;
    assert_eq!(overview.status, 200, "the other node accepts the session");
    assert!(
        text(&overview).contains("Nodes alive (2)"),
        "{}",
        text(&overview)
    );

    let job = t.submit_snapshot("").await;
    let killed = t
        .send(
            t.client
                .post(format!("{other}/dashboard/jobs/{job}/kill"))
                .header("cookie", format!("jobline_session={}", d.session))
                .form(&[("csrf", d.csrf.as_str())]),
        )
        .await;
    assert_eq!(killed.status, 303);
    let page = text(
        &t.dash_get(&d.session, &format!("/dashboard/jobs/{job}"))
            .await,
    );
    assert!(page.contains("killed on request"), "{page}");
    second.shutdown().await;
}
