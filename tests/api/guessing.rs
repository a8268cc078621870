//! Guessing: answers to unknown secrets and to ids a caller may not see say nothing about what
//! exists, and guessing secrets costs the database at most one query per distinct guess
//! (the negative cache). Counts, not times: the timing comparison is `examples/guessing.rs`.

use crate::common::local::local_service;
use crate::common::{As, Backend, spawn_app};
use api_tokens::domain::{AppName, Privilege, Secret};
use api_tokens::grpc::pb;
use api_tokens::service::Credentials;
use prost_types::FieldMask;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// Guesses per flood: the figure docs/RELIABILITY.md records.
const FLOOD: u64 = 10_000;

async fn guessing_costs_one_query_per_distinct_secret(backend: Backend) {
    let (_db, service, _) = local_service(backend).await;
    let app = AppName::parse("guesser").expect("name");
    let queries = || service.repository().query_count();

    let same = Secret::generate();
    let before = queries();
    for _ in 0..FLOOD {
        let outcome = service
            .authorize(&same, &app, Privilege::ReadOnly)
            .await
            .expect("answers");
        assert!(!outcome.decision.is_allow());
    }
    let same_cost = queries() - before;
    assert_eq!(
        same_cost, 1,
        "{FLOOD} Authorize calls with one unknown secret"
    );

    let before = queries();
    for _ in 0..FLOOD {
        service
            .authorize(&Secret::generate(), &app, Privilege::ReadOnly)
            .await
            .expect("answers");
    }
    let random_cost = queries() - before;
    assert_eq!(
        random_cost, FLOOD,
        "{FLOOD} distinct unknown secrets cost one query each, never more"
    );

    // Management calls authenticate through the same path and the same negative cache.
    let credentials = Credentials {
        secret: Secret::generate(),
        app,
        client: None,
    };
    let before = queries();
    for _ in 0..1_000 {
        service
            .authenticate(&credentials)
            .await
            .expect_err("an unknown secret does not authenticate");
    }
    assert_eq!(
        queries() - before,
        1,
        "1,000 management calls with one unknown secret"
    );
    eprintln!(
        "{backend:?}: {FLOOD} x one unknown secret: {same_cost} query; \
         {FLOOD} distinct unknown secrets: {random_cost} queries"
    );
}

/// Code, message and ErrorInfo reason: everything a caller reads from a refusal.
fn answer(status: &Status) -> (Code, String, String) {
    (
        status.code(),
        status.message().to_owned(),
        status
            .get_details_error_info()
            .map(|i| i.reason)
            .unwrap_or_default(),
    )
}

async fn unknown_secrets_of_every_shape_get_one_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let real = app.admin.secret.clone();
    // Flip one hex digit of a real secret: as close to existing as a guess can get.
    let mut near = real.clone().into_bytes();
    near[0] = if near[0] == b'0' { b'1' } else { b'0' };
    let near = String::from_utf8(near).expect("ascii");
    let guesses = [
        Secret::generate().expose().to_owned(),
        Secret::generate().expose().to_ascii_uppercase(),
        "00000000-0000-0000-0000-000000000000".to_owned(),
        "ffffffff-ffff-ffff-ffff-ffffffffffff".to_owned(),
        // UUID-shaped but not RFC 4122 (version nibble 6, odd variant), as Circonus issues.
        "ec45e8a2-d6d9-624c-c21c-a83f573731c1".to_owned(),
        near,
    ];
    let mut answers = Vec::new();
    for guess in &guesses {
        let status = app
            .accounts
            .clone()
            .get_account(As::new(guess.clone(), "guesser").req(pb::GetAccountRequest {}))
            .await
            .expect_err("an unknown secret is refused");
        answers.push(answer(&status));
        let reply = app
            .authorize(guess, "guesser", pb::Privilege::ReadOnly)
            .await;
        assert_eq!(reply.decision(), pb::Decision::UnknownToken);
        assert_eq!(
            (reply.http_status, reply.error_code.as_str()),
            (401, "Forbidden.BadToken")
        );
    }
    assert_eq!(answers[0].0, Code::Unauthenticated);
    assert_eq!(answers[0].2, "UNKNOWN_TOKEN");
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "every unknown secret gets the same answer: {answers:?}"
    );

    // A retired secret is refused with the same code and the same gateway answer. Its
    // reason says "retired", which only the holder of that exact secret can learn.
    let (token, secret) = app.admin_user_token(pb::AppState::Allow).await;
    app.tokens
        .clone()
        .retire_token(app.admin.req(pb::RetireTokenRequest {
            id: token.id,
            ..Default::default()
        }))
        .await
        .expect("retire");
    let status = app
        .accounts
        .clone()
        .get_account(As::new(secret.clone(), "guesser").req(pb::GetAccountRequest {}))
        .await
        .expect_err("a retired secret is refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    let reply = app
        .authorize(&secret, "guesser", pb::Privilege::ReadOnly)
        .await;
    assert_eq!(
        (reply.http_status, reply.error_code.as_str()),
        (401, "Forbidden.BadToken")
    );
}

async fn invisible_and_missing_tokens_get_one_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, normal, _) = app
        .member_with_token("normal@example.com", pb::Privilege::Normal)
        .await;
    let (_, _, other) = app
        .member_with_token("other@example.com", pb::Privilege::Normal)
        .await;
    let (account, _) = app.account_token(pb::Privilege::Normal).await;
    let missing = uuid::Uuid::new_v4().to_string();
    let mut tokens = app.tokens.clone();
    for rpc in [
        "GetToken",
        "UpdateToken",
        "RetireToken",
        "ListApplications",
        "SetApplicationState",
        "GetInstallCommand",
    ] {
        let mut answers = Vec::new();
        for id in [&missing, &other.id, &account.id, &app.admin_token_id] {
            let result = match rpc {
                "GetToken" => tokens
                    .get_token(normal.req(pb::GetTokenRequest { id: id.clone() }))
                    .await
                    .map(drop),
                "UpdateToken" => tokens
                    .update_token(normal.req(pb::UpdateTokenRequest {
                        token: Some(pb::Token {
                            id: id.clone(),
                            description: "mine now".into(),
                            ..Default::default()
                        }),
                        update_mask: Some(FieldMask {
                            paths: vec!["description".into()],
                        }),
                    }))
                    .await
                    .map(drop),
                "RetireToken" => tokens
                    .retire_token(normal.req(pb::RetireTokenRequest {
                        id: id.clone(),
                        ..Default::default()
                    }))
                    .await
                    .map(drop),
                "ListApplications" => tokens
                    .list_applications(normal.req(pb::ListApplicationsRequest {
                        token_id: id.clone(),
                        ..Default::default()
                    }))
                    .await
                    .map(drop),
                "SetApplicationState" => tokens
                    .set_application_state(normal.req(pb::SetApplicationStateRequest {
                        token_id: id.clone(),
                        name: "guesser".into(),
                        state: pb::AppState::Allow.into(),
                        ..Default::default()
                    }))
                    .await
                    .map(drop),
                _ => tokens
                    .get_install_command(normal.req(pb::GetInstallCommandRequest {
                        token_id: id.clone(),
                        broker_id: String::new(),
                    }))
                    .await
                    .map(drop),
            };
            let status = result.expect_err("not visible to a Normal member");
            let (code, message, reason) = answer(&status);
            let resource = status.get_details_resource_info().map(|r| {
                (
                    r.resource_type,
                    r.resource_name.replace(id.as_str(), "<id>"),
                )
            });
            answers.push((code, message.replace(id.as_str(), "<id>"), reason, resource));
        }
        assert_eq!(answers[0].0, Code::NotFound, "{rpc}");
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "{rpc}: a missing token and one the caller may not see get the same answer: {answers:?}"
        );
    }
}

on_both_backends!(
    guessing_costs_one_query_per_distinct_secret,
    unknown_secrets_of_every_shape_get_one_answer,
    invisible_and_missing_tokens_get_one_answer,
);
