//! A fresh database per test: an SQLite file in a temporary folder, or a PostgreSQL
//! database with a random name, dropped when the test ends. The examples use it too
//! (`examples/support`), so it needs nothing else of the tests' harness.
use std::time::Duration;

use api_tokens::storage::{DatabaseSettings, url_with_database};
use sea_orm::{ConnectionTrait, Database};

/// Where the PostgreSQL tests find their server; `.ci/run` sets it.
pub const POSTGRES_URL_VAR: &str = "API_TOKENS_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    /// How long the server waits for a connection before answering UNAVAILABLE.
    pub connect_timeout: Duration,
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("api-tokens.db").display()
                );
                TestDatabase {
                    backend,
                    url,
                    connect_timeout: Duration::from_secs(5),
                    postgres: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
                    panic!("{POSTGRES_URL_VAR} is not set: the PostgreSQL tests need a server (see .ci/run)")
                });
                TestDatabase::create_on_postgres(&admin_url).await
            }
        }
    }

    /// On the PostgreSQL server at `postgres` when one is given (an example's `--postgres`),
    /// else in an SQLite file.
    pub async fn on(postgres: Option<&str>) -> TestDatabase {
        match postgres {
            Some(admin_url) => TestDatabase::create_on_postgres(admin_url).await,
            None => TestDatabase::create(Backend::Sqlite).await,
        }
    }

    /// A fresh database on the PostgreSQL server at `admin_url` (the shared one, or a test's own).
    pub async fn create_on_postgres(admin_url: &str) -> TestDatabase {
        let name = format!("apitokens_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(admin_url)
            .await
            .expect("PostgreSQL reachable");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        TestDatabase {
            backend: Backend::Postgres,
            url: url_with_database(admin_url, &name),
            connect_timeout: Duration::from_secs(5),
            postgres: Some((admin_url.to_owned(), name)),
            _dir: None,
        }
    }

    /// Runs SQL on the server's maintenance connection (PostgreSQL), e.g. to cut this database off.
    pub async fn admin_sql(&self, sql: &str) {
        let (admin_url, _) = self.postgres.as_ref().expect("a PostgreSQL test database");
        let admin = Database::connect(admin_url.as_str())
            .await
            .expect("PostgreSQL reachable");
        admin.execute_unprepared(sql).await.expect("admin SQL");
        let _ = admin.close().await;
    }

    /// The PostgreSQL server's maintenance URL and this database's name; `None` on SQLite.
    pub fn postgres(&self) -> Option<(&str, &str)> {
        self.postgres
            .as_ref()
            .map(|(admin_url, name)| (admin_url.as_str(), name.as_str()))
    }

    /// The PostgreSQL database's name.
    pub fn postgres_name(&self) -> &str {
        &self
            .postgres
            .as_ref()
            .expect("a PostgreSQL test database")
            .1
    }

    /// One number from the test database, for checks the API does not expose (event rows).
    pub async fn count(&self, sql: &str) -> i64 {
        let db = Database::connect(self.url.as_str())
            .await
            .expect("connect to test database");
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .expect("query")
            .expect("one row");
        let n: i64 = row.try_get_by_index(0).expect("a number");
        let _ = db.close().await;
        n
    }

    pub fn settings(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.url.clone(),
            max_connections: 10,
            connect_timeout: self.connect_timeout,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.postgres.take() {
            drop_blocking(
                &admin_url,
                &[format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")],
            );
        }
    }
}

/// Runs clean-up statements on the PostgreSQL server at `admin_url` from a `Drop` (outside
/// async: a thread with its own runtime does it), ignoring failures: what is left behind has
/// a random name and harms nothing.
pub fn drop_blocking(admin_url: &str, statements: &[String]) {
    let (admin_url, statements) = (admin_url.to_owned(), statements.to_vec());
    let _ = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            if let Ok(admin) = Database::connect(admin_url.as_str()).await {
                for statement in &statements {
                    let _ = admin.execute_unprepared(statement).await;
                }
                let _ = admin.close().await;
            }
        });
    })
    .join();
}
