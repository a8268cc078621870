//! Remembers how far the application event log has been compacted, so a watcher's cursor
//! can be told apart as expired (its events were deleted) rather than merely quiet.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE TABLE event_log_horizon (
                id INTEGER NOT NULL PRIMARY KEY,
                compacted_through BIGINT NOT NULL
            )",
        )
        .await?;
        db.execute_unprepared(
            "INSERT INTO event_log_horizon (id, compacted_through) VALUES (1, 0)",
        )
        .await?;
        Ok(())
    }
}
