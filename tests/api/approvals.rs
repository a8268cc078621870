//! Conditional approvals over a real socket: until a time (Pending again from its end, with no
//! write needed, then written back with an event), a privilege cap, client address ranges;
//! shown in ListApplications and watch events, audited with before and after, carried by the
//! change log to every replica's cache.

use std::time::Duration;

use crate::common::app_events::{next, watch_live};
use crate::common::calls::{authorize_on, authorize_request, revision_of};
use crate::common::clock::in_seconds;
use crate::common::{As, Backend, Spawn, TestApp, spawn_app};
use api_tokens::grpc::pb;
use tonic::Code;

async fn set(
    app: &TestApp,
    who: &As,
    token_id: &str,
    name: &str,
    state: pb::AppState,
    conditions: Option<pb::ApprovalConditions>,
    reason: &str,
) -> Result<pb::Application, tonic::Status> {
    app.tokens
        .clone()
        .set_application_state(who.req(pb::SetApplicationStateRequest {
            token_id: token_id.into(),
            name: name.into(),
            state: state.into(),
            conditions,
            reason: reason.into(),
            ..Default::default()
        }))
        .await
        .map(|r| r.into_inner().application.expect("application"))
}

async fn an_approval_until_a_time_is_pending_from_its_end_then_written_back(backend: Backend) {
    let app = Spawn::new(backend).without_approval_sweep().start().await;
    let (token, secret) = app.admin_user_token(pb::AppState::Pending).await;
    app.authorize(&secret, "terraform", pb::Privilege::ReadOnly)
        .await;
    let mut events = watch_live(&app.tokens, &app.admin).await;
    let until = in_seconds(2);
    let approved = set(
        &app,
        &app.admin,
        &token.id,
        "terraform",
        pb::AppState::Allow,
        Some(pb::ApprovalConditions {
            expire_time: Some(until),
            ..Default::default()
        }),
        "change 4711: two seconds of terraform",
    )
    .await
    .expect("conditional allow");
    assert!(approved.conditions.is_some());
    let event = next(&mut events).await;
    assert_eq!(event.r#type(), pb::WatchEventType::StateChanged);
    assert_eq!(event.reason, "change 4711: two seconds of terraform");
    let shown = event.application.expect("application");
    assert_eq!(shown.state(), pb::AppState::Allow);
    assert_eq!(
        shown
            .conditions
            .and_then(|c| c.expire_time)
            .map(|t| t.seconds),
        Some(until.seconds)
    );

    let before_end = app
        .authorize(&secret, "terraform", pb::Privilege::ReadOnly)
        .await;
    assert_eq!(before_end.decision(), pb::Decision::Allow);
    // Past the end, the warm decision is Pending at once, though nothing was written yet.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after_end = app
        .authorize(&secret, "terraform", pb::Privilege::ReadOnly)
        .await;
    assert_eq!(after_end.decision(), pb::Decision::Pending);
    assert_eq!(after_end.http_status, 401);
    assert_eq!(
        app.application(&token.id, "terraform").await.state(),
        pb::AppState::Allow,
        "not written yet: the decision did not need it"
    );

    // The sweep writes it back to Pending, with its event and audit entry.
    assert_eq!(app.local.lapse_approvals_now().await.expect("sweep"), 1);
    let event = next(&mut events).await;
    assert_eq!(event.r#type(), pb::WatchEventType::StateChanged);
    let lapsed = event.application.expect("application");
    assert_eq!(lapsed.state(), pb::AppState::Pending);
    assert!(lapsed.conditions.is_none());
    assert!(event.reason.contains("end"), "{}", event.reason);
    let now_listed = app.application(&token.id, "terraform").await;
    assert_eq!(now_listed.state(), pb::AppState::Pending);
    assert!(now_listed.conditions.is_none());
    assert_eq!(
        app.local.lapse_approvals_now().await.expect("sweep again"),
        0,
        "each lapses once"
    );
    let audit = app.audit_events(&format!("{}/terraform", token.id)).await;
    assert_eq!(audit[0].action, "application.lapse");
    assert!(format!("{:?}", audit[0].before).contains("conditions"));
    assert_eq!(audit[1].action, "application.set_state");
    assert_eq!(audit[1].reason, "change 4711: two seconds of terraform");
    assert!(format!("{:?}", audit[1].after).contains("until"));
}

async fn a_privilege_cap_and_client_ranges_hold_for_the_application(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, secret) = app
        .create_token(
            &app.admin,
            pb::TokenType::Account,
            pb::Privilege::Admin,
            pb::AppState::Pending,
        )
        .await;
    let conditions = pb::ApprovalConditions {
        expire_time: Some(in_seconds(30 * 24 * 3600)),
        max_privilege: pb::Privilege::ReadOnly.into(),
        client_cidrs: vec!["10.0.0.0/8".into()],
    };
    // Allowing as the Admin, and Authorize for terraform-cloud from a client address.
    let allow = |name: &'static str, conditions| {
        set(
            &app,
            &app.admin,
            &token.id,
            name,
            pb::AppState::Allow,
            conditions,
            "",
        )
    };
    let terraform_cloud = |required, client: &'static str| {
        app.authorize_from(&secret, "terraform-cloud", required, client)
    };
    allow("terraform-cloud", Some(conditions))
        .await
        .expect("conditional allow");
    let read = terraform_cloud(pb::Privilege::ReadOnly, "10.1.1.1").await;
    assert_eq!(read.decision(), pb::Decision::Allow);
    assert_eq!(
        read.principal.expect("principal").effective_privilege(),
        pb::Privilege::ReadOnly,
        "acts at most Read-Only though the token is Admin"
    );
    let write = terraform_cloud(pb::Privilege::Normal, "10.1.1.1").await;
    assert_eq!(write.decision(), pb::Decision::InsufficientPrivilege);
    let elsewhere = terraform_cloud(pb::Privilege::ReadOnly, "172.16.0.1").await;
    assert_eq!(elsewhere.decision(), pb::Decision::AddressNotAllowed);
    assert!(
        elsewhere.reason.contains("terraform-cloud"),
        "{}",
        elsewhere.reason
    );
    // Another application of the same token is not capped.
    allow("admin-ui", None).await.expect("plain allow");
    let plain = app
        .authorize(&secret, "admin-ui", pb::Privilege::Admin)
        .await;
    assert_eq!(plain.decision(), pb::Decision::Allow);
    let shown = app.application(&token.id, "terraform-cloud").await;
    let conditions = shown.conditions.expect("shown");
    assert_eq!(conditions.max_privilege(), pb::Privilege::ReadOnly);
    assert_eq!(conditions.client_cidrs, ["10.0.0.0/8"]);
    // Setting the same state and conditions again changes nothing: no new audit entry.
    let target = format!("{}/terraform-cloud", token.id);
    let entries = app.audit_events(&target).await.len();
    allow(
        "terraform-cloud",
        Some(pb::ApprovalConditions {
            expire_time: conditions.expire_time,
            max_privilege: pb::Privilege::ReadOnly.into(),
            client_cidrs: vec!["10.0.0.0/8".into()],
        }),
    )
    .await
    .expect("same again");
    assert_eq!(app.audit_events(&target).await.len(), entries);
    // Dropping the conditions is a change of its own.
    allow("terraform-cloud", None).await.expect("plain again");
    let uncapped = terraform_cloud(pb::Privilege::Admin, "172.16.0.1").await;
    assert_eq!(uncapped.decision(), pb::Decision::Allow);
}

async fn conditions_reach_another_replicas_warm_cache(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.second_replica().await;
    let (token, secret) = app.admin_user_token(pb::AppState::Allow).await;
    // Authorize on the other replica once it has applied `min_revision`.
    let ask = |min_revision: String| {
        let request = pb::AuthorizeRequest {
            min_revision,
            ..authorize_request(&secret, "poller", pb::Privilege::Normal, "")
        };
        authorize_on(&other.authorize, request)
    };
    assert_eq!(ask(String::new()).await.decision(), pb::Decision::Allow);
    let reply = app
        .tokens
        .clone()
        .set_application_state(app.admin.req(pb::SetApplicationStateRequest {
            token_id: token.id.clone(),
            name: "poller".into(),
            state: pb::AppState::Allow.into(),
            conditions: Some(pb::ApprovalConditions {
                max_privilege: pb::Privilege::ReadOnly.into(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .expect("cap");
    let revision = revision_of(reply.metadata());
    assert_eq!(
        ask(revision).await.decision(),
        pb::Decision::InsufficientPrivilege,
        "the other replica's warm entry took the cap from the change log"
    );
}

async fn bad_conditions_are_invalid_arguments_naming_each_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, _) = app.admin_user_token(pb::AppState::Pending).await;
    let err = set(
        &app,
        &app.admin,
        &token.id,
        "x",
        pb::AppState::Deny,
        Some(pb::ApprovalConditions {
            max_privilege: pb::Privilege::ReadOnly.into(),
            ..Default::default()
        }),
        "",
    )
    .await
    .expect_err("conditions on a Deny");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("conditions"), "{}", err.message());
    let err = set(
        &app,
        &app.admin,
        &token.id,
        "x",
        pb::AppState::Allow,
        Some(pb::ApprovalConditions {
            expire_time: Some(in_seconds(-60)),
            client_cidrs: vec!["300.0.0.0/8".into()],
            ..Default::default()
        }),
        &"r".repeat(1001),
    )
    .await
    .expect_err("bad conditions");
    assert_eq!(err.code(), Code::InvalidArgument);
    for field in ["conditions.client_cidrs", "reason"] {
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
}

on_both_backends!(
    an_approval_until_a_time_is_pending_from_its_end_then_written_back,
    a_privilege_cap_and_client_ranges_hold_for_the_application,
    conditions_reach_another_replicas_warm_cache,
    bad_conditions_are_invalid_arguments_naming_each_field,
);
