//! Two real server processes on one PostgreSQL database: events and retirements cross
//! replicas through the change log (NOTIFY wakes the follower), never through cache expiry.

use std::time::{Duration, Instant};

use crate::common::calls::{authorize_on, authorize_request};
use crate::common::process::{ServerProcess, bootstrap};
use crate::common::{Backend, TestDatabase};
use api_tokens::grpc::pb::{
    self, authorize_service_client::AuthorizeServiceClient,
    token_service_client::TokenServiceClient,
};
use tokio_stream::StreamExt;

async fn authorize(server: &ServerProcess, secret: &str, app: &str) -> pb::Decision {
    let client = AuthorizeServiceClient::new(server.channel.clone());
    let request = authorize_request(secret, app, pb::Privilege::Unspecified, "");
    authorize_on(&client, request).await.decision()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run by .ci/run (cargo test -- --ignored)"]
async fn two_replicas_share_events_and_retirements() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("dir");
    let url = database.url.clone();
    let admin = bootstrap(dir.path(), &url, "replica-test");
    // Cached decisions never expire by time: only the change log can make a change visible
    // across replicas.
    let flags = ["--database-url", url.as_str()];
    let a = ServerProcess::start(dir.path(), &flags, "info").await;
    let b = ServerProcess::start(dir.path(), &flags, "info").await;

    // A watcher on B sees an application first used on A.
    let mut tokens_a = TokenServiceClient::new(a.channel.clone());
    let created = tokens_a
        .create_token(admin.req(pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            privilege: pb::Privilege::Normal.into(),
            default_app_state: pb::AppState::Pending.into(),
            description: String::new(),
            request_id: String::new(),
            ..Default::default()
        }))
        .await
        .expect("create on A")
        .into_inner();
    let (token_id, secret) = (created.token.expect("token").id, created.secret);
    let mut watcher = TokenServiceClient::new(b.channel.clone())
        .watch_applications(admin.req(pb::WatchApplicationsRequest::default()))
        .await
        .expect("watch on B")
        .into_inner();
    let first = watcher.next().await.expect("open").expect("ok");
    assert_eq!(first.r#type(), pb::WatchEventType::SnapshotEnd);
    assert_eq!(
        authorize(&a, &secret, "seen on A").await,
        pb::Decision::Pending
    );
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let item = watcher.next().await.expect("open").expect("ok");
            if item.r#type() != pb::WatchEventType::Heartbeat {
                return item;
            }
        }
    })
    .await
    .expect("B's watcher hears A's event");
    assert_eq!(event.r#type(), pb::WatchEventType::Recorded);
    assert_eq!(event.application.as_ref().expect("app").name, "seen on A");

    // B's watcher is killed mid-stream; two more names arrive; it resumes on A by cursor.
    drop(watcher);
    for name in ["while away 1", "while away 2"] {
        assert_eq!(authorize(&b, &secret, name).await, pb::Decision::Pending);
    }
    let mut resumed = tokens_a
        .watch_applications(admin.req(pb::WatchApplicationsRequest {
            cursor: event.cursor.clone(),
            ..Default::default()
        }))
        .await
        .expect("resume on A")
        .into_inner();
    let mut names = Vec::new();
    while names.len() < 2 {
        let item = tokio::time::timeout(Duration::from_secs(10), resumed.next())
            .await
            .expect("event")
            .expect("open")
            .expect("ok");
        if let Some(app) = item.application {
            names.push(app.name);
        }
    }
    assert_eq!(
        names,
        ["while away 1", "while away 2"],
        "no gap, no duplicate, across replicas"
    );
    drop(resumed);

    // Warm the token on B, retire it on A: B refuses it long before its cache would expire.
    tokens_a
        .set_application_state(admin.req(pb::SetApplicationStateRequest {
            token_id: token_id.clone(),
            name: "seen on A".into(),
            state: pb::AppState::Allow.into(),
            ..Default::default()
        }))
        .await
        .expect("allow on A");
    let deadline = Instant::now() + Duration::from_secs(10);
    while authorize(&b, &secret, "seen on A").await != pb::Decision::Allow {
        assert!(
            Instant::now() < deadline,
            "B never saw the approval made on A"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokens_a
        .retire_token(admin.req(pb::RetireTokenRequest {
            id: token_id,
            ..Default::default()
        }))
        .await
        .expect("retire on A");
    let retired_at = Instant::now();
    while authorize(&b, &secret, "seen on A").await != pb::Decision::Retired {
        assert!(
            Instant::now() < deadline,
            "B never refused the token retired on A"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("retire on A refused on B after {:?}", retired_at.elapsed());

    for server in [a, b] {
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");
    }
}
