//! Conditional approvals over a real socket: until a time (Pending again from its end, with no
//! write needed, then written back with an event), a privilege cap, client address ranges;
//! shown in ListApplications and watch events, audited with before and after, carried by the
//! change log to every replica's cache.

use std::time::Duration;

use crate::common::{As, Backend, Spawn, TestApp, spawn_app};
use api_tokens::grpc::pb;
use api_tokens::service::ServiceSettings;
use prost_types::Timestamp;
use tokio_stream::StreamExt;
use tonic::{Code, Streaming};

type Events = Streaming<pb::WatchApplicationsResponse>;

fn in_seconds(seconds: i64) -> Timestamp {
    let t = chrono::Utc::now() + chrono::TimeDelta::seconds(seconds);
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

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

async fn authorize_from(
    app: &TestApp,
    secret: &str,
    name: &str,
    required: pb::Privilege,
    client: &str,
) -> pb::AuthorizeResponse {
    app.authorize
        .clone()
        .authorize(pb::AuthorizeRequest {
            token: secret.into(),
            app_name: name.into(),
            required_privilege: required.into(),
            client_address: client.into(),
            ..Default::default()
        })
        .await
        .expect("authorize answers")
        .into_inner()
}

async fn listed(app: &TestApp, token_id: &str, name: &str) -> pb::Application {
    app.tokens
        .clone()
        .list_applications(app.admin.req(pb::ListApplicationsRequest {
            token_id: token_id.into(),
            ..Default::default()
        }))
        .await
        .expect("list")
        .into_inner()
        .applications
        .into_iter()
        .find(|a| a.name == name)
        .expect("listed")
}

async fn watch_all(app: &TestApp) -> Events {
    let mut events = app
        .tokens
        .clone()
        .watch_applications(app.admin.req(pb::WatchApplicationsRequest {
            states: vec![
                pb::AppState::Pending.into(),
                pb::AppState::Allow.into(),
                pb::AppState::Deny.into(),
            ],
            ..Default::default()
        }))
        .await
        .expect("watch")
        .into_inner();
    loop {
        if next(&mut events).await.r#type() == pb::WatchEventType::SnapshotEnd {
            return events;
        }
    }
}

async fn next(events: &mut Events) -> pb::WatchApplicationsResponse {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("stream open")
            .expect("no error");
        if item.r#type() != pb::WatchEventType::Heartbeat {
            return item;
        }
    }
}

/// A server whose sweeper never runs by itself: the test sweeps when it means to.
async fn without_sweeper(backend: Backend) -> TestApp {
    let settings = ServiceSettings {
        approval_sweep: Duration::from_secs(3600),
        ..ServiceSettings::default()
    };
    Spawn::new(backend).service(settings).start().await
}

async fn an_approval_until_a_time_is_pending_from_its_end_then_written_back(backend: Backend) {
    let app = without_sweeper(backend).await;
    let (token, secret) = app.admin_user_token(pb::AppState::Pending).await;
    app.authorize(&secret, "terraform", pb::Privilege::ReadOnly)
        .await;
    let mut events = watch_all(&app).await;
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
        listed(&app, &token.id, "terraform").await.state(),
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
    let now_listed = listed(&app, &token.id, "terraform").await;
    assert_eq!(now_listed.state(), pb::AppState::Pending);
    assert!(now_listed.conditions.is_none());
    assert_eq!(
        app.local.lapse_approvals_now().await.expect("sweep again"),
        0,
        "each lapses once"
    );
    let audit = app
        .tokens
        .clone()
        .list_audit_events(app.admin.req(pb::ListAuditEventsRequest {
            target_id: format!("{}/terraform", token.id),
            ..Default::default()
        }))
        .await
        .expect("audit")
        .into_inner()
        .audit_events;
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
    set(
        &app,
        &app.admin,
        &token.id,
        "terraform-cloud",
        pb::AppState::Allow,
        Some(conditions),
        "",
    )
    .await
    .expect("conditional allow");
    let read = authorize_from(
        &app,
        &secret,
        "terraform-cloud",
        pb::Privilege::ReadOnly,
        "10.1.1.1",
    )
    .await;
    assert_eq!(read.decision(), pb::Decision::Allow);
    assert_eq!(
        read.principal.expect("principal").effective_privilege(),
        pb::Privilege::ReadOnly,
        "acts at most Read-Only though the token is Admin"
    );
    let write = authorize_from(
        &app,
        &secret,
        "terraform-cloud",
        pb::Privilege::Normal,
        "10.1.1.1",
    )
    .await;
    assert_eq!(write.decision(), pb::Decision::InsufficientPrivilege);
    let elsewhere = authorize_from(
        &app,
        &secret,
        "terraform-cloud",
        pb::Privilege::ReadOnly,
        "172.16.0.1",
    )
    .await;
    assert_eq!(elsewhere.decision(), pb::Decision::AddressNotAllowed);
    assert!(
        elsewhere.reason.contains("terraform-cloud"),
        "{}",
        elsewhere.reason
    );
    // Another application of the same token is not capped.
    set(
        &app,
        &app.admin,
        &token.id,
        "admin-ui",
        pb::AppState::Allow,
        None,
        "",
    )
    .await
    .expect("plain allow");
    let plain = app
        .authorize(&secret, "admin-ui", pb::Privilege::Admin)
        .await;
    assert_eq!(plain.decision(), pb::Decision::Allow);
    let shown = listed(&app, &token.id, "terraform-cloud").await;
    let conditions = shown.conditions.expect("shown");
    assert_eq!(conditions.max_privilege(), pb::Privilege::ReadOnly);
    assert_eq!(conditions.client_cidrs, ["10.0.0.0/8"]);
    // Setting the same state and conditions again changes nothing: no new audit entry.
    let audited = |app: &TestApp| {
        let mut tokens = app.tokens.clone();
        let req = app.admin.req(pb::ListAuditEventsRequest {
            target_id: format!("{}/terraform-cloud", token.id),
            ..Default::default()
        });
        async move {
            tokens
                .list_audit_events(req)
                .await
                .expect("audit")
                .into_inner()
                .audit_events
                .len()
        }
    };
    let entries = audited(&app).await;
    set(
        &app,
        &app.admin,
        &token.id,
        "terraform-cloud",
        pb::AppState::Allow,
        Some(pb::ApprovalConditions {
            expire_time: conditions.expire_time,
            max_privilege: pb::Privilege::ReadOnly.into(),
            client_cidrs: vec!["10.0.0.0/8".into()],
        }),
        "",
    )
    .await
    .expect("same again");
    assert_eq!(audited(&app).await, entries);
    // Dropping the conditions is a change of its own.
    set(
        &app,
        &app.admin,
        &token.id,
        "terraform-cloud",
        pb::AppState::Allow,
        None,
        "",
    )
    .await
    .expect("plain again");
    let uncapped = authorize_from(
        &app,
        &secret,
        "terraform-cloud",
        pb::Privilege::Admin,
        "172.16.0.1",
    )
    .await;
    assert_eq!(uncapped.decision(), pb::Decision::Allow);
}

async fn conditions_reach_another_replicas_warm_cache(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.second_replica().await;
    let (token, secret) = app.admin_user_token(pb::AppState::Allow).await;
    let ask = |client: &mut pb::authorize_service_client::AuthorizeServiceClient<
        tonic::transport::Channel,
    >,
               revision: String| {
        let mut client = client.clone();
        let secret = secret.clone();
        async move {
            client
                .authorize(pb::AuthorizeRequest {
                    token: secret,
                    app_name: "poller".into(),
                    required_privilege: pb::Privilege::Normal.into(),
                    min_revision: revision,
                    ..Default::default()
                })
                .await
                .expect("authorize")
                .into_inner()
        }
    };
    let mut far = other.authorize.clone();
    assert_eq!(
        ask(&mut far, String::new()).await.decision(),
        pb::Decision::Allow
    );
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
    let revision = reply
        .metadata()
        .get(api_tokens::grpc::REVISION_HEADER)
        .and_then(|v| v.to_str().ok())
        .expect("revision")
        .to_owned();
    assert_eq!(
        ask(&mut far, revision).await.decision(),
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

async fn a_batch_decides_each_with_one_reason(backend: Backend) {
    let app = spawn_app(backend).await;
    let (mine, secret) = app.admin_user_token(pb::AppState::Pending).await;
    let (retired, _) = app.admin_user_token(pb::AppState::Pending).await;
    app.tokens
        .clone()
        .retire_token(app.admin.req(pb::RetireTokenRequest {
            id: retired.id.clone(),
            ..Default::default()
        }))
        .await
        .expect("retire");
    let (_, normal, normal_token) = app
        .member_with_token("normal@example.com", pb::Privilege::Normal)
        .await;
    let mut events = watch_all(&app).await;
    let decide = |token_id: &str, name: &str, state: pb::AppState| pb::ApplicationDecision {
        token_id: token_id.into(),
        name: name.into(),
        state: state.into(),
        conditions: None,
    };
    let mut decisions = vec![
        decide(&mine.id, "a", pb::AppState::Allow),
        decide(&mine.id, "b", pb::AppState::Deny),
        decide(&retired.id, "c", pb::AppState::Allow),
        decide(
            "00000000-0000-4000-8000-000000000000",
            "d",
            pb::AppState::Allow,
        ),
    ];
    decisions[0].conditions = Some(pb::ApprovalConditions {
        max_privilege: pb::Privilege::ReadOnly.into(),
        ..Default::default()
    });
    let results = app
        .tokens
        .clone()
        .batch_set_application_states(app.admin.req(pb::BatchSetApplicationStatesRequest {
            decisions,
            reason: "quarterly review".into(),
            ..Default::default()
        }))
        .await
        .expect("batch")
        .into_inner()
        .results;
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
    let audit = app
        .tokens
        .clone()
        .list_audit_events(app.admin.req(pb::ListAuditEventsRequest {
            target_id: format!("{}/a", mine.id),
            ..Default::default()
        }))
        .await
        .expect("audit")
        .into_inner()
        .audit_events;
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
    let results = app
        .tokens
        .clone()
        .batch_set_application_states(normal.req(pb::BatchSetApplicationStatesRequest {
            decisions: vec![
                decide(&mine.id, "e", pb::AppState::Allow),
                decide(&normal_token.id, "e", pb::AppState::Allow),
            ],
            reason: String::new(),
            ..Default::default()
        }))
        .await
        .expect("batch")
        .into_inner()
        .results;
    assert_eq!(results[0].code, Code::NotFound as i32);
    assert_eq!(results[1].code, 0);

    // Malformed batches are refused whole, naming each bad field.
    let err = app
        .tokens
        .clone()
        .batch_set_application_states(app.admin.req(pb::BatchSetApplicationStatesRequest {
            decisions: vec![
                decide(&mine.id, "f", pb::AppState::Allow),
                decide(&mine.id, "f", pb::AppState::Deny),
                decide("not-a-uuid", "g", pb::AppState::Unspecified),
            ],
            reason: String::new(),
            ..Default::default()
        }))
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
        .map(|i| decide(&mine.id, &format!("n{i}"), pb::AppState::Allow))
        .collect();
    let err = app
        .tokens
        .clone()
        .batch_set_application_states(app.admin.req(pb::BatchSetApplicationStatesRequest {
            decisions: too_many,
            reason: String::new(),
            ..Default::default()
        }))
        .await
        .expect_err("too many");
    assert_eq!(err.code(), Code::InvalidArgument);
    // A Read-Only caller is refused whole.
    let (_, read_only, _) = app
        .member_with_token("ro@example.com", pb::Privilege::ReadOnly)
        .await;
    let err = app
        .tokens
        .clone()
        .batch_set_application_states(read_only.req(pb::BatchSetApplicationStatesRequest {
            decisions: vec![decide(&mine.id, "h", pb::AppState::Allow)],
            reason: String::new(),
            ..Default::default()
        }))
        .await
        .expect_err("read-only");
    assert_eq!(err.code(), Code::PermissionDenied);
}

async fn a_hundred_decisions_land_together(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, secret) = app.admin_user_token(pb::AppState::Pending).await;
    let decisions: Vec<_> = (0..100)
        .map(|i| pb::ApplicationDecision {
            token_id: token.id.clone(),
            name: format!("service-{i:03}"),
            state: pb::AppState::Allow.into(),
            conditions: None,
        })
        .collect();
    let results = app
        .tokens
        .clone()
        .batch_set_application_states(app.admin.req(pb::BatchSetApplicationStatesRequest {
            decisions,
            reason: "migration".into(),
            ..Default::default()
        }))
        .await
        .expect("batch of 100")
        .into_inner()
        .results;
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
    an_approval_until_a_time_is_pending_from_its_end_then_written_back,
    a_privilege_cap_and_client_ranges_hold_for_the_application,
    conditions_reach_another_replicas_warm_cache,
    bad_conditions_are_invalid_arguments_naming_each_field,
    a_batch_decides_each_with_one_reason,
    a_hundred_decisions_land_together,
);
