//! Write transactions, and what their outcomes say about the database's write side: a change
//! the database cannot store (disk full, I/O error, read-only) marks the side unwritable
//! until a write commits again, and health reports it.
//!
//! Every write transaction is a `WriteTx`, so every statement a write sends and every commit
//! passes here. A transaction whose statement or commit failed is never committed: the
//! caller drops it, which queues its rollback, and a connection still inside a transaction
//! when it would be handed out again is discarded (`Repository::open_with`), because SQLite
//! may have rolled back on its own (SQLITE_FULL, SQLITE_IOERR) and the driver's count of
//! open transactions then says one is open where none is: the next BEGIN would become a
//! SAVEPOINT nested in a transaction that never commits, acknowledging writes it then loses.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement,
};

use super::{Cause, Repository, StorageError};

/// Whether the last write the database was asked to store failed for want of a place to
/// store it. Shared by the clones of one repository.
#[derive(Debug)]
pub(crate) struct WriteSide {
    unwritable: AtomicBool,
    /// Whether writes wait, refused at once, while the side is unwritable, until a probe
    /// (`Repository::probe_writes`) commits. SQLite's: on a small disk its write-ahead log
    /// fills the disk, and writers retrying at once would take any space freed before the
    /// probe's checkpoint could fold the log into the database and give the space back.
    /// PostgreSQL tries every write: one table may be unable to grow while others can.
    wait_for_probe: bool,
}

impl WriteSide {
    pub(crate) fn new(wait_for_probe: bool) -> Self {
        WriteSide {
            unwritable: AtomicBool::new(false),
            wait_for_probe,
        }
    }

    pub(crate) fn writable(&self) -> bool {
        !self.unwritable.load(Ordering::Relaxed)
    }

    /// Refuses a write at once while it must wait for the probe.
    pub(crate) fn admit(&self) -> Result<(), StorageError> {
        if self.wait_for_probe && !self.writable() {
            return Err(StorageError::Unwritable(Cause::text(
                "the database could not store the last change; writes wait until the health check's probe write commits",
            )));
        }
        Ok(())
    }

    /// Passes `result` on, noting a failure that says the database cannot store changes.
    fn watch<T>(&self, result: Result<T, DbErr>) -> Result<T, DbErr> {
        if let Err(err) = &result
            && super::error::is_unwritable(err)
        {
            self.unwritable.store(true, Ordering::Relaxed);
        }
        result
    }

    fn stored(&self) {
        self.unwritable.store(false, Ordering::Relaxed);
    }
}

/// A transaction that writes: a `DatabaseTransaction` whose failures are noted.
pub(crate) struct WriteTx {
    tx: DatabaseTransaction,
    side: Arc<WriteSide>,
}

impl WriteTx {
    pub(crate) fn new(tx: DatabaseTransaction, side: Arc<WriteSide>) -> Self {
        WriteTx { tx, side }
    }

    /// Commits. Only an `Ok` here means the write is stored; on an error the transaction is
    /// dropped (its rollback queued) and its connection is not used again while in it.
    pub(crate) async fn commit(self) -> Result<(), StorageError> {
        let WriteTx { tx, side } = self;
        side.watch(tx.commit().await)?;
        side.stored();
        Ok(())
    }

    pub(crate) async fn rollback(self) -> Result<(), StorageError> {
        let WriteTx { tx, side } = self;
        Ok(side.watch(tx.rollback().await)?)
    }
}

#[tonic::async_trait]
impl ConnectionTrait for WriteTx {
    fn get_database_backend(&self) -> DbBackend {
        self.tx.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.side.watch(self.tx.execute_raw(stmt).await)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.side.watch(self.tx.execute_unprepared(sql).await)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.side.watch(self.tx.query_one_raw(stmt).await)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.side.watch(self.tx.query_all_raw(stmt).await)
    }

    fn support_returning(&self) -> bool {
        self.tx.support_returning()
    }
}

impl Repository {
    /// Whether the database stored the last change it was asked to: false after one it
    /// could not store (disk full, I/O error, read-only) until one commits again.
    pub fn writable(&self) -> bool {
        self.writes.writable()
    }

    /// On SQLite, stores one change that changes nothing, to learn whether the database can
    /// store changes again: a commit marks it writable and lets writes in again. It first
    /// folds the write-ahead log into the database file and truncates it: on a small disk
    /// the log itself fills the disk (it is folded back only after a commit that succeeds),
    /// and once a little space is back this frees the rest. Then it rewrites the user
    /// version with the value it has: a page written, where an UPDATE to the same value
    /// writes none.
    ///
    /// PostgreSQL is not probed: no small write shows whether every table can grow (one
    /// that fits in a page with room succeeds while inserts elsewhere fail), so its write
    /// side is writable again when a write of the service's own commits.
    pub async fn probe_writes(&self) -> Result<(), StorageError> {
        if self.is_postgres() {
            return Ok(());
        }
        if let Err(e) = self
            .db
            .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
        {
            tracing::debug!(error = %crate::telemetry::chain(&e), "checkpoint failed");
        }
        let tx = self.begin_write_now().await?;
        let version: i64 = tx
            .query_one_raw(Statement::from_string(
                DatabaseBackend::Sqlite,
                "PRAGMA user_version",
            ))
            .await?
            .ok_or_else(|| StorageError::database("PRAGMA user_version answered nothing"))?
            .try_get_by_index(0)?;
        tx.execute_unprepared(&format!("PRAGMA user_version = {version}"))
            .await?;
        tx.commit().await
    }
}

/// Whether a pooled connection may serve again: not while the driver counts a transaction
/// open on it (one whose commit or rollback failed). The pool then closes it, which rolls
/// back whatever SQLite or PostgreSQL still holds, and opens a fresh one.
pub(crate) fn clean(in_transaction: bool) -> bool {
    if in_transaction {
        // The failure that left it so was logged with the call or task it failed.
        tracing::debug!(
            "a database connection was left inside a failed transaction: closed, not reused"
        );
    }
    !in_transaction
}
