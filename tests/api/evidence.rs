//! Evidence per (token, application), written behind: refused attempts while Pending or
//! Denied, allowed calls, first and last seen, the last client address; shown in
//! ListApplications and on watch events; nothing acknowledged lost across a SIGTERM.

use std::time::Duration;

use crate::common::app_events::{next, watch};
use crate::common::calls::{applications_of, authorize_request};
use crate::common::process::{ServerProcess, bootstrap};
use crate::common::{Backend, Spawn, TestApp, TestDatabase};
use api_tokens::grpc::pb::token_service_client::TokenServiceClient;
use api_tokens::grpc::pb::{self, authorize_service_client::AuthorizeServiceClient};
use api_tokens::service::ServiceSettings;
use tokio_stream::StreamExt;

async fn evidence_counts_what_happened_and_shows_it(backend: Backend) {
    // No interval flush during the test: only shutdown writes, so the counts are all its own.
    let settings = ServiceSettings {
        last_used_interval: Duration::from_secs(3600),
        ..ServiceSettings::default()
    };
    let app: TestApp = Spawn::new(backend).service(settings).start().await;
    let (token, secret) = app.admin_user_token(pb::AppState::Pending).await;
    let knock =
        |client| app.authorize_from(&secret, "knocking", pb::Privilege::Unspecified, client);
    for _ in 0..3 {
        assert_eq!(knock("10.0.0.5").await.decision(), pb::Decision::Pending);
    }
    app.set_state(&token.id, "knocking", pb::AppState::Allow)
        .await;
    for client in ["10.0.0.6", "", "10.0.0.7", ""] {
        assert_eq!(knock(client).await.decision(), pb::Decision::Allow);
    }
    // Written behind: nothing yet, however many calls.
    let before = app.application(&token.id, "knocking").await;
    assert_eq!(before.evidence.expect("evidence").allowed_count, 0);

    // A graceful stop flushes what was gathered (the same path as SIGTERM).
    let app = app.restart().await;
    let after = app.application(&token.id, "knocking").await;
    let evidence = after.evidence.expect("evidence");
    assert_eq!(evidence.refused_attempts, 3);
    assert_eq!(evidence.allowed_count, 4);
    assert_eq!(
        evidence.last_client_address, "10.0.0.7",
        "the last call that gave an address"
    );
    let seconds = |t: &Option<prost_types::Timestamp>| {
        t.as_ref().map(|t| (t.seconds, t.nanos)).unwrap_or_default()
    };
    assert!(seconds(&after.last_seen_time) > seconds(&after.first_seen_time));

    // A watcher deciding on it sees the evidence on the event.
    let request = pb::WatchApplicationsRequest {
        states: vec![pb::AppState::Deny.into()],
        ..Default::default()
    };
    let mut events = watch(&app.tokens, &app.admin, request).await;
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("snapshot end")
        .expect("open")
        .expect("ok");
    assert_eq!(first.r#type(), pb::WatchEventType::SnapshotEnd);
    app.set_state(&token.id, "knocking", pb::AppState::Deny)
        .await;
    let event = next(&mut events).await;
    assert_eq!(event.r#type(), pb::WatchEventType::StateChanged);
    let shown = event.application.expect("application");
    let evidence = shown.evidence.expect("evidence on the event");
    assert_eq!((evidence.refused_attempts, evidence.allowed_count), (3, 4));
    assert!(shown.first_seen_time.is_some());
}

/// The real binary, many concurrent calls, SIGTERM: every acknowledged call is counted after
/// the restart, exactly (the interval flush is an hour away; only the shutdown flush writes).
async fn counters_lose_nothing_acknowledged_across_sigterm(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let url = database.url.clone();
    let admin = bootstrap(dir.path(), &url, "evidence-test");
    let flags = [
        "--database-url",
        url.as_str(),
        "--last-used-interval-secs",
        "3600",
    ];
    let server = ServerProcess::start(dir.path(), &flags, "warn").await;
    let mut tokens = TokenServiceClient::new(server.channel.clone());
    let created = tokens
        .create_token(admin.req(pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            default_app_state: pb::AppState::Allow.into(),
            ..Default::default()
        }))
        .await
        .expect("create")
        .into_inner();
    let token_id = created.token.expect("token").id;
    let secret = created.secret;
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let mut client = AuthorizeServiceClient::new(server.channel.clone());
            let secret = secret.clone();
            tokio::spawn(async move {
                let mut acknowledged = 0u64;
                for _ in 0..150 {
                    let name = if w % 2 == 0 { "even" } else { "odd" };
                    let reply = client
                        .authorize(authorize_request(
                            &secret,
                            name,
                            pb::Privilege::Unspecified,
                            "10.1.1.1",
                        ))
                        .await
                        .expect("authorize")
                        .into_inner();
                    assert_eq!(reply.decision(), pb::Decision::Allow);
                    acknowledged += 1;
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = 0;
    for worker in workers {
        acknowledged += worker.await.expect("worker");
    }
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");

    let server = ServerProcess::start(dir.path(), &flags, "warn").await;
    let tokens = TokenServiceClient::new(server.channel.clone());
    let mut counted = 0;
    let apps = applications_of(&tokens, &admin, &token_id).await;
    for name in ["even", "odd"] {
        let app = apps.iter().find(|a| a.name == name).expect("listed");
        counted += app.evidence.as_ref().expect("evidence").allowed_count;
    }
    // The admin's own management calls are counted under its own token, not this one.
    assert_eq!(
        counted as u64, acknowledged,
        "every acknowledged call counted"
    );
    let (status, _) = server.terminate();
    assert!(status.success());
}

on_both_backends!(
    evidence_counts_what_happened_and_shows_it,
    counters_lose_nothing_acknowledged_across_sigterm,
);
