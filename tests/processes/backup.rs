//! `api-tokens backup --to FILE` (docs/BACKUP.md): an online copy of an SQLite database taken
//! while the server serves and writes, that a new server can start on; PostgreSQL is refused.

use crate::common::calls::{authorize_on, authorize_request};
use crate::common::create_token_on;
use crate::common::process::{ServerProcess, bootstrap, run};
use api_tokens::grpc::pb;
use api_tokens::grpc::pb::authorize_service_client::AuthorizeServiceClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tonic::transport::Channel;

/// A Normal user token of `admin` whose applications are allowed; its secret.
async fn create_token(channel: &Channel, admin: &crate::common::As) -> String {
    let kind = (
        pb::TokenType::User,
        pb::Privilege::Normal,
        pb::AppState::Allow,
    );
    create_token_on(channel, admin, kind).await.1
}

async fn decision(channel: &Channel, secret: &str) -> pb::Decision {
    let client = AuthorizeServiceClient::new(channel.clone());
    let request = authorize_request(secret, "backup-test", pb::Privilege::Normal, "");
    let reply = authorize_on(&client, request).await;
    reply.decision()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_taken_while_the_server_writes_serves_the_tokens_made_before_it() {
    let live = tempfile::tempdir().expect("dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        live.path().join("api-tokens.db").display()
    );
    let server = ServerProcess::start(live.path(), &["--database-url", url.as_str()], "warn").await;
    let admin = bootstrap(live.path(), &url, "backup-test");
    let before = create_token(&server.channel, &admin).await;
    assert_eq!(
        decision(&server.channel, &before).await,
        pb::Decision::Allow
    );

    // The server keeps writing (new tokens) while the backup runs in another process.
    let written = Arc::new(AtomicU32::new(0));
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let writer = {
        let channel = server.channel.clone();
        let admin = admin.clone();
        let written = written.clone();
        tokio::spawn(async move {
            // Bounded: the backup ends long before this many writes.
            while written.load(Ordering::SeqCst) < 10_000 && stopped.try_recv().is_err() {
                create_token(&channel, &admin).await;
                written.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    for _ in 0..400 {
        if written.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(written.load(Ordering::SeqCst) > 0, "the writer is writing");
    let copy = tempfile::tempdir().expect("dir");
    let file = copy.path().join("backup.db");
    let out = run(
        live.path(),
        &[
            "backup",
            "--to",
            file.to_str().expect("utf-8"),
            "--database-url",
            url.as_str(),
        ],
    );
    let _ = stop.send(());
    writer.await.expect("writer");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backed up to"));
    assert_eq!(
        decision(&server.channel, &before).await,
        pb::Decision::Allow,
        "the live server still serves"
    );

    // The copy alone (no -wal or -shm beside it) is a working database.
    let files: Vec<_> = std::fs::read_dir(copy.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(files, vec![std::ffi::OsString::from("backup.db")]);
    let restored_url = format!("sqlite://{}?mode=rwc", file.display());
    let restored = ServerProcess::start(
        copy.path(),
        &[
            "--database-url",
            restored_url.as_str(),
            "--migrate",
            "check",
        ],
        "warn",
    )
    .await;
    assert_eq!(
        decision(&restored.channel, &before).await,
        pb::Decision::Allow,
        "a token created before the backup authorizes on a server started on it"
    );
    let (status, log) = restored.terminate();
    assert!(status.success(), "{log}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn backup_refuses_postgresql_an_existing_file_and_a_missing_database() {
    let dir = tempfile::tempdir().expect("dir");
    let pg = run(
        dir.path(),
        &[
            "backup",
            "--to",
            "x.db",
            "--database-url",
            "postgres://api_tokens:TopSecret@127.0.0.1:1/api_tokens",
        ],
    );
    assert!(!pg.status.success());
    let stderr = String::from_utf8_lossy(&pg.stderr);
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(!stderr.contains("TopSecret"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    std::fs::write(dir.path().join("taken.db"), b"").expect("write");
    let taken = run(dir.path(), &["backup", "--to", "taken.db"]);
    assert!(!taken.status.success());
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already exists"));

    // The default URL names a file that is not there: no empty database is created and copied.
    let missing = run(dir.path(), &["backup", "--to", "copy.db"]);
    assert!(!missing.status.success());
    assert!(!dir.path().join("api-tokens.db").exists());
    assert!(!dir.path().join("copy.db").exists());
}
