//! BatchSetApplicationStates over a real socket: each decision judged on its own under one
//! reason (events and audit carry it), a member's batch sees only its own tokens, malformed
//! batches refused whole naming each bad field, and a hundred decisions landing together.

use crate::common::app_events::{next, watch_live};
use crate::common::{As, Backend, TestApp, spawn_app};
use api_tokens::grpc::pb;
use tonic::{Code, Status};

fn decision(token_id: &str, name: &str, state: pb::AppState) -> pb::ApplicationDecision {
    pb::ApplicationDecision {
        token_id: token_id.into(),
        name: name.into(),
        state: state.into(),
        conditions: None,
    }
}

/// One batch as `who`: every decision's result, in order.
async fn batch(
    app: &TestApp,
    who: &As,
    decisions: Vec<pb::ApplicationDecision>,
    reason: &str,
) -> Result<Vec<pb::ApplicationDecisionResult>, Status> {
    app.tokens
        .clone()
        .batch_set_application_states(who.req(pb::BatchSetApplicationStatesRequest {
            decisions,
            reason: reason.into(),
            ..Default::default()
        }))
        .await
        .map(|reply| reply.into_inner().results)
}

async fn a_batch_decides_each_with_one_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let (mine, secret) = app.admin_user_token(pb::AppState::Pending).await;
    let (retired, _) = app.admin_user_token(pb::AppState::Pending).await;
    app.retire(&retired.id).await;
    let (_, normal, normal_token) = app
        .member_with_token("normal@example.com", pb::Privilege::Normal)
        .await;
    let mut events = watch_live(&app.tokens, &app.admin).await;
    let mut decisions = vec![
        decision(&mine.id, "a", pb::AppState::Allow),
        decision(&mine.id, "b", pb::AppState::Deny),
        decision(&retired.id, "c", pb::AppState::Allow),
        decision(
            "00000000-0000-4000-8000-000000000000",
            "d",
            pb::AppState::Allow,
        ),
    ];
    decisions[0].conditions = Some(pb::ApprovalConditions {
        max_privilege: pb::Privilege::ReadOnly.into(),
        ..Default::default()
    });
    let results = batch(&app, &app.admin, decisions, "quarterly review")
        .await
        .expect("batch");
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].code, 0);
    assert!(results[0].changed);
    assert_eq!(
        results[0].application.as_ref().map(|a| a.state()),
        Some(pb::AppState::Allow)
    );
    assert_eq!(results[1].code, 0);
    assert_eq!(results[2].code, Code::FailedPrecondition as i32);
    assert_eq!(results[2].reason, "TOKEN_RETIRED");
    assert_eq!(results[3].code, Code::NotFound as i32);
    // Each decided one has its event, carrying the reason.
    for expected in ["a", "b"] {
        let event = next(&mut events).await;
        assert_eq!(event.application.expect("app").name, expected);
        assert_eq!(event.reason, "quarterly review");
    }
    let audit = app.audit_events(&format!("{}/a", mine.id)).await;
    assert_eq!(audit[0].reason, "quarterly review");
    let capped = app.authorize(&secret, "a", pb::Privilege::Normal).await;
    assert_eq!(capped.decision(), pb::Decision::InsufficientPrivilege);
    assert_eq!(
        app.authorize(&secret, "b", pb::Privilege::ReadOnly)
            .await
            .decision(),
        pb::Decision::Denied
    );

    // Another member's batch cannot see the Admin's token: NOT_FOUND for it, its own decided.
    let results = batch(
        &app,
        &normal,
        vec![
            decision(&mine.id, "e", pb::AppState::Allow),
            decision(&normal_token.id, "e", pb::AppState::Allow),
        ],
        "",
    )
    .await
    .expect("batch");
    assert_eq!(results[0].code, Code::NotFound as i32);
    assert_eq!(results[1].code, 0);

    // Malformed batches are refused whole, naming each bad field.
    let err = batch(
        &app,
        &app.admin,
        vec![
            decision(&mine.id, "f", pb::AppState::Allow),
            decision(&mine.id, "f", pb::AppState::Deny),
            decision("not-a-uuid", "g", pb::AppState::Unspecified),
        ],
        "",
    )
    .await
    .expect_err("malformed");
    assert_eq!(err.code(), Code::InvalidArgument);
    for field in [
        "decisions[1]",
        "decisions[2].token_id",
        "decisions[2].state",
    ] {
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    let too_many = (0..101)
        .map(|i| decision(&mine.id, &format!("n{i}"), pb::AppState::Allow))
        .collect();
    let err = batch(&app, &app.admin, too_many, "")
        .await
        .expect_err("too many");
    assert_eq!(err.code(), Code::InvalidArgument);
    // A Read-Only caller is refused whole.
    let (_, read_only, _) = app
        .member_with_token("ro@example.com", pb::Privilege::ReadOnly)
        .await;
    let err = batch(
        &app,
        &read_only,
        vec![decision(&mine.id, "h", pb::AppState::Allow)],
        "",
    )
    .await
    .expect_err("read-only");
    assert_eq!(err.code(), Code::PermissionDenied);
}

async fn a_hundred_decisions_land_together(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, secret) = app.admin_user_token(pb::AppState::Pending).await;
    let decisions: Vec<_> = (0..100)
        .map(|i| decision(&token.id, &format!("service-{i:03}"), pb::AppState::Allow))
        .collect();
    let results = batch(&app, &app.admin, decisions, "migration")
        .await
        .expect("batch of 100");
    assert!(results.iter().all(|r| r.code == 0 && r.changed));
    for i in [0, 57, 99] {
        let name = format!("service-{i:03}");
        assert_eq!(
            app.authorize(&secret, &name, pb::Privilege::ReadOnly)
                .await
                .decision(),
            pb::Decision::Allow
        );
    }
    let logged = app
        .database
        .count("SELECT COUNT(*) FROM change_log WHERE kind = 'application.state_changed'")
        .await;
    assert_eq!(logged, 100);
    let audited = app
        .database
        .count("SELECT COUNT(*) FROM audit_events WHERE reason = 'migration'")
        .await;
    assert_eq!(audited, 100);
}

on_both_backends!(
    a_batch_decides_each_with_one_reason,
    a_hundred_decisions_land_together,
);
