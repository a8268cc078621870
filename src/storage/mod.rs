//! Persistence: sea-orm entities, migrations and the repository. Nothing of sea-orm leaves this module.
mod accounts;
mod applications;
mod audit;
mod change_log;
mod convert;
mod decisions;
mod entities;
mod error;
mod events;
mod guard;
mod keys;
mod last_used;
mod leaks;
mod lifecycle;
mod migrations;
mod notices;
mod notify;
mod tokens;
mod url;
mod write;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::sqlx::Connection;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection};

use migrations::SchemaState;

pub use accounts::MemberChange;
pub use applications::{GrantLookup, RecordOutcome};
pub use audit::{Actor, AuditRecord};
pub use change_log::{AppChangeKind, Change, LoggedChange, SeenNow, TokenChange, TokenOwnership};
pub use decisions::{AppDecision, Decided, LAPSE_REASON, WriteMode};
pub use error::{Cause, StorageError};
pub use events::SnapshotItem;
pub use guard::{Locked, LockedMany};
pub use keys::{KEY_LEN, SharedKey};
pub use last_used::AppUse;
pub use leaks::LeakRetired;
pub use lifecycle::{ReuseRecorded, Rotated};
pub use notices::NoticeCandidate;
pub use notify::{ChangeListener, Heard};
pub use tokens::{CreateRequest, NewToken, TokenFilter};
pub use url::{Backend, backend_of, redact_in, redact_url};

/// What start-up does about the schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SchemaMode {
    /// Apply pending migrations (under an advisory lock on PostgreSQL).
    #[default]
    Migrate,
    /// Apply nothing; refuse a schema this binary cannot run on (`api-tokens migrate` ran first).
    Check,
}

/// What `Repository::migrate` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migrated {
    /// These migrations were applied now, oldest first.
    Applied(Vec<String>),
    /// Nothing to apply: the schema is at this binary's newest migration.
    UpToDate(String),
    /// Nothing to apply: the schema is newer than this binary and declares it compatible.
    NewerCompatible { database: String, binary: String },
}

/// How to reach the database. `url` may carry a password (in its user-info or its `password`
/// query parameter); it is split off where the database is opened, and Debug masks it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    pub url: String,
    /// Pool size for PostgreSQL. SQLite always uses one connection: one writer is
    /// simpler and faster than retrying "database is locked".
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

impl DatabaseSettings {
    /// An SQLite file in the working directory, created on first start.
    pub const DEFAULT_URL: &str = "sqlite://api-tokens.db?mode=rwc";
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The largest pool: the driver allocates its queue for the whole pool at once.
    pub const MOST_CONNECTIONS: u32 = 10_000;
    /// The longest wait for a connection (the driver adds it to the clock).
    pub const LONGEST_CONNECT_TIMEOUT: Duration = Duration::from_secs(3600);

    /// Refuses a pool size or timeout the driver cannot work with (it panics on a pool of
    /// none, aborts on one too large to allocate, and on a timeout past the clock's end).
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=Self::MOST_CONNECTIONS).contains(&self.max_connections) {
            return Err(format!(
                "--db-max-connections must be 1 to {}, not {}",
                Self::MOST_CONNECTIONS,
                self.max_connections
            ));
        }
        if self.connect_timeout.is_zero() || self.connect_timeout > Self::LONGEST_CONNECT_TIMEOUT {
            return Err(format!(
                "--db-connect-timeout-secs must be 1 to {}, not {:?}",
                Self::LONGEST_CONNECT_TIMEOUT.as_secs(),
                self.connect_timeout
            ));
        }
        Ok(())
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: Self::DEFAULT_URL.to_owned(),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
        }
    }
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

/// What opening an SQLite database does when its file is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MissingFile {
    Create,
    /// Fail: a mistyped path must not open (or back up) an empty database.
    Refuse,
}

/// The repository: every read and write of the service goes through here.
#[derive(Clone)]
pub struct Repository {
    db: DatabaseConnection,
    queries: Arc<AtomicU64>,
    /// The time every write records and judges by (the system's, but for tests that step it).
    clock: crate::domain::Clock,
    writes: Arc<write::WriteSide>,
}

/// Key of the PostgreSQL advisory lock that serialises migrations of replicas starting together.
const MIGRATION_LOCK_KEY: i64 = 0x6170_692d_746f_6b65; // "api-toke"

impl Repository {
    /// Connects, then brings the schema up to date.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StorageError> {
        Self::connect_with(settings, SchemaMode::Migrate).await
    }

    /// Connects, then migrates or only checks the schema (`prepare_schema`).
    pub async fn connect_with(
        settings: &DatabaseSettings,
        mode: SchemaMode,
    ) -> Result<Self, StorageError> {
        let repo = Self::open(settings).await?;
        if let Err(e) = repo.prepare_schema(mode).await {
            repo.close().await;
            return Err(e.redacted(&settings.url));
        }
        Ok(repo)
    }

    /// Migrates, or only checks the schema; the first use of a lazily connected database.
    pub async fn prepare_schema(&self, mode: SchemaMode) -> Result<(), StorageError> {
        match mode {
            SchemaMode::Migrate => self.migrate().await.map(drop),
            SchemaMode::Check => self.check_schema().await,
        }
    }

    /// Opens the database without migrating, creating a missing SQLite file.
    pub async fn open(settings: &DatabaseSettings) -> Result<Self, StorageError> {
        Self::open_with(settings, MissingFile::Create).await
    }

    /// Opens the database without migrating. SQLite is opened at once (a failure there is
    /// the configuration's; `missing` says whether a missing file is created); PostgreSQL connects on
    /// first use, so a server can start while its database is still unreachable and keep
    /// trying (`prepare_schema` is the first use).
    ///
    /// Neither errors nor logs hold the password: the drivers are given the URL without it
    /// (they repeat the URL in errors and TRACE spans) and the password as a connect option.
    async fn open_with(
        settings: &DatabaseSettings,
        missing: MissingFile,
    ) -> Result<Self, StorageError> {
        let backend = backend_of(&settings.url).map_err(StorageError::Config)?;
        settings.validate().map_err(StorageError::Config)?;
        let (url, password) = match backend {
            Backend::Postgres => {
                url::split_password(&settings.url).map_err(StorageError::Config)?
            }
            Backend::Sqlite => (settings.url.clone(), None),
        };
        let mut options = ConnectOptions::new(url);
        options
            .connect_timeout(settings.connect_timeout)
            .acquire_timeout(settings.connect_timeout)
            // sea-orm would log every statement; ours carry no secrets, but logs are not the place.
            .sqlx_logging(false)
            // A connection whose transaction could not be committed or rolled back never
            // serves again: `write` says why.
            .map_sqlx_sqlite_before_acquire(|conn, _| {
                Box::pin(async move { Ok(write::clean(conn.is_in_transaction())) })
            })
            .map_sqlx_postgres_before_acquire(|conn, _| {
                Box::pin(async move { Ok(write::clean(conn.is_in_transaction())) })
            });
        if backend == Backend::Sqlite {
            options
                .max_connections(1)
                .min_connections(1)
                .map_sqlx_sqlite_opts(move |o| {
                    o.create_if_missing(missing == MissingFile::Create)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Full)
                        .busy_timeout(Duration::from_secs(5))
                        .foreign_keys(true)
                });
        } else {
            options
                .max_connections(settings.max_connections)
                .connect_lazy(true);
            if let Some(password) = password {
                options.map_sqlx_postgres_opts(move |o| o.password(&password));
            }
        }
        let mut db = Database::connect(options)
            .await
            .map_err(|e| StorageError::from(e).redacted(&settings.url))?;
        let queries = Arc::new(AtomicU64::new(0));
        let counter = queries.clone();
        db.set_metric_callback(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        Ok(Repository {
            db,
            queries,
            clock: crate::domain::Clock::system(),
            writes: Arc::new(write::WriteSide::new(backend == Backend::Sqlite)),
        })
    }

    /// This repository reading the time from `clock` (a test's steppable clock).
    pub fn with_clock(mut self, clock: crate::domain::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Now, by this repository's clock, to the microsecond it stores.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Runs pending migrations. On PostgreSQL an advisory lock makes replicas that
    /// start at once take turns; the later ones find nothing left to do. A schema newer
    /// than this binary is left alone when it declares itself compatible, refused otherwise.
    pub async fn migrate(&self) -> Result<Migrated, StorageError> {
        if self.db.get_database_backend() != DatabaseBackend::Postgres {
            return self.migrate_now().await;
        }
        let pool = self.db.get_postgres_connection_pool();
        let mut lock_conn = pool.acquire().await.map_err(StorageError::from_sqlx)?;
        sea_orm::sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *lock_conn)
            .await
            .map_err(StorageError::from_sqlx)?;
        let result = self.migrate_now().await;
        let unlock = sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *lock_conn)
            .await;
        let migrated = result?;
        unlock.map_err(StorageError::from_sqlx)?;
        Ok(migrated)
    }

    async fn migrate_now(&self) -> Result<Migrated, StorageError> {
        migrations::ensure_compat_table(&sea_orm_migration::SchemaManager::new(&self.db)).await?;
        let binary = migrations::latest();
        match migrations::inspect(&self.db).await? {
            Err(mismatch) => Err(StorageError::Schema(mismatch.to_string())),
            Ok(SchemaState::Current) => Ok(Migrated::UpToDate(binary)),
            Ok(SchemaState::NewerCompatible { newest }) => {
                tracing::info!(database = %newest, binary = %binary, "schema newer than this binary and compatible with it: nothing to migrate");
                Ok(Migrated::NewerCompatible {
                    database: newest,
                    binary,
                })
            }
            Ok(SchemaState::Behind { pending, .. }) => {
                migrations::up(&self.db).await?;
                Ok(Migrated::Applied(pending))
            }
        }
    }

    /// Refuses, with one line naming both versions, a schema this binary cannot run on:
    /// older than it (migrations pending) or newer and not declared compatible.
    pub async fn check_schema(&self) -> Result<(), StorageError> {
        let binary = migrations::latest();
        match migrations::inspect(&self.db).await? {
            Err(mismatch) => Err(StorageError::Schema(mismatch.to_string())),
            Ok(SchemaState::Current | SchemaState::NewerCompatible { .. }) => Ok(()),
            Ok(SchemaState::Behind { database, pending }) => Err(StorageError::Schema(format!(
                "the database schema is at {}, older than this binary's {binary} ({} migration(s) pending): run `api-tokens migrate` first, or serve with --migrate=auto",
                database.as_deref().unwrap_or("nothing (an empty database)"),
                pending.len()
            ))),
        }
    }

    /// Connects without touching the schema (creating a missing SQLite file), for
    /// `api-tokens migrate`, which reports what `migrate` did.
    pub async fn open_unchecked(settings: &DatabaseSettings) -> Result<Self, StorageError> {
        Self::open_with(settings, MissingFile::Create).await
    }

    /// Opens an existing database as it is: no migration, no schema check, and no SQLite
    /// file created where none is (a mistyped path must not back up an empty database).
    pub async fn open_existing(settings: &DatabaseSettings) -> Result<Self, StorageError> {
        Self::open_with(settings, MissingFile::Refuse).await
    }

    /// Writes a consistent copy of this SQLite database to the new file `to` with
    /// `VACUUM INTO`, while servers go on reading and writing it (WAL lets the copy read a
    /// snapshot beside the writer). The copy is compact and needs no `-wal` file beside it.
    pub async fn backup_sqlite_to(&self, to: &std::path::Path) -> Result<(), StorageError> {
        if self.db.get_database_backend() != DatabaseBackend::Sqlite {
            return Err(StorageError::database("VACUUM INTO backs up SQLite only"));
        }
        let target = to.to_str().ok_or_else(|| {
            StorageError::database(format!("{} is not a UTF-8 path", to.display()))
        })?;
        self.db
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "VACUUM INTO ?",
                [target.into()],
            ))
            .await?;
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
