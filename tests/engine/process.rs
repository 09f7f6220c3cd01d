//! The real binary: command line, configuration errors, a database that is down, SIGTERM,
//! and a crash (kill -9) that loses no accepted job.

use crate::common::node::{Node, BIN};
use crate::common::{pg_server_url, Backend, RecordingServer, TestDb};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn jobline(db_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("JOBLINE_DATABASE_URL", db_url)
        .env_remove("JOBLINE_CONFIG")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap()
}

async fn json(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Registers the `job:finished` webhook of the node's demo e-shop.
async fn register_webhook(client: &reqwest::Client, node: &Node, token: &str, url: &str) {
    let (status, body) = json(
        client
            .post(node.url("/api/webhooks"))
            .bearer_auth(token)
            .json(&serde_json::json!({"data": [{"event": "job:finished", "url": url}]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// Submits a snapshot; answers its job id.
async fn submit_snapshot(client: &reqwest::Client, node: &Node, token: &str) -> String {
    let (status, body) = json(
        client
            .get(node.url("/api/products/snapshot"))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    body["data"]["jobId"].as_str().unwrap().to_string()
}

#[test]
fn eshop_commands() {
    let db = TestDb::new(Backend::Sqlite);
    let out = jobline(&db.url, &["eshop", "add", "222651", "--name", "Shop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap().to_string();
    assert!(token.starts_with("jl_"), "{stdout}");
    // The signing key is printed too, and it is the one that signs deliveries.
    let now = jobline::model::time::now();
    let key = jobline::db::signature_keys::current(&mut db.connect(), 222651, now).unwrap();
    assert!(key.starts_with("whsec_"), "{key}");
    assert!(stdout.lines().any(|l| l == key), "{stdout}");

    let again = jobline(&db.url, &["eshop", "add", "222651"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let more = jobline(&db.url, &["eshop", "token", "222651"]);
    assert!(more.status.success());
    let second = String::from_utf8(more.stdout).unwrap();
    let second = second.lines().last().unwrap();
    assert!(second.starts_with("jl_") && second != token);
    assert_eq!(
        jobline(&db.url, &["eshop", "token", "9"]).status.code(),
        Some(1)
    );

    let help = String::from_utf8(jobline(&db.url, &["--help"]).stdout).unwrap();
    for part in [
        "JOBLINE_CONFIG",
        "jobline.toml",
        "JOBLINE_K",
        "docs/configuration.md",
    ] {
        assert!(help.contains(part), "{part} in {help}");
    }

    let list = jobline(&db.url, &["eshop", "list"]);
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(listed.contains("222651\tShop"), "{listed}");
    assert!(!listed.contains(&token));
}

#[test]
fn operator_commands() {
    let db = TestDb::new(Backend::Sqlite);
    let out = jobline(&db.url, &["operator", "add", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap().to_string();
    assert!(token.starts_with("jlop_"), "{stdout}");
    let again = jobline(&db.url, &["operator", "add", "alice"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let list = String::from_utf8(jobline(&db.url, &["operator", "list"]).stdout).unwrap();
    assert!(list.starts_with("alice\t"), "{list}");
    assert!(!list.contains(&token));

    let mut conn = db.connect();
    let hash = jobline::model::ids::token_hash(&token);
    let now = jobline::model::time::now();
    jobline::db::operators::sign_in(&mut conn, &hash, "s1", "c1", now, now + 1_000_000_000)
        .expect("the printed token signs in");

    assert!(jobline(&db.url, &["operator", "remove", "alice"])
        .status
        .success());
    assert_eq!(
        jobline(&db.url, &["operator", "remove", "alice"])
            .status
            .code(),
        Some(1)
    );
    let session =
        jobline::db::operators::session(&mut conn, &jobline::model::ids::token_hash("s1"), now);
    assert!(session.is_err(), "removing an operator ends its sessions");
    let list = String::from_utf8(jobline(&db.url, &["operator", "list"]).stdout).unwrap();
    assert!(list.is_empty(), "{list}");
}

#[test]
fn invalid_configuration_names_the_key() {
    let db = TestDb::new(Backend::Sqlite);
    let out = Command::new(BIN)
        .args(["migrate"])
        .env("JOBLINE_DATABASE_URL", &db.url)
        .env("JOBLINE_DB_POOL_SIZE", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("db_pool_size"));
    let out = Command::new(BIN)
        .args(["migrate"])
        .env("JOBLINE_DATABASE_URL", &db.url)
        .env("JOBLINE_RESULT_TTL", "1 week")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("result_ttl"));
    // An impossible pool is a configuration error too.
    let out = Command::new(BIN)
        .args(["serve"])
        .env("JOBLINE_DATABASE_URL", &db.url)
        .env("JOBLINE_QUEUES__SNAPSHOTS__MIN_WORKERS", "9")
        .env("JOBLINE_QUEUES__SNAPSHOTS__MAX_WORKERS", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`queues.snapshots.min_workers` (9)"), "{err}");
}

#[test]
fn postgres_that_is_down_reports_its_real_error() {
    let out = jobline("postgres://postgres@127.0.0.1:1/jobline", &["migrate"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(!err.contains("Invalid connection url"), "{err}");
}

#[test]
fn migrate_works_on_both_backends() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let db = TestDb::new(backend);
        for _ in 0..2 {
            let out = jobline(&db.url, &["migrate"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert!(!pg_server_url().is_empty());
}

#[test]
fn a_second_process_on_one_sqlite_file_is_refused() {
    let db = TestDb::new(Backend::Sqlite);
    let _first = Node::start(&db.url, true, &[]);
    let second = Command::new(BIN)
        .arg("serve")
        .env("JOBLINE_DATABASE_URL", &db.url)
        .env("JOBLINE_BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another jobline process"));
}

async fn crash_loses_no_accepted_job(backend: Backend) {
    let db = TestDb::new(backend);
    let client = reqwest::Client::new();
    let mut accepted = Vec::new();
    let token;
    {
        // No workers: every accepted job is still pending when the process dies.
        let node = Node::start(
            &db.url,
            true,
            &[("JOBLINE_QUEUES__SNAPSHOTS__WORKERS", "0")],
        );
        token = node
            .token
            .clone()
            .expect("the first start prints the demo token");
        for _ in 0..40 {
            accepted.push(submit_snapshot(&client, &node, &token).await);
        }
        node.signal("-KILL");
    }
    let node = Node::start(&db.url, false, &[]);
    for id in &accepted {
        let (status, body) = json(
            client
                .get(node.url(&format!("/api/system/jobs/{id}?wait=30")))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["data"]["status"], "completed", "{body}");
    }
    let mut conn = db.connect();
    for id in &accepted {
        assert_eq!(
            jobline::db::notifications::count_for_instance(&mut conn, id).unwrap(),
            1
        );
    }
}

async fn sigterm_exits_cleanly(backend: Backend) {
    let db = TestDb::new(backend);
    let client = reqwest::Client::new();
    let mut node = Node::start(&db.url, true, &[]);
    let token = node.token.clone().unwrap();
    submit_snapshot(&client, &node, &token).await;
    node.signal("-TERM");
    let exit = node.wait_exit(Duration::from_secs(30));
    assert_eq!(exit.code(), Some(0));
    let mut conn = db.connect();
    use diesel::prelude::*;
    use jobline::db::schema::jobs::dsl;
    let running: i64 = dsl::jobs
        .filter(dsl::status.eq("running"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(running, 0, "no job is left running after a clean exit");
}

/// One access log line per request with its id, e-shop, route, status and duration; no
/// token, signing key or result secret anywhere in the output but the token's own line.
async fn the_log_names_each_request_and_no_secret(backend: Backend) {
    let db = TestDb::new(backend);
    let client = reqwest::Client::new();
    let mut node = Node::start(&db.url, true, &[]);
    let token = node.token.clone().unwrap();
    let submit = client
        .get(node.url("/api/products/snapshot"))
        .header("Shoptet-Private-API-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(submit.status(), 202);
    let request_id = submit.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let job_id = submit.json::<Value>().await.unwrap()["data"]["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, job) = json(
        client
            .get(node.url(&format!("/api/system/jobs/{job_id}?wait=30")))
            .bearer_auth(&token),
    )
    .await;
    let result_url = job["data"]["resultUrl"].as_str().unwrap().to_string();
    let secret = result_url
        .rsplit('-')
        .next()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    // public_url names port 0 here: fetch the same path from the node.
    let result_path = &result_url[result_url.find("/api-results/").unwrap()..];
    let download = client.get(node.url(result_path)).send().await.unwrap();
    assert_eq!(download.status(), 200);
    let (_, key) = json(
        client
            .get(node.url("/api/webhooks/signature-key"))
            .bearer_auth(&token),
    )
    .await;
    let key = key["data"]["signatureKey"].as_str().unwrap().to_string();
    let (status, _) = json(
        client
            .get(node.url("/api/webhooks"))
            .bearer_auth("jl_wrong"),
    )
    .await;
    assert_eq!(status, 401);
    node.signal("-TERM");
    assert_eq!(node.wait_exit(Duration::from_secs(30)).code(), Some(0));

    let output = node.output();
    let log = output.join("\n");
    assert!(
        output.iter().any(|l| l.contains("no configuration file")),
        "{log}"
    );
    let line = output
        .iter()
        .find(|l| l.contains(&format!("request={request_id}")))
        .unwrap_or_else(|| panic!("no access line for {request_id}: {log}"));
    for part in [
        "eshop=1",
        "GET /api/products/snapshot",
        "status=202",
        "duration_ms=",
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }
    assert!(log.contains("GET /api-results/{file} status=200"), "{log}");
    assert!(
        log.contains("eshop=- GET /api/webhooks status=401"),
        "{log}"
    );
    let token_lines = output.iter().filter(|l| l.contains(&token)).count();
    assert_eq!(
        token_lines, 1,
        "the token only on its own stdout line: {log}"
    );
    assert!(!log.contains(&secret), "{log}");
    assert!(!log.contains(&key), "{log}");
}

async fn proxy_variables_of_the_environment_are_ignored(backend: Backend) {
    let db = TestDb::new(backend);
    let proxy = RecordingServer::start();
    let receiver = RecordingServer::start();
    let mut env: Vec<(&str, &str)> = [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .map(|k| (*k, proxy.url.as_str()))
    .collect();
    env.extend([
        ("NO_PROXY", ""),
        ("no_proxy", ""),
        ("JOBLINE_ALLOW_PRIVATE_TARGETS", "true"),
    ]);
    let node = Node::start(&db.url, true, &env);
    let token = node.token.clone().unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    register_webhook(&client, &node, &token, &format!("{}/hook", receiver.url)).await;
    submit_snapshot(&client, &node, &token).await;
    let line = receiver
        .lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the job:finished delivery reached the receiver directly");
    assert_eq!(line, "POST /hook HTTP/1.1");
    assert!(
        proxy.lines.try_recv().is_err(),
        "a delivery went through HTTP_PROXY"
    );
}

/// A single SQLite node killed while its webhook deliveries hang: the notifications it had
/// claimed (at their birth or by a claim) are delivered as soon as a new process starts,
/// not when the claims run out (90 s with the default `webhook_timeout`).
#[actix_rt::test]
async fn a_restarted_sqlite_node_delivers_what_its_predecessor_held() {
    use diesel::prelude::*;
    use jobline::db::schema::{notifications, webhooks};
    // Takes every connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/hook", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().collect();
        drop(held);
    });
    let receiver = RecordingServer::start();
    let db = TestDb::new(Backend::Sqlite);
    let private = [("JOBLINE_ALLOW_PRIVATE_TARGETS", "true")];
    let node = Node::start(&db.url, true, &private);
    let token = node.token.clone().unwrap();
    let client = reqwest::Client::new();
    register_webhook(&client, &node, &token, &silent_url).await;
    for _ in 0..5 {
        submit_snapshot(&client, &node, &token).await;
    }
    let claimed = |conn: &mut jobline::db::DbConnection| -> i64 {
        notifications::table
            .filter(notifications::claimed_by.is_not_null())
            .count()
            .get_result(conn)
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while claimed(&mut db.connect()) < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "five claimed deliveries"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.signal("-KILL");
    drop(node);
    let hook = format!("{}/hook", receiver.url);
    diesel::update(webhooks::table)
        .set(webhooks::url.eq(&hook))
        .execute(&mut db.connect())
        .unwrap();
    let node = Node::start(&db.url, false, &private);
    for n in 0..5 {
        let line = receiver
            .lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("delivery {n} after the restart"));
        assert_eq!(line, "POST /hook HTTP/1.1");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while claimed(&mut db.connect()) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "every delivery recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(node);
}

crate::on_both_backends!(
    crash_loses_no_accepted_job,
    sigterm_exits_cleanly,
    the_log_names_each_request_and_no_secret,
    proxy_variables_of_the_environment_are_ignored,
);
