//! Revoked access ends open streams, and positions say nothing of other tenants: a watch
//! stream is judged again on every change that concerns its caller (retired, owner removed,
//! demoted, its application denied), on its own replica and on another; cursors, page tokens
//! and audit ids are sealed, bound to their account and listing.

use crate::common::app_events::{Events, next_item, watch_live};
use crate::common::calls::audit_log;
use crate::common::{As, Backend, TestApp, reason, spawn_app};
use api_tokens::grpc::pb;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio_stream::StreamExt;
use tonic::{Code, Status};

/// What a new call with these credentials gets now: the stream must have ended the same way.
async fn new_call_status(app: &TestApp, who: &As) -> Status {
    app.tokens
        .clone()
        .list_tokens(who.req(pb::ListTokensRequest::default()))
        .await
        .expect_err("a new call is refused")
}

async fn assert_ended_like_a_new_call(app: &TestApp, who: &As, events: &mut Events) {
    let ended = next_item(events)
        .await
        .expect_err("the stream ends with an error status");
    let fresh = new_call_status(app, who).await;
    assert_eq!(
        (ended.code(), reason(&ended)),
        (fresh.code(), reason(&fresh)),
        "the stream ended as a new call is refused: {ended:?}"
    );
}

async fn a_retired_token_ends_its_open_stream(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, member, token) = app.member_with_token("ops", pb::Privilege::Normal).await;
    let mut events = watch_live(&app.tokens, &member).await;
    app.retire(&token.id).await;
    assert_ended_like_a_new_call(&app, &member, &mut events).await;
    let fresh = new_call_status(&app, &member).await;
    assert_eq!(
        (fresh.code(), reason(&fresh).as_str()),
        (Code::Unauthenticated, "TOKEN_RETIRED")
    );
}

async fn a_removed_owner_ends_the_stream(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user_id, member, _) = app.member_with_token("ops", pb::Privilege::Normal).await;
    let mut events = watch_live(&app.tokens, &member).await;
    app.remove_member(&user_id).await;
    assert_ended_like_a_new_call(&app, &member, &mut events).await;
    assert_eq!(
        reason(&new_call_status(&app, &member).await),
        "OWNER_REMOVED"
    );
}

async fn denying_the_watchers_application_ends_the_stream(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, member, token) = app.member_with_token("ops", pb::Privilege::Normal).await;
    let mut events = watch_live(&app.tokens, &member).await;
    app.set_state(&token.id, &member.app, pb::AppState::Deny)
        .await;
    // The stream may first carry the state change it may see (its own token's application).
    let ended = loop {
        match next_item(&mut events).await {
            Ok(item) => assert_eq!(item.r#type(), pb::WatchEventType::StateChanged),
            Err(status) => break status,
        }
    };
    let fresh = new_call_status(&app, &member).await;
    assert_eq!(
        (ended.code(), reason(&ended)),
        (fresh.code(), reason(&fresh))
    );
    assert_eq!(
        (fresh.code(), reason(&fresh).as_str()),
        (Code::PermissionDenied, "APP_DENIED")
    );
}

/// An account token's first uses are seen by Admins only: after a demotion, the stream goes
/// on with what a Normal member sees, from the next message on.
async fn a_demoted_admin_stops_seeing_account_tokens_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user_id, ops, _) = app.member_with_token("ops", pb::Privilege::Admin).await;
    let (_, account_secret) = app
        .create_token(
            &app.admin,
            pb::TokenType::Account,
            pb::Privilege::Normal,
            pb::AppState::Pending,
        )
        .await;
    let (_, own_secret) = app
        .create_token(
            &ops,
            pb::TokenType::User,
            pb::Privilege::Normal,
            pb::AppState::Pending,
        )
        .await;
    let mut events = watch_live(&app.tokens, &ops).await;
    app.authorize(&account_secret, "before", pb::Privilege::ReadOnly)
        .await;
    let seen = next_item(&mut events).await.expect("an event");
    assert_eq!(
        seen.application.expect("app").name,
        "before",
        "an Admin sees account tokens"
    );

    app.accounts
        .clone()
        .update_member(app.admin.req(pb::UpdateMemberRequest {
            user_id,
            role: pb::Privilege::Normal.into(),
            ..Default::default()
        }))
        .await
        .expect("demote");
    app.authorize(
        &account_secret,
        "after the demotion",
        pb::Privilege::ReadOnly,
    )
    .await;
    app.authorize(&own_secret, "own", pb::Privilege::ReadOnly)
        .await;
    let next = next_item(&mut events).await.expect("the stream goes on");
    assert_eq!(
        next.application.expect("app").name,
        "own",
        "a demoted Admin's stream skips the account token's event"
    );
}

/// A retire made through one replica ends a stream open on another.
async fn a_retire_on_one_replica_ends_a_stream_on_another(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.second_replica().await;
    let (_, member, token) = app.member_with_token("ops", pb::Privilege::Normal).await;
    let mut events = watch_live(&other.tokens, &member).await;
    app.retire(&token.id).await;
    let ended = next_item(&mut events)
        .await
        .expect_err("the stream on the other replica ends");
    assert_eq!(
        (ended.code(), reason(&ended).as_str()),
        (Code::Unauthenticated, "TOKEN_RETIRED")
    );
}

fn invalid_field(status: &Status) -> String {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    tonic_types::StatusExt::get_error_details(status)
        .bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

/// A cursor or page token is honoured only for the account and the listing it was issued to,
/// and the old plain forms (`c1:<seq>`, `p1:<seq>`) are refused.
async fn positions_are_bound_to_their_account_and_listing(backend: Backend) {
    let app = spawn_app(backend).await;
    let other_admin = app.second_account("globex").await;
    let (_, secret) = app.admin_user_token(pb::AppState::Pending).await;
    app.authorize(&secret, "a", pb::Privilege::ReadOnly).await;
    app.authorize(&secret, "b", pb::Privilege::ReadOnly).await;

    let mut events = watch_live(&app.tokens, &app.admin).await;
    app.authorize(&secret, "c", pb::Privilege::ReadOnly).await;
    let cursor = next_item(&mut events).await.expect("event").cursor;
    let resume = |who: &As, cursor: String| {
        let mut tokens = app.tokens.clone();
        let request = who.req(pb::WatchApplicationsRequest {
            cursor,
            ..Default::default()
        });
        async move { tokens.watch_applications(request).await.map(|_| ()) }
    };
    resume(&app.admin, cursor.clone())
        .await
        .expect("the account's own cursor resumes");
    let refused = resume(&other_admin, cursor)
        .await
        .expect_err("another account's cursor");
    assert_eq!(invalid_field(&refused), "cursor");
    for forged in ["c1:1", "c1:0", "c1:999999"] {
        let forged = URL_SAFE_NO_PAD.encode(forged);
        let refused = resume(&app.admin, forged)
            .await
            .expect_err("a forged cursor");
        assert_eq!(invalid_field(&refused), "cursor");
    }

    let list = |who: &As, page_token: String| {
        let mut tokens = app.tokens.clone();
        let request = who.req(pb::ListTokensRequest {
            page_size: 1,
            page_token,
            ..Default::default()
        });
        async move { tokens.list_tokens(request).await.map(|r| r.into_inner()) }
    };
    let first = list(&app.admin, String::new()).await.expect("page 1");
    assert!(!first.next_page_token.is_empty());
    list(&app.admin, first.next_page_token.clone())
        .await
        .expect("page 2 with the account's own token");
    let refused = list(&other_admin, first.next_page_token.clone())
        .await
        .expect_err("another account's page token");
    assert_eq!(invalid_field(&refused), "page_token");
    let refused = app
        .accounts
        .clone()
        .list_members(app.admin.req(pb::ListMembersRequest {
            page_size: 1,
            page_token: first.next_page_token,
        }))
        .await
        .expect_err("a page token of another listing");
    assert_eq!(invalid_field(&refused), "page_token");
    let refused = list(&app.admin, URL_SAFE_NO_PAD.encode("p1:1"))
        .await
        .expect_err("a plain page token");
    assert_eq!(invalid_field(&refused), "page_token");
    // A caller whose page would be empty (a Normal account token sees no tokens) is refused
    // another account's page token all the same (found by the model's histories).
    crate::common::create_token_on(
        &app.channel,
        &other_admin,
        (
            pb::TokenType::User,
            pb::Privilege::Normal,
            pb::AppState::Allow,
        ),
    )
    .await;
    let (_, account_secret) = app.account_token(pb::Privilege::Normal).await;
    let account_caller = As::new(account_secret, "test-suite");
    let theirs = list(&other_admin, String::new())
        .await
        .expect("their page 1");
    assert!(!theirs.next_page_token.is_empty());
    let refused = list(&account_caller, theirs.next_page_token)
        .await
        .expect_err("another account's page token, by a caller who sees nothing");
    assert_eq!(invalid_field(&refused), "page_token");
}

/// Nothing a caller receives counts what happened where it may not look: heartbeat cursors
/// of an idle stream are fresh ciphertexts of one length, whatever another account does, and
/// audit ids are not a sequence.
async fn positions_say_nothing_of_other_tenants(backend: Backend) {
    let app = spawn_app(backend).await;
    let other_admin = app.second_account("globex").await;
    let (_, secret) = app.admin_user_token(pb::AppState::Pending).await;
    let mut idle = app
        .tokens
        .clone()
        .watch_applications(other_admin.req(pb::WatchApplicationsRequest::default()))
        .await
        .expect("watch")
        .into_inner();
    let end = idle.next().await.expect("open").expect("snapshot end");
    assert_eq!(end.r#type(), pb::WatchEventType::SnapshotEnd);
    for i in 0..5 {
        app.authorize(&secret, &format!("app {i}"), pb::Privilege::ReadOnly)
            .await;
    }
    // A resumed stream starts afresh: its first message is a heartbeat after the catch-up.
    let resumed = app
        .tokens
        .clone()
        .watch_applications(other_admin.req(pb::WatchApplicationsRequest {
            cursor: end.cursor.clone(),
            ..Default::default()
        }))
        .await;
    assert!(resumed.is_ok(), "the idle account's cursor stays valid");
    let decoded = URL_SAFE_NO_PAD.decode(&end.cursor).expect("base64url");
    let text = String::from_utf8_lossy(&decoded);
    assert!(
        !text.contains("c1:"),
        "a cursor is not a readable position: {text:?}"
    );

    let audit = audit_log(&app.tokens, &app.admin, Default::default()).await;
    assert!(audit.len() >= 2);
    for event in &audit {
        assert!(
            event.id.parse::<i64>().is_err(),
            "an audit id is not a server-wide number: {}",
            event.id
        );
    }
}

on_both_backends!(
    a_retired_token_ends_its_open_stream,
    a_removed_owner_ends_the_stream,
    denying_the_watchers_application_ends_the_stream,
    a_demoted_admin_stops_seeing_account_tokens_at_once,
    a_retire_on_one_replica_ends_a_stream_on_another,
    positions_are_bound_to_their_account_and_listing,
    positions_say_nothing_of_other_tenants,
);
