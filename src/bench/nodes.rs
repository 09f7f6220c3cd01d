//! The `jobline serve` processes a benchmark runs: the same binary as the bench, started
//! with the benchmark's settings, watched through `/proc` for peak memory and CPU time,
//! and stopped with SIGTERM.

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

/// VmHWM of a process, in kB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start with the state (field 3);
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat` times.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU time this process (the bench: client and receiver) has used, in seconds.
pub(crate) fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass; zeroed is a valid initial value.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
