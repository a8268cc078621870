//! Waking other replicas: PostgreSQL NOTIFY inside each transaction that appends to the change
//! log (delivered on commit), LISTEN on every replica. The notification only wakes: what
//! changed is read from the log. SQLite serves one process: nothing to send.
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

use super::{Repository, StorageError};

/// The NOTIFY channel every replica listens on.
pub const CHANNEL: &str = "api_tokens_changes";

/// Wakes every replica's log follower once the calling transaction commits (PostgreSQL
/// folds repeated identical notifications of one transaction into one).
pub(crate) async fn notify_appended(conn: &impl ConnectionTrait) -> Result<(), StorageError> {
    if conn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    conn.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT pg_notify($1, 'log')",
        [CHANNEL.into()],
    ))
    .await?;
    Ok(())
}

/// What a listener hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Changes were appended to the log.
    Appended,
    /// The connection was lost and made again: notifications may have been missed meanwhile.
    Reconnected,
}

/// A replica's LISTEN connection (PostgreSQL only).
pub struct ChangeListener {
    inner: sea_orm::sqlx::postgres::PgListener,
}

impl ChangeListener {
    /// The next thing heard. Reconnects by itself after a lost connection and says so.
    pub async fn next(&mut self) -> Result<Heard, StorageError> {
        match self
            .inner
            .try_recv()
            .await
            .map_err(StorageError::from_sqlx)?
        {
            None => Ok(Heard::Reconnected),
            Some(_) => Ok(Heard::Appended),
        }
    }
}

impl Repository {
    /// A listener on the change channel; `None` on SQLite, where one process sees all writes.
    pub async fn change_listener(&self) -> Result<Option<ChangeListener>, StorageError> {
        if !self.is_postgres() {
            return Ok(None);
        }
        let pool = self.db.get_postgres_connection_pool();
        let mut inner = sea_orm::sqlx::postgres::PgListener::connect_with(pool)
            .await
            .map_err(StorageError::from_sqlx)?;
        inner
            .listen(CHANNEL)
            .await
            .map_err(StorageError::from_sqlx)?;
        Ok(Some(ChangeListener { inner }))
    }
}
