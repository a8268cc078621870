//! docs/DEPLOYMENT.md's SQL for the service's PostgreSQL role, run as written against a fresh
//! role and database; the server then starts as that role over TCP with a password and serves.
//! PostgreSQL only (`#[ignore]`d; `.ci/run` runs them).

use crate::common::db::{POSTGRES_URL_VAR, drop_blocking};
use crate::common::process::{ServerProcess, bootstrap, run};
use api_tokens::grpc::pb::{ListTokensRequest, token_service_client::TokenServiceClient};
use api_tokens::storage::url_with_database;
use sea_orm::{ConnectionTrait, Database};

/// The statements of the ```sql block after the line holding `<!-- sql:{marker}`.
fn documented_sql(marker: &str) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/DEPLOYMENT.md");
    let text = std::fs::read_to_string(path).expect("docs/DEPLOYMENT.md");
    let mut lines = text
        .lines()
        .skip_while(|l| !l.contains(&format!("<!-- sql:{marker}")));
    assert!(
        lines.next().is_some(),
        "docs/DEPLOYMENT.md has no block marked sql:{marker}"
    );
    assert_eq!(
        lines.next(),
        Some("```sql"),
        "the marker precedes a sql block"
    );
    let body: Vec<&str> = lines
        .take_while(|l| *l != "```")
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    let statements: Vec<String> = body
        .join("\n")
        .split(';')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    assert!(!statements.is_empty(), "sql:{marker} is empty");
    statements
}

/// A role and a database of the same random name, dropped when the test ends.
struct FreshRole {
    admin_url: String,
    name: String,
    password: String,
}

impl FreshRole {
    fn new() -> FreshRole {
        let admin_url = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
            panic!("{POSTGRES_URL_VAR} is not set: these tests need a PostgreSQL server")
        });
        FreshRole {
            admin_url,
            name: format!("apitokens_role_{}", uuid::Uuid::new_v4().simple()),
            password: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// The documented SQL with this role's name and password in place of the examples.
    fn sql(&self, marker: &str) -> Vec<String> {
        documented_sql(marker)
            .into_iter()
            .map(|s| {
                s.replace("api_tokens", &self.name)
                    .replace("change-me", &self.password)
            })
            .collect()
    }

    /// Runs statements as the superuser, connected to `database`.
    async fn as_superuser(&self, database: &str, statements: &[String]) {
        let url = url_with_database(&self.admin_url, database);
        let admin = Database::connect(url.as_str()).await.expect("superuser");
        for statement in statements {
            admin
                .execute_unprepared(statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        let _ = admin.close().await;
    }

    /// The service's URL: this role, its password, over TCP.
    fn url(&self) -> String {
        let rest = self
            .admin_url
            .split_once("://")
            .map(|(_, r)| r)
            .expect("scheme");
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let with_role = format!("postgres://{}:{}@{host}", self.name, self.password);
        url_with_database(&with_role, &self.name)
    }
}

impl Drop for FreshRole {
    fn drop(&mut self) {
        let name = &self.name;
        drop_blocking(
            &self.admin_url,
            &[
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                format!("DROP ROLE IF EXISTS {name}"),
            ],
        );
    }
}

/// `serve` as the role migrates and serves; `bootstrap` as the role writes; the server reads it.
async fn serves_as(role: &FreshRole) {
    let dir = tempfile::tempdir().expect("dir");
    let url = role.url();
    assert!(url.contains(&format!("{}:{}@", role.name, role.password)));
    let server = ServerProcess::start(dir.path(), &["--database-url", url.as_str()], "warn").await;
    let admin = bootstrap(dir.path(), &url, "role-test");
    let listed = TokenServiceClient::new(server.channel.clone())
        .list_tokens(admin.req(ListTokensRequest::default()))
        .await
        .expect("ListTokens as the bootstrap Admin");
    assert_eq!(listed.into_inner().tokens.len(), 1);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run by .ci/run (cargo test -- --ignored)"]
async fn a_role_that_owns_its_database_as_documented_serves() {
    let role = FreshRole::new();
    role.as_superuser("postgres", &role.sql("owner")).await;
    serves_as(&role).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run by .ci/run (cargo test -- --ignored)"]
async fn a_role_granted_the_schema_as_documented_serves() {
    let role = FreshRole::new();
    // The database exists and the superuser owns it.
    role.as_superuser("postgres", &[format!("CREATE DATABASE {}", role.name)])
        .await;
    role.as_superuser(&role.name, &role.sql("grant")).await;
    serves_as(&role).await;
}

/// The issue's report, kept as a control: on PostgreSQL 15 a login role on a database it
/// does not own, without the grant, cannot migrate; the message says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run by .ci/run (cargo test -- --ignored)"]
async fn a_role_without_create_on_public_is_refused_with_the_reason() {
    let role = FreshRole::new();
    role.as_superuser(
        "postgres",
        &[
            format!(
                "CREATE ROLE {} LOGIN CREATEDB PASSWORD '{}'",
                role.name, role.password
            ),
            format!("CREATE DATABASE {}", role.name),
        ],
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let out = run(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            role.url().as_str(),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("permission denied for schema public"),
        "{stderr}"
    );
}
