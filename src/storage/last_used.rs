//! Last-used times and application evidence, written behind in batches: never one write per
//! Authorize, and never one statement per key either. A flush is one set-based UPDATE per
//! table on PostgreSQL (the rows travel as one JSON parameter) and one per chunk of rows on
//! SQLite. Times only move forward; counters are added to what is stored.
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, Value};
use uuid::Uuid;

use super::convert::micros;
use super::{Repository, StorageError};

/// Rows per SQLite statement: at most 6 parameters each stays below SQLite's 32,766 limit.
const SQLITE_CHUNK: usize = 5_000;

/// What one application did under one token since the last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUse {
    pub token_id: Uuid,
    pub name: String,
    /// When it was last seen.
    pub at: DateTime<Utc>,
    /// Calls refused while it was Pending or Denied.
    pub refused: u64,
    /// Calls allowed.
    pub allowed: u64,
    /// The client address of its last call that gave one.
    pub client: Option<IpAddr>,
}

const POSTGRES_TOKENS: &str = "UPDATE tokens SET last_used_at = v.at \
     FROM jsonb_to_recordset($1::jsonb) AS v(id uuid, at bigint) \
     WHERE tokens.id = v.id AND (tokens.last_used_at IS NULL OR tokens.last_used_at < v.at)";

const POSTGRES_APPS: &str = "UPDATE applications SET \
     last_seen_at = GREATEST(applications.last_seen_at, v.at), \
     refused_attempts = applications.refused_attempts + v.refused, \
     allowed_count = applications.allowed_count + v.allowed, \
     last_client_address = CASE WHEN v.at >= applications.last_seen_at \
         THEN COALESCE(v.client, applications.last_client_address) \
         ELSE COALESCE(applications.last_client_address, v.client) END \
     FROM jsonb_to_recordset($1::jsonb) \
         AS v(token_id uuid, name text, at bigint, refused bigint, allowed bigint, client text) \
     WHERE applications.token_id = v.token_id AND applications.name = v.name";

impl Repository {
    /// Moves last-used times forward (never back), all in one transaction. Each key appears
    /// at most once (the caller gathers them in maps).
    pub async fn write_last_used(
        &self,
        tokens_used: &[(Uuid, DateTime<Utc>)],
        apps_seen: &[AppUse],
    ) -> Result<(), StorageError> {
        if tokens_used.is_empty() && apps_seen.is_empty() {
            return Ok(());
        }
        let backend = self.db.get_database_backend();
        let statements = if backend == DatabaseBackend::Postgres {
            postgres_statements(tokens_used, apps_seen)
        } else {
            sqlite_statements(tokens_used, apps_seen)
        };
        let tx = self.begin_write().await?;
        for statement in statements {
            tx.execute_raw(statement).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn postgres_statements(
    tokens_used: &[(Uuid, DateTime<Utc>)],
    apps_seen: &[AppUse],
) -> Vec<Statement> {
    let json =
        |rows: Vec<serde_json::Value>| Value::Json(Some(Box::new(serde_json::Value::Array(rows))));
    let mut statements = Vec::with_capacity(2);
    if !tokens_used.is_empty() {
        let rows = tokens_used
            .iter()
            .map(|(id, at)| serde_json::json!({ "id": id, "at": micros(*at) }))
            .collect();
        statements.push(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            POSTGRES_TOKENS,
            [json(rows)],
        ));
    }
    if !apps_seen.is_empty() {
        let rows = apps_seen
            .iter()
            .map(|app| {
                serde_json::json!({
                    "token_id": app.token_id,
                    "name": app.name,
                    "at": micros(app.at),
                    "refused": app.refused,
                    "allowed": app.allowed,
                    "client": app.client.map(|c| c.to_string()),
                })
            })
            .collect();
        statements.push(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            POSTGRES_APPS,
            [json(rows)],
        ));
    }
    statements
}

/// `UPDATE ... FROM (VALUES ...)` (SQLite 3.33 and later), whose columns SQLite names
/// column1, column2, ...; ids are bound as values so they compare as the stored BLOBs.
fn sqlite_statements(
    tokens_used: &[(Uuid, DateTime<Utc>)],
    apps_seen: &[AppUse],
) -> Vec<Statement> {
    let values = |rows: usize, width: usize| {
        let row = format!("({})", vec!["?"; width].join(", "));
        vec![row; rows].join(", ")
    };
    let mut statements = Vec::new();
    for chunk in tokens_used.chunks(SQLITE_CHUNK) {
        let sql = format!(
            "UPDATE tokens SET last_used_at = v.column2 FROM (VALUES {}) AS v \
             WHERE tokens.id = v.column1 \
             AND (tokens.last_used_at IS NULL OR tokens.last_used_at < v.column2)",
            values(chunk.len(), 2)
        );
        let binds = chunk
            .iter()
            .flat_map(|(id, at)| [Value::from(*id), Value::from(micros(*at))]);
        statements.push(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            sql,
            binds,
        ));
    }
    for chunk in apps_seen.chunks(SQLITE_CHUNK) {
        let sql = format!(
            "UPDATE applications SET \
             last_seen_at = MAX(applications.last_seen_at, v.column3), \
             refused_attempts = applications.refused_attempts + v.column4, \
             allowed_count = applications.allowed_count + v.column5, \
             last_client_address = CASE WHEN v.column3 >= applications.last_seen_at \
                 THEN COALESCE(v.column6, applications.last_client_address) \
                 ELSE COALESCE(applications.last_client_address, v.column6) END \
             FROM (VALUES {}) AS v \
             WHERE applications.token_id = v.column1 AND applications.name = v.column2",
            values(chunk.len(), 6)
        );
        let binds = chunk.iter().flat_map(|app| {
            [
                Value::from(app.token_id),
                Value::from(app.name.as_str()),
                Value::from(micros(app.at)),
                Value::from(i64::try_from(app.refused).unwrap_or(i64::MAX)),
                Value::from(i64::try_from(app.allowed).unwrap_or(i64::MAX)),
                Value::String(app.client.map(|c| c.to_string())),
            ]
        });
        statements.push(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            sql,
            binds,
        ));
    }
    statements
}
