//! Change signals between replicas: PostgreSQL NOTIFY inside each writing transaction
//! (delivered on commit), LISTEN on every replica. SQLite serves one process: nothing to send.
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use uuid::Uuid;

use super::{Repository, StorageError};

/// The NOTIFY channel every replica listens on.
pub const CHANNEL: &str = "api_tokens_changes";

/// Something other replicas must forget or wake up for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A token changed (retired, updated, promoted).
    Token(Uuid),
    /// A member's role changed or they were removed: their user tokens changed.
    Owner(Uuid),
    /// An application's state on a token changed.
    App(Uuid, String),
    /// New events are in the application event log.
    Events,
}

impl Change {
    pub fn encode(&self) -> String {
        match self {
            Change::Token(id) => format!("token:{id}"),
            Change::Owner(id) => format!("owner:{id}"),
            Change::App(token, name) => format!("app:{token}:{name}"),
            Change::Events => "events".into(),
        }
    }

    pub fn decode(payload: &str) -> Option<Change> {
        let (kind, rest) = payload.split_once(':').unwrap_or((payload, ""));
        match kind {
            "token" => Uuid::parse_str(rest).ok().map(Change::Token),
            "owner" => Uuid::parse_str(rest).ok().map(Change::Owner),
            "app" => {
                let (token, name) = rest.split_once(':')?;
                Some(Change::App(Uuid::parse_str(token).ok()?, name.to_owned()))
            }
            "events" => Some(Change::Events),
            _ => None,
        }
    }
}

/// Sends a change from inside a transaction: PostgreSQL delivers it only if the transaction commits.
pub(crate) async fn publish(
    conn: &impl ConnectionTrait,
    change: &Change,
) -> Result<(), StorageError> {
    if conn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    conn.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), change.encode().into()],
    ))
    .await?;
    Ok(())
}

/// What a listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    Change(Change),
    /// The connection was lost and made again: changes may have been missed meanwhile.
    Reconnected,
}

/// A replica's LISTEN connection (PostgreSQL only).
pub struct ChangeListener {
    inner: sea_orm::sqlx::postgres::PgListener,
}

impl ChangeListener {
    /// The next thing heard. Reconnects by itself after a lost connection and says so.
    pub async fn next(&mut self) -> Result<Heard, StorageError> {
        loop {
            match self
                .inner
                .try_recv()
                .await
                .map_err(|e| StorageError::from_sqlx(&e))?
            {
                None => return Ok(Heard::Reconnected),
                Some(n) => match Change::decode(n.payload()) {
                    Some(change) => return Ok(Heard::Change(change)),
                    None => tracing::warn!(
                        payload = n.payload(),
                        "ignoring an unknown change notification"
                    ),
                },
            }
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
            .map_err(|e| StorageError::from_sqlx(&e))?;
        inner
            .listen(CHANNEL)
            .await
            .map_err(|e| StorageError::from_sqlx(&e))?;
        Ok(Some(ChangeListener { inner }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_even_with_colons_in_app_names() {
        let id = Uuid::new_v4();
        for change in [
            Change::Token(id),
            Change::Owner(id),
            Change::App(id, "circonus:osi:abc".into()),
            Change::Events,
        ] {
            assert_eq!(Change::decode(&change.encode()), Some(change));
        }
        assert_eq!(Change::decode("nonsense"), None);
    }
}
