//! Lifecycle notices: one row per notice sent (a token's "expiring" at a lead time, "expired",
//! "dormant"), keyed by what names it, so that however many replicas sweep, the insert that
//! wins the key is the only one whose notice is logged (in the same transaction).
//!
//! Expand only: a new table the previous release never reads. It sends no notices; on a
//! rollback, notices wait until this release runs again (none is sent twice).
use sea_orm_migration::prelude::*;

use super::ddl::execute;

#[derive(DeriveMigrationName)]
pub struct Migration;

const STATEMENTS: &[&str] = &["CREATE TABLE lifecycle_notices (
        token_id {uuid} NOT NULL REFERENCES tokens (id),
        kind TEXT NOT NULL,
        lead_secs BIGINT NOT NULL,
        about BIGINT NOT NULL,
        sent_at BIGINT NOT NULL,
        PRIMARY KEY (token_id, kind, lead_secs, about)
    )"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute(manager, STATEMENTS).await
    }
}
