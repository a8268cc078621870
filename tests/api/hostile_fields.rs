//! Hostile field values in every RPC that has the field, table-driven: unknown enum values,
//! negative page sizes, garbage page tokens and cursors. Each is INVALID_ARGUMENT naming the
//! field, never INTERNAL, and the server answers Health SERVING afterwards.
use std::future::Future;
use std::pin::Pin;

use crate::common::{Backend, TestApp, bad_fields, spawn_app};
use api_tokens::grpc::pb;
use base64::Engine;
use tonic::{Code, Status};

use super::hostile_input::{assert_invalid, still_serving};

/// A call of a table: the request sent on a clone of the client, the response dropped (only
/// a refusal is looked at).
type Call = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// `client.method(request)` as a `Call`.
macro_rules! call {
    ($client:expr, $method:ident, $request:expr) => {{
        let mut client = $client.clone();
        let request = $request;
        Box::pin(async move { client.$method(request).await.map(drop) }) as Call
    }};
}

/// Each call must be refused as INVALID_ARGUMENT naming its field.
async fn assert_each_invalid(calls: Vec<(&str, Call)>, what: &str) {
    for (field, call) in calls {
        assert_invalid(call.await, field, what);
    }
}

/// Every RPC with an enum field, that field set to `value`, and the field it must name.
fn with_enum(app: &TestApp, value: i32) -> Vec<(&'static str, Call)> {
    let admin = &app.admin;
    let token_id = app.admin_token_id.clone();
    vec![
        (
            "required_privilege",
            call!(
                app.authorize,
                authorize,
                pb::AuthorizeRequest {
                    token: admin.secret.clone(),
                    app_name: "curl".into(),
                    required_privilege: value,
                    ..Default::default()
                }
            ),
        ),
        (
            "type",
            call!(
                app.tokens,
                list_tokens,
                admin.req(pb::ListTokensRequest {
                    r#type: value,
                    ..Default::default()
                })
            ),
        ),
        (
            "state",
            call!(
                app.tokens,
                list_tokens,
                admin.req(pb::ListTokensRequest {
                    state: value,
                    ..Default::default()
                })
            ),
        ),
        (
            "state",
            call!(
                app.tokens,
                set_application_state,
                admin.req(pb::SetApplicationStateRequest {
                    token_id: token_id.clone(),
                    name: "curl".into(),
                    state: value,
                    ..Default::default()
                })
            ),
        ),
        (
            "state",
            call!(
                app.tokens,
                list_applications,
                admin.req(pb::ListApplicationsRequest {
                    token_id,
                    state: value,
                    ..Default::default()
                })
            ),
        ),
        (
            "role",
            call!(
                app.accounts,
                add_member,
                admin.req(pb::AddMemberRequest {
                    user_name: "eve@example.com".into(),
                    role: value,
                })
            ),
        ),
        (
            "states[1]",
            call!(
                app.tokens,
                watch_applications,
                admin.req(pb::WatchApplicationsRequest {
                    states: vec![pb::AppState::Pending.into(), value],
                    ..Default::default()
                })
            ),
        ),
    ]
}

/// Every list RPC asking for a page of `page_size` after `page_token`.
fn list_pages(app: &TestApp, page_size: i32, page_token: &str) -> Vec<Call> {
    let admin = &app.admin;
    let page_token = page_token.to_owned();
    vec![
        call!(
            app.tokens,
            list_tokens,
            admin.req(pb::ListTokensRequest {
                page_size,
                page_token: page_token.clone(),
                ..Default::default()
            })
        ),
        call!(
            app.accounts,
            list_members,
            admin.req(pb::ListMembersRequest {
                page_size,
                page_token: page_token.clone(),
            })
        ),
        call!(
            app.tokens,
            list_audit_events,
            admin.req(pb::ListAuditEventsRequest {
                page_size,
                page_token: page_token.clone(),
                ..Default::default()
            })
        ),
        call!(
            app.tokens,
            list_applications,
            admin.req(pb::ListApplicationsRequest {
                token_id: app.admin_token_id.clone(),
                page_size,
                page_token,
                ..Default::default()
            })
        ),
    ]
}

async fn unknown_enums_and_negative_page_sizes_are_named(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = &app.admin;
    let mut tokens = app.tokens.clone();
    for value in [-1, 4, 99, i32::MAX, i32::MIN] {
        let what = format!("enum value {value}");
        assert_each_invalid(with_enum(&app, value), &what).await;
        // Every bad field of one request is named, not only the first.
        let status = tokens
            .create_token(admin.req(pb::CreateTokenRequest {
                r#type: value,
                privilege: value,
                default_app_state: value,
                description: String::new(),
                request_id: String::new(),
                ..Default::default()
            }))
            .await
            .expect_err(&what);
        assert_eq!(status.code(), Code::InvalidArgument);
        let mut fields = bad_fields(&status);
        fields.sort();
        assert_eq!(fields, ["default_app_state", "privilege", "type"], "{what}");
    }
    for size in [-1, -50, i32::MIN] {
        let calls = list_pages(&app, size, "");
        let named = calls.into_iter().map(|call| ("page_size", call)).collect();
        assert_each_invalid(named, &format!("page_size {size}")).await;
    }
    // The largest page size is clamped, not refused.
    tokens
        .list_tokens(admin.req(pb::ListTokensRequest {
            page_size: i32::MAX,
            ..Default::default()
        }))
        .await
        .expect("i32::MAX is clamped to the maximum page");
    still_serving(&app).await;
}

async fn garbage_page_tokens_and_cursors_are_named(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = &app.admin;
    let mut tokens = app.tokens.clone();
    let b64 = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let garbage = [
        "garbage!".to_owned(),
        "%%%".to_owned(),
        b64(b"p1:"),
        b64(b"p1:abc"),
        b64(b"p1:99999999999999999999999"),
        b64(b"c1:5"),
        b64(b"\xff\xfe"),
        "A".repeat(64 * 1024),
    ];
    for token in &garbage {
        let calls = list_pages(&app, 0, token);
        let named = calls.into_iter().map(|call| ("page_token", call)).collect();
        assert_each_invalid(named, &format!("page token {:.20}", token)).await;
    }
    let cursors = [
        "garbage!".to_owned(),
        b64(b"c1:"),
        b64(b"c1:-1"),
        b64(b"c1:x"),
        b64(b"p1:5"),
        b64(b"c1:99999999999999999999999"),
        "A".repeat(64 * 1024),
    ];
    for cursor in cursors {
        assert_invalid(
            tokens
                .watch_applications(admin.req(pb::WatchApplicationsRequest {
                    cursor,
                    ..Default::default()
                }))
                .await,
            "cursor",
            "a cursor this service never issued",
        );
    }
    // Ids that are not UUIDs are named too.
    for id in ["", "not-a-uuid", "00000000-0000-0000-0000-00000000000g"] {
        let status = tokens
            .get_token(admin.req(pb::GetTokenRequest { id: id.into() }))
            .await
            .expect_err(id);
        assert_eq!(status.code(), Code::InvalidArgument, "{id:?}");
        assert_eq!(bad_fields(&status), ["id"]);
    }
    still_serving(&app).await;
}

on_both_backends!(
    unknown_enums_and_negative_page_sizes_are_named,
    garbage_page_tokens_and_cursors_are_named,
);
