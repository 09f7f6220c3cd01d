//! The command line: `serve`, `migrate`, the `eshop` and `operator` commands, and `bench`.

use crate::config::Config;
use crate::db::{self, Backend};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// jobline: asynchronous requests for an e-shop platform's REST API.
#[derive(Parser, Debug)]
#[command(
    name = "jobline",
    version,
    about,
    after_help = "Configuration: built-in defaults, then a TOML file (--config PATH, else \
the JOBLINE_CONFIG variable, else ./jobline.toml when it exists), then environment \
variables: every key `k` is also JOBLINE_K (upper case), a nested key joins with `__` \
(JOBLINE_QUEUES__IMAGES__WORKERS=4), a list is comma-separated. Every key, its default \
and meaning: docs/configuration.md and jobline.example.toml."
)]
pub struct Cli {
    /// Configuration file (TOML); else JOBLINE_CONFIG, else ./jobline.toml when present.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run pending migrations, then serve the API and run the workers until SIGINT/SIGTERM.
    Serve,
    /// Run pending migrations and exit.
    Migrate,
    /// Manage e-shops (tenants).
    Eshop {
        /// The e-shop command.
        #[command(subcommand)]
        command: EshopCommand,
    },
    /// Benchmark: start `jobline serve` on a fresh database, submit snapshot jobs over
    /// HTTP, verify every signed webhook, print one JSON line of figures.
    Bench(crate::bench::BenchArgs),
    /// Manage operators (who may use the dashboard).
    Operator {
        /// The operator command.
        #[command(subcommand)]
        command: OperatorCommand,
    },
}

/// Operator commands.
#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Add an operator; prints its dashboard token (shown once) as the last line.
    Add {
        /// A name for the person or role (unique).
        name: String,
    },
    /// List operators (never tokens).
    List,
    /// Remove an operator and end its sessions.
    Remove {
        /// The operator's name.
        name: String,
    },
}

/// E-shop commands.
#[derive(Subcommand, Debug)]
pub enum EshopCommand {
    /// Create an e-shop; prints its API token as the last line.
    Add {
        /// Numeric e-shop id (as sent in webhooks' `eshopId`).
        eshop_id: i64,
        /// A name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Issue one more API token for an e-shop; prints it as the last line.
    Token {
        /// The e-shop.
        eshop_id: i64,
    },
    /// List e-shops (never tokens).
    List,
}

/// Runs the command line; answers the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    // The bench prints one JSON line; its own log is for trouble only.
    let log = match cli.command {
        Command::Bench(_) => "warn",
        _ => "info",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(log)).init();
    if let Command::Bench(args) = cli.command {
        // The bench's servers read their configuration themselves.
        return match crate::bench::main(args) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        };
    }
    // The pools are checked here too (`run` checks them again), so an impossible pool
    // is a configuration error like any other: exit 2, whatever the command.
    let queues = crate::jobs::Registry::standard().queues();
    let config = match Config::load(cli.config.as_deref()).and_then(|c| {
        crate::actors::pool::plan(&c, &queues, crate::actors::pool::cpus::usable()).map(|_| c)
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let outcome = match cli.command {
        Command::Serve => serve(config),
        Command::Migrate => open(&config).map(|_| println!("migrations are up to date")),
        Command::Eshop { command } => eshop(&config, command),
        Command::Bench(_) => unreachable!("handled above"),
        Command::Operator { command } => operator(&config, command),
    };
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn open(config: &Config) -> Result<db::DbConnection, String> {
    let backend = Backend::from_url(&config.database_url)?;
    let mut conn = backend.establish()?;
    db::migrate(&mut conn)?;
    Ok(conn)
}

fn eshop(config: &Config, command: EshopCommand) -> Result<(), String> {
    let mut conn = open(config)?;
    match command {
        EshopCommand::Add { eshop_id, name } => {
            let name = name.unwrap_or_else(|| format!("eshop {eshop_id}"));
            let token = db::eshops::create(&mut conn, eshop_id, &name).map_err(|e| match e {
                crate::error::StoreError::Conflict(_) => {
                    format!("e-shop {eshop_id} already exists")
                }
                other => other.to_string(),
            })?;
            let key = db::signature_keys::current(&mut conn, eshop_id, crate::model::time::now())
                .map_err(|e| e.to_string())?;
            println!("created e-shop {eshop_id} ({name})");
            println!("its webhook signature key (also at GET /api/webhooks/signature-key):");
            println!("{key}");
            println!("its API token:");
            println!("{token}");
        }
        EshopCommand::Token { eshop_id } => {
            let token = db::eshops::issue_token(&mut conn, eshop_id).map_err(|e| match e {
                crate::error::StoreError::NotFound => format!("e-shop {eshop_id} does not exist"),
                other => other.to_string(),
            })?;
            println!("new API token for e-shop {eshop_id}:");
            println!("{token}");
        }
        EshopCommand::List => {
            for e in db::eshops::list(&mut conn).map_err(|e| e.to_string())? {
                println!("{}\t{}", e.id, e.name);
            }
        }
    }
    Ok(())
}

fn operator(config: &Config, command: OperatorCommand) -> Result<(), String> {
    let mut conn = open(config)?;
    match command {
        OperatorCommand::Add { name } => {
            if name.trim().is_empty() || name.len() > 100 {
                return Err("an operator's name must have 1 to 100 characters".into());
            }
            let token = db::operators::add(&mut conn, &name).map_err(|e| match e {
                crate::error::StoreError::Conflict(_) => format!("operator {name} already exists"),
                other => other.to_string(),
            })?;
            println!("added operator {name}; its dashboard token (shown once):");
            println!("{token}");
        }
        OperatorCommand::List => {
            let zone = config.timezone;
            for o in db::operators::list(&mut conn).map_err(|e| e.to_string())? {
                println!("{}\tadded {}", o.name, zone.format(o.created_at));
            }
        }
        OperatorCommand::Remove { name } => {
            db::operators::remove(&mut conn, &name).map_err(|e| match e {
                crate::error::StoreError::NotFound => format!("operator {name} does not exist"),
                other => other.to_string(),
            })?;
            println!("removed operator {name} and ended its sessions");
        }
    }
    Ok(())
}

fn serve(config: Config) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let listener = std::net::TcpListener::bind(&config.bind)
            .map_err(|e| format!("cannot bind {}: {e}", config.bind))?;
        let app = crate::run(config.clone(), listener).await?;
        if let Some(token) = &app.operator_token {
            println!("created the operator admin; its dashboard token (shown once):");
            println!("{token}");
            println!("sign in at {}/dashboard", app_url(&config, app.addr));
        }
        if let Some(token) = &app.demo_token {
            println!("created the demo e-shop 1; its API token (shown once):");
            println!("{token}");
        }
        log::info!("jobline listening on http://{}", app.addr);
        wait_for_signal().await;
        log::info!("shutting down: no new requests or claims; running jobs may finish");
        let hurry = app.hurry_handle();
        let second = actix_web::rt::spawn(async move {
            wait_for_signal().await;
            hurry.do_send(crate::actors::supervisor::Hurry);
        });
        app.shutdown().await;
        second.abort();
        log::info!("stopped");
        Ok(())
    })
}

/// Where a person reaches this node: `public_url`, else the address it listens on.
fn app_url(config: &Config, addr: std::net::SocketAddr) -> String {
    match &config.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("http://{addr}"),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
