//! The integration-test harness: boots the real jobline on a free port against a fresh
//! SQLite file or a fresh PostgreSQL database, and talks to it over HTTP.
#![allow(dead_code)]

pub mod browser;
pub mod node;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use jobline::config::Config;
use serde_json::Value;
use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named test function once per backend: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_rt::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[actix_rt::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// The PostgreSQL server tests create their databases on.
pub fn pg_server_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

fn random_suffix() -> String {
    jobline::model::ids::new_job_id(jobline::model::time::now())
}

/// A fresh database that is removed when dropped.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/jobline.db", dir.path().display());
                TestDb {
                    url,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("jobline_test_{}", random_suffix());
                let mut admin =
                    diesel::PgConnection::establish(&format!("{}/postgres", pg_server_url()))
                        .expect(
                            "PostgreSQL must run for the postgres tests (set TEST_POSTGRES_URL)",
                        );
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create test database");
                TestDb {
                    url: format!("{}/{name}", pg_server_url()),
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// A direct connection, for arranging data and checking invariants.
    pub fn connect(&self) -> jobline::db::DbConnection {
        jobline::db::Backend::from_url(&self.url)
            .unwrap()
            .establish()
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            if let Ok(mut admin) =
                diesel::PgConnection::establish(&format!("{}/postgres", pg_server_url()))
            {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// Sets how many workers a queue has on this node (0: the node runs none of its jobs).
pub fn set_workers(c: &mut Config, queue: &str, workers: usize) {
    c.queues.entry(queue.to_string()).or_default().workers = Some(workers);
}

/// The configuration tests start from: the contract's defaults on a fresh database.
pub fn test_config(db: &TestDb) -> Config {
    Config {
        database_url: db.url.clone(),
        ..Config::default()
    }
}

/// A running jobline and a client for it.
pub struct TestApp {
    pub app: Option<jobline::App>,
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
    pub db: TestDb,
}

/// An answer: status, headers and JSON body (Null when the body is not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The first error code of the envelope.
    pub fn error_code(&self) -> &str {
        self.body["errors"][0]["errorCode"].as_str().unwrap_or("")
    }

    pub fn error_instance(&self) -> &str {
        self.body["errors"][0]["instance"].as_str().unwrap_or("")
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tune: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb::new(backend);
        let mut config = test_config(&db);
        tune(&mut config);
        TestApp::boot(db, config).await
    }

    /// Boots on an existing database (a restart).
    pub async fn boot(db: TestDb, mut config: Config) -> TestApp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        config.bind = addr.to_string();
        config.database_url = db.url.clone();
        let app = jobline::run(config, listener)
            .await
            .expect("jobline starts");
        let token = match &app.demo_token {
            Some(t) => t.clone(),
            None => {
                let mut conn = db.connect();
                jobline::db::eshops::issue_token(&mut conn, 1).unwrap()
            }
        };
        TestApp {
            app: Some(app),
            base: format!("http://{addr}"),
            token,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            db,
        }
    }

    /// Shuts the app down gracefully and hands back its database (for a restart).
    pub async fn stop(mut self) -> TestDb {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
        let TestApp { db, .. } = self;
        db
    }

    pub fn breakpoints(&self) -> std::sync::Arc<jobline::jobs::Breakpoints> {
        self.app.as_ref().unwrap().breakpoints.clone()
    }

    /// Creates another e-shop and answers its token.
    pub fn add_eshop(&self, id: i64) -> String {
        let mut conn = self.db.connect();
        jobline::db::eshops::create(&mut conn, id, &format!("shop {id}")).unwrap()
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap().to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            bytes,
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn get_as(&self, token: &str, path: &str) -> Answer {
        self.send(self.client.get(self.url(path)).bearer_auth(token))
            .await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.get_as(&self.token, path).await
    }

    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> Answer {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.post_as(&self.token, path, body).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(
            self.client
                .patch(self.url(path))
                .bearer_auth(&self.token)
                .json(&body),
        )
        .await
    }

    pub async fn delete_as(&self, token: &str, path: &str) -> Answer {
        self.send(self.client.delete(self.url(path)).bearer_auth(token))
            .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.delete_as(&self.token, path).await
    }

    /// Creates a product and answers it.
    pub async fn create_product(&self, code: &str, visibility: &str) -> Value {
        let a = self
            .post(
                "/api/products",
                serde_json::json!({"data": {"code": code, "name": format!("Product {code}"), "visibility": visibility}}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body["data"].clone()
    }

    /// Submits a snapshot and answers the job id.
    pub async fn submit_snapshot(&self, query: &str) -> String {
        self.submit_snapshot_as(&self.token, query).await
    }

    /// Submits a snapshot as the e-shop of `token` and answers the job id.
    pub async fn submit_snapshot_as(&self, token: &str, query: &str) -> String {
        let a = self
            .get_as(token, &format!("/api/products/snapshot{query}"))
            .await;
        assert_eq!(a.status, 202, "{}", a.body);
        a.body["data"]["jobId"].as_str().unwrap().to_string()
    }

    /// Waits (through `?wait`) until a job has finished; answers its detail.
    pub async fn wait_finished(&self, job_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let a = self
                .get(&format!("/api/system/jobs/{job_id}?wait=10"))
                .await;
            assert_eq!(a.status, 200, "{}", a.body);
            let status = a.body["data"]["status"].as_str().unwrap().to_string();
            if !matches!(status.as_str(), "pending" | "running") {
                return a.body["data"].clone();
            }
            assert!(Instant::now() < deadline, "job {job_id} did not finish");
        }
    }

    /// How many `job:finished` notifications exist for a job.
    pub fn notifications_for(&self, job_id: &str) -> i64 {
        let mut conn = self.db.connect();
        jobline::db::notifications::count_for_instance(&mut conn, job_id).unwrap()
    }
}

/// A minimal HTTP/1.1 server on loopback that answers 200 to every request and reports
/// each request line: a webhook receiver for a separate process, or a stand-in for an HTTP
/// proxy (a proxied request line names the whole target URL).
pub struct RecordingServer {
    pub url: String,
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl RecordingServer {
    pub fn start() -> RecordingServer {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let mut reader = BufReader::new(conn);
                let (mut first, mut length) = (String::new(), 0);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if first.is_empty() {
                        first = line.trim_end().to_string();
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let _ = tx.send(first);
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        RecordingServer { url, lines }
    }
}

/// Polls `check` until it answers true, failing after `limit`: for conditions that no
/// event announces (a time passing, a row appearing).
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `s` has the contract's time shape `YYYY-MM-DDTHH:MM:SS+HHMM`.
pub fn is_api_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (b[19] == b'+' || b[19] == b'-')
        && b.iter()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19].contains(&i) || c.is_ascii_digit())
}
