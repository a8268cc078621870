//! WatchApplications over a real socket: snapshot then live, resume by cursor with no gap and
//! no duplicate, visibility, expired cursors, heartbeats, slow consumers and shutdown.

use std::time::Duration;

use crate::common::app_events::{Events, all_states, next, watch};
use crate::common::calls::authorize_request;
use crate::common::{Backend, Spawn, TestApp, reason, spawn_app};
use api_tokens::domain::{AppName, Secret};
use api_tokens::grpc::pb;
use api_tokens::service::{Credentials, ServiceSettings, WatchEvent, WatchRequest};
use tokio_stream::StreamExt;
use tonic::Code;

/// The bootstrap Admin's stream with the request's defaults.
async fn admin_watch(app: &TestApp) -> Events {
    watch(
        &app.tokens,
        &app.admin,
        pb::WatchApplicationsRequest::default(),
    )
    .await
}

fn describe(item: &pb::WatchApplicationsResponse) -> (pb::WatchEventType, String) {
    (
        item.r#type(),
        item.application
            .as_ref()
            .map(|a| a.name.clone())
            .unwrap_or_default(),
    )
}

async fn a_snapshot_then_every_new_pending_application(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, secret) = app.admin_user_token(pb::AppState::Pending).await;
    app.authorize(&secret, "already waiting", pb::Privilege::ReadOnly)
        .await;
    let mut events = admin_watch(&app).await;
    assert_eq!(
        describe(&next(&mut events).await),
        (pb::WatchEventType::Snapshot, "already waiting".into())
    );
    assert_eq!(
        next(&mut events).await.r#type(),
        pb::WatchEventType::SnapshotEnd
    );
    app.authorize(&secret, "Terraform v0.12.x", pb::Privilege::ReadOnly)
        .await;
    let live = next(&mut events).await;
    assert_eq!(
        describe(&live),
        (pb::WatchEventType::Recorded, "Terraform v0.12.x".into())
    );
    assert_eq!(
        live.application.expect("app").state(),
        pb::AppState::Pending
    );
    assert!(!live.cursor.is_empty());
    app.stop().await;
}

async fn a_watcher_resumes_by_cursor_with_no_gap_and_no_duplicate(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, secret) = app.admin_user_token(pb::AppState::Pending).await;
    let request = || pb::WatchApplicationsRequest {
        states: all_states(),
        ..Default::default()
    };
    let mut events = watch(&app.tokens, &app.admin, request()).await;
    // All states: the snapshot holds the test suite's own allowed application first.
    while next(&mut events).await.r#type() != pb::WatchEventType::SnapshotEnd {}
    for name in ["one", "two", "three"] {
        app.authorize(&secret, name, pb::Privilege::ReadOnly).await;
    }
    let mut cursor = String::new();
    for name in ["one", "two"] {
        let item = next(&mut events).await;
        assert_eq!(describe(&item), (pb::WatchEventType::Recorded, name.into()));
        cursor = item.cursor;
    }
    drop(events); // killed mid-stream, "three" unread
    for name in ["four", "five"] {
        app.authorize(&secret, name, pb::Privilege::ReadOnly).await;
    }
    app.set_state(&token.id, "one", pb::AppState::Allow).await;
    let mut resumed = watch(
        &app.tokens,
        &app.admin,
        pb::WatchApplicationsRequest {
            cursor,
            ..request()
        },
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(describe(&next(&mut resumed).await));
    }
    assert_eq!(
        seen,
        [
            (pb::WatchEventType::Recorded, "three".to_owned()),
            (pb::WatchEventType::Recorded, "four".to_owned()),
            (pb::WatchEventType::Recorded, "five".to_owned()),
            (pb::WatchEventType::StateChanged, "one".to_owned()),
        ]
    );
    // Nothing more: no duplicate follows.
    let extra = tokio::time::timeout(Duration::from_millis(300), resumed.next()).await;
    assert!(
        extra.is_err()
            || extra.unwrap().unwrap().unwrap().r#type() == pb::WatchEventType::Heartbeat
    );
    app.stop().await;
}

async fn watchers_see_only_what_they_may_see(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, bob, _) = app
        .member_with_token("bob@example.com", pb::Privilege::Normal)
        .await;
    let (_, bob_pending) = app
        .create_token(
            &bob,
            pb::TokenType::User,
            pb::Privilege::ReadOnly,
            pb::AppState::Pending,
        )
        .await;
    let (_, account_secret) = app
        .create_token(
            &app.admin,
            pb::TokenType::Account,
            pb::Privilege::ReadOnly,
            pb::AppState::Pending,
        )
        .await;
    let mut bobs = watch(&app.tokens, &bob, pb::WatchApplicationsRequest::default()).await;
    let mut admins = admin_watch(&app).await;
    assert_eq!(
        next(&mut bobs).await.r#type(),
        pb::WatchEventType::SnapshotEnd
    );
    assert_eq!(
        next(&mut admins).await.r#type(),
        pb::WatchEventType::SnapshotEnd
    );
    app.authorize(
        &account_secret,
        "account integration",
        pb::Privilege::ReadOnly,
    )
    .await;
    app.authorize(&bob_pending, "bob's script", pb::Privilege::ReadOnly)
        .await;
    assert_eq!(describe(&next(&mut admins).await).1, "account integration");
    assert_eq!(describe(&next(&mut admins).await).1, "bob's script");
    assert_eq!(
        describe(&next(&mut bobs).await).1,
        "bob's script",
        "the account token's event is invisible to bob"
    );
    app.stop().await;
}

async fn an_expired_cursor_is_out_of_range_with_a_stable_reason(backend: Backend) {
    let settings = ServiceSettings {
        event_retention: Duration::ZERO,
        ..ServiceSettings::default()
    };
    let app = Spawn::new(backend).service(settings).start().await;
    let (_, secret) = app.admin_user_token(pb::AppState::Pending).await;
    let mut events = admin_watch(&app).await;
    next(&mut events).await;
    app.authorize(&secret, "old news", pb::Privilege::ReadOnly)
        .await;
    let cursor = next(&mut events).await.cursor;
    drop(events);
    app.authorize(&secret, "also compacted", pb::Privilege::ReadOnly)
        .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(app.local.compact_events().await.expect("compaction") >= 2);
    let refused_from = |cursor| {
        let request = pb::WatchApplicationsRequest {
            cursor,
            ..Default::default()
        };
        let mut tokens = app.tokens.clone();
        let request = app.admin.req(request);
        async move {
            tokens
                .watch_applications(request)
                .await
                .expect_err("refused")
        }
    };
    let err = refused_from(cursor).await;
    assert_eq!(err.code(), Code::OutOfRange);
    assert_eq!(reason(&err), "CURSOR_EXPIRED");
    let bad = refused_from("garbage".into()).await;
    assert_eq!(bad.code(), Code::InvalidArgument);
    app.stop().await;
}

async fn idle_streams_hear_heartbeats(backend: Backend) {
    let settings = ServiceSettings {
        watch_heartbeat: Duration::from_millis(100),
        ..ServiceSettings::default()
    };
    let app = Spawn::new(backend).service(settings).start().await;
    let mut events = admin_watch(&app).await;
    assert_eq!(
        next(&mut events).await.r#type(),
        pb::WatchEventType::SnapshotEnd
    );
    let beat = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("a heartbeat")
        .unwrap()
        .unwrap();
    assert_eq!(beat.r#type(), pb::WatchEventType::Heartbeat);
    assert!(!beat.cursor.is_empty());
    app.stop().await;
}

async fn a_slow_consumer_blocks_nobody_and_catches_up(backend: Backend) {
    let settings = ServiceSettings {
        max_apps_per_token: None,
        ..ServiceSettings::default()
    };
    let app = Spawn::new(backend).service(settings).start().await;
    let (_, secret) = app.admin_user_token(pb::AppState::Pending).await;
    let mut slow = admin_watch(&app).await;
    // The slow watcher reads nothing while 1500 new names are recorded: far more than its
    // buffer and the hub's, so it must fall back to the log.
    let names: Vec<String> = (0..1500).map(|i| format!("app-{i:04}")).collect();
    for chunk in names.chunks(100) {
        let calls = chunk.iter().map(|name| {
            let (mut client, secret, name) = (app.authorize.clone(), secret.clone(), name.clone());
            async move {
                client
                    .authorize(authorize_request(
                        &secret,
                        &name,
                        pb::Privilege::Unspecified,
                        "",
                    ))
                    .await
            }
        });
        for result in futures_join(calls).await {
            assert_eq!(
                result
                    .expect("writers are not blocked")
                    .into_inner()
                    .decision(),
                pb::Decision::Pending
            );
        }
    }
    assert_eq!(
        next(&mut slow).await.r#type(),
        pb::WatchEventType::SnapshotEnd
    );
    let mut received = Vec::new();
    while received.len() < names.len() {
        received.push(describe(&next(&mut slow).await).1);
    }
    assert_eq!(received, names, "every event, in order, once");
    app.stop().await;
}

async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::new();
    for f in handles {
        out.push(f.await);
    }
    out
}

async fn shutdown_ends_streams_so_the_drain_is_quick(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut events = admin_watch(&app).await;
    next(&mut events).await;
    let stopping = tokio::spawn(app.stop());
    let end = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("the stream ends");
    // Ended by the server with a status, not cut when the drain gave up on the connection.
    let status = end
        .expect("a final status")
        .expect_err("ends with UNAVAILABLE");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "SHUTTING_DOWN");
    stopping.await.expect("server stopped");
}

/// A replica still starting up may take a watch before its log follower runs; an application
/// first used in between must still reach that watcher.
async fn a_stream_opened_before_its_event_hub_starts_misses_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, secret) = app.admin_user_token(pb::AppState::Pending).await;
    // `app.local` is a second replica on the same database whose follower has not started.
    let replica = app.local.clone();
    let admin = Credentials {
        secret: Secret::parse(&app.admin.secret).expect("secret"),
        app: AppName::parse(&app.admin.app).expect("app"),
        client: None,
    };
    let request = WatchRequest {
        cursor: None,
        states: Vec::new(),
        token_id: None,
    };
    let mut events = Box::pin(
        replica
            .watch_applications(admin, request)
            .await
            .expect("watch starts"),
    );
    app.authorize(&secret, "used before the hub", pb::Privilege::ReadOnly)
        .await;
    let (stop_hub, hub_stopped) = tokio::sync::oneshot::channel::<()>();
    let hub = tokio::spawn(replica.clone().run_replica(async {
        let _ = hub_stopped.await;
    }));
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(item) = events.next().await {
            match item.expect("no error").event {
                WatchEvent::Snapshot(app) => return app.name.as_str().to_owned(),
                WatchEvent::Recorded(change) => return change.name.as_str().to_owned(),
                _ => {}
            }
        }
        panic!("the stream ended");
    })
    .await
    .expect("the watcher hears of the application (as snapshot or as an event) within 10 s");
    assert_eq!(heard, "used before the hub");
    let _ = stop_hub.send(());
    hub.await.expect("hub stops");
    app.stop().await;
}

on_both_backends!(
    a_snapshot_then_every_new_pending_application,
    a_watcher_resumes_by_cursor_with_no_gap_and_no_duplicate,
    watchers_see_only_what_they_may_see,
    an_expired_cursor_is_out_of_range_with_a_stable_reason,
    idle_streams_hear_heartbeats,
    a_slow_consumer_blocks_nobody_and_catches_up,
    shutdown_ends_streams_so_the_drain_is_quick,
    a_stream_opened_before_its_event_hub_starts_misses_nothing,
);
