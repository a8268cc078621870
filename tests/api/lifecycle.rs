//! WatchTokenEvents over a real socket: events of the token lifecycle in order, resumed by
//! cursor with no gap and no duplicate, seen only by who may see their tokens, and ended as
//! a new call would be refused when the watcher's own token is retired.

use std::time::Duration;

use crate::common::token_events::{Events, next_item, watch, watch_from};
use crate::common::{Backend, TestApp, reason, spawn_app};
use api_tokens::grpc::pb;
use tonic::Code;

async fn next(events: &mut Events) -> (pb::TokenEventType, String) {
    let item = next_item(events).await.expect("an event");
    (item.r#type(), item.token_id)
}

/// Nothing more arrives for a while but heartbeats.
async fn quiet(events: &mut Events) {
    let extra = tokio::time::timeout(Duration::from_millis(500), next_item(events)).await;
    assert!(extra.is_err(), "no further event: {extra:?}");
}

async fn promote(app: &TestApp, id: &str) {
    app.tokens
        .clone()
        .promote_token(app.admin.req(pb::PromoteTokenRequest {
            id: id.into(),
            ..Default::default()
        }))
        .await
        .expect("promote");
}

async fn events_resume_from_a_cursor_with_no_gap_and_no_duplicate(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut events = watch(&app, &app.admin).await;
    let (a, _) = app.admin_user_token(pb::AppState::Allow).await;
    let created = next_item(&mut events).await.expect("created");
    assert_eq!(
        (created.r#type(), created.token_id.clone()),
        (pb::TokenEventType::Created, a.id.clone())
    );
    drop(events); // gone mid-stream
    app.retire(&a.id).await;
    let (b, _) = app.admin_user_token(pb::AppState::Allow).await;
    promote(&app, &b.id).await;
    // A plain update is no lifecycle event: it must not show up below.
    app.tokens
        .clone()
        .update_token(app.admin.req(pb::UpdateTokenRequest {
            token: Some(pb::Token {
                id: b.id.clone(),
                description: "renamed".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["description".into()],
            }),
        }))
        .await
        .expect("update");
    let mut resumed = watch_from(&app, &app.admin, &created.cursor).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next(&mut resumed).await);
    }
    assert_eq!(
        seen,
        [
            (pb::TokenEventType::Retired, a.id.clone()),
            (pb::TokenEventType::Created, b.id.clone()),
            (pb::TokenEventType::Promoted, b.id.clone()),
        ]
    );
    quiet(&mut resumed).await;
    app.stop().await;
}

async fn a_normal_member_hears_only_of_their_own_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, bob, bob_token) = app
        .member_with_token("bob@example.com", pb::Privilege::Normal)
        .await;
    let mut bobs = watch(&app, &bob).await;
    let mut admins = watch(&app, &app.admin).await;
    let (account, _) = app
        .create_token(
            &app.admin,
            pb::TokenType::Account,
            pb::Privilege::ReadOnly,
            pb::AppState::Pending,
        )
        .await;
    let (admins_own, _) = app.admin_user_token(pb::AppState::Allow).await;
    let (bobs_new, _) = app
        .create_token(
            &bob,
            pb::TokenType::User,
            pb::Privilege::ReadOnly,
            pb::AppState::Pending,
        )
        .await;
    app.retire(&bobs_new.id).await;
    assert_eq!(
        next(&mut admins).await,
        (pb::TokenEventType::Created, account.id.clone())
    );
    assert_eq!(
        next(&mut admins).await,
        (pb::TokenEventType::Created, admins_own.id.clone())
    );
    assert_eq!(
        next(&mut admins).await,
        (pb::TokenEventType::Created, bobs_new.id.clone())
    );
    assert_eq!(
        next(&mut admins).await,
        (pb::TokenEventType::Retired, bobs_new.id.clone())
    );
    // Bob hears of his own token only: not of the account token, not of the Admin's.
    assert_eq!(
        next(&mut bobs).await,
        (pb::TokenEventType::Created, bobs_new.id.clone())
    );
    assert_eq!(
        next(&mut bobs).await,
        (pb::TokenEventType::Retired, bobs_new.id.clone())
    );
    quiet(&mut bobs).await;
    // Asking for a token Bob may not see is NOT_FOUND, as everywhere.
    let hidden = app
        .tokens
        .clone()
        .watch_token_events(bob.req(pb::WatchTokenEventsRequest {
            token_id: account.id.clone(),
            ..Default::default()
        }))
        .await
        .expect_err("not visible");
    assert_eq!(hidden.code(), Code::NotFound);
    assert_ne!(bob_token.id, bobs_new.id);
    app.stop().await;
}

async fn a_stream_ends_when_its_own_token_is_retired(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, bob, bob_token) = app
        .member_with_token("bob@example.com", pb::Privilege::Normal)
        .await;
    let mut events = watch(&app, &bob).await;
    app.retire(&bob_token.id).await;
    // Judged again before anything more is sent: the stream ends as a new call is refused.
    let ended = next_item(&mut events)
        .await
        .expect_err("the stream ends with an error status");
    assert_eq!(
        (ended.code(), reason(&ended)),
        (Code::Unauthenticated, "TOKEN_RETIRED".to_owned())
    );
    app.stop().await;
}

async fn a_cursor_of_another_account_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut events = watch(&app, &app.admin).await;
    app.admin_user_token(pb::AppState::Allow).await;
    let cursor = next_item(&mut events).await.expect("created").cursor;
    let other = app.second_account("globex").await;
    let refused = app
        .tokens
        .clone()
        .watch_token_events(other.req(pb::WatchTokenEventsRequest {
            cursor,
            ..Default::default()
        }))
        .await
        .expect_err("a cursor is bound to its account");
    assert_eq!(refused.code(), Code::InvalidArgument);
    app.stop().await;
}

on_both_backends!(
    events_resume_from_a_cursor_with_no_gap_and_no_duplicate,
    a_normal_member_hears_only_of_their_own_tokens,
    a_stream_ends_when_its_own_token_is_retired,
    a_cursor_of_another_account_is_refused,
);
