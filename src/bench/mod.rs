//! `jobline bench`: the end-to-end benchmark. It starts real `jobline serve` processes of
//! this binary on a fresh database, creates e-shops with a `job:finished` webhook pointing
//! at a receiver inside the bench, submits snapshot requests over HTTP, waits for every
//! signed webhook and for every job to read `completed`, and prints one JSON line.
//!
//! One file per part: [`database`] (the fresh database and the final check), [`nodes`]
//! (the server processes), [`procfs`] (what `/proc` tells of them, of the bench and of a
//! PostgreSQL server on this machine), [`receiver`] (the webhook receiver), [`load`] (the
//! load generator), [`writers`] (the servers' database writers, from their `/metrics`) and
//! [`report`] (the JSON line).

pub(crate) mod database;
mod load;
mod nodes;
mod procfs;
mod receiver;
mod report;
pub(crate) mod writers;

use clap::Args;
use database::BenchDatabase;
use nodes::ServeNode;
use procfs::PostgresCpu;
use receiver::Receiver;
use report::{round, Errors, Latency, Report};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Options of `jobline bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Snapshot jobs to submit.
    #[arg(long, default_value_t = 20_000)]
    pub jobs: usize,
    /// Requests in flight, each on its own keep-alive connection.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Offer this many submits per second instead of as many as `--concurrency` allows,
    /// and report the latency at that load (at most 1 024 requests in flight; a submit
    /// that waits for one counts the wait in its latency).
    #[arg(long)]
    pub rate: Option<f64>,
    /// E-shops the jobs are spread over, each with its own token and webhook.
    #[arg(long, default_value_t = 8)]
    pub eshops: usize,
    /// `jobline serve` processes (PostgreSQL only for more than one); submits are spread
    /// over them.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// A PostgreSQL server (`postgres://user@host:port`): the bench creates a fresh
    /// database on it and drops it afterwards. Without it: a SQLite file in a temporary
    /// directory.
    #[arg(long)]
    pub database_url: Option<String>,
    /// A server setting, `key=value` as in the configuration file (`queues.snapshots.workers=32`);
    /// repeatable. `JOBLINE_*` variables in the environment pass through as well.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Give up waiting for the webhooks after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Measure the accept path alone: the snapshot workers are off
    /// (`queues.snapshots.workers=0`), no webhook is registered or awaited, and the
    /// latency is a submit's request to its 202; errors are answers other than 202 and
    /// accepted jobs missing from the database.
    #[arg(long)]
    pub submit_only: bool,
}

/// Server settings the bench needs unless the environment or `--set` says otherwise: no
/// rate limit, webhooks to the local receiver, and a per-e-shop cap that does not limit.
const SERVER_DEFAULTS: [(&str, &str); 3] = [
    ("JOBLINE_RATE_LIMIT_CAPACITY", "0"),
    ("JOBLINE_ALLOW_PRIVATE_TARGETS", "true"),
    ("JOBLINE_MAX_RUNNING_PER_ESHOP", "100000"),
];

/// Runs the benchmark and prints its JSON line; fails when it cannot run or when it
/// counted errors.
pub fn main(args: BenchArgs) -> Result<(), String> {
    if args.jobs == 0 || args.eshops == 0 || args.nodes == 0 || args.concurrency == 0 {
        return Err("--jobs, --eshops, --nodes and --concurrency must be at least 1".into());
    }
    if args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err("--rate must be a positive number of submits per second".into());
    }
    if args.nodes > 1 && args.database_url.is_none() {
        return Err("--nodes above 1 needs --database-url (SQLite serves one node)".into());
    }
    let db = BenchDatabase::create(args.database_url.as_deref())?;
    let report = actix_web::rt::System::new().block_on(run(&args, &db))?;
    drop(db);
    println!(
        "{}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    match report.errors {
        0 => Ok(()),
        n => Err(format!("the benchmark counted {n} errors")),
    }
}

/// The environment of every server process.
fn server_env(args: &BenchArgs, db: &BenchDatabase) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = SERVER_DEFAULTS
        .iter()
        .filter(|(k, _)| std::env::var_os(k).is_none())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for pair in &args.set {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--set {pair}: expected key=value"))?;
        let name = format!("JOBLINE_{}", key.trim().replace('.', "__").to_uppercase());
        env.push((name, value.to_string()));
    }
    if args.submit_only {
        env.push(("JOBLINE_QUEUES__SNAPSHOTS__WORKERS".into(), "0".into()));
    }
    env.push(("JOBLINE_DATABASE_URL".into(), db.url.clone()));
    env.push(("JOBLINE_BIND".into(), "127.0.0.1:0".into()));
    // The bench reads where a node listens from its log.
    let log = match std::env::var("RUST_LOG") {
        Ok(user) if !user.is_empty() => format!("{user},jobline::cli=info"),
        _ => "warn,jobline::cli=info".into(),
    };
    env.push(("RUST_LOG".into(), log));
    Ok(env)
}

/// Creates e-shops 1..=n with `jobline eshop add` on the bench database; answers their tokens.
fn create_eshops(n: usize, db: &BenchDatabase) -> Result<Vec<String>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    (1..=n)
        .map(|id| {
            let out = std::process::Command::new(&exe)
                .args(["eshop", "add", &id.to_string(), "--name", "bench"])
                .env("JOBLINE_DATABASE_URL", &db.url)
                .output()
                .map_err(|e| format!("cannot run jobline eshop add: {e}"))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            match stdout.lines().last() {
                Some(token) if out.status.success() => Ok(token.trim().to_string()),
                _ => Err(format!(
                    "jobline eshop add {id} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )),
            }
        })
        .collect()
}

/// Sends a set-up request and answers the envelope's `data`.
async fn request(req: reqwest::RequestBuilder, url: &str) -> Result<Value, String> {
    let res = req.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = res.status();
    let body: Value = res.json().await.map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url} answered {status}: {body}"));
    }
    Ok(body["data"].clone())
}

/// Submits `--jobs` snapshot requests, in a closed or an open loop.
async fn submit_all(
    args: &BenchArgs,
    client: &reqwest::Client,
    bases: &[String],
    tokens: &[String],
) -> Result<load::Submitted, String> {
    let plan = load::Plan::new(bases, tokens)?;
    Ok(match args.rate {
        None => load::closed_loop(client, &plan, args.jobs, args.concurrency).await,
        Some(rate) => {
            load::open_loop(
                client,
                Rc::new(plan),
                args.jobs,
                rate,
                load::OPEN_LOOP_IN_FLIGHT,
            )
            .await
        }
    })
}

/// The report of `--submit-only`: the 202 rate and each submit's request-to-202 latency;
/// every accepted job must be in the database.
fn submit_only_report(
    args: &BenchArgs,
    db: &BenchDatabase,
    mut servers: Vec<ServeNode>,
    submitted: load::Submitted,
    database_cpu: PostgresCpu,
    writers: BTreeMap<String, writers::WriterLoad>,
) -> Result<Report, String> {
    if !servers.iter_mut().all(ServeNode::alive) {
        return Err("a jobline serve process exited during the run".into());
    }
    let outcome = db.outcome()?;
    let usage: Vec<nodes::Usage> = servers.iter().map(ServeNode::usage).collect();
    let database_cpu_s = database_cpu.used();
    let bad_exits = servers
        .into_iter()
        .map(ServeNode::stop)
        .filter(|clean| !clean)
        .count();
    let accepted = submitted.accepted.len();
    let errors = Errors {
        non_202: submitted.rejected,
        jobs_not_completed: accepted.saturating_sub(outcome.jobs as usize),
        bad_exits,
        ..Errors::default()
    };
    let latencies = submitted
        .accepted
        .iter()
        .map(|job| job.answered.duration_since(job.sent).as_secs_f64() * 1000.0)
        .collect();
    let secs = submitted.last.duration_since(submitted.first).as_secs_f64();
    Ok(Report {
        submit_rate: round(
            if secs > 0.0 {
                accepted as f64 / secs
            } else {
                0.0
            },
            1,
        ),
        latency_ms: Latency::of(latencies),
        wall_s: round(secs, 3),
        ..report(args, db, &usage, database_cpu_s, writers, errors)?
    })
}

async fn run(args: &BenchArgs, db: &BenchDatabase) -> Result<Report, String> {
    let tokens = create_eshops(args.eshops, db)?;
    let env = server_env(args, db)?;
    let mut servers = Vec::with_capacity(args.nodes);
    for index in 0..args.nodes {
        servers.push(ServeNode::start(index, &env)?);
    }
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    // Every connection a loop may have open stays for the next request.
    let connections = match args.rate {
        None => args.concurrency,
        Some(_) => load::OPEN_LOOP_IN_FLIGHT,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;

    if args.submit_only {
        let database_cpu = PostgresCpu::start(db.backend == "postgres");
        let before = writers::Snapshot::take(&client, &bases).await?;
        let submitted = submit_all(args, &client, &bases, &tokens).await?;
        let after = writers::Snapshot::take(&client, &bases).await?;
        let load = writers::load(&before, &after);
        return submit_only_report(args, db, servers, submitted, database_cpu, load);
    }

    // Each e-shop's signing key, so the receiver can verify every delivery.
    let mut keys = HashMap::new();
    for (i, token) in tokens.iter().enumerate() {
        let url = format!("{}/api/webhooks/signature-key", bases[0]);
        let data = request(client.get(&url).bearer_auth(token), &url).await?;
        let key = data["signatureKey"]
            .as_str()
            .ok_or("GET /api/webhooks/signature-key answered no key")?;
        keys.insert(i as i64 + 1, key.to_string());
    }
    let receiver = Receiver::start(keys)?;
    for (i, token) in tokens.iter().enumerate() {
        let url = format!("{}/api/webhooks", bases[0]);
        let hook = json!({"data": [{"event": "job:finished", "url": receiver.url(i as i64 + 1)}]});
        request(client.post(&url).bearer_auth(token).json(&hook), &url).await?;
    }

    let database_cpu = PostgresCpu::start(db.backend == "postgres");
    let before = writers::Snapshot::take(&client, &bases).await?;
    let submitted = submit_all(args, &client, &bases, &tokens).await?;
    // Every accepted job's webhook, then every notification recorded as delivered.
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    while receiver.distinct() < submitted.accepted.len() && Instant::now() < deadline {
        if !servers.iter_mut().all(ServeNode::alive) {
            return Err("a jobline serve process exited during the run".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let settle = Instant::now() + Duration::from_secs(30);
    let mut outcome = db.outcome()?;
    while (outcome.unsettled_notifications > 0 || outcome.completed < outcome.jobs)
        && Instant::now() < settle
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        outcome = db.outcome()?;
    }
    let after = writers::Snapshot::take(&client, &bases).await?;
    let usage: Vec<nodes::Usage> = servers.iter().map(ServeNode::usage).collect();
    let database_cpu_s = database_cpu.used();
    let bad_exits = servers
        .into_iter()
        .map(ServeNode::stop)
        .filter(|clean| !clean)
        .count();
    let received = receiver.finish().await;

    let mut latencies = Vec::with_capacity(submitted.accepted.len());
    let mut last_webhook = submitted.first;
    let mut missing = 0;
    for job in &submitted.accepted {
        match received.arrivals.get(&job.id) {
            Some(at) => {
                latencies.push(at.duration_since(job.sent).as_secs_f64() * 1000.0);
                last_webhook = last_webhook.max(*at);
            }
            None => missing += 1,
        }
    }
    let accepted = submitted.accepted.len();
    let errors = Errors {
        non_202: submitted.rejected,
        bad_signatures: received.bad,
        missing_webhooks: missing,
        duplicate_webhooks: received.duplicates + outcome.retried_notifications as usize,
        jobs_not_completed: (outcome.jobs - outcome.completed).max(0) as usize
            + accepted.saturating_sub(outcome.jobs as usize),
        bad_exits,
    };
    let per_second = |n: usize, until: Instant| {
        let secs = until.duration_since(submitted.first).as_secs_f64();
        round(if secs > 0.0 { n as f64 / secs } else { 0.0 }, 1)
    };
    Ok(Report {
        submit_rate: per_second(accepted, submitted.last),
        e2e_rate: Some(per_second(latencies.len(), last_webhook)),
        latency_ms: Latency::of(latencies),
        latency_steps_ms: Some(db.steps()?),
        wall_s: round(
            last_webhook.duration_since(submitted.first).as_secs_f64(),
            3,
        ),
        ..report(
            args,
            db,
            &usage,
            database_cpu_s,
            writers::load(&before, &after),
            errors,
        )?
    })
}

/// The fields of a report both modes fill alike; the rates, latency and wall time are
/// left at zero for the caller.
fn report(
    args: &BenchArgs,
    db: &BenchDatabase,
    usage: &[nodes::Usage],
    database_cpu_s: Option<f64>,
    writers: BTreeMap<String, writers::WriterLoad>,
    errors: Errors,
) -> Result<Report, String> {
    Ok(Report {
        backend: db.backend,
        nodes: args.nodes,
        eshops: args.eshops,
        jobs: args.jobs,
        concurrency: args.rate.is_none().then_some(args.concurrency),
        offered_rate: args.rate,
        submit_only: args.submit_only,
        submit_rate: 0.0,
        e2e_rate: None,
        latency_ms: Latency::default(),
        latency_steps_ms: None,
        server_peak_rss_mb: round(usage.iter().map(|u| u.peak_rss_mb).fold(0.0, f64::max), 1),
        server_cpu_s: round(usage.iter().map(|u| u.cpu_s).sum(), 2),
        bench_cpu_s: round(procfs::own_cpu_seconds(), 2),
        database_cpu_s: database_cpu_s.map(|s| round(s, 2)),
        database_tls: db.encrypted()?,
        writers,
        wall_s: 0.0,
        errors: errors.total(),
        error_detail: errors,
    })
}
