//! Last-used times, written behind in batches: never one write per Authorize, and never one
//! statement per key either. A flush is one set-based UPDATE per table on PostgreSQL (the
//! rows travel as one JSON parameter) and one per chunk of rows on SQLite.
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement, TransactionTrait, Value};
use uuid::Uuid;

use super::convert::micros;
use super::{Repository, StorageError};

/// Rows per SQLite statement: 3 parameters each stays far below SQLite's 32,766 limit.
const SQLITE_CHUNK: usize = 5_000;

const POSTGRES_TOKENS: &str = "UPDATE tokens SET last_used_at = v.at \
     FROM jsonb_to_recordset($1::jsonb) AS v(id uuid, at bigint) \
     WHERE tokens.id = v.id AND (tokens.last_used_at IS NULL OR tokens.last_used_at < v.at)";

const POSTGRES_APPS: &str = "UPDATE applications SET last_seen_at = v.at \
     FROM jsonb_to_recordset($1::jsonb) AS v(token_id uuid, name text, at bigint) \
     WHERE applications.token_id = v.token_id AND applications.name = v.name \
     AND applications.last_seen_at < v.at";

impl Repository {
    /// Moves last-used times forward (never back), all in one transaction. Each key appears
    /// at most once (the caller gathers them in maps).
    pub async fn write_last_used(
        &self,
        tokens_used: &[(Uuid, DateTime<Utc>)],
        apps_seen: &[((Uuid, String), DateTime<Utc>)],
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
        let tx = self.db.begin().await?;
        for statement in statements {
            tx.execute_raw(statement).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn postgres_statements(
    tokens_used: &[(Uuid, DateTime<Utc>)],
    apps_seen: &[((Uuid, String), DateTime<Utc>)],
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
            .map(|((token_id, name), at)| {
                serde_json::json!({ "token_id": token_id, "name": name, "at": micros(*at) })
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
    apps_seen: &[((Uuid, String), DateTime<Utc>)],
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
            "UPDATE applications SET last_seen_at = v.column3 FROM (VALUES {}) AS v \
             WHERE applications.token_id = v.column1 AND applications.name = v.column2 \
             AND applications.last_seen_at < v.column3",
            values(chunk.len(), 3)
        );
        let binds = chunk.iter().flat_map(|((token_id, name), at)| {
            [
                Value::from(*token_id),
                Value::from(name.as_str()),
                Value::from(micros(*at)),
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
