//! The `jobline serve` processes a benchmark runs: the same binary as the bench, started
//! with the benchmark's settings, watched through `/proc` for peak memory and CPU time,
//! and stopped with SIGTERM.

use super::procfs::{cpu_seconds, peak_rss_kb};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a node may take to start listening or to exit after SIGTERM.
const PATIENCE: Duration = Duration::from_secs(60);

/// One running `jobline serve`.
pub(crate) struct ServeNode {
    child: Child,
    /// `http://host:port` of its API.
    pub(crate) base: String,
}

/// What a node used, read from `/proc` before it exits.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    /// Peak resident memory (VmHWM), in MB.
    pub(crate) peak_rss_mb: f64,
    /// User + system CPU time, in seconds.
    pub(crate) cpu_s: f64,
}

impl ServeNode {
    /// Starts `jobline serve` with `env` (on top of the bench's own environment, so the
    /// user's `JOBLINE_*` pass through) and waits until it says where it listens. Its log
    /// goes on to the bench's stderr, prefixed with `[node <index>]`.
    pub(crate) fn start(index: usize, env: &[(String, String)]) -> Result<ServeNode, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find jobline: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start jobline serve: {e}"))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut listening = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match line.split("listening on http://").nth(1) {
                    Some(addr) if listening.is_some() => {
                        let tx = listening.take().expect("checked");
                        let _ = tx.send(addr.trim().to_string());
                    }
                    // Its start and stop notes are not news; warnings and errors are.
                    _ if line.contains(" INFO ") => {}
                    _ => eprintln!("[node {index}] {line}"),
                }
            }
        });
        let mut node = ServeNode {
            child,
            base: String::new(),
        };
        match rx.recv_timeout(PATIENCE) {
            Ok(addr) => {
                node.base = format!("http://{addr}");
                Ok(node)
            }
            Err(_) => Err(format!(
                "jobline serve (node {index}) did not start listening; see its log above"
            )),
        }
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Peak memory and CPU time so far.
    pub(crate) fn usage(&self) -> Usage {
        let pid = self.child.id();
        Usage {
            peak_rss_mb: peak_rss_kb(pid).unwrap_or(0) as f64 / 1024.0,
            cpu_s: cpu_seconds(pid).unwrap_or(0.0),
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after [`PATIENCE`]); answers whether the
    /// process exited with status 0, as a node that stops in order does.
    pub(crate) fn stop(mut self) -> bool {
        // SAFETY: kill(2) on the pid of our own child, which we have not reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => return false,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for ServeNode {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
