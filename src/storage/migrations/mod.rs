//! Schema migrations, and the compatibility each one declares so an older binary can tell
//! whether it may run on a schema newer than it knows (see docs/UPGRADES.md).
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult};
use sea_orm_migration::prelude::*;

mod ddl;
mod m0001_initial;
mod m0002_event_horizon;
mod m0003_change_log;
mod m0004_create_requests;
mod m0006_approval_conditions;
mod m0007_token_expiry;
mod m0008_lifecycle_notices;

/// The migrations of the releases before the compatibility policy, tracked in sea-orm's
/// `seaql_migrations` as those releases expect. Frozen: it never gains a migration, so a
/// binary of those releases still finds exactly what it knows there, and starts.
pub struct LegacyMigrator;

#[async_trait::async_trait]
impl MigratorTrait for LegacyMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        // Each migration names the oldest migration a binary must know to run on a schema
        // that has it: its own name when it removes or changes what older binaries use
        // (a contract step), the previous migration when it only adds (an expand step).
        // m0001 and m0002 predate the policy and declare themselves.
        vec![
            declared(m0001_initial::Migration, "m0001_initial"),
            declared(m0002_event_horizon::Migration, "m0002_event_horizon"),
        ]
    }
}

/// Every migration since the policy, tracked in a table of its own
/// (`api_tokens_migrations`): the releases before the policy never look there, so they run
/// on a schema these migrations expanded. Each declares who may run on it.
pub struct Migrator;

/// Where `Migrator` records what it applied.
pub const MIGRATION_TABLE: &str = "api_tokens_migrations";

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migration_table_name() -> DynIden {
        Alias::new(MIGRATION_TABLE).into_iden()
    }

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            declared(m0003_change_log::Migration, "m0002_event_horizon"),
            declared(m0004_create_requests::Migration, "m0003_change_log"),
            declared(
                m0006_approval_conditions::Migration,
                "m0004_create_requests",
            ),
            declared(m0007_token_expiry::Migration, "m0006_approval_conditions"),
            declared(m0008_lifecycle_notices::Migration, "m0007_token_expiry"),
        ]
    }
}

/// Applies what either migrator has pending, the legacy ones first.
pub async fn up(db: &DatabaseConnection) -> Result<(), DbErr> {
    LegacyMigrator::up(db, None).await?;
    Migrator::up(db, None).await
}

/// Where each applied migration's declaration is kept. Binaries read it only for
/// migrations they do not know; the table is created by `ensure_compat_table`.
const COMPAT_TABLE: &str = "schema_compat";

fn declared(
    migration: impl MigrationTrait + 'static,
    min_binary_schema: &'static str,
) -> Box<dyn MigrationTrait> {
    Box::new(Declared {
        migration: Box::new(migration),
        min_binary_schema,
    })
}

/// A migration that records, in the same transaction (PostgreSQL) as its change, the oldest
/// migration a binary must know to run on the schema it leaves.
struct Declared {
    migration: Box<dyn MigrationTrait>,
    min_binary_schema: &'static str,
}

impl MigrationName for Declared {
    fn name(&self) -> &str {
        self.migration.name()
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Declared {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.migration.up(manager).await?;
        ensure_compat_table(manager).await?;
        let insert = Query::insert()
            .into_table(Alias::new(COMPAT_TABLE))
            .columns([Alias::new("migration"), Alias::new("min_binary_schema")])
            .values([self.name().into(), self.min_binary_schema.into()])
            .map_err(|e| DbErr::Custom(e.to_string()))?
            .to_owned();
        manager.exec_stmt(insert).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.migration.down(manager).await
    }

    fn use_transaction(&self) -> Option<bool> {
        self.migration.use_transaction()
    }
}

/// Creates the declarations table if missing; older binaries ignore it.
pub async fn ensure_compat_table(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    // Asked first: PostgreSQL answers IF NOT EXISTS on an existing table with a NOTICE,
    // which the driver logs at INFO on every start.
    if manager.has_table(COMPAT_TABLE).await? {
        return Ok(());
    }
    manager
        .get_connection()
        .execute_unprepared(&format!(
            "CREATE TABLE IF NOT EXISTS {COMPAT_TABLE} (
            migration VARCHAR(255) NOT NULL PRIMARY KEY,
            min_binary_schema VARCHAR(255) NOT NULL
        )"
        ))
        .await?;
    Ok(())
}

/// How the database's schema compares with the migrations this binary knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// Every migration this binary knows is applied, and nothing else.
    Current,
    /// Migrations this binary knows are not applied yet (all of them on an empty database).
    Behind {
        /// The newest migration applied; `None` on an empty database.
        database: Option<String>,
        pending: Vec<String>,
    },
    /// Migrations this binary does not know are applied, and each declares that a binary
    /// knowing this one's newest migration may run on it.
    NewerCompatible { newest: String },
}

/// Why this binary must not run on this schema: one line naming both versions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaMismatch {
    #[error(
        "the database schema is at {database}, newer than this binary's {binary}, and needs a binary that knows {needs}: deploy a release that knows {needs} (see docs/UPGRADES.md)"
    )]
    TooNew {
        database: String,
        binary: String,
        needs: String,
    },
    #[error(
        "the database schema is at {database}, newer than this binary's {binary}, and migration {undeclared} declares no compatibility: deploy a release that knows {database} (see docs/UPGRADES.md)"
    )]
    Undeclared {
        database: String,
        binary: String,
        undeclared: String,
    },
    #[error(
        "the database schema has migrations this binary's {binary} does not know ({database}) but lacks {missing}, which it needs: the database was migrated by a different line of releases"
    )]
    Diverged {
        database: String,
        binary: String,
        missing: String,
    },
}

#[derive(Debug, FromQueryResult)]
struct Declaration {
    migration: String,
    min_binary_schema: String,
}

/// The names of the migrations this binary knows, oldest first.
pub fn known() -> Vec<String> {
    LegacyMigrator::migrations()
        .iter()
        .chain(Migrator::migrations().iter())
        .map(|m| m.name().to_owned())
        .collect()
}

/// The newest migration this binary knows: its schema version.
pub fn latest() -> String {
    // Both migrators list migrations in code; an empty list is a bug to stop at, not a
    // version to report as "".
    // ok: both migrator lists are non-empty constants of this binary (m0001 onwards).
    known()
        .pop()
        .expect("the migrators list at least one migration")
}

/// The versions recorded in one migration table, if it exists.
async fn applied_in(db: &DatabaseConnection, table: &str) -> Result<Vec<String>, DbErr> {
    if !SchemaManager::new(db).has_table(table).await? {
        return Ok(Vec::new());
    }
    #[derive(Debug, FromQueryResult)]
    struct Applied {
        version: String,
    }
    Ok(Applied::find_by_statement(sea_orm::Statement::from_string(
        db.get_database_backend(),
        format!("SELECT version FROM {table}"),
    ))
    .all(db)
    .await?
    .into_iter()
    .map(|a| a.version)
    .collect())
}

/// Reads the schema's state without writing anything (no table is created).
pub async fn inspect(
    db: &DatabaseConnection,
) -> Result<Result<SchemaState, SchemaMismatch>, DbErr> {
    let manager = SchemaManager::new(db);
    let mut applied = applied_in(db, "seaql_migrations").await?;
    applied.extend(applied_in(db, MIGRATION_TABLE).await?);
    let known = known();
    let binary = latest();
    let mut unknown: Vec<String> = applied
        .iter()
        .filter(|v| !known.contains(v))
        .cloned()
        .collect();
    // Names start with their sequence number, so the greatest is the newest.
    unknown.sort();
    let pending: Vec<String> = known
        .iter()
        .filter(|k| !applied.contains(k))
        .cloned()
        .collect();
    let Some(newest) = unknown.last().cloned() else {
        return Ok(Ok(if pending.is_empty() {
            SchemaState::Current
        } else {
            SchemaState::Behind {
                database: applied.iter().max().cloned(),
                pending,
            }
        }));
    };
    if let Some(missing) = pending.first() {
        return Ok(Err(SchemaMismatch::Diverged {
            database: unknown.join(", "),
            binary,
            missing: missing.clone(),
        }));
    }
    let declarations: Vec<Declaration> = if manager.has_table(COMPAT_TABLE).await? {
        Declaration::find_by_statement(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT migration, min_binary_schema FROM {COMPAT_TABLE}"),
        ))
        .all(db)
        .await?
    } else {
        Vec::new()
    };
    // The strictest declaration among the unknown migrations decides.
    let mut needs: Option<String> = None;
    for migration in &unknown {
        let Some(declared) = declarations.iter().find(|d| &d.migration == migration) else {
            return Ok(Err(SchemaMismatch::Undeclared {
                database: newest,
                binary,
                undeclared: migration.clone(),
            }));
        };
        if !known.contains(&declared.min_binary_schema)
            && needs
                .as_ref()
                .is_none_or(|n| declared.min_binary_schema > *n)
        {
            needs = Some(declared.min_binary_schema.clone());
        }
    }
    Ok(match needs {
        Some(needs) => Err(SchemaMismatch::TooNew {
            database: newest,
            binary,
            needs,
        }),
        None => Ok(SchemaState::NewerCompatible { newest }),
    })
}
