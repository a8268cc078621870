//! Time as a parameter of the server: a test steps the servers' clock and expiry, a rotated
//! secret's overlap and an approval's end take effect at once, on both replicas and for an open
//! stream, with no sleeping to their deadlines.

use chrono::TimeDelta;

use crate::common::app_events::{next_item, watch_live};
use crate::common::calls::rotate;
use crate::common::clock::timestamp;
use crate::common::{As, Backend, Spawn, TestApp, reason};
use api_tokens::grpc::pb;
use tonic::Code;

async fn decide(app: &TestApp, secret: &str, name: &str) -> pb::Decision {
    app.authorize(secret, name, pb::Privilege::ReadOnly)
        .await
        .decision()
}

async fn an_expiry_comes_when_the_clock_is_stepped_past_it(backend: Backend) {
    let app = Spawn::new(backend)
        .without_approval_sweep()
        .steppable_clock()
        .start()
        .await;
    let second = app.second_replica().await;
    let (token, secret) = app.admin_user_token(pb::AppState::Allow).await;
    let expiry = app.now() + TimeDelta::days(30);
    app.tokens
        .clone()
        .update_token(app.admin.req(pb::UpdateTokenRequest {
            token: Some(pb::Token {
                id: token.id.clone(),
                expire_time: Some(timestamp(expiry)),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["expire_time".into()],
            }),
        }))
        .await
        .expect("expires in 30 days");
    let mut stream = watch_live(&app.tokens, &As::new(secret.clone(), "deploys")).await;
    assert_eq!(decide(&app, &secret, "deploys").await, pb::Decision::Allow);
    app.advance(TimeDelta::days(29));
    assert_eq!(decide(&app, &secret, "deploys").await, pb::Decision::Allow);
    app.advance(TimeDelta::days(2));
    assert_eq!(
        decide(&app, &secret, "deploys").await,
        pb::Decision::Expired
    );
    let on_second = crate::common::calls::authorize_on(
        &second.authorize,
        crate::common::calls::authorize_request(&secret, "deploys", pb::Privilege::ReadOnly, ""),
    )
    .await;
    assert_eq!(on_second.decision(), pb::Decision::Expired);
    assert_eq!(app.token(&token.id).await.state(), pb::TokenState::Expired);
    let ended = next_item(&mut stream).await.expect_err("the stream ends");
    assert_eq!(
        (ended.code(), reason(&ended).as_str()),
        (Code::Unauthenticated, "TOKEN_EXPIRED")
    );
}

async fn an_overlap_and_an_approval_end_when_the_clock_is_stepped_past_them(backend: Backend) {
    let app = Spawn::new(backend)
        .without_approval_sweep()
        .steppable_clock()
        .start()
        .await;
    let (token, old) = app.admin_user_token(pb::AppState::Pending).await;
    assert_eq!(decide(&app, &old, "bot").await, pb::Decision::Pending);
    app.tokens
        .clone()
        .set_application_state(app.admin.req(pb::SetApplicationStateRequest {
            token_id: token.id.clone(),
            name: "bot".into(),
            state: pb::AppState::Allow.into(),
            conditions: Some(pb::ApprovalConditions {
                expire_time: Some(timestamp(app.now() + TimeDelta::hours(8))),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .expect("allowed for a working day");
    let (_, new, _) = rotate(&app, &app.admin, &token.id, 3600, false)
        .await
        .expect("an hour of overlap");
    assert_eq!(decide(&app, &old, "bot").await, pb::Decision::Allow);
    app.advance(TimeDelta::minutes(61));
    assert_eq!(decide(&app, &old, "bot").await, pb::Decision::UnknownToken);
    assert_eq!(decide(&app, &new, "bot").await, pb::Decision::Allow);
    let mut stream = watch_live(&app.tokens, &As::new(new.clone(), "bot")).await;
    app.advance(TimeDelta::hours(7));
    assert_eq!(decide(&app, &new, "bot").await, pb::Decision::Pending);
    let ended = next_item(&mut stream).await.expect_err("the stream ends");
    assert_eq!(
        (ended.code(), reason(&ended).as_str()),
        (Code::Unauthenticated, "APP_PENDING")
    );
}

on_both_backends!(
    an_expiry_comes_when_the_clock_is_stepped_past_it,
    an_overlap_and_an_approval_end_when_the_clock_is_stepped_past_them,
);
