//! Storage errors, classified so the service can tell an outage from a conflict from a bug.
use sea_orm::{DbErr, RuntimeErr, sqlx};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached or is shutting down: the caller may retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database aborted the transaction to break a deadlock or keep it serializable:
    /// nothing was written, and the same call may succeed if retried.
    #[error("transaction aborted by a concurrent one: {0}")]
    Aborted(String),
    /// A uniqueness rule refused the write.
    #[error("conflict with an existing row")]
    Conflict,
    /// A row holds a value the code does not know: a bug or a hand-edited database.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The schema is one this binary cannot run on (older with `--migrate=check`, or newer
    /// and not declared compatible): the message names both versions.
    #[error("{0}")]
    Schema(String),
    /// Anything else the database refused.
    #[error("database error: {0}")]
    Database(String),
    /// The settings cannot work (an unsupported database URL): retrying cannot help.
    #[error("{0}")]
    Config(String),
}

impl StorageError {
    /// The same error with `url` and its password taken out of the message: the drivers
    /// repeat the connection string in theirs.
    pub fn redacted(self, url: &str) -> Self {
        use super::url::redact_in;
        match self {
            StorageError::Unavailable(m) => StorageError::Unavailable(redact_in(&m, url)),
            StorageError::Aborted(m) => StorageError::Aborted(redact_in(&m, url)),
            StorageError::Schema(m) => StorageError::Schema(redact_in(&m, url)),
            StorageError::Conflict => StorageError::Conflict,
            StorageError::Corrupt(m) => StorageError::Corrupt(redact_in(&m, url)),
            StorageError::Database(m) => StorageError::Database(redact_in(&m, url)),
            StorageError::Config(m) => StorageError::Config(redact_in(&m, url)),
        }
    }

    pub(crate) fn from_sqlx(err: &sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => StorageError::Unavailable(err.to_string()),
            sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict,
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // PostgreSQL 40001 (serialization failure), 40P01 (deadlock detected).
                Some("40001" | "40P01") => StorageError::Aborted(err.to_string()),
                // PostgreSQL class 08 (connection), 57P0x (shutdown, cannot connect now),
                // 53300 (too many connections); SQLite 5 and 6 (busy, locked).
                Some(code)
                    if code.starts_with("08")
                        || code.starts_with("57P")
                        || code == "53300"
                        || code == "5"
                        || code == "6" =>
                {
                    StorageError::Unavailable(err.to_string())
                }
                _ => StorageError::Database(err.to_string()),
            },
            _ => StorageError::Database(err.to_string()),
        }
    }
}

impl From<DbErr> for StorageError {
    fn from(err: DbErr) -> Self {
        match err {
            DbErr::ConnectionAcquire(e) => StorageError::Unavailable(e.to_string()),
            DbErr::Conn(RuntimeErr::SqlxError(e)) => match StorageError::from_sqlx(&e) {
                StorageError::Database(msg) => StorageError::Unavailable(msg),
                other => other,
            },
            DbErr::Conn(e) => StorageError::Unavailable(e.to_string()),
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                StorageError::from_sqlx(&e)
            }
            DbErr::TryIntoErr { .. } | DbErr::Type(_) | DbErr::Json(_) => {
                StorageError::Corrupt(err.to_string())
            }
            other => StorageError::Database(other.to_string()),
        }
    }
}
