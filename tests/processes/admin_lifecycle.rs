//! The command line of token lifecycle events and leaked-secret reports: the real binary
//! against a spawned server. `tokens events` prints the stream as JSON lines; `tokens
//! report-leak` reads the secret from stdin and needs no token of its own.

use std::process::Stdio;

use crate::common::{Backend, spawn_app};
use api_tokens::grpc::pb;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn tokens_events_prints_lifecycle_events_as_json_lines(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_api-tokens"))
        .args(["tokens", "events", "--output", "json"])
        .env("API_TOKENS_SERVER", format!("http://{}", app.addr))
        .env("API_TOKENS_TOKEN", &app.admin.secret)
        .env_remove("API_TOKENS_APP")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start tokens events");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = async || {
        let line = lines.next_line().await.expect("read").expect("a line");
        serde_json::from_str::<Value>(&line).expect("JSON per line")
    };
    let present = next().await;
    assert_eq!(
        present["type"], "heartbeat",
        "the stream starts at the present"
    );
    let (token, _) = app.admin_user_token(pb::AppState::Allow).await;
    let created = next().await;
    assert_eq!(created["type"], "created");
    assert_eq!(created["token_id"], token.id.as_str());
    assert!(!created["cursor"].as_str().unwrap_or_default().is_empty());
    child.kill().await.expect("stop");
    app.stop().await;
}

async fn tokens_report_leak_reads_the_secret_from_stdin_with_no_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, secret) = app.admin_user_token(pb::AppState::Allow).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_api-tokens"))
        .args([
            "tokens",
            "report-leak",
            "--where-found",
            "https://paste.example/x",
        ])
        .env("API_TOKENS_SERVER", format!("http://{}", app.addr))
        .env_remove("API_TOKENS_TOKEN")
        .env_remove("API_TOKENS_APP")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start report-leak");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{secret}\n").as_bytes())
        .await
        .expect("write the secret");
    drop(stdin);
    let out = child.wait_with_output().await.expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = app.token(&token.id).await.state();
    assert_eq!(state, pb::TokenState::Retired);
    app.stop().await;
}

on_both_backends!(
    tokens_events_prints_lifecycle_events_as_json_lines,
    tokens_report_leak_reads_the_secret_from_stdin_with_no_token,
);
