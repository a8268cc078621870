//! Operator commands on the database beside the server: `migrate` (the schema as its own
//! step, e.g. a Helm hook Job) and `backup` (an online copy of an SQLite database).
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::flags::DatabaseArgs;
use crate::startup::redact_url;
use crate::storage::{Migrated, Repository};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The file to write the copy to; it must not exist yet.
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Applies pending migrations and exits; says what it did on stdout.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let settings = args.database.settings();
    let repo = Repository::open_unchecked(&settings)
        .await
        .with_context(|| format!("cannot open the database at {}", redact_url(&settings.url)))?;
    let migrated = repo.migrate().await;
    repo.close().await;
    let migrated = migrated.with_context(|| {
        format!(
            "cannot migrate the database at {}",
            redact_url(&settings.url)
        )
    })?;
    match migrated {
        Migrated::Applied(names) => println!("applied {}", names.join(", ")),
        Migrated::UpToDate(at) => println!("schema already at {at}: nothing to apply"),
        Migrated::NewerCompatible { database, binary } => println!(
            "schema at {database}, newer than this binary's {binary} and compatible with it: nothing to apply"
        ),
    }
    Ok(())
}

/// Copies an SQLite database to a new file while servers keep serving from it.
pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let settings = args.database.settings();
    if !settings.url.starts_with("sqlite:") {
        anyhow::bail!(
            "backup copies SQLite databases only; back up PostgreSQL with pg_dump (see docs/BACKUP.md)"
        );
    }
    if args.to.exists() {
        anyhow::bail!(
            "{} already exists: back up to a new file",
            args.to.display()
        );
    }
    let repo = Repository::open_existing(&settings)
        .await
        .with_context(|| format!("cannot open the database at {}", redact_url(&settings.url)))?;
    let copied = repo.backup_sqlite_to(&args.to).await;
    repo.close().await;
    copied.with_context(|| format!("cannot back up to {}", args.to.display()))?;
    println!("backed up to {}", args.to.display());
    Ok(())
}
