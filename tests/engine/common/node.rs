//! A real `jobline serve` process, for tests that kill, signal or multiply nodes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_jobline");

/// A `jobline serve` process.
pub struct Node {
    pub child: Child,
    pub addr: String,
    pub token: Option<String>,
    /// Lines (stdout or stderr) not read yet.
    lines: mpsc::Receiver<(bool, String)>,
    /// Lines read so far.
    seen: Vec<String>,
}

impl Node {
    /// The process id (part of its lease owner name).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn start(db_url: &str, expect_token: bool, env: &[(&str, &str)]) -> Node {
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
        let mut seen = Vec::new();
        // stdout (the token) and stderr (the log) arrive on two threads: wait for both.
        while addr.is_none() || (expect_token && token.is_none()) {
            let (is_stdout, line) = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("jobline serve printed where it listens");
            seen.push(line.clone());
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
            lines: rx,
            seen,
        }
    }

    /// Everything the process printed so far (stdout and stderr), in arrival order.
    pub fn output(&mut self) -> Vec<String> {
        while let Ok((_, line)) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
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
