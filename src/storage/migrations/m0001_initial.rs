//! The first schema: accounts, members, tokens, applications, the application event log and the audit log.
//!
//! Written as plain DDL (see `ddl`), so the schema reads as what it is. Times are microseconds
//! since the Unix epoch (UTC), which order the same way on both databases.
use sea_orm_migration::prelude::*;

use super::ddl::execute;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &[
    "CREATE TABLE accounts (
        id {uuid} NOT NULL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL
    )",
    "CREATE TABLE members (
        seq {pk},
        id {uuid} NOT NULL UNIQUE,
        account_id {uuid} NOT NULL REFERENCES accounts (id),
        user_name TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        removed_at BIGINT
    )",
    // One current membership per user name; removed ones stay for history.
    "CREATE UNIQUE INDEX members_current_user_name ON members (account_id, user_name) WHERE removed_at IS NULL",
    "CREATE TABLE tokens (
        seq {pk},
        id {uuid} NOT NULL UNIQUE,
        account_id {uuid} NOT NULL REFERENCES accounts (id),
        token_type TEXT NOT NULL,
        owner_id {uuid} REFERENCES members (id),
        creator_id {uuid} REFERENCES members (id),
        secret_digest {bytes} NOT NULL,
        privilege TEXT NOT NULL,
        default_app_state TEXT NOT NULL,
        description TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        retired_at BIGINT,
        promoted_at BIGINT,
        last_used_at BIGINT,
        -- How many application names are recorded under the token: the flood cap reads it.
        app_count BIGINT NOT NULL DEFAULT 0
    )",
    // The hot path: every cold Authorize finds its token by digest.
    "CREATE UNIQUE INDEX tokens_secret_digest ON tokens (secret_digest)",
    "CREATE INDEX tokens_account_seq ON tokens (account_id, seq)",
    "CREATE INDEX tokens_owner ON tokens (owner_id)",
    "CREATE TABLE applications (
        seq {pk},
        token_id {uuid} NOT NULL REFERENCES tokens (id),
        account_id {uuid} NOT NULL REFERENCES accounts (id),
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        first_seen_at BIGINT NOT NULL,
        last_seen_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    // The hot path's second lookup, and what makes the first-use insert idempotent.
    "CREATE UNIQUE INDEX applications_token_name ON applications (token_id, name)",
    "CREATE TABLE app_events (
        seq {pk},
        account_id {uuid} NOT NULL REFERENCES accounts (id),
        token_id {uuid} NOT NULL REFERENCES tokens (id),
        app_name TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at BIGINT NOT NULL
    )",
    "CREATE INDEX app_events_account_seq ON app_events (account_id, seq)",
    "CREATE INDEX app_events_created_at ON app_events (created_at)",
    "CREATE TABLE audit_events (
        seq {pk},
        account_id {uuid} NOT NULL REFERENCES accounts (id),
        actor_member_id {uuid},
        actor_token_id {uuid},
        action TEXT NOT NULL,
        target_type TEXT NOT NULL,
        target_id TEXT NOT NULL,
        before_json TEXT,
        after_json TEXT,
        created_at BIGINT NOT NULL
    )",
    "CREATE INDEX audit_events_account_seq ON audit_events (account_id, seq)",
    "CREATE INDEX audit_events_target ON audit_events (account_id, target_id, seq)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute(manager, TABLES).await
    }
}
