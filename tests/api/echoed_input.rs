//! Errors stay small whatever the input, through the real server on both backends: 100 KiB of
//! garbage in each field an error could echo (address ranges, update masks, names, ids,
//! descriptions, reasons, page tokens, cursors, addresses, a revision header) is refused with
//! INVALID_ARGUMENT naming the field, and the encoded `grpc-message` and
//! `grpc-status-details-bin` together stay under 1 KiB, so any client can read the error.
//! A request with hundreds of bad fields, each long, stays small too.
use std::future::Future;
use std::pin::Pin;

use crate::common::{Backend, TestApp, bad_fields, spawn_app};
use api_tokens::grpc::pb;
use prost_types::FieldMask;
use tonic::codegen::http::HeaderMap;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

/// 100 KiB that is no valid value of any field.
fn garbage() -> String {
    "z".repeat(100 * 1024)
}

/// The most the encoded message and details of a refusal may take.
const MOST_ERROR_BYTES: usize = 1024;

type Call = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// `client.method(request)` as a `Call` (the answer dropped: only a refusal is looked at).
macro_rules! call {
    ($client:expr, $method:ident, $request:expr) => {{
        let mut client = $client.clone();
        let request = $request;
        Box::pin(async move { client.$method(request).await.map(drop) }) as Call
    }};
}

/// The bytes the status's `grpc-message` and `grpc-status-details-bin` take on the wire.
fn encoded_error_bytes(status: &Status) -> usize {
    let mut headers = HeaderMap::new();
    status.add_header(&mut headers).expect("encodable status");
    ["grpc-message", "grpc-status-details-bin"]
        .iter()
        .filter_map(|name| headers.get(*name))
        .map(|value| value.len())
        .sum()
}

fn assert_small_and_named(result: Result<(), Status>, field: &str) {
    let status = result.expect_err(field);
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "{field}: {} {:.200}",
        status.code(),
        status.message()
    );
    let fields = bad_fields(&status);
    assert!(fields.iter().any(|f| f == field), "{field}: {fields:?}");
    let bytes = encoded_error_bytes(&status);
    assert!(
        bytes < MOST_ERROR_BYTES,
        "{field}: {bytes} bytes of error: {:.300}",
        status.message()
    );
}

fn mask(path: String) -> Option<FieldMask> {
    Some(FieldMask { paths: vec![path] })
}

/// Every request with one field an error could echo set to 100 KiB of garbage, and the
/// field it must name.
fn each_echoed_field(app: &TestApp, token_id: &str) -> Vec<(&'static str, Call)> {
    let admin = &app.admin;
    let g = garbage;
    let decision = |conditions, name: String, token_id: String| pb::ApplicationDecision {
        token_id,
        name,
        state: pb::AppState::Allow.into(),
        conditions,
    };
    let ranges = |cidrs: Vec<String>| {
        Some(pb::ApprovalConditions {
            client_cidrs: cidrs,
            ..Default::default()
        })
    };
    let id = || token_id.to_owned();
    vec![
        (
            "bound_cidrs",
            call!(
                app.tokens,
                create_token,
                admin.req(pb::CreateTokenRequest {
                    r#type: pb::TokenType::User.into(),
                    bound_cidrs: vec!["10.0.0.0/8".into(), g()],
                    ..Default::default()
                })
            ),
        ),
        (
            "token.bound_cidrs",
            call!(
                app.tokens,
                update_token,
                admin.req(pb::UpdateTokenRequest {
                    token: Some(pb::Token {
                        id: id(),
                        bound_cidrs: vec![g()],
                        ..Default::default()
                    }),
                    update_mask: mask("bound_cidrs".into()),
                })
            ),
        ),
        (
            "update_mask",
            call!(
                app.tokens,
                update_token,
                admin.req(pb::UpdateTokenRequest {
                    token: Some(pb::Token {
                        id: id(),
                        ..Default::default()
                    }),
                    update_mask: mask(g()),
                })
            ),
        ),
        (
            "update_mask",
            call!(
                app.accounts,
                set_account_policy,
                admin.req(pb::SetAccountPolicyRequest {
                    policy: Some(pb::AccountPolicy::default()),
                    update_mask: mask(g()),
                })
            ),
        ),
        (
            "conditions.client_cidrs",
            call!(
                app.tokens,
                set_application_state,
                admin.req(pb::SetApplicationStateRequest {
                    token_id: id(),
                    name: "cron".into(),
                    state: pb::AppState::Allow.into(),
                    conditions: ranges(vec![g()]),
                    ..Default::default()
                })
            ),
        ),
        (
            "decisions[0].conditions.client_cidrs",
            call!(
                app.tokens,
                batch_set_application_states,
                admin.req(pb::BatchSetApplicationStatesRequest {
                    decisions: vec![decision(ranges(vec![g()]), "cron".into(), id())],
                    ..Default::default()
                })
            ),
        ),
        (
            "name",
            call!(
                app.tokens,
                set_application_state,
                admin.req(pb::SetApplicationStateRequest {
                    token_id: id(),
                    name: g(),
                    state: pb::AppState::Allow.into(),
                    ..Default::default()
                })
            ),
        ),
        (
            "reason",
            call!(
                app.tokens,
                set_application_state,
                admin.req(pb::SetApplicationStateRequest {
                    token_id: id(),
                    name: "cron".into(),
                    state: pb::AppState::Allow.into(),
                    reason: g(),
                    ..Default::default()
                })
            ),
        ),
        (
            "token_id",
            call!(
                app.tokens,
                list_applications,
                admin.req(pb::ListApplicationsRequest {
                    token_id: g(),
                    ..Default::default()
                })
            ),
        ),
        (
            "description",
            call!(
                app.tokens,
                create_token,
                admin.req(pb::CreateTokenRequest {
                    r#type: pb::TokenType::User.into(),
                    description: g(),
                    ..Default::default()
                })
            ),
        ),
        (
            "request_id",
            call!(
                app.tokens,
                create_token,
                admin.req(pb::CreateTokenRequest {
                    r#type: pb::TokenType::User.into(),
                    request_id: g(),
                    ..Default::default()
                })
            ),
        ),
        (
            "page_token",
            call!(
                app.tokens,
                list_tokens,
                admin.req(pb::ListTokensRequest {
                    page_token: g(),
                    ..Default::default()
                })
            ),
        ),
        (
            "cursor",
            call!(
                app.tokens,
                watch_token_events,
                admin.req(pb::WatchTokenEventsRequest {
                    cursor: g(),
                    ..Default::default()
                })
            ),
        ),
        (
            "broker_id",
            call!(
                app.tokens,
                get_install_command,
                admin.req(pb::GetInstallCommandRequest {
                    token_id: id(),
                    broker_id: g(),
                })
            ),
        ),
        (
            "where_found",
            call!(
                app.tokens,
                report_leaked_secret,
                pb::ReportLeakedSecretRequest {
                    secret: uuid::Uuid::new_v4().to_string(),
                    where_found: g(),
                }
            ),
        ),
        (
            "user_name",
            call!(
                app.accounts,
                add_member,
                admin.req(pb::AddMemberRequest {
                    user_name: g(),
                    role: pb::Privilege::Normal.into(),
                })
            ),
        ),
        (
            "client_address",
            call!(
                app.authorize,
                authorize,
                pb::AuthorizeRequest {
                    token: admin.secret.clone(),
                    app_name: "cron".into(),
                    client_address: g(),
                    ..Default::default()
                }
            ),
        ),
        ("x-api-tokens-min-revision", {
            // Headers have a limit of their own (16 KiB): the most that fits.
            let mut request = admin.req(pb::GetAccountRequest {});
            let value = MetadataValue::try_from("z".repeat(8 * 1024)).expect("ascii");
            request
                .metadata_mut()
                .insert("x-api-tokens-min-revision", value);
            call!(app.accounts, get_account, request)
        }),
    ]
}

async fn every_echoed_input_is_bounded_in_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let token_id = app.admin_token_id.clone();
    for (field, call) in each_echoed_field(&app, &token_id) {
        assert_small_and_named(call.await, field);
    }
}

async fn many_bad_fields_at_once_still_make_a_small_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let kib = || "z".repeat(1024);
    // A thousand unknown update_mask paths of 1 KiB each.
    let status = app
        .tokens
        .clone()
        .update_token(app.admin.req(pb::UpdateTokenRequest {
            token: Some(pb::Token {
                id: app.admin_token_id.clone(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: (0..1000).map(|_| kib()).collect(),
            }),
        }))
        .await
        .map(drop);
    assert_small_or_capped(status, "update_mask");
    // A full batch whose every decision has a bad token id, name and range.
    let decisions = (0..100)
        .map(|_| pb::ApplicationDecision {
            token_id: kib(),
            name: kib(),
            state: pb::AppState::Allow.into(),
            conditions: Some(pb::ApprovalConditions {
                client_cidrs: vec![kib()],
                ..Default::default()
            }),
        })
        .collect();
    let status = app
        .tokens
        .clone()
        .batch_set_application_states(app.admin.req(pb::BatchSetApplicationStatesRequest {
            decisions,
            ..Default::default()
        }))
        .await
        .map(drop);
    assert_small_or_capped(status, "decisions[0].token_id");
}

/// INVALID_ARGUMENT naming `first` first, the whole error a few KiB at most (well under the
/// 8 KiB of metadata gRPC's Java and C clients read by default): the first bad fields are
/// named, with how many more there are.
fn assert_small_or_capped(result: Result<(), Status>, first: &str) {
    let status = result.expect_err(first);
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "{first}: {:.300}",
        status.message()
    );
    let fields = bad_fields(&status);
    assert_eq!(
        fields.first().map(String::as_str),
        Some(first),
        "{fields:?}"
    );
    let bytes = encoded_error_bytes(&status);
    assert!(
        bytes < 6 * MOST_ERROR_BYTES,
        "{first}: {bytes} bytes of error"
    );
    assert!(status.message().contains("more"), "{}", status.message());
}

on_both_backends!(
    every_echoed_input_is_bounded_in_errors,
    many_bad_fields_at_once_still_make_a_small_error,
);
