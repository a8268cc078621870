//! Rollbacks and migrations as their own step (docs/UPGRADES.md): a binary starts on a schema
//! one release newer when that schema declares itself compatible, refuses in one line
//! otherwise, and `serve --migrate=check` runs only after `api-tokens migrate`.

use crate::common::process::{ServerProcess, run};
use crate::common::{Backend, Spawn, TestDatabase};
use api_tokens::storage::{Repository, SchemaMode};
use sea_orm::{ConnectionTrait, Database};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

/// This binary's newest migration: every later binary knows it too, so a future migration
/// may name it as the oldest a binary must know.
const THIS_RELEASE: &str = "m0008_lifecycle_notices";

/// Brings `database` to this binary's schema, then applies a "future" migration by hand the
/// way the next release would: its row in api_tokens_migrations and its declaration.
async fn migrate_then_apply_future(
    database: &TestDatabase,
    future: &str,
    min_binary_schema: Option<&str>,
) {
    Repository::connect(&database.settings())
        .await
        .expect("migrate")
        .close()
        .await;
    let db = Database::connect(database.url.as_str())
        .await
        .expect("connect");
    db.execute_unprepared(&format!(
        "INSERT INTO api_tokens_migrations (version, applied_at) VALUES ('{future}', 0)"
    ))
    .await
    .expect("future migration row");
    if let Some(min) = min_binary_schema {
        db.execute_unprepared(&format!(
            "INSERT INTO schema_compat (migration, min_binary_schema) VALUES ('{future}', '{min}')"
        ))
        .await
        .expect("future declaration");
    }
    let _ = db.close().await;
}

/// The release before the compatibility policy reads sea-orm's `seaql_migrations` and refuses
/// any version it does not know there: that table must hold exactly its two migrations,
/// whatever this release added (in `api_tokens_migrations`), so it still starts after a
/// rollback.
async fn the_release_before_the_policy_finds_only_what_it_knows(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    Repository::connect(&database.settings())
        .await
        .expect("migrate")
        .close()
        .await;
    assert_eq!(
        database
            .count("SELECT COUNT(*) FROM seaql_migrations")
            .await,
        2,
        "m0001_initial and m0002_event_horizon only"
    );
    assert_eq!(
        database
            .count("SELECT COUNT(*) FROM seaql_migrations WHERE version IN ('m0001_initial', 'm0002_event_horizon')")
            .await,
        2
    );
    assert!(
        database
            .count("SELECT COUNT(*) FROM api_tokens_migrations")
            .await
            >= 1,
        "this release's migrations are tracked apart"
    );
}

/// The previous release on the next release's schema: an expand-only migration that declares
/// this release may still run on it. `serve` starts and answers, migrating or only checking.
async fn starts_on_a_newer_schema_that_declares_itself_compatible(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    migrate_then_apply_future(&database, "m0099_future_expand", Some(THIS_RELEASE)).await;

    let mut app = Spawn::on(database).start().await;
    let status = app
        .health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(status.status, ServingStatus::Serving as i32);
    let tokens = app
        .tokens
        .list_tokens(app.admin.req(Default::default()))
        .await
        .expect("the API answers on the newer schema");
    assert!(!tokens.into_inner().tokens.is_empty());

    app.settings.operations.schema = SchemaMode::Check;
    let app = app.restart().await;
    app.tokens
        .clone()
        .list_tokens(app.admin.req(Default::default()))
        .await
        .expect("the API answers with --migrate=check too");
    app.stop().await;
}

/// A contract migration this binary does not know (it declares that binaries must know
/// itself): `serve` exits with one line naming the schema's version and the binary's.
async fn refuses_a_newer_schema_that_declares_itself_incompatible(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    migrate_then_apply_future(
        &database,
        "m0099_future_contract",
        Some("m0099_future_contract"),
    )
    .await;
    let line = refused_line(&database, &[]);
    assert!(
        line.contains("m0099_future_contract") && line.contains(THIS_RELEASE),
        "names both versions: {line}"
    );
    assert!(line.contains("newer than this binary"), "{line}");
    for mode in ["auto", "check"] {
        let again = refused_line(&database, &["--migrate", mode]);
        assert_eq!(again, line, "--migrate={mode} refuses the same way");
    }
}

/// A future migration that declares nothing is not assumed compatible.
async fn refuses_a_newer_schema_that_declares_nothing(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    migrate_then_apply_future(&database, "m0099_future_silent", None).await;
    let line = refused_line(&database, &[]);
    assert!(
        line.contains("m0099_future_silent")
            && line.contains(THIS_RELEASE)
            && line.contains("declares no compatibility"),
        "{line}"
    );
}

/// `serve --migrate=check` refuses an unmigrated database and applies nothing; after
/// `api-tokens migrate` it serves. Every migration applied records its declaration.
async fn check_mode_needs_migrate_first(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let line = refused_line(&database, &["--migrate", "check"]);
    assert!(
        line.contains("older than this binary") && line.contains("api-tokens migrate"),
        "{line}"
    );

    let dir = tempfile::tempdir().expect("dir");
    let migrated = run(
        dir.path(),
        &["migrate", "--database-url", database.url.as_str()],
    );
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let stdout = String::from_utf8_lossy(&migrated.stdout);
    assert!(
        stdout.contains("applied") && stdout.contains(THIS_RELEASE),
        "{stdout}"
    );
    assert_eq!(
        database.count("SELECT COUNT(*) FROM schema_compat").await,
        database
            .count("SELECT COUNT(*) FROM seaql_migrations")
            .await
            + database
                .count("SELECT COUNT(*) FROM api_tokens_migrations")
                .await,
        "each applied migration declares its compatibility"
    );

    let again = run(
        dir.path(),
        &["migrate", "--database-url", database.url.as_str()],
    );
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to apply"));

    let server = ServerProcess::start(
        dir.path(),
        &[
            "--database-url",
            database.url.as_str(),
            "--migrate",
            "check",
        ],
        "warn",
    )
    .await;
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// Runs `serve` with `extra` flags on `database`; it must fail with exactly one line.
fn refused_line(database: &TestDatabase, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let out = run(
        dir.path(),
        &[
            &["serve", "--listen", "127.0.0.1:0", "--database-url"][..],
            &[database.url.as_str()],
            extra,
        ]
        .concat(),
    );
    assert!(!out.status.success(), "serve must refuse");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    lines[0].to_owned()
}

on_both_backends!(
    the_release_before_the_policy_finds_only_what_it_knows,
    starts_on_a_newer_schema_that_declares_itself_compatible,
    refuses_a_newer_schema_that_declares_itself_incompatible,
    refuses_a_newer_schema_that_declares_nothing,
    check_mode_needs_migrate_first,
);
