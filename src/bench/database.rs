//! The fresh database a benchmark runs on: a SQLite file in a new temporary directory, or a
//! new database on the given PostgreSQL server, dropped again afterwards. Also the final
//! check of what the servers committed.

use super::report::{Latency, Steps};
use crate::db::schema::{jobs, notifications};
use crate::db::{Backend, DbConnection};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use std::path::PathBuf;

/// A database created for one benchmark run; removed when dropped.
pub(crate) struct BenchDatabase {
    /// The `database_url` the servers get.
    pub(crate) url: String,
    /// `sqlite` or `postgres`.
    pub(crate) backend: &'static str,
    cleanup: Cleanup,
}

enum Cleanup {
    Directory(PathBuf),
    PgDatabase { admin_url: String, name: String },
}

/// How the servers left the jobs and notifications.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    /// Jobs stored, of any status.
    pub(crate) jobs: i64,
    /// Jobs `completed`.
    pub(crate) completed: i64,
    /// Notifications not yet `success`.
    pub(crate) unsettled_notifications: i64,
    /// Notifications that needed more than one attempt.
    pub(crate) retried_notifications: i64,
}

impl BenchDatabase {
    /// A new SQLite file (`server` None) or a new database on the PostgreSQL `server`.
    pub(crate) fn create(server: Option<&str>) -> Result<BenchDatabase, String> {
        let suffix = crate::model::ids::new_job_id(crate::model::time::now());
        match server {
            None => {
                let dir = std::env::temp_dir()
                    .join(format!("jobline-bench-{}-{suffix}", std::process::id()));
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                Ok(BenchDatabase {
                    url: format!("sqlite://{}/bench.db", dir.display()),
                    backend: "sqlite",
                    cleanup: Cleanup::Directory(dir),
                })
            }
            Some(server) => {
                let mut url =
                    url::Url::parse(server).map_err(|e| format!("--database-url {server}: {e}"))?;
                if !matches!(url.scheme(), "postgres" | "postgresql") {
                    return Err("--database-url must be a postgres:// URL".into());
                }
                let name = format!("jobline_bench_{suffix}");
                url.set_path("/postgres");
                let admin_url = url.to_string();
                admin(&admin_url, &format!("CREATE DATABASE {name}"))?;
                url.set_path(&format!("/{name}"));
                Ok(BenchDatabase {
                    url: url.to_string(),
                    backend: "postgres",
                    cleanup: Cleanup::PgDatabase { admin_url, name },
                })
            }
        }
    }

    /// Counts what the servers committed.
    pub(crate) fn outcome(&self) -> Result<Outcome, String> {
        let mut conn: DbConnection = Backend::from_url(&self.url)?.establish()?;
        let query = |conn: &mut DbConnection| -> QueryResult<Outcome> {
            Ok(Outcome {
                jobs: jobs::table.count().get_result(conn)?,
                completed: jobs::table
                    .filter(jobs::status.eq("completed"))
                    .count()
                    .get_result(conn)?,
                unsettled_notifications: notifications::table
                    .filter(notifications::status.ne("success"))
                    .count()
                    .get_result(conn)?,
                retried_notifications: notifications::table
                    .filter(notifications::attempts.gt(1))
                    .count()
                    .get_result(conn)?,
            })
        };
        query(&mut conn).map_err(|e| format!("reading the outcome failed: {e}"))
    }

    /// Where each completed job's time went inside the servers ([`Steps`]), from its
    /// creation, start and completion times and the start of its webhook's first attempt.
    pub(crate) fn steps(&self) -> Result<Steps, String> {
        #[derive(QueryableByName)]
        struct Times {
            #[diesel(sql_type = BigInt)]
            created: i64,
            #[diesel(sql_type = BigInt)]
            started: i64,
            #[diesel(sql_type = BigInt)]
            completed: i64,
            #[diesel(sql_type = BigInt)]
            notified: i64,
        }
        let mut conn: DbConnection = Backend::from_url(&self.url)?.establish()?;
        let times: Vec<Times> = diesel::sql_query(
            "SELECT j.creation_time AS created, j.started_time AS started, \
                j.completion_time AS completed, a.attempted_at AS notified \
             FROM jobs j \
             JOIN notifications n ON n.event_instance = j.id AND n.event = 'job:finished' \
             JOIN notification_attempts a ON a.notification_id = n.id AND a.attempt = 1 \
             WHERE j.status = 'completed'",
        )
        .load(&mut conn)
        .map_err(|e| format!("reading the jobs' times failed: {e}"))?;
        let ms = |from: i64, to: i64| (to - from) as f64 / 1000.0;
        Ok(Steps {
            waiting: Latency::of(times.iter().map(|t| ms(t.created, t.started)).collect()),
            running: Latency::of(times.iter().map(|t| ms(t.started, t.completed)).collect()),
            notifying: Latency::of(times.iter().map(|t| ms(t.completed, t.notified)).collect()),
        })
    }

    /// Whether the servers' connections to PostgreSQL are encrypted: what a connection
    /// with their URL (and this process's environment, which they inherit) negotiates.
    /// libpq encrypts whenever the server offers TLS unless told otherwise, a loopback
    /// address included, and that costs a local server's connections about a tenth of a
    /// node's rate (docs/operations.md). `None` for SQLite.
    pub(crate) fn encrypted(&self) -> Result<Option<bool>, String> {
        #[derive(QueryableByName)]
        struct Ssl {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            ssl: bool,
        }
        if self.backend != "postgres" {
            return Ok(None);
        }
        let mut conn = diesel::PgConnection::establish(&self.url)
            .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
        let row: Ssl =
            diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .get_result(&mut conn)
                .map_err(|e| format!("reading pg_stat_ssl failed: {e}"))?;
        Ok(Some(row.ssl))
    }
}

fn admin(admin_url: &str, sql: &str) -> Result<(), String> {
    let mut conn = diesel::PgConnection::establish(admin_url)
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    conn.batch_execute(sql).map_err(|e| format!("{sql}: {e}"))
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Directory(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::PgDatabase { admin_url, name } => {
                if let Err(e) = admin(
                    admin_url,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ) {
                    eprintln!("could not drop the benchmark database {name}: {e}");
                }
            }
        }
    }
}

/// The PostgreSQL server unit tests create their databases on (`TEST_POSTGRES_URL`, else
/// the local one).
#[cfg(test)]
pub(crate) fn test_server() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}
