//! Opening connections: the backend is picked from the URL scheme (so a PostgreSQL that is
//! down reports its real error instead of diesel's "Invalid connection url"), SQLite gets
//! its PRAGMAs on every connection, migrations run per backend, and pooled reads survive a
//! lost connection ([`with_pooled`]).

use crate::error::{StoreError, StoreResult};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

/// One connection to either backend. Shared queries use it as it is; the few
/// backend-specific statements (claims, advisory locks) match on the variant.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL: one or many nodes.
    Pg(PgConnection),
    /// Embedded SQLite: one node.
    Sqlite(SqliteConnection),
}

/// A pool of connections, for readers and background work.
pub type DbPool = r2d2::Pool<Manager>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// `sqlite://PATH`: the path of the database file.
    Sqlite(String),
    /// `postgres://…` or `postgresql://…`: the URL as libpq takes it.
    Postgres(String),
}

impl Backend {
    /// Reads the scheme of a `database_url`.
    pub fn from_url(url: &str) -> Result<Backend, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path".into());
            }
            Ok(Backend::Sqlite(path.to_string()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres(url.to_string()))
        } else {
            Err(format!("unsupported database URL `{url}`"))
        }
    }

    /// Opens one connection, with the backend's real error when that fails.
    pub fn establish(&self) -> Result<DbConnection, String> {
        match self {
            Backend::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)
                    .map_err(|e| format!("cannot open SQLite database {path}: {e}"))?;
                // busy_timeout first: switching to WAL can itself meet a lock. The WAL
                // is checkpointed off the writer thread ([`super::checkpoint`]).
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                     PRAGMA wal_autocheckpoint = {}; PRAGMA journal_size_limit = {};",
                    super::checkpoint::WAL_PAGES,
                    super::checkpoint::WAL_KEPT_BYTES
                ))
                .map_err(|e| format!("cannot configure SQLite database {path}: {e}"))?;
                Ok(DbConnection::Sqlite(conn))
            }
            Backend::Postgres(url) => PgConnection::establish(url)
                .map(DbConnection::Pg)
                .map_err(|e| format!("cannot connect to PostgreSQL: {e}")),
        }
    }

    /// Opens the writer's connection ([`Backend::establish`]). On SQLite its temporary
    /// storage stays in memory (`temp_store = MEMORY`): the statement journal of a
    /// multi-row write (the pages it changes, kept to undo that statement alone) spilled
    /// into a new temporary file 20 times a second under load, a third of the writer's page
    /// writes. Only the writer: a reader's large sort keeps spilling to disk, not to memory.
    pub fn establish_writer(&self) -> Result<DbConnection, String> {
        let mut conn = self.establish()?;
        if let DbConnection::Sqlite(c) = &mut conn {
            c.batch_execute("PRAGMA temp_store = MEMORY")
                .map_err(|e| format!("cannot configure the SQLite writer: {e}"))?;
        }
        Ok(conn)
    }

    /// Whether this is PostgreSQL (many nodes possible).
    pub fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }
}

/// The r2d2 manager: opens connections through [`Backend::establish`].
#[derive(Debug)]
pub struct Manager {
    backend: Backend,
}

/// A connection failure as r2d2 wants it.
#[derive(Debug)]
pub struct ConnectError(String);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConnection, ConnectError> {
        self.backend.establish().map_err(ConnectError)
    }

    /// r2d2 asks for it, but calls it only with `test_on_check_out`, which is off (reads
    /// notice a lost connection after the fact, [`with_pooled`]); it is the same test.
    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectError> {
        if is_lost(conn) {
            Err(ConnectError("the database connection is lost".into()))
        } else {
            Ok(())
        }
    }

    /// A connection given back while panicking, whose transaction was left broken, or that
    /// [`with_pooled`] found lost, is closed rather than reused.
    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || DISCARD.with(|d| d.replace(false)) || conn.is_broken()
    }
}

thread_local! {
    /// Set by [`with_pooled`] just before it gives back a connection it found lost: r2d2
    /// asks [`Manager::has_broken`] on the same thread as the connection goes back.
    static DISCARD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` on a pooled connection. The pool lends connections without a `SELECT 1`
/// first (`test_on_check_out` is off: that was one more round trip for every read, and
/// 9 % of the server's CPU under `jobline bench` on PostgreSQL). Instead, when `f` fails
/// with a database error and the connection turns out lost (the server restarted or
/// closed it), that connection is discarded and `f` runs again on another, up to once
/// per pooled connection, so a read after a database restart still gets its answer.
/// `f` must be a read: it may run more than once.
pub fn with_pooled<T>(
    pool: &DbPool,
    mut f: impl FnMut(&mut DbConnection) -> StoreResult<T>,
) -> StoreResult<T> {
    let mut tries = pool.max_size() + 1;
    loop {
        let mut conn = pool.get()?;
        let outcome = f(&mut conn);
        tries -= 1;
        let failed = matches!(
            outcome,
            Err(StoreError::Database(_) | StoreError::Unavailable)
        );
        if !failed || tries == 0 || !is_lost(&mut conn) {
            return outcome;
        }
        log::warn!("a pooled database connection was lost; reading again on another");
        DISCARD.with(|d| d.set(true));
        drop(conn);
    }
}

/// How long a read waits for a pooled connection: while the database is unreachable,
/// reads (and `/readyz`) answer "unavailable" after this rather than hang.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a connection that just failed can no longer be used (the server closed it, or
/// its transaction state is broken): one round trip, paid only after a failure.
pub fn is_lost(conn: &mut DbConnection) -> bool {
    conn.is_broken() || conn.ping().is_err()
}

/// Builds the pool; fails with the backend's own error when the database cannot be reached.
pub fn connect(backend: &Backend, size: u32) -> Result<DbPool, String> {
    // Open one connection first so that the caller sees the real reason of a failure.
    backend.establish()?;
    r2d2::Pool::builder()
        .max_size(size)
        .connection_timeout(CHECKOUT_TIMEOUT)
        .test_on_check_out(false)
        .build(Manager {
            backend: backend.clone(),
        })
        .map_err(|e| e.to_string())
}

/// Runs pending migrations. On PostgreSQL a session advisory lock keeps several nodes
/// starting at once from migrating together.
pub fn migrate(conn: &mut DbConnection) -> Result<(), String> {
    const MIGRATION_LOCK: i64 = 0x6a6f_626c_696e_6501;
    let result = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        DbConnection::Pg(c) => {
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                .map_err(|e| e.to_string())?;
            let r = c.run_pending_migrations(PG_MIGRATIONS).map(|_| ());
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
                .map_err(|e| e.to_string())?;
            r
        }
    };
    result.map_err(|e| format!("migration failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::Text;
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct CompileOption {
        #[diesel(sql_type = Text)]
        compile_options: String,
    }

    /// The bundled SQLite is built as `.cargo/config.toml` asks: no mutex per call on a
    /// connection, none per allocation, none around a shared page cache. Without that
    /// file (or with a LIBSQLITE3_FLAGS that drops them) SQLite takes those locks again,
    /// 5 % of the SQLite server's instructions.
    #[test]
    fn sqlite_is_built_without_the_locks_the_server_does_not_need() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("options.db").display());
        let DbConnection::Sqlite(mut conn) = Backend::from_url(&url).unwrap().establish().unwrap()
        else {
            unreachable!("a SQLite URL")
        };
        let options: Vec<String> = diesel::sql_query("PRAGMA compile_options")
            .load::<CompileOption>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|o| o.compile_options)
            .collect();
        assert!(options.iter().any(|o| o == "THREADSAFE=2"), "{options:?}");
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{options:?}"
        );
    }
}
