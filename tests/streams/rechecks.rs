//! What the server judges again on an open stream's behalf: a re-check after a rotation is not a
//! reuse of the old secret (only a caller presenting it is), the stream ends at its
//! approval's end, and a cap put on its approval narrows it from the next message; on the
//! replica that made the change and on another.

use std::time::Duration;

use crate::common::app_events::{next, next_item, watch_live};
use crate::common::calls::{rotate, set_retire_on_reuse};
use crate::common::clock::in_seconds;
use crate::common::heartbeats::next_past_heartbeats;
use crate::common::{As, Backend, Spawn, TestApp, reason, spawn_app};
use api_tokens::grpc::pb;
use api_tokens::grpc::pb::token_service_client::TokenServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

type TokenEvents = Streaming<pb::WatchTokenEventsResponse>;

/// A token-events stream from now, once its first heartbeat says where it starts.
async fn watch_token_events(tokens: &TokenServiceClient<Channel>, who: &As) -> TokenEvents {
    let mut events = tokens
        .clone()
        .watch_token_events(who.req(pb::WatchTokenEventsRequest::default()))
        .await
        .expect("watch starts")
        .into_inner();
    let first = next_past_heartbeats(&mut events, |_| false).await;
    assert_eq!(
        first.expect("the present").r#type(),
        pb::TokenEventType::Heartbeat
    );
    events
}

/// The status a token-events stream ends with, past its heartbeats and events (each
/// message within 10 s).
async fn token_stream_end(events: &mut TokenEvents) -> Status {
    loop {
        let item = next_past_heartbeats(events, |item| {
            item.r#type() == pb::TokenEventType::Heartbeat
        })
        .await;
        if let Err(status) = item {
            return status;
        }
    }
}

async fn reuses_recorded(app: &TestApp) -> i64 {
    app.database
        .count("SELECT COUNT(*) FROM audit_events WHERE action = 'token.secret_reused'")
        .await
}

async fn decide(app: &TestApp, secret: &str, name: &str) -> pb::Decision {
    app.authorize(secret, name, pb::Privilege::ReadOnly)
        .await
        .decision()
}

/// A rotation ends the streams opened with the old secret; the server's own re-check of
/// them is no reuse, so it neither raises the alarm nor retires the token under
/// `retire_on_reuse`. Overlap 0 (ended by the rotation's change) and 1 s (ended at the
/// overlap's deadline), streams on both replicas; then a real reuse is still caught.
async fn a_streams_recheck_after_a_rotation_is_not_a_reuse(backend: Backend) {
    let app = spawn_app(backend).await;
    let second = app.second_replica().await;
    set_retire_on_reuse(&app, true).await;
    for overlap in [0, 1] {
        let (token, old) = app.admin_user_token(pb::AppState::Allow).await;
        let holder = As::new(old.clone(), "notify");
        assert_eq!(decide(&app, &old, "notify").await, pb::Decision::Allow);
        let mut here = watch_token_events(&app.tokens, &holder).await;
        let mut there = watch_token_events(&second.tokens, &holder).await;
        let mut apps = watch_live(&app.tokens, &holder).await;
        let (_, new, _) = rotate(&app, &app.admin, &token.id, overlap, false)
            .await
            .expect("rotate");
        for ended in [
            token_stream_end(&mut here).await,
            token_stream_end(&mut there).await,
            next_item(&mut apps).await.expect_err("the stream ends"),
        ] {
            assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
        }
        // Both replicas' background writers had their chance.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(reuses_recorded(&app).await, 0, "overlap {overlap}s");
        assert_eq!(app.token(&token.id).await.state(), pb::TokenState::Active);
        assert_eq!(decide(&app, &new, "notify").await, pb::Decision::Allow);
    }
    // A caller presenting the old secret after its overlap is a reuse: recorded, retired.
    let (token, old) = app.admin_user_token(pb::AppState::Allow).await;
    rotate(&app, &app.admin, &token.id, 0, false)
        .await
        .expect("rotate");
    assert_eq!(
        decide(&app, &old, "notify").await,
        pb::Decision::UnknownToken
    );
    for _ in 0..100 {
        if app.token(&token.id).await.state() == pb::TokenState::Retired {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.token(&token.id).await.state(), pb::TokenState::Retired);
    assert_eq!(reuses_recorded(&app).await, 1);
}

/// An approval with an end ends the streams its application opened at that end, as a new
/// call is refused from then on, without waiting for the sweep to write it back.
async fn a_stream_ends_at_its_approvals_end(backend: Backend) {
    let app = Spawn::new(backend).without_approval_sweep().start().await;
    let second = app.second_replica().await;
    let (token, secret) = app.admin_user_token(pb::AppState::Pending).await;
    assert_eq!(decide(&app, &secret, "bot").await, pb::Decision::Pending);
    app.tokens
        .clone()
        .set_application_state(app.admin.req(pb::SetApplicationStateRequest {
            token_id: token.id.clone(),
            name: "bot".into(),
            state: pb::AppState::Allow.into(),
            conditions: Some(pb::ApprovalConditions {
                expire_time: Some(in_seconds(2)),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .expect("allowed for two seconds");
    let bot = As::new(secret.clone(), "bot");
    let mut apps = watch_live(&app.tokens, &bot).await;
    let mut there = watch_token_events(&second.tokens, &bot).await;
    // Each read waits at most 10 s: the sweep (an hour) cannot be what ends them.
    let ended = next_item(&mut apps).await.expect_err("the stream ends");
    assert_eq!(
        (ended.code(), reason(&ended).as_str()),
        (Code::Unauthenticated, "APP_PENDING")
    );
    let ended = token_stream_end(&mut there).await;
    assert_eq!(
        (ended.code(), reason(&ended).as_str()),
        (Code::Unauthenticated, "APP_PENDING")
    );
    assert_eq!(decide(&app, &secret, "bot").await, pb::Decision::Pending);
}

/// A capped approval narrows the stream its application opened: an Admin token's stream,
/// once its application is capped to Normal, no longer shows applications of account tokens.
async fn a_cap_on_the_streams_approval_narrows_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, secret) = app
        .create_token(
            &app.admin,
            pb::TokenType::User,
            pb::Privilege::Admin,
            pb::AppState::Allow,
        )
        .await;
    let watcher = As::new(secret, "watcher");
    let mut events = watch_live(&app.tokens, &watcher).await;
    let (_, account_secret) = app.account_token(pb::Privilege::Normal).await;
    app.authorize(&account_secret, "seen-uncapped", pb::Privilege::ReadOnly)
        .await;
    let seen = next(&mut events).await;
    let shown = seen.application.expect("application");
    assert_eq!(
        shown.name, "seen-uncapped",
        "an uncapped Admin sees account tokens"
    );
    app.tokens
        .clone()
        .set_application_state(app.admin.req(pb::SetApplicationStateRequest {
            token_id: token.id.clone(),
            name: "watcher".into(),
            state: pb::AppState::Allow.into(),
            conditions: Some(pb::ApprovalConditions {
                max_privilege: pb::Privilege::Normal.into(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .expect("capped");
    app.authorize(
        &account_secret,
        "hidden-when-capped",
        pb::Privilege::ReadOnly,
    )
    .await;
    // Its own token's new name still shows; the account token's does not come before it.
    let (_, own_secret) = app
        .create_token(
            &watcher,
            pb::TokenType::User,
            pb::Privilege::Normal,
            pb::AppState::Allow,
        )
        .await;
    app.authorize(&own_secret, "own-after-cap", pb::Privilege::ReadOnly)
        .await;
    loop {
        let event = next(&mut events).await;
        let name = event.application.map(|a| a.name).unwrap_or_default();
        assert_ne!(
            name, "hidden-when-capped",
            "a capped stream showed an account token"
        );
        if name == "own-after-cap" {
            break;
        }
    }
}

on_both_backends!(
    a_streams_recheck_after_a_rotation_is_not_a_reuse,
    a_stream_ends_at_its_approvals_end,
    a_cap_on_the_streams_approval_narrows_it,
);
