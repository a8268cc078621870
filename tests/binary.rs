//! The real `api-tokens` binary: first start on a fresh folder, clear failures, graceful
//! SIGTERM, and no secret in its logs or its database.
mod common;

use api_tokens::grpc::pb::{self, authorize_service_client::AuthorizeServiceClient};
use base64::Engine;
use common::As;
use common::process::{ServerProcess, run};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn fresh_folder_serves_on_sqlite_and_sigterm_drains_to_exit_zero() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(dir.path(), &[], "info").await;
    assert!(
        dir.path().join("api-tokens.db").exists(),
        "the default SQLite file is created on first start"
    );
    let status = HealthClient::new(server.channel.clone())
        .check(HealthCheckRequest {
            service: "apitokens.v1.AuthorizeService".into(),
        })
        .await
        .expect("health");
    assert_eq!(status.into_inner().status, ServingStatus::Serving as i32);
    let (status, log) = server.terminate();
    assert!(status.success(), "SIGTERM exits 0: {status:?}\n{log}");
    assert!(
        log.contains("NOT_SERVING") && log.contains("stopped"),
        "shutdown is logged:\n{log}"
    );
}

#[test]
fn bad_flags_and_unreachable_databases_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("dir");
    let bad_flag = run(dir.path(), &["serve", "--listen", "not-an-address"]);
    assert!(!bad_flag.status.success());
    assert!(String::from_utf8_lossy(&bad_flag.stderr).contains("--listen"));

    let unreachable = run(
        dir.path(),
        &[
            "serve",
            "--database-url",
            "postgres://nobody:hunter2@127.0.0.1:1/none",
            "--db-connect-timeout-secs",
            "1",
        ],
    );
    assert!(!unreachable.status.success());
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].starts_with("api-tokens: cannot open the database"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password is not shown: {stderr}"
    );
}

#[test]
fn bootstrap_prints_the_secret_once_and_refuses_a_second_time() {
    let dir = tempfile::tempdir().expect("dir");
    let first = run(
        dir.path(),
        &[
            "bootstrap",
            "--account",
            "acme",
            "--admin",
            "ops@example.com",
            "--output",
            "json",
        ],
    );
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let made: serde_json::Value = serde_json::from_slice(&first.stdout).expect("json");
    assert_eq!(made["secret"].as_str().expect("secret").len(), 36);
    let again = run(
        dir.path(),
        &[
            "bootstrap",
            "--account",
            "acme",
            "--admin",
            "ops@example.com",
        ],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

/// Drives every kind of call with real secrets against a server logging at TRACE, then
/// looks for those secrets in its log and its database file.
#[tokio::test]
async fn no_secret_reaches_the_log_or_the_database() {
    let dir = tempfile::tempdir().expect("dir");
    let boot = run(
        dir.path(),
        &[
            "bootstrap",
            "--account",
            "acme",
            "--admin",
            "ops@example.com",
            "--output",
            "json",
        ],
    );
    let made: serde_json::Value = serde_json::from_slice(&boot.stdout).expect("json");
    let admin_secret = made["secret"].as_str().expect("secret").to_owned();
    let server = ServerProcess::start(dir.path(), &[], "trace").await;
    let channel = server.channel.clone();

    let admin = As::new(admin_secret.clone(), "secret-hunt");
    let mut tokens = pb::token_service_client::TokenServiceClient::new(channel.clone());
    let created = tokens
        .create_token(admin.req(pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            ..Default::default()
        }))
        .await
        .expect("create")
        .into_inner();
    let mut secrets = vec![admin_secret.clone(), created.secret.clone()];
    let mut authorize = AuthorizeServiceClient::new(channel.clone());
    for (secret, app) in [
        (&created.secret, "pending app"),
        (&admin_secret, "allowed app"),
    ] {
        authorize
            .authorize(pb::AuthorizeRequest {
                token: secret.clone(),
                app_name: app.into(),
                required_privilege: 0,
                ..Default::default()
            })
            .await
            .expect("authorize");
    }
    // Unknown and malformed secrets are secrets too: they must not be echoed anywhere.
    let unknown = "0badc0de-0000-4000-8000-000000000001".to_owned();
    let malformed = "not-a-uuid-but-secret-7f3a9".to_owned();
    for token in [&unknown, &malformed] {
        let _ = authorize
            .authorize(pb::AuthorizeRequest {
                token: token.clone(),
                app_name: "x".into(),
                required_privilege: 0,
                ..Default::default()
            })
            .await;
        let _ = tokens
            .list_tokens(As::new(token.clone(), "x").req(pb::ListTokensRequest::default()))
            .await;
    }
    secrets.extend([unknown, malformed]);
    let mut basic = tonic::Request::new(pb::ListTokensRequest::default());
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("basic app:{admin_secret}"));
    basic.metadata_mut().insert(
        "authorization",
        format!("Basic {encoded}").parse().expect("ascii"),
    );
    tokens.list_tokens(basic).await.expect("basic auth works");
    secrets.push(encoded);

    let (status, log) = server.terminate();
    assert!(status.success());
    assert!(
        log.len() > 1000,
        "the trace log was captured ({} bytes)",
        log.len()
    );
    let database = std::fs::read(dir.path().join("api-tokens.db")).expect("db file");
    let wal = std::fs::read(dir.path().join("api-tokens.db-wal")).unwrap_or_default();
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret appears in the log"
        );
        for bytes in [&database, &wal] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret appears in the database"
            );
        }
    }
}
