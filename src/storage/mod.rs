//! Persistence: sea-orm entities, migrations and the repository. Nothing of sea-orm leaves this module.
mod accounts;
mod applications;
mod audit;
mod convert;
mod entities;
mod error;
mod events;
mod last_used;
mod migrations;
mod notify;
mod tokens;
mod url;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseBackend, DatabaseConnection};
use sea_orm_migration::MigratorTrait;

pub use accounts::MemberChange;
pub use applications::{GrantLookup, RecordOutcome};
pub use audit::{Actor, AuditRecord};
pub use error::StorageError;
pub use events::{SnapshotItem, StoredEvent};
pub use notify::{Change, ChangeListener, Heard};
pub use tokens::{CreateRequest, NewToken, TokenFilter};
pub use url::{Backend, backend_of, password_forms, redact_in, redact_url};

/// How to reach the database. Its Debug hides the URL's password.
#[derive(Clone)]
pub struct DatabaseSettings {
    pub url: String,
    /// Pool size for PostgreSQL. SQLite always uses one connection: one writer is
    /// simpler and faster than retrying "database is locked".
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// The repository: every read and write of the service goes through here.
#[derive(Clone)]
pub struct Repository {
    db: DatabaseConnection,
    queries: Arc<AtomicU64>,
}

/// Key of the PostgreSQL advisory lock that serialises migrations of replicas starting together.
const MIGRATION_LOCK_KEY: i64 = 0x6170_692d_746f_6b65; // "api-toke"

impl Repository {
    /// Connects, then brings the schema up to date.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StorageError> {
        let repo = Self::open(settings).await?;
        repo.migrate()
            .await
            .map_err(|e| e.redacted(&settings.url))?;
        Ok(repo)
    }

    /// Opens the database without migrating. SQLite is opened at once (a failure there is
    /// the configuration's); PostgreSQL connects on first use, so a server can start while
    /// its database is still unreachable and keep trying (`migrate` is the first use).
    ///
    /// Errors never hold the URL or its password: the drivers' errors repeat the URL, so
    /// they are redacted, and the password's every form is hidden from the logs, where the
    /// drivers' TRACE spans print their connect options.
    pub async fn open(settings: &DatabaseSettings) -> Result<Self, StorageError> {
        let backend = backend_of(&settings.url).map_err(StorageError::Config)?;
        crate::telemetry::hide_in_logs(password_forms(&settings.url));
        let mut options = ConnectOptions::new(settings.url.clone());
        options
            .connect_timeout(settings.connect_timeout)
            .acquire_timeout(settings.connect_timeout)
            // sea-orm would log every statement; ours carry no secrets, but logs are not the place.
            .sqlx_logging(false);
        if backend == Backend::Sqlite {
            options
                .max_connections(1)
                .min_connections(1)
                .map_sqlx_sqlite_opts(|o| {
                    o.create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Full)
                        .busy_timeout(Duration::from_secs(5))
                        .foreign_keys(true)
                });
        } else {
            options
                .max_connections(settings.max_connections)
                .connect_lazy(true);
        }
        let mut db = Database::connect(options)
            .await
            .map_err(|e| StorageError::from(e).redacted(&settings.url))?;
        let queries = Arc::new(AtomicU64::new(0));
        let counter = queries.clone();
        db.set_metric_callback(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        Ok(Repository { db, queries })
    }

    /// Runs pending migrations. On PostgreSQL an advisory lock makes replicas that
    /// start at once take turns; the later ones find nothing left to do.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        if self.db.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(migrations::Migrator::up(&self.db, None).await?);
        }
        let pool = self.db.get_postgres_connection_pool();
        let mut lock_conn = pool
            .acquire()
            .await
            .map_err(|e| StorageError::from_sqlx(&e))?;
        sea_orm::sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *lock_conn)
            .await
            .map_err(|e| StorageError::from_sqlx(&e))?;
        let result = migrations::Migrator::up(&self.db, None).await;
        let unlock = sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *lock_conn)
            .await;
        result?;
        unlock.map_err(|e| StorageError::from_sqlx(&e))?;
        Ok(())
    }

    /// Whether the database answers, for health checks.
    pub async fn ping(&self) -> Result<(), StorageError> {
        Ok(self.db.ping().await?)
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
    }

    /// How many statements this repository has sent: the benchmarks and tests use it to
    /// prove a warm Authorize touches no database.
    pub fn query_count(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    pub fn is_postgres(&self) -> bool {
        self.db.get_database_backend() == DatabaseBackend::Postgres
    }
}

/// The same database server's URL, pointing at the database `name` instead: the tests and
/// benchmarks create a database of their own on a shared PostgreSQL and connect to it.
pub fn url_with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_end..]
        .find('/')
        .map_or(base.len(), |i| authority_end + i);
    match query {
        Some(q) => format!("{}/{name}?{q}", &base[..path_start]),
        None => format!("{}/{name}", &base[..path_start]),
    }
}

#[cfg(test)]
mod tests {
    use super::url_with_database;

    #[test]
    fn another_database_on_the_same_server() {
        assert_eq!(
            url_with_database("postgres://u:p@h:5432/postgres", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(url_with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            url_with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
