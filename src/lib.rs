//! jobline: the asynchronous requests of an e-shop platform's REST API. A request is
//! validated, committed as a job and answered 202 at once; worker pools run the job; the
//! result is downloadable for a while; a signed `job:finished` webhook tells the e-shop.
//!
//! [`run`] boots the whole service on a listener: the binary calls it, and so do the
//! integration tests (on port 0).

pub mod actors;
pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod faults;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod outbound;
pub mod store;
pub mod views;

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use actors::supervisor::{Hurry, Shutdown, Supervisor};
use config::Config;
use db::Backend;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;
use store::events::Events;
use store::{PageReader, QueryActor, Store, StoreWriter};

/// How long in-flight HTTP requests may take to finish once shutdown starts.
const HTTP_SHUTDOWN: Duration = Duration::from_secs(5);

/// A running jobline: the HTTP server and every actor.
pub struct App {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The demo e-shop's token when this start created it (a first run on an empty database).
    pub demo_token: Option<String>,
    /// The first operator's dashboard token, created with the demo e-shop.
    pub operator_token: Option<String>,
    /// Points where tests can hold running jobs.
    pub breakpoints: Arc<jobs::Breakpoints>,
    /// Points where tests make a write op or an actor fail.
    pub faults: Arc<faults::FailurePoints>,
    server: ServerHandle,
    server_task: tokio::task::JoinHandle<std::io::Result<()>>,
    supervisor: Addr<Supervisor>,
    _single_node_lock: Option<std::fs::File>,
    _checkpointer: Option<db::checkpoint::Checkpointer>,
}

impl App {
    /// Graceful shutdown: stop accepting requests, stop claiming, let running jobs finish
    /// within `shutdown_grace`, hand the rest back to `pending`.
    pub async fn shutdown(self) {
        let http = self.server.stop(true);
        let engine = self.supervisor.send(Shutdown);
        let (_, _) = tokio::join!(http, engine);
        let _ = self.server_task.await;
    }

    /// Ends the shutdown grace at once (a second SIGTERM).
    pub fn hurry(&self) {
        self.supervisor.do_send(Hurry);
    }

    /// A handle that can end the grace period while [`App::shutdown`] runs.
    pub fn hurry_handle(&self) -> Recipient<Hurry> {
        self.supervisor.clone().recipient()
    }
}

/// Takes the lock that keeps a second process off a SQLite database: SQLite is one node.
fn lock_single_node(path: &str) -> Result<std::fs::File, String> {
    let lock_path = format!("{path}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {lock_path}: {e}"))?;
    file.try_lock().map_err(|_| {
        format!(
            "another jobline process is using {path}; SQLite serves one node \
             (use PostgreSQL for several)"
        )
    })?;
    Ok(file)
}

/// Boots jobline on `listener`: migrations, the demo e-shop on an empty database, the
/// persistence actors, queues, workers, janitor and the HTTP API. Must run inside an actix
/// system (`#[actix_web::main]`, `#[actix_rt::test]`).
pub async fn run(config: Config, listener: TcpListener) -> Result<App, String> {
    config.validate()?;
    let registry = jobs::Registry::standard();
    let queue_settings =
        actors::pool::plan(&config, &registry.queues(), actors::pool::cpus::usable())?;
    let config = Arc::new(config);
    let backend = Backend::from_url(&config.database_url)?;
    let lock = match &backend {
        Backend::Sqlite(path) => Some(lock_single_node(path)?),
        Backend::Postgres(_) => None,
    };
    let mut writer_conn = backend.establish_writer()?;
    db::migrate(&mut writer_conn)?;
    let demo_token = if db::eshops::any(&mut writer_conn).map_err(|e| e.to_string())? {
        None
    } else {
        match db::eshops::create(&mut writer_conn, 1, "demo") {
            Ok(token) => Some(token),
            // Another node starting on the same empty database created it first.
            Err(error::StoreError::Conflict(_)) => None,
            Err(e) => return Err(e.to_string()),
        }
    };
    let operator_token = match &demo_token {
        Some(_) => Some(first_operator(&mut writer_conn)?),
        None => None,
    };
    let metrics = Arc::new(metrics::Metrics::new());
    if !backend.is_postgres() {
        // One node: whatever is still `running` or claimed belonged to a process that is gone.
        recover_previous_run(&mut writer_conn, &config, &metrics)?;
    }
    let pool = db::connect(&backend, config.db_pool_size)?;
    let checkpointer = db::checkpoint::start(&backend)?;
    let faults = Arc::new(faults::FailurePoints::default());
    let events = Arc::new(Events::default());
    let store = Store::new(
        StoreWriter::start(
            writer_conn,
            backend.clone(),
            config.write_batch_max,
            config.wake_signal_interval,
            faults.clone(),
            events.clone(),
            &metrics,
        ),
        QueryActor::start_pool(pool.clone(), config.query_actors),
        PageReader::start(pool, &backend),
    );
    let breakpoints = Arc::new(jobs::Breakpoints::default());
    let node = format!(
        "{}-{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "node".into()),
        std::process::id(),
        model::ids::new_job_id(model::time::now())
    );
    let started_at = model::time::now();
    actors::heartbeat::Heartbeat {
        store: store.clone(),
        node: node.clone(),
        metrics: metrics.clone(),
        every: config.heartbeat,
        started_at,
    }
    .start();
    let backend_name = if backend.is_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let supervisor = Supervisor::new(
        actors::Shared {
            store: store.clone(),
            config: config.clone(),
            events: events.clone(),
            registry: registry.clone(),
            breakpoints: breakpoints.clone(),
            faults: faults.clone(),
            metrics: metrics.clone(),
            node: node.clone(),
            handoff: store::Handoff::new(node.clone(), actors::webhooks::claim_duration(&config)),
        },
        backend,
        queue_settings,
    )
    .start();
    let state = actix_web::web::Data::new(api::AppState {
        store,
        config: config.clone(),
        events,
        registry,
        metrics,
        tokens: api::auth::TokenCache::default(),
        node,
        backend: backend_name,
        started_at,
        limiter: api::rate_limit::RateLimiter::new(
            config.rate_limit_capacity,
            config.rate_limit_refill_per_sec,
            config.rate_limit_max_buckets,
        ),
    });
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .configure(api::configure)
    })
    // A response's head and body leave in separate writes; with Nagle's algorithm the
    // second waits for the ACK of the first, which a client on a kept-alive connection
    // delays by up to 40 ms: every download after the first on a connection stalled.
    .tcp_nodelay(true)
    .listen(listener)
    .map_err(|e| format!("cannot listen: {e}"))?
    .disable_signals()
    .shutdown_timeout(HTTP_SHUTDOWN.as_secs())
    .run();
    let handle = server.handle();
    let server_task = tokio::task::spawn_local(server);
    Ok(App {
        addr,
        demo_token,
        operator_token,
        breakpoints,
        faults,
        server: handle,
        server_task,
        supervisor,
        _single_node_lock: lock,
        _checkpointer: checkpointer,
    })
}

/// Adds the operator `admin` on a fresh database, so a first run opens the dashboard at once;
/// answers its token.
fn first_operator(conn: &mut db::DbConnection) -> Result<String, String> {
    db::operators::add(conn, "admin").map_err(|e| e.to_string())
}

fn recover_previous_run(
    conn: &mut db::DbConnection,
    config: &Config,
    metrics: &metrics::Metrics,
) -> Result<(), String> {
    loop {
        let recovered = db::jobs::recover_lost(
            conn,
            model::time::now(),
            config.max_attempts as i32,
            &config.timezone,
            actors::janitor::BATCH,
            true,
        )
        .map_err(|e| e.to_string())?;
        for (_, endpoint) in &recovered.killed {
            metrics.job_ended(endpoint, model::JobStatus::Killed.as_str());
        }
        let n = recovered.taken;
        if n > 0 {
            log::warn!("took back {n} jobs left running by a previous process");
        }
        if n < actors::janitor::BATCH as usize {
            break;
        }
    }
    let released = db::deliveries::release_all_claims(conn).map_err(|e| e.to_string())?;
    if released > 0 {
        log::warn!("let go of {released} webhook deliveries claimed by a previous process");
    }
    Ok(())
}
