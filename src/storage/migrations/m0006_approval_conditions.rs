//! Approvals that scale: a token's address ranges; an approval's conditions (until, privilege
//! cap, address ranges); evidence per application (refused attempts, allowed calls, the last
//! client address), written behind; a detail on each logged change (conditions, reason) and
//! a reason on each audit entry.
//!
//! Expand only: new nullable columns or ones with a default, and one index. The previous
//! release reads and writes what it knows and ignores these (it does not enforce address
//! ranges or conditions: see docs/UPGRADES.md before rolling back).
use sea_orm_migration::prelude::*;

use super::ddl::execute;

#[derive(DeriveMigrationName)]
pub struct Migration;

const STATEMENTS: &[&str] = &[
    "ALTER TABLE tokens ADD COLUMN bound_cidrs TEXT",
    "ALTER TABLE applications ADD COLUMN cond_until BIGINT",
    "ALTER TABLE applications ADD COLUMN cond_max_privilege TEXT",
    "ALTER TABLE applications ADD COLUMN cond_cidrs TEXT",
    "ALTER TABLE applications ADD COLUMN refused_attempts BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE applications ADD COLUMN allowed_count BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE applications ADD COLUMN last_client_address TEXT",
    // The sweeper that writes lapsed approvals back to Pending finds them by their end.
    "CREATE INDEX applications_cond_until ON applications (cond_until)",
    "ALTER TABLE change_log ADD COLUMN detail TEXT",
    "ALTER TABLE audit_events ADD COLUMN reason TEXT",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute(manager, STATEMENTS).await
    }
}
