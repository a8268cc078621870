//! Keys every replica shares (the one that seals positions callers see), made once by
//! whichever replica needs one first.
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

use super::{Repository, StorageError};

/// A key's length in bytes.
pub const KEY_LEN: usize = 32;

/// A shared key; its bytes never appear in `Debug`.
#[derive(Clone)]
pub struct SharedKey(pub [u8; KEY_LEN]);

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedKey(<redacted>)")
    }
}

impl Repository {
    /// The key named `name`, made from `fresh` if no replica made it yet. Replicas starting
    /// together agree: the first insert wins and every replica reads the winner.
    pub async fn shared_key(
        &self,
        name: &str,
        fresh: [u8; KEY_LEN],
    ) -> Result<SharedKey, StorageError> {
        let backend = self.db.get_database_backend();
        let (insert, select) = match backend {
            DatabaseBackend::Postgres => (
                "INSERT INTO shared_keys (name, key_bytes) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                "SELECT key_bytes FROM shared_keys WHERE name = $1",
            ),
            _ => (
                "INSERT INTO shared_keys (name, key_bytes) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                "SELECT key_bytes FROM shared_keys WHERE name = ?",
            ),
        };
        self.db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                insert,
                [name.into(), fresh.to_vec().into()],
            ))
            .await?;
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                select,
                [name.into()],
            ))
            .await?
            .ok_or_else(|| StorageError::corrupt(format!("shared key {name:?} vanished")))?;
        let bytes: Vec<u8> = row.try_get_by_index(0)?;
        let key = <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
            StorageError::corrupt(format!("shared key {name:?} has the wrong length"))
        })?;
        Ok(SharedKey(key))
    }
}
