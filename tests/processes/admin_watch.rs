//! `api-tokens watch` as an operator runs it: the stream as JSON lines, and the table whose
//! columns line up under its header.
use crate::common::TestApp;
use crate::common::{Backend, spawn_app};
use api_tokens::grpc::pb;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use super::admin_cli::command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_the_stream_as_json_lines() {
    let app = spawn_app(Backend::Sqlite).await;
    let secret = app.pending_read_only_token().await;
    let (mut child, mut lines) = watch(&app, &["--output", "json"]);
    let mut next = async || loop {
        let line = lines.next_line().await.expect("read").expect("a line");
        let event: Value = serde_json::from_str(&line).expect("JSON per line");
        if event["type"] != "heartbeat" {
            return event;
        }
    };
    assert_eq!(next().await["type"], "snapshot_end");
    app.authorize(&secret, "watched-app", pb::Privilege::ReadOnly)
        .await;
    let recorded = next().await;
    assert_eq!(recorded["type"], "recorded");
    assert_eq!(recorded["application"]["name"], "watched-app");
    assert_eq!(recorded["application"]["state"], "pending");
    assert!(!recorded["cursor"].as_str().unwrap_or_default().is_empty());
    child.kill().await.expect("stop watch");
    app.stop().await;
}

/// `api-tokens watch FLAGS` as the bootstrap Admin, running (killed when dropped), and its
/// output line by line as it comes.
fn watch(app: &TestApp, flags: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = command(
        app.addr,
        Some(&app.admin.secret),
        &[&["watch"], flags].concat(),
    )
    .stdout(std::process::Stdio::piped())
    .kill_on_drop(true)
    .spawn()
    .expect("start watch");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, lines)
}

/// The start of each header column, as byte offsets.
fn column_starts(header: &str) -> Vec<usize> {
    let mut starts = vec![0];
    let bytes = header.as_bytes();
    for i in 1..bytes.len() {
        if bytes[i] != b' ' && bytes[i - 1] == b' ' {
            starts.push(i);
        }
    }
    starts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_table_lines_up_under_its_header() {
    let app = spawn_app(Backend::Sqlite).await;
    let secret = app.pending_read_only_token().await;
    // Pending before the watch: a snapshot row, then the snapshot's end.
    app.authorize(
        &secret,
        "a rather long application name v1.2.3",
        pb::Privilege::ReadOnly,
    )
    .await;
    let (mut child, mut lines) = watch(&app, &[]);
    let mut next = async || lines.next_line().await.expect("read").expect("a line");
    let header = next().await;
    assert!(header.starts_with("EVENT"), "{header}");
    let snapshot = next().await;
    let end = next().await;
    app.authorize(&secret, "x", pb::Privilege::ReadOnly).await;
    let mut recorded = next().await;
    while recorded.starts_with("heartbeat") {
        recorded = next().await;
    }
    child.kill().await.expect("stop watch");
    let starts = column_starts(&header);
    let columns = header.split_whitespace().collect::<Vec<_>>();
    let shown = format!("{header}\n{snapshot}\n{end}\n{recorded}");
    for row in [&snapshot, &recorded] {
        for (column, start) in columns.iter().zip(&starts) {
            let before = row.as_bytes().get(start.wrapping_sub(1)).copied();
            assert!(
                *start == 0 || before == Some(b' '),
                "{column} does not start a cell of this row:\n{shown}"
            );
            assert_ne!(
                row.as_bytes().get(*start).copied(),
                Some(b' '),
                "{column} is empty in this row:\n{shown}"
            );
        }
    }
    assert_eq!(
        columns,
        ["EVENT", "TIME", "TOKEN", "STATE", "CURSOR", "NAME"]
    );
    assert!(
        snapshot.starts_with("snapshot ")
            && snapshot.ends_with("a rather long application name v1.2.3"),
        "{shown}"
    );
    assert!(
        recorded.starts_with("recorded ") && recorded.ends_with(" x"),
        "{shown}"
    );
    // The snapshot's end concerns no application: no token, state or name, and the cursor
    // still under its header.
    assert!(end.starts_with("snapshot_end "), "{shown}");
    assert!(!end.contains("unspecified"), "{shown}");
    assert_eq!(
        end.get(starts[4]..).map(str::len),
        recorded
            .get(starts[4]..starts[5])
            .map(|c| c.trim_end().len()),
        "{shown}"
    );
    app.stop().await;
}
