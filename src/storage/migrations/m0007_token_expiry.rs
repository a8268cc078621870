//! Token lifecycle: a token's expiry and rotation (the secrets rotated out, each with its
//! overlap and first reuse), and the account's token policy.
//!
//! Expand only: new nullable columns, one new table and two indexes. The previous release
//! reads and writes what it knows and ignores these: it does not enforce expiry, and a
//! rotated-out secret stops working on it at once (it knows only the current secret). See
//! docs/UPGRADES.md before rolling back.
use sea_orm_migration::prelude::*;

use super::ddl::execute;

#[derive(DeriveMigrationName)]
pub struct Migration;

const STATEMENTS: &[&str] = &[
    "ALTER TABLE tokens ADD COLUMN expire_at BIGINT",
    "ALTER TABLE tokens ADD COLUMN rotated_at BIGINT",
    // The secret rotated out last: its overlap, and when it stops working (NULL while the
    // overlap waits to start at this secret's first use).
    "ALTER TABLE tokens ADD COLUMN previous_overlap_micros BIGINT",
    "ALTER TABLE tokens ADD COLUMN previous_ends_at BIGINT",
    // ListTokens' "expires before" and the lifecycle notices find tokens by their end.
    "CREATE INDEX tokens_expire_at ON tokens (expire_at)",
    // Every secret rotated out, by digest (never the secret): a use within its overlap is
    // decided as the token's; a use after it is refused and recorded once (reused_at).
    "CREATE TABLE rotated_secrets (
        digest {bytes} NOT NULL PRIMARY KEY,
        token_id {uuid} NOT NULL REFERENCES tokens (id),
        account_id {uuid} NOT NULL REFERENCES accounts (id),
        rotated_at BIGINT NOT NULL,
        overlap_micros BIGINT NOT NULL,
        ends_at BIGINT,
        reused_at BIGINT
    )",
    "CREATE INDEX rotated_secrets_token ON rotated_secrets (token_id)",
    // The account's token policy as JSON; NULL: the defaults.
    "ALTER TABLE accounts ADD COLUMN policy TEXT",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute(manager, STATEMENTS).await
    }
}
