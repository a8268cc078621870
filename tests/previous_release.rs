//! Rollback to the previous release, for real: its binary (built by `.ci/run` from the commit
//! named in `.ci/previous-release`) starts on the schema this release migrated, decides the
//! tokens this release made, and takes writes; this release then runs on after it.
mod common;

use std::path::PathBuf;

use api_tokens::grpc::pb;
use api_tokens::grpc::pb::authorize_service_client::AuthorizeServiceClient;
use common::calls::{authorize_on, authorize_request};
use common::process::{ServerProcess, bootstrap};
use common::{Backend, TestDatabase, create_token_on};

/// The previous release's binary. `.ci/run` builds it; without it this test fails, loudly.
fn previous_binary() -> PathBuf {
    let path = std::env::var("API_TOKENS_PREVIOUS_BINARY").expect(
        "API_TOKENS_PREVIOUS_BINARY names the previous release's binary (.ci/run builds it)",
    );
    let path = PathBuf::from(path);
    assert!(path.is_file(), "no binary at {}", path.display());
    path
}

async fn allowed(server: &ServerProcess, secret: &str) -> pb::Decision {
    let client = AuthorizeServiceClient::new(server.channel.clone());
    let request = authorize_request(secret, "rollback-check", pb::Privilege::ReadOnly, "");
    authorize_on(&client, request).await.decision()
}

async fn the_previous_release_runs_on_this_schema(backend: Backend) {
    let previous = previous_binary();
    let database = TestDatabase::create(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let url = database.url.clone();
    let flags = ["--database-url", url.as_str()];
    // This release migrates the database and makes the account and its Admin's token.
    let admin = bootstrap(dir.path(), &url, "rollback-check");
    let current = ServerProcess::start(dir.path(), &flags, "warn").await;
    assert_eq!(allowed(&current, &admin.secret).await, pb::Decision::Allow);
    let (status, log) = current.terminate();
    assert!(status.success(), "{log}");

    // Rolled back: the previous release starts on this schema and decides the same token.
    let old = ServerProcess::start_binary(&previous, dir.path(), &flags, "warn").await;
    assert_eq!(allowed(&old, &admin.secret).await, pb::Decision::Allow);
    // The previous release takes writes.
    let kind = (
        pb::TokenType::User,
        pb::Privilege::Normal,
        pb::AppState::Allow,
    );
    let (_, created_secret) = create_token_on(&old.channel, &admin, kind).await;
    let (status, log) = old.terminate();
    assert!(status.success(), "{log}");

    // Rolled forward again: this release runs on, and sees what the previous one wrote.
    let current = ServerProcess::start(dir.path(), &flags, "warn").await;
    assert_eq!(
        allowed(&current, &created_secret).await,
        pb::Decision::Allow
    );
    let (status, log) = current.terminate();
    assert!(status.success(), "{log}");
}

mod the_previous_release_runs_on_this_schema {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs the previous release's binary: run by .ci/run"]
    async fn sqlite() {
        super::the_previous_release_runs_on_this_schema(crate::common::Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs the previous release's binary and PostgreSQL: run by .ci/run"]
    async fn postgres() {
        super::the_previous_release_runs_on_this_schema(crate::common::Backend::Postgres).await
    }
}
