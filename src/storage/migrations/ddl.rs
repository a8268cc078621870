//! How the migrations run their SQL: plain DDL with the few type names that differ between
//! SQLite and PostgreSQL (`{uuid}`, `{bytes}`, `{pk}`) filled in, one statement after another.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

fn dialect(sql: &str, backend: DatabaseBackend) -> String {
    let (uuid, bytes, pk) = match backend {
        DatabaseBackend::Postgres => (
            "UUID",
            "BYTEA",
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        ),
        _ => ("BLOB", "BLOB", "INTEGER PRIMARY KEY AUTOINCREMENT"),
    };
    sql.replace("{uuid}", uuid)
        .replace("{bytes}", bytes)
        .replace("{pk}", pk)
}

/// Runs `statements` in order, each in the backend's dialect.
pub(super) async fn execute(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let backend = manager.get_database_backend();
    let db = manager.get_connection();
    for sql in statements {
        db.execute_unprepared(&dialect(sql, backend)).await?;
    }
    Ok(())
}
