//! Storage errors, classified so the service can tell an outage from a conflict from a bug.
//! What the database or its driver said is kept as the error it was, for the log.
use std::sync::Arc;

use sea_orm::{DbErr, RuntimeErr, sqlx};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached or is shutting down: the caller may retry.
    #[error("database unavailable")]
    Unavailable(#[source] Cause),
    /// The database answers but cannot store a change: its disk is full, failing (an I/O
    /// error) or read-only. The change was not stored; reads still work.
    #[error("the database cannot store changes (disk full, I/O error or read-only)")]
    Unwritable(#[source] Cause),
    /// The database aborted the transaction to break a deadlock or keep it serializable:
    /// nothing was written, and the same call may succeed if retried.
    #[error("transaction aborted by a concurrent one")]
    Aborted(#[source] Cause),
    /// A uniqueness rule refused the write.
    #[error("conflict with an existing row")]
    Conflict,
    /// A row holds a value the code does not know: a bug or a hand-edited database.
    #[error("stored data is invalid")]
    Corrupt(#[source] Cause),
    /// The schema is one this binary cannot run on (older with `--migrate=check`, or newer
    /// and not declared compatible): the message names both versions.
    #[error("{0}")]
    Schema(String),
    /// Anything else the database refused.
    #[error("database error")]
    Database(#[source] Cause),
    /// The settings cannot work (an unsupported database URL): retrying cannot help.
    #[error("{0}")]
    Config(String),
}

/// The error beneath a `StorageError`: the driver's own, or the text of what was found
/// wrong. Shared, so one failed cache load can answer every call that waited on it.
#[derive(Debug, Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    pub fn of(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause(Arc::new(error))
    }

    /// A cause told in words: what the code found wrong.
    pub fn text(text: impl Into<String>) -> Self {
        let error: Box<dyn std::error::Error + Send + Sync> = text.into().into();
        Cause(Arc::from(error))
    }

    /// This cause with `url` and its password taken out. The drivers repeat the connection
    /// string in their connect errors; such an error is kept as its redacted text.
    fn redacted(self, url: &str) -> Self {
        let text = crate::telemetry::chain(&self);
        let clean = super::url::redact_in(&text, url);
        if clean == text {
            self
        } else {
            Cause::text(clean)
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl StorageError {
    /// Stored data the code cannot read, as the code found it.
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        StorageError::Corrupt(Cause::text(what))
    }

    /// A failure the code found, told in words.
    pub(crate) fn database(what: impl Into<String>) -> Self {
        StorageError::Database(Cause::text(what))
    }

    /// The same error with `url` and its password taken out of the message: the drivers
    /// repeat the connection string in theirs.
    pub fn redacted(self, url: &str) -> Self {
        use super::url::redact_in;
        match self {
            StorageError::Unavailable(c) => StorageError::Unavailable(c.redacted(url)),
            StorageError::Unwritable(c) => StorageError::Unwritable(c.redacted(url)),
            StorageError::Aborted(c) => StorageError::Aborted(c.redacted(url)),
            StorageError::Schema(m) => StorageError::Schema(redact_in(&m, url)),
            StorageError::Conflict => StorageError::Conflict,
            StorageError::Corrupt(c) => StorageError::Corrupt(c.redacted(url)),
            StorageError::Database(c) => StorageError::Database(c.redacted(url)),
            StorageError::Config(m) => StorageError::Config(redact_in(&m, url)),
        }
    }

    pub(crate) fn from_sqlx(err: sqlx::Error) -> Self {
        Kind::of(&err).with(Cause::of(err))
    }
}

/// What a driver error means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unavailable,
    Unwritable,
    Aborted,
    Conflict,
    Database,
}

impl Kind {
    fn of(err: &sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => Kind::Unavailable,
            sqlx::Error::Database(db) if db.is_unique_violation() => Kind::Conflict,
            sqlx::Error::Database(db) => match db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                Some(sqlite) => Kind::of_sqlite(sqlite),
                None => Kind::of_sqlstate(db.code().as_deref()),
            },
            _ => Kind::Database,
        }
    }

    /// SQLite's result codes, extended ones included: the low byte is the primary code.
    fn of_sqlite(err: &sqlx::sqlite::SqliteError) -> Self {
        use sqlx::error::DatabaseError;
        let primary = err
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff);
        match primary {
            // SQLITE_BUSY, SQLITE_LOCKED.
            Some(5 | 6) => Kind::Unavailable,
            // SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL.
            Some(8 | 10 | 13) => Kind::Unwritable,
            _ => Kind::Database,
        }
    }

    /// PostgreSQL's SQLSTATE.
    fn of_sqlstate(code: Option<&str>) -> Self {
        match code {
            // 40001 (serialization failure), 40P01 (deadlock detected).
            Some("40001" | "40P01") => Kind::Aborted,
            // 53100 (disk full), 58030 (I/O error), 25006 (read-only transaction: a
            // standby, or a server set read-only).
            Some("53100" | "58030" | "25006") => Kind::Unwritable,
            // Class 08 (connection), 57P0x (shutdown, cannot connect now), 53300 (too many
            // connections).
            Some(code) if code.starts_with("08") || code.starts_with("57P") || code == "53300" => {
                Kind::Unavailable
            }
            _ => Kind::Database,
        }
    }

    fn with(self, cause: Cause) -> StorageError {
        match self {
            Kind::Unavailable => StorageError::Unavailable(cause),
            Kind::Unwritable => StorageError::Unwritable(cause),
            Kind::Aborted => StorageError::Aborted(cause),
            Kind::Conflict => StorageError::Conflict,
            Kind::Database => StorageError::Database(cause),
        }
    }
}

impl From<DbErr> for StorageError {
    fn from(err: DbErr) -> Self {
        let kind = match &err {
            DbErr::ConnectionAcquire(_) => Kind::Unavailable,
            // Anything that fails a connection is an outage, whatever the driver calls it.
            DbErr::Conn(RuntimeErr::SqlxError(e)) => match Kind::of(e) {
                Kind::Database => Kind::Unavailable,
                kind => kind,
            },
            DbErr::Conn(_) => Kind::Unavailable,
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                Kind::of(e)
            }
            DbErr::TryIntoErr { .. } | DbErr::Type(_) | DbErr::Json(_) => {
                return StorageError::Corrupt(Cause::of(err));
            }
            _ => Kind::Database,
        };
        kind.with(Cause::of(err))
    }
}

/// Whether `err` says the database cannot store changes (see `StorageError::Unwritable`).
pub(crate) fn is_unwritable(err: &DbErr) -> bool {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Kind::of(e) == Kind::Unwritable,
        _ => false,
    }
}
