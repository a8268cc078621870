//! The change log that replicas follow, and the key that seals the positions callers see.
//!
//! Additive only (the previous release runs on this schema): `app_events` is still written,
//! for a previous release's watchers during a rollout or after a rollback.
use sea_orm_migration::prelude::*;

use super::ddl::execute;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &[
    // Every change that can alter a decision or what a caller may see, in commit order.
    "CREATE TABLE change_log (
        seq {pk},
        account_id {uuid} NOT NULL,
        kind TEXT NOT NULL,
        token_id {uuid},
        member_id {uuid},
        app_name TEXT,
        state TEXT,
        created_at BIGINT NOT NULL
    )",
    // WatchApplications reads one account's changes after its cursor.
    "CREATE INDEX change_log_account_seq ON change_log (account_id, seq)",
    "CREATE INDEX change_log_created_at ON change_log (created_at)",
    // Keys every replica shares, made by the first replica that needs one.
    "CREATE TABLE shared_keys (
        name TEXT NOT NULL PRIMARY KEY,
        key_bytes {bytes} NOT NULL
    )",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute(manager, TABLES).await?;
        let db = manager.get_connection();
        // Row 1 is the application event log's horizon; row 2 is the change log's.
        db.execute_unprepared(
            "INSERT INTO event_log_horizon (id, compacted_through) VALUES (2, 0)",
        )
        .await?;
        Ok(())
    }
}
