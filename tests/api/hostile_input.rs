//! Hostile input over the real server: oversized messages, invalid UTF-8 on the wire, malformed
//! secrets and Basic headers, non-ASCII metadata (unknown enum values, negative page sizes and
//! garbage page tokens and cursors: `hostile_fields.rs`). Each gets a clear code (INVALID_ARGUMENT naming the field,
//! UNAUTHENTICATED for credentials, RESOURCE_EXHAUSTED past the 4 MiB message limit), never
//! INTERNAL and never a panic, and the server answers Health SERVING afterwards.

use crate::common::{As, Backend, TestApp, bad_fields, reason, spawn_app};
use api_tokens::grpc::pb;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pb::account_service_client::AccountServiceClient;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Status};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

/// Past tonic's default 4 MiB decoding limit.
const FIVE_MIB: usize = 5 * 1024 * 1024;

/// The server still answers on a new connection: Health SERVING, and an ordinary authenticated
/// call succeeds. A new one, because refusing some input means closing the connection that sent
/// it (HTTP/2 GOAWAY), and a call racing that close is cancelled whatever the server's health.
pub(super) async fn still_serving(app: &TestApp) {
    let channel = crate::common::connect(app.addr).await;
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);
    AccountServiceClient::new(channel)
        .get_account(app.admin.req(pb::GetAccountRequest {}))
        .await
        .expect("an ordinary call still succeeds");
}

/// INVALID_ARGUMENT naming exactly `field` among its violations.
pub(super) fn assert_invalid(
    result: Result<impl std::fmt::Debug, Status>,
    field: &str,
    what: &str,
) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    assert!(
        bad_fields(&status).iter().any(|f| f == field),
        "{what}: BadRequest names {field}: {:?}",
        bad_fields(&status)
    );
}

/// UNAUTHENTICATED with this ErrorInfo reason; returns the status for more checks.
fn assert_unauthenticated(
    result: Result<impl std::fmt::Debug, Status>,
    why: &str,
    what: &str,
) -> Status {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    assert_eq!(reason(&status), why, "{what}: {status:?}");
    status
}

fn authorize_request(token: &str, app_name: &str) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        token: token.into(),
        app_name: app_name.into(),
        required_privilege: pb::Privilege::ReadOnly.into(),
        ..Default::default()
    }
}

/// tonic 0.14 refuses a message past its decoding limit with OUT_OF_RANGE ("decoded message
/// length too large"), not the RESOURCE_EXHAUSTED of gRPC's status-code table; either is a
/// clear answer to the caller, and neither is INTERNAL.
fn assert_too_large(status: &Status) {
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
}

async fn oversized_messages_are_refused_and_the_server_keeps_serving(backend: Backend) {
    let app = spawn_app(backend).await;
    let huge = "a".repeat(FIVE_MIB);
    let status = app
        .authorize
        .clone()
        .authorize(authorize_request(&app.admin.secret, &huge))
        .await
        .expect_err("a 5 MiB app_name is refused");
    assert_too_large(&status);
    let status = app
        .tokens
        .clone()
        .create_token(app.admin.req(pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            description: huge.clone(),
            ..Default::default()
        }))
        .await
        .expect_err("a 5 MiB description is refused");
    assert_too_large(&status);
    still_serving(&app).await;

    // Under the message limit but far over the fields' limits: the field is named.
    let big = "d".repeat(3 * 1024 * 1024);
    assert_invalid(
        app.authorize
            .clone()
            .authorize(authorize_request(&app.admin.secret, &big))
            .await,
        "app_name",
        "a 3 MiB app_name",
    );
    assert_invalid(
        app.tokens
            .clone()
            .create_token(app.admin.req(pb::CreateTokenRequest {
                r#type: pb::TokenType::User.into(),
                description: big,
                ..Default::default()
            }))
            .await,
        "description",
        "a 3 MiB description",
    );
    still_serving(&app).await;
}

async fn app_names_over_the_limit_are_named(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret = app.admin.secret.clone();
    let mut authorize = app.authorize.clone();
    for len in [201, 202, 1000, 100_000] {
        assert_invalid(
            authorize
                .authorize(authorize_request(&secret, &"n".repeat(len)))
                .await,
            "app_name",
            &format!("an app name of {len} characters"),
        );
    }
    let at_limit = authorize
        .authorize(authorize_request(&secret, &"n".repeat(200)))
        .await
        .expect("200 characters is a valid name")
        .into_inner();
    assert_eq!(at_limit.decision(), pb::Decision::Allow);
    // 200 characters, but two bytes each: the limit is in characters of printable ASCII.
    assert_invalid(
        authorize
            .authorize(authorize_request(&secret, &"é".repeat(100)))
            .await,
        "app_name",
        "non-ASCII app name",
    );
    assert_invalid(
        app.tokens
            .clone()
            .set_application_state(app.admin.req(pb::SetApplicationStateRequest {
                token_id: app.admin_token_id.clone(),
                name: "n".repeat(201),
                state: pb::AppState::Allow.into(),
                ..Default::default()
            }))
            .await,
        "name",
        "SetApplicationState with a 201-character name",
    );
    // The same name as a caller's x-circonus-app-name: a credentials problem.
    let long_app = As::new(secret.clone(), "n".repeat(201));
    assert_unauthenticated(
        app.accounts
            .clone()
            .get_account(long_app.req(pb::GetAccountRequest {}))
            .await,
        "MALFORMED_APP_NAME",
        "a 201-character x-circonus-app-name",
    );
    still_serving(&app).await;
}

/// AuthorizeRequest with `app_name` (tag 2) as bytes, so a test can put invalid UTF-8 where
/// prost expects a string.
#[derive(Clone, PartialEq, prost::Message)]
struct RawAuthorizeRequest {
    #[prost(string, tag = "1")]
    token: String,
    #[prost(bytes = "vec", tag = "2")]
    app_name: Vec<u8>,
}

/// CreateTokenRequest with `type` (tag 1) and `description` (tag 4, as bytes).
#[derive(Clone, PartialEq, prost::Message)]
struct RawCreateTokenRequest {
    #[prost(int32, tag = "1")]
    r#type: i32,
    #[prost(bytes = "vec", tag = "4")]
    description: Vec<u8>,
}

/// AuthorizeRequest's tag 1 with the wrong wire type (varint instead of length-delimited).
#[derive(Clone, PartialEq, prost::Message)]
struct WrongWireType {
    #[prost(int32, tag = "1")]
    token: i32,
}

/// Sends `message` to `path` with the plain prost codec, as any client could.
async fn raw_unary<M, R>(
    app: &TestApp,
    path: &'static str,
    request: Request<M>,
) -> Result<R, Status>
where
    M: prost::Message + Send + Sync + 'static,
    R: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<M, R>::default();
    grpc.unary(request, http::uri::PathAndQuery::from_static(path), codec)
        .await
        .map(tonic::Response::into_inner)
}

async fn invalid_utf8_on_the_wire_is_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    let bad_utf8 = b"caf\xc3\x28 \xff\xfe".to_vec();
    let status = raw_unary::<_, pb::AuthorizeResponse>(
        &app,
        "/apitokens.v1.AuthorizeService/Authorize",
        Request::new(RawAuthorizeRequest {
            token: app.admin.secret.clone(),
            app_name: bad_utf8.clone(),
        }),
    )
    .await
    .expect_err("invalid UTF-8 in a string field is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("UTF-8"), "{status:?}");

    let status = raw_unary::<_, pb::CreateTokenResponse>(
        &app,
        "/apitokens.v1.TokenService/CreateToken",
        app.admin.req(RawCreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            description: bad_utf8,
        }),
    )
    .await
    .expect_err("invalid UTF-8 in a description is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // Not this message at all: a varint where the token string should be.
    let status = raw_unary::<_, pb::AuthorizeResponse>(
        &app,
        "/apitokens.v1.AuthorizeService/Authorize",
        Request::new(WrongWireType { token: 7 }),
    )
    .await
    .expect_err("a wrong wire type is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    still_serving(&app).await;
}

async fn malformed_secrets_are_refused_clearly(backend: Backend) {
    let app = spawn_app(backend).await;
    let real = app.admin.secret.clone();
    let ten_kb = "a".repeat(10 * 1024);
    let malformed = [
        String::new(),
        real[..35].to_owned(),
        format!("{real}0"),
        real.replace('-', ""),
        format!("{}g", &real[..35]),
        real.replace('-', "_"),
        format!(" {}", &real[1..]),
        "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz".into(),
        ten_kb.clone(),
    ];
    let mut authorize = app.authorize.clone();
    let mut accounts = app.accounts.clone();
    for secret in &malformed {
        let what = format!("secret of {} bytes", secret.len());
        assert_invalid(
            authorize.authorize(authorize_request(secret, "curl")).await,
            "token",
            &what,
        );
        let status = assert_unauthenticated(
            accounts
                .get_account(As::new(secret.clone(), "curl").req(pb::GetAccountRequest {}))
                .await,
            "MALFORMED_TOKEN",
            &what,
        );
        assert!(
            secret.is_empty() || !status.message().contains(secret.as_str()),
            "the presented token is never echoed"
        );
    }
    still_serving(&app).await;
}

/// A header name and its raw value bytes.
type Header<'a> = (&'static str, &'a [u8]);

/// A request whose metadata is exactly these raw headers.
fn with_headers<T>(message: T, headers: &[Header]) -> Request<T> {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            *name,
            http::HeaderValue::from_bytes(value).expect("an HTTP header value"),
        );
    }
    Request::from_parts(MetadataMap::from_headers(map), Default::default(), message)
}

async fn malformed_basic_headers_are_unauthenticated(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret = app.admin.secret.clone();
    let basic = |plain: &str| format!("Basic {}", STANDARD.encode(plain));
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "Basic !!!not base64!!!".into(),
            "MALFORMED_CREDENTIALS",
            "not base64",
        ),
        ("Basic".into(), "MALFORMED_CREDENTIALS", "no credentials"),
        (
            "Basic ".into(),
            "MALFORMED_CREDENTIALS",
            "empty credentials",
        ),
        (
            basic(&format!("curl{secret}")),
            "MALFORMED_CREDENTIALS",
            "no colon",
        ),
        (basic(":"), "MALFORMED_TOKEN", "empty app and token"),
        (
            basic(&format!(":{secret}")),
            "MALFORMED_APP_NAME",
            "empty app",
        ),
        (basic("curl:"), "MALFORMED_TOKEN", "empty token"),
        (
            format!("Basic {}", STANDARD.encode(b"curl:\xff\xfe")),
            "MALFORMED_CREDENTIALS",
            "not UTF-8 inside",
        ),
        (
            basic(&format!("{}:{secret}", "a".repeat(8 * 1024))),
            "MALFORMED_APP_NAME",
            "an 8 KiB app name",
        ),
        (
            basic(&format!("curl:{}", "a".repeat(8 * 1024))),
            "MALFORMED_TOKEN",
            "an 8 KiB token",
        ),
        (
            "Bearer abc".into(),
            "MALFORMED_CREDENTIALS",
            "another scheme",
        ),
    ];
    let mut accounts = app.accounts.clone();
    for (value, expected, what) in &cases {
        assert_unauthenticated(
            accounts
                .get_account(with_headers(
                    pb::GetAccountRequest {},
                    &[("authorization", value.as_bytes())],
                ))
                .await,
            expected,
            what,
        );
    }
    // A well-formed Basic header works, so the refusals above are about the shape.
    accounts
        .get_account(with_headers(
            pb::GetAccountRequest {},
            &[("authorization", basic(&format!("curl:{secret}")).as_bytes())],
        ))
        .await
        .expect("well-formed Basic credentials");
    still_serving(&app).await;
}

/// Metadata past HTTP/2's header-list limit (hyper's default, 16 KiB) never reaches a handler:
/// hyper answers HTTP 431 without a grpc-status (tonic's client reads UNKNOWN, "mapped from HTTP
/// status code 431"); far past it, h2 closes the connection (GOAWAY ENHANCE_YOUR_CALM, read as
/// RESOURCE_EXHAUSTED, or a broken pipe). None of that is INTERNAL, and the server serves on.
async fn headers_past_the_http2_limit_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    for kib in [15, 17, 20, 40, 64, 1024] {
        let huge = "a".repeat(kib * 1024);
        // Each on its own connection: the server may close one that sent too much.
        let status = AccountServiceClient::new(crate::common::connect(app.addr).await)
            .get_account(As::new(huge, "curl").req(pb::GetAccountRequest {}))
            .await
            .expect_err("a huge header is refused");
        match kib {
            15 => assert_eq!(reason(&status), "MALFORMED_TOKEN", "{status:?}"),
            17 | 20 => assert!(status.message().contains("431"), "{status:?}"),
            _ => assert_ne!(status.code(), Code::Internal, "{kib} KiB: {status:?}"),
        }
        still_serving(&app).await;
    }
}

async fn non_ascii_metadata_is_unauthenticated(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret = app.admin.secret.clone();
    let mut accounts = app.accounts.clone();
    let cases: [(&[Header], &str); 3] = [
        (
            &[
                ("x-circonus-auth-token", secret.as_bytes()),
                ("x-circonus-app-name", b"caf\xe9"),
            ],
            "app name in Latin-1",
        ),
        (
            &[
                ("x-circonus-auth-token", b"\xff\xfe\xfd"),
                ("x-circonus-app-name", b"curl"),
            ],
            "token of high bytes",
        ),
        (
            &[("authorization", b"Basic \xc3\xa9t\xc3\xa9")],
            "Basic in UTF-8",
        ),
    ];
    for (headers, what) in cases {
        assert_unauthenticated(
            accounts
                .get_account(with_headers(pb::GetAccountRequest {}, headers))
                .await,
            "MALFORMED_CREDENTIALS",
            what,
        );
    }
    still_serving(&app).await;
}

on_both_backends!(
    oversized_messages_are_refused_and_the_server_keeps_serving,
    app_names_over_the_limit_are_named,
    invalid_utf8_on_the_wire_is_invalid_argument,
    malformed_secrets_are_refused_clearly,
    malformed_basic_headers_are_unauthenticated,
    non_ascii_metadata_is_unauthenticated,
    headers_past_the_http2_limit_are_refused,
);
