//! The real binary: command line, configuration errors, a database that is down, SIGTERM,
//! and a crash (kill -9) that loses no accepted job.

use crate::common::{pg_server_url, Backend, TestDb};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_jobline");

fn jobline(db_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("JOBLINE_DATABASE_URL", db_url)
        .env_remove("JOBLINE_CONFIG")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap()
}

/// A `jobline serve` process.
struct Node {
    child: Child,
    addr: String,
    token: Option<String>,
    _lines: mpsc::Receiver<(bool, String)>,
}

impl Node {
    fn start(db_url: &str, expect_token: bool, env: &[(&str, &str)]) -> Node {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .env("JOBLINE_DATABASE_URL", db_url)
            .env("JOBLINE_BIND", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .env_remove("JOBLINE_CONFIG")
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let (tx, rx) = mpsc::channel();
        for (is_stdout, stream) in [
            (
                true,
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            ),
            (false, Box::new(child.stderr.take().unwrap())),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send((is_stdout, line));
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut token, mut addr) = (None, None);
        let mut token_next = false;
        // stdout (the token) and stderr (the log) arrive on two threads: wait for both.
        while addr.is_none() || (expect_token && token.is_none()) {
            let (is_stdout, line) = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("jobline serve printed where it listens");
            if token_next && is_stdout {
                token = Some(line.trim().to_string());
                token_next = false;
            }
            if is_stdout && line.contains("demo e-shop 1") {
                token_next = true;
            }
            if let Some(rest) = line.split("listening on http://").nth(1) {
                addr = Some(rest.trim().to_string());
            }
        }
        Node {
            child,
            addr: addr.unwrap(),
            token,
            _lines: rx,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "jobline did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn json(req: reqwest::RequestBuilder) -> (u16, Value) {
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
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

    let list = jobline(&db.url, &["eshop", "list"]);
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(listed.contains("222651\tShop"), "{listed}");
    assert!(!listed.contains(&token));
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
            let (status, body) = json(
                client
                    .get(node.url("/api/products/snapshot"))
                    .bearer_auth(&token),
            )
            .await;
            assert_eq!(status, 202);
            accepted.push(body["data"]["jobId"].as_str().unwrap().to_string());
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
    let (status, _) = json(
        client
            .get(node.url("/api/products/snapshot"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 202);
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

crate::on_both_backends!(crash_loses_no_accepted_job, sigterm_exits_cleanly);
