//! ReportLeakedSecret over a real socket, with no credentials: the token is retired at once,
//! audited, its owner and the Admins hear of it, streams using it end; an unknown secret gets
//! the very same answer; reports are limited per client address.

use std::time::Duration;

use crate::common::token_events::{next_item, watch};
use crate::common::{Backend, Spawn, TestApp, reason, spawn_app};
use api_tokens::grpc::{REVISION_HEADER, pb};
use api_tokens::service::{RateLimit, ServiceSettings};
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// A report, sent with no credentials at all.
async fn report(
    app: &TestApp,
    secret: &str,
) -> Result<tonic::Response<pb::ReportLeakedSecretResponse>, Status> {
    app.tokens
        .clone()
        .report_leaked_secret(pb::ReportLeakedSecretRequest {
            secret: secret.into(),
            where_found: "https://gist.example.com/abc#L3".into(),
        })
        .await
}

async fn a_report_retires_the_token_and_tells_its_owner_and_the_admins(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, bob, _) = app
        .member_with_token("bob@example.com", pb::Privilege::Normal)
        .await;
    let (leaked, leaked_secret) = app
        .create_token(
            &bob,
            pb::TokenType::User,
            pb::Privilege::Normal,
            pb::AppState::Allow,
        )
        .await;
    assert_eq!(
        app.authorize(&leaked_secret, "ci", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::Allow
    );
    let mut bobs = watch(&app, &bob).await;
    let mut admins = watch(&app, &app.admin).await;
    report(&app, &leaked_secret).await.expect("accepted");
    for events in [&mut bobs, &mut admins] {
        let event = next_item(events).await.expect("the report's event");
        assert_eq!(event.r#type(), pb::TokenEventType::LeakReported);
        assert_eq!(event.token_id, leaked.id);
        assert_eq!(event.where_found, "https://gist.example.com/abc#L3");
    }
    assert_eq!(app.token(&leaked.id).await.state(), pb::TokenState::Retired);
    assert_eq!(
        app.authorize(&leaked_secret, "ci", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::Retired,
        "refused at once on the replica that took the report"
    );
    let audit = app.audit_events(&leaked.id).await;
    let entry = audit
        .iter()
        .find(|e| e.action == "token.report_leak")
        .expect("the report is audited");
    assert!(entry.reason.contains("gist.example.com"), "{entry:?}");
    app.stop().await;
}

async fn reporting_ones_own_token_ends_the_streams_using_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, bob, bob_token) = app
        .member_with_token("bob@example.com", pb::Privilege::Normal)
        .await;
    let mut events = watch(&app, &bob).await;
    let mut admins = watch(&app, &app.admin).await;
    report(&app, &bob.secret).await.expect("accepted");
    // The stream is judged again before it sends anything more: its token is retired, so it
    // ends with the status that says so; the Admins hear of the report.
    let ended = next_item(&mut events)
        .await
        .expect_err("the stream using the token ends");
    assert_eq!(
        (ended.code(), reason(&ended)),
        (Code::Unauthenticated, "TOKEN_RETIRED".to_owned())
    );
    let event = next_item(&mut admins).await.expect("the Admins hear of it");
    assert_eq!(
        (event.r#type(), event.token_id),
        (pb::TokenEventType::LeakReported, bob_token.id.clone())
    );
    assert_eq!(
        app.token(&bob_token.id).await.state(),
        pb::TokenState::Retired
    );
    app.stop().await;
}

async fn an_unknown_secret_gets_the_same_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let (known, known_secret) = app.admin_user_token(pb::AppState::Allow).await;
    let changes = "SELECT COUNT(*) FROM change_log";
    let unknown = uuid::Uuid::new_v4().to_string();
    let before = app.database.count(changes).await;
    let for_unknown = report(&app, &unknown).await.expect("accepted");
    assert_eq!(
        app.database.count(changes).await,
        before,
        "nothing is written for a secret of no token"
    );
    let for_known = report(&app, &known_secret).await.expect("accepted");
    assert_eq!(app.database.count(changes).await, before + 1);
    let again = report(&app, &known_secret).await.expect("accepted");
    for answer in [&for_unknown, &for_known, &again] {
        assert_eq!(answer.get_ref(), &pb::ReportLeakedSecretResponse {});
        assert!(
            answer.metadata().get(REVISION_HEADER).is_none(),
            "no revision says whether anything was written"
        );
    }
    assert_eq!(app.token(&known.id).await.state(), pb::TokenState::Retired);
    // A secret of the wrong shape is bad input, which says nothing about any token.
    let malformed = report(&app, "not-a-secret").await.expect_err("malformed");
    assert_eq!(malformed.code(), Code::InvalidArgument);
    app.stop().await;
}

async fn reports_are_limited_per_client_address(backend: Backend) {
    let settings = ServiceSettings {
        leak_reports: RateLimit {
            per_minute: 1,
            burst: 3,
        },
        ..ServiceSettings::default()
    };
    let app = Spawn::new(backend).service(settings).start().await;
    for _ in 0..3 {
        report(&app, &uuid::Uuid::new_v4().to_string())
            .await
            .expect("within the burst");
    }
    let (token, secret) = app.admin_user_token(pb::AppState::Allow).await;
    let limited = report(&app, &secret).await.expect_err("past the limit");
    assert_eq!(limited.code(), Code::ResourceExhausted);
    assert_eq!(reason(&limited), "RATE_LIMITED");
    let retry = limited
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(60));
    assert_eq!(
        app.token(&token.id).await.state(),
        pb::TokenState::Active,
        "a refused report does nothing"
    );
    app.stop().await;
}

on_both_backends!(
    a_report_retires_the_token_and_tells_its_owner_and_the_admins,
    reporting_ones_own_token_ends_the_streams_using_it,
    an_unknown_secret_gets_the_same_answer,
    reports_are_limited_per_client_address,
);
