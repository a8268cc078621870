//! A rotated-out secret meets the older features: a leak report finds it while it still works
//! (retiring its token on every replica, with open streams ended), and the token's view of it
//! never outlives the token (its end is at most the expiry, and it is unset once retired).

use crate::common::calls::{authorize_on, authorize_request, rotate};
use crate::common::clock::{in_seconds, seconds};
use crate::common::token_events::{next_item, watch};
use crate::common::{As, Backend, Spawn, TestApp, spawn_app};
use api_tokens::grpc::pb;
use api_tokens::grpc::pb::authorize_service_client::AuthorizeServiceClient;
use api_tokens::service::{RateLimit, ServiceSettings};
use tonic::transport::Channel;

async fn report(app: &TestApp, secret: &str) {
    app.tokens
        .clone()
        .report_leaked_secret(pb::ReportLeakedSecretRequest {
            secret: secret.into(),
            where_found: "https://paste.example.com/old-config".into(),
        })
        .await
        .expect("a report is accepted");
}

async fn decide(
    client: &AuthorizeServiceClient<Channel>,
    secret: &str,
    revision: &str,
) -> pb::Decision {
    let mut request = authorize_request(secret, "deploys", pb::Privilege::ReadOnly, "");
    request.min_revision = revision.into();
    authorize_on(client, request).await.decision()
}

/// Rotated with an overlap of an hour, or waiting for the new secret's first use: the old
/// secret still works, so reporting it retires the token at once on both replicas, and the
/// streams the old secret opened end.
async fn a_leaked_rotated_out_secret_retires_its_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.second_replica().await;
    for from_first_use in [false, true] {
        let (token, old) = app.admin_user_token(pb::AppState::Allow).await;
        let (_, new, _) = rotate(&app, &app.admin, &token.id, 3600, from_first_use)
            .await
            .expect("rotate");
        for client in [&app.authorize, &other.authorize] {
            assert_eq!(decide(client, &old, "").await, pb::Decision::Allow);
            assert_eq!(decide(client, &new, "").await, pb::Decision::Allow);
        }
        let mut stream = watch(&app, &As::new(old.clone(), "deploys")).await;
        report(&app, &old).await;
        assert_eq!(
            app.token(&token.id).await.state(),
            pb::TokenState::Retired,
            "reported while its overlap {}",
            if from_first_use { "waits" } else { "runs" }
        );
        // Exact on the replica that took the report; the other learns it from the log (a
        // report answers with no revision: whether it wrote is not the reporter's to know).
        assert_eq!(
            decide(&app.authorize, &old, "").await,
            pb::Decision::Retired
        );
        assert_eq!(
            decide(&app.authorize, &new, "").await,
            pb::Decision::Retired
        );
        for secret in [&old, &new] {
            let mut decided = decide(&other.authorize, secret, "").await;
            for _ in 0..200 {
                if decided == pb::Decision::Retired {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                decided = decide(&other.authorize, secret, "").await;
            }
            assert_eq!(decided, pb::Decision::Retired, "on the other replica");
        }
        loop {
            match next_item(&mut stream).await {
                Ok(_) => continue,
                Err(ended) => {
                    assert_eq!(ended.code(), tonic::Code::Unauthenticated);
                    break;
                }
            }
        }
    }
}

/// A secret whose overlap is over works for nothing: reporting it changes nothing (and is
/// answered as every report is).
async fn a_leaked_secret_past_its_overlap_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, old) = app.admin_user_token(pb::AppState::Allow).await;
    let (_, new, _) = rotate(&app, &app.admin, &token.id, 0, false)
        .await
        .expect("rotate");
    report(&app, &old).await;
    assert_eq!(app.token(&token.id).await.state(), pb::TokenState::Active);
    assert_eq!(decide(&app.authorize, &new, "").await, pb::Decision::Allow);
}

async fn the_previous_secret_never_outlives_its_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, _) = app.admin_user_token(pb::AppState::Allow).await;
    // The token expires in 60 s; the old secret is given an hour.
    let expiry = in_seconds(60);
    let reply = app
        .tokens
        .clone()
        .rotate_token(app.admin.req(pb::RotateTokenRequest {
            id: token.id.clone(),
            overlap: Some(seconds(3600)),
            overlap_from_first_use: false,
            expire_time: Some(expiry),
        }))
        .await
        .expect("rotate")
        .into_inner();
    let shown = reply.token.expect("token");
    let previous = shown.previous_secret.expect("the old secret works");
    let end = previous.end_time.expect("an end");
    assert!(
        (end.seconds, end.nanos) <= (expiry.seconds, expiry.nanos),
        "previous_secret ends {end:?}, after the token's expiry {expiry:?}"
    );
    let read = app.token(&token.id).await;
    assert_eq!(
        read.previous_secret, shown.previous_secret,
        "a read shows what the rotation answered"
    );
    // Retired, the old secret cannot work: unset.
    app.retire(&token.id).await;
    assert_eq!(app.token(&token.id).await.previous_secret, None);
}

/// A report of the old secret racing a second rotation (which ends the old secret's overlap):
/// one of them wins whole. Either the report retired the token and the rotation is refused
/// `TOKEN_RETIRED`, or the rotation ended the old secret first and the report changed nothing.
async fn a_report_racing_a_rotation_lands_wholly_before_or_after_it(backend: Backend) {
    let settings = ServiceSettings {
        leak_reports: RateLimit {
            per_minute: 1000,
            burst: 1000,
        },
        ..ServiceSettings::default()
    };
    let app = Spawn::new(backend).service(settings).start().await;
    let (mut reported_first, mut rotated_first) = (0, 0);
    for _ in 0..20 {
        let (token, old) = app.admin_user_token(pb::AppState::Allow).await;
        rotate(&app, &app.admin, &token.id, 3600, false)
            .await
            .expect("first rotation");
        let (reporting, rotating) = tokio::join!(
            report(&app, &old),
            rotate(&app, &app.admin, &token.id, 0, false)
        );
        let () = reporting;
        let state = app.token(&token.id).await.state();
        match rotating {
            Ok((_, newest, _)) => {
                rotated_first += 1;
                assert_eq!(
                    state,
                    pb::TokenState::Active,
                    "rotated, then the report found nothing"
                );
                assert_eq!(
                    decide(&app.authorize, &newest, "").await,
                    pb::Decision::Allow
                );
            }
            Err(refused) => {
                reported_first += 1;
                assert_eq!(
                    (refused.code(), crate::common::reason(&refused).as_str()),
                    (tonic::Code::FailedPrecondition, "TOKEN_RETIRED")
                );
                assert_eq!(state, pb::TokenState::Retired);
            }
        }
        assert_ne!(decide(&app.authorize, &old, "").await, pb::Decision::Allow);
    }
    println!("report first: {reported_first}, rotation first: {rotated_first}");
}

on_both_backends!(
    a_report_racing_a_rotation_lands_wholly_before_or_after_it,
    a_leaked_rotated_out_secret_retires_its_token,
    a_leaked_secret_past_its_overlap_changes_nothing,
    the_previous_secret_never_outlives_its_token,
);
