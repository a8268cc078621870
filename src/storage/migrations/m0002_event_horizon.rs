//! Remembers how far the application event log has been compacted, so a watcher's cursor
//! can be told apart as expired (its events were deleted) rather than merely quiet.
use sea_orm_migration::prelude::*;

use super::ddl::execute;

#[derive(DeriveMigrationName)]
pub struct Migration;

const STATEMENTS: &[&str] = &[
    // The text as first run: SQLite keeps it in the schema.
    "CREATE TABLE event_log_horizon (
                id INTEGER NOT NULL PRIMARY KEY,
                compacted_through BIGINT NOT NULL
            )",
    "INSERT INTO event_log_horizon (id, compacted_through) VALUES (1, 0)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute(manager, STATEMENTS).await
    }
}
