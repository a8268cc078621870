//! Remembers which CreateToken request (caller's token, request_id) made which token, so a
//! retried create makes no duplicate. A new table only: the previous release runs on it.
use sea_orm_migration::prelude::*;

use super::ddl::execute;

#[derive(DeriveMigrationName)]
pub struct Migration;

const STATEMENTS: &[&str] = &[
    // The fingerprint is a digest of the request's fields, not the request; the secret is
    // never here. The text as first run: SQLite keeps it in the schema.
    "CREATE TABLE create_requests (
                caller_token_id TEXT NOT NULL,
                request_id TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                token_id TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (caller_token_id, request_id)
            )",
    "CREATE INDEX create_requests_by_age ON create_requests (created_at)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute(manager, STATEMENTS).await
    }
}
