//! Envoy ext_authz over a real socket: envoy-types' own `AuthorizationClient` asks the server
//! what an Envoy gateway would, and reads back OK-with-identity or a Circonus-shaped refusal.

use std::collections::HashMap;

use crate::common::{Backend, Spawn, TestApp, TestDatabase, spawn_app};
use api_tokens::domain::Privilege;
use api_tokens::grpc::{ExtAuthzSettings, IDENTITY_HEADERS, pb};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use envoy_types::ext_authz::v3::pb::{
    CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction, HttpResponse,
    OkHttpResponse,
};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

const TOKEN: &str = "x-circonus-auth-token";
const APP: &str = "x-circonus-app-name";

/// The CheckRequest Envoy sends for an HTTP request (header names lower-cased, as Envoy does).
fn http_check(method: &str, headers: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: method.into(),
                    path: "/v2/check_bundle".into(),
                    host: "api.example.com".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

async fn check(app: &TestApp, request: CheckRequest) -> CheckResponse {
    AuthorizationClient::new(app.channel.clone())
        .check(request)
        .await
        .expect("Check answers")
        .into_inner()
}

async fn get_with(app: &TestApp, method: &str, headers: &[(&str, &str)]) -> CheckResponse {
    check(app, http_check(method, headers)).await
}

fn grpc_code(response: &CheckResponse) -> i32 {
    response.status.as_ref().map_or(0, |s| s.code)
}

fn ok_response(response: &CheckResponse) -> &OkHttpResponse {
    assert_eq!(grpc_code(response), 0, "allowed: {response:?}");
    match &response.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("expected an OkHttpResponse, got {other:?}"),
    }
}

/// The headers an OK response sets upstream, each with its append action.
fn upstream_headers(ok: &OkHttpResponse) -> HashMap<String, (String, i32)> {
    ok.headers
        .iter()
        .filter_map(|option| {
            let header = option.header.as_ref()?;
            Some((
                header.key.clone(),
                (header.value.clone(), option.append_action),
            ))
        })
        .collect()
}

/// A refusal: its HTTP status and the parsed Circonus-shaped body, checked for shape.
fn refusal(response: &CheckResponse) -> (i32, serde_json::Value) {
    assert_ne!(grpc_code(response), 0, "refused: {response:?}");
    let denied: &DeniedHttpResponse = match &response.http_response {
        Some(HttpResponse::DeniedResponse(denied)) => denied,
        other => panic!("expected a DeniedHttpResponse, got {other:?}"),
    };
    let content_type = denied
        .headers
        .iter()
        .filter_map(|o| o.header.as_ref())
        .find(|h| h.key == "content-type")
        .map(|h| h.value.as_str());
    assert_eq!(content_type, Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&denied.body).expect("the body is JSON");
    for field in ["code", "message", "explanation"] {
        let value = body[field].as_str().unwrap_or_default();
        assert!(!value.is_empty(), "{field} in {body}");
    }
    let status = denied.status.as_ref().map_or(0, |s| s.code);
    (status, body)
}

/// A GET by the bootstrap Admin's secret from app "curl", with these headers besides.
async fn admin_get(app: &TestApp, extra: &[(&str, &str)]) -> CheckResponse {
    let credentials = [(TOKEN, app.admin.secret.as_str()), (APP, "curl")];
    get_with(app, "GET", &[&credentials[..], extra].concat()).await
}

async fn allowed_get_passes_identity_and_drops_spoofs_and_the_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let spoofs = [
        ("x-api-tokens-account-id", "spoofed-account"),
        ("x-api-tokens-privilege", "admin"),
    ];
    let reply = admin_get(&app, &spoofs).await;
    let ok = ok_response(&reply);
    let set = upstream_headers(ok);
    let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;
    let expect = [
        ("x-api-tokens-account-id", app.account_id.as_str()),
        ("x-api-tokens-user-id", app.admin_user_id.as_str()),
        ("x-api-tokens-token-id", app.admin_token_id.as_str()),
        ("x-api-tokens-token-type", "user"),
        ("x-api-tokens-privilege", "admin"),
    ];
    for (name, value) in expect {
        assert_eq!(
            set.get(name),
            Some(&(value.to_owned(), overwrite)),
            "{name} replaces whatever the client sent"
        );
    }
    assert!(ok.headers_to_remove.iter().any(|h| h == TOKEN));
    assert!(
        !ok.headers_to_remove.iter().any(|h| h == "authorization"),
        "no Basic credentials were sent, so authorization is left alone"
    );
    app.stop().await;
}

async fn account_token_has_no_user_and_a_spoofed_user_is_removed(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, secret) = app.account_token(pb::Privilege::Normal).await;
    let reply = get_with(
        &app,
        "DELETE",
        &[
            (TOKEN, &secret),
            (APP, "cleanup-job"),
            ("x-api-tokens-user-id", "someone-else"),
        ],
    )
    .await;
    let ok = ok_response(&reply);
    let set = upstream_headers(ok);
    assert!(!set.contains_key("x-api-tokens-user-id"));
    assert!(
        ok.headers_to_remove
            .iter()
            .any(|h| h == "x-api-tokens-user-id")
    );
    assert_eq!(set["x-api-tokens-token-id"].0, token.id);
    assert_eq!(set["x-api-tokens-token-type"].0, "account");
    assert_eq!(set["x-api-tokens-privilege"].0, "normal");
    for name in IDENTITY_HEADERS {
        assert!(
            set.contains_key(name) || ok.headers_to_remove.iter().any(|h| h == name),
            "{name} is either set or removed"
        );
    }
    app.stop().await;
}

async fn basic_credentials_are_accepted_and_not_forwarded(backend: Backend) {
    let app = spawn_app(backend).await;
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("Terraform v0.12.x:{}", app.admin.secret))
    );
    let reply = get_with(&app, "PUT", &[("authorization", &basic)]).await;
    let ok = ok_response(&reply);
    assert!(ok.headers_to_remove.iter().any(|h| h == "authorization"));
    assert_eq!(upstream_headers(ok)["x-api-tokens-privilege"].0, "admin");

    // A Bearer token beside the Circonus headers belongs to the upstream: it passes through.
    let reply = admin_get(&app, &[("authorization", "Bearer upstream-session")]).await;
    let ok = ok_response(&reply);
    assert!(!ok.headers_to_remove.iter().any(|h| h == "authorization"));
    app.stop().await;
}

async fn read_only_token_may_read_but_not_write(backend: Backend) {
    let app = spawn_app(backend).await;
    app.add_member("viewer@example.com", pb::Privilege::Normal)
        .await;
    let (_, secret) = app
        .issue_token("viewer@example.com", Some(Privilege::ReadOnly))
        .await;
    let headers = [(TOKEN, secret.as_str()), (APP, "dashboard")];

    let reply = get_with(&app, "GET", &headers).await;
    assert_eq!(
        upstream_headers(ok_response(&reply))["x-api-tokens-privilege"].0,
        "read_only"
    );

    let reply = get_with(&app, "POST", &headers).await;
    refused_with(&reply, 403, "Forbidden.InsufficientPrivilege", "POST");
    app.stop().await;
}

async fn pending_app_is_401_and_authorize_agrees(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, secret) = app.admin_user_token(pb::AppState::Pending).await;
    let reply = get_with(&app, "GET", &[(TOKEN, &secret), (APP, "new-robot")]).await;
    let body = refused_with(&reply, 401, "Unauthorized.PendingApp", "'new-robot'");
    // One decision for both: the name Envoy's check recorded is pending for Authorize too.
    authorize_agrees(&app, &secret, "new-robot", pb::Decision::Pending, &body).await;
    app.stop().await;
}

/// An expired token is 401 with its own code and a message that says so, at its deadline,
/// as Authorize says.
async fn an_expired_token_is_401_expired(backend: Backend) {
    let app = spawn_app(backend).await;
    let deadline = chrono::Utc::now() + chrono::TimeDelta::seconds(1);
    let expiring = pb::CreateTokenRequest {
        expire_time: Some(prost_types::Timestamp {
            seconds: deadline.timestamp(),
            nanos: deadline.timestamp_subsec_nanos() as i32,
        }),
        ..Default::default()
    };
    let made = app.try_create_allowing_token(&app.admin, expiring).await;
    let (_, secret) = made.expect("create");
    let before = get_with(&app, "GET", &[(TOKEN, &secret), (APP, "cron")]).await;
    assert_eq!(grpc_code(&before), 0, "usable before its deadline");
    let wait = (deadline - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + std::time::Duration::from_millis(200)).await;
    let reply = get_with(&app, "GET", &[(TOKEN, &secret), (APP, "cron")]).await;
    let body = refused_with(&reply, 401, "Unauthorized.ExpiredToken", "expired");
    authorize_agrees(&app, &secret, "cron", pb::Decision::Expired, &body).await;
    app.stop().await;
}

/// A refusal with this HTTP status and code, whose message names `in_message`; its body.
fn refused_with(
    response: &CheckResponse,
    status: i32,
    code: &str,
    in_message: &str,
) -> serde_json::Value {
    let (got, body) = refusal(response);
    assert_eq!(got, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(in_message), "{body}");
    body
}

/// Authorize, asked for the same token and application, decides `decision` and gives the
/// refusal's code: one decision for both front doors.
async fn authorize_agrees(
    app: &TestApp,
    secret: &str,
    name: &str,
    decision: pb::Decision,
    refusal: &serde_json::Value,
) {
    let authorize = app.authorize(secret, name, pb::Privilege::ReadOnly).await;
    assert_eq!(authorize.decision(), decision);
    assert_eq!(
        authorize.error_code,
        refusal["code"].as_str().unwrap_or_default()
    );
}

/// The request Envoy sends for a client at `source` (its downstream peer, after Envoy's own
/// x-forwarded-for policy).
fn from_source(mut request: CheckRequest, source: &str) -> CheckRequest {
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::Peer;
    if let Some(attributes) = request.attributes.as_mut() {
        attributes.source = Some(Peer {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: source.into(),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        });
    }
    request
}

async fn the_source_address_decides_for_a_bound_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let bound = pb::CreateTokenRequest {
        bound_cidrs: vec!["10.0.0.0/8".into()],
        ..Default::default()
    };
    let made = app.try_create_allowing_token(&app.admin, bound).await;
    let (_, secret) = made.expect("create");
    let headers = [(TOKEN, secret.as_str()), (APP, "gateway-client")];
    let inside = check(&app, from_source(http_check("GET", &headers), "10.3.2.1")).await;
    ok_response(&inside);
    let outside = check(
        &app,
        from_source(http_check("GET", &headers), "192.168.3.2"),
    )
    .await;
    refused_with(&outside, 403, "Forbidden.BadAddress", "");
    // A client-sent x-forwarded-for is Envoy's to judge, not ours: the source decides.
    let spoofed = [
        (TOKEN, secret.as_str()),
        (APP, "gateway-client"),
        ("x-forwarded-for", "10.3.2.1"),
    ];
    let (status, _) = refusal(
        &check(
            &app,
            from_source(http_check("GET", &spoofed), "192.168.3.2"),
        )
        .await,
    );
    assert_eq!(status, 403);
    // No source address at all: unknown, and a bound token fails closed.
    let (status, _) = refusal(&get_with(&app, "GET", &headers).await);
    assert_eq!(status, 403);
    app.stop().await;
}

async fn unknown_or_malformed_token_is_401_and_never_echoed(backend: Backend) {
    let app = spawn_app(backend).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let reply = get_with(&app, "GET", &[(TOKEN, &unknown), (APP, "curl")]).await;
    let body = refused_with(&reply, 401, "Forbidden.BadToken", "");
    assert!(!body.to_string().contains(&unknown));

    let reply = get_with(&app, "GET", &[(TOKEN, "abc-123"), (APP, "curl")]).await;
    let body = refused_with(&reply, 401, "Forbidden.BadToken", "");
    assert!(!body.to_string().contains("abc-123"));
    assert!(!format!("{reply:?}").contains("abc-123"));
    app.stop().await;
}

async fn missing_credentials_are_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = get_with(&app, "GET", &[("accept", "application/json")]).await;
    refused_with(&reply, 401, "Unauthorized.MissingCredentials", "");

    let reply = get_with(&app, "GET", &[(TOKEN, &app.admin.secret)]).await;
    assert_eq!(refusal(&reply).1["code"], "Unauthorized.MissingCredentials");

    let reply = get_with(&app, "GET", &[("authorization", "Basic !!!")]).await;
    refused_with(&reply, 401, "Unauthorized.MalformedCredentials", "");

    // A CheckRequest without HTTP attributes carries no credentials either.
    let reply = check(&app, CheckRequest { attributes: None }).await;
    assert_eq!(refusal(&reply).0, 401);
    app.stop().await;
}

async fn malformed_app_name_is_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = get_with(
        &app,
        "GET",
        &[(TOKEN, &app.admin.secret), (APP, " leading-space")],
    )
    .await;
    let body = refused_with(&reply, 400, "BadRequest.MalformedAppName", "");
    assert!(!body.to_string().contains(&app.admin.secret));
    app.stop().await;
}

async fn write_privilege_is_configurable(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let app = Spawn::on(database)
        .ext_authz(ExtAuthzSettings {
            write_privilege: Privilege::Admin,
        })
        .start()
        .await;
    let (_, member, _) = app
        .member_with_token("dev@example.com", pb::Privilege::Normal)
        .await;
    let as_member = [(TOKEN, member.secret.as_str()), (APP, "ci")];
    let reply = get_with(&app, "PATCH", &as_member).await;
    assert_eq!(refusal(&reply).0, 403);
    ok_response(&get_with(&app, "GET", &as_member).await);
    let as_admin = [(TOKEN, app.admin.secret.as_str()), (APP, "ci")];
    ok_response(&get_with(&app, "PATCH", &as_admin).await);
    app.stop().await;
}

async fn health_reports_the_envoy_service(backend: Backend) {
    let app = spawn_app(backend).await;
    let status = app
        .health
        .clone()
        .check(HealthCheckRequest {
            service: "envoy.service.auth.v3.Authorization".into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    app.stop().await;
}

/// Basic credentials split at the last colon: the installer's own app name has two.
async fn basic_credentials_with_colons_in_the_app_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let install = app.install_command(&app.admin_token_id).await;
    assert!(install.app_name.starts_with("circonus:osi:"));
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", install.app_name, app.admin.secret))
    );
    let reply = get_with(&app, "GET", &[("authorization", &basic)]).await;
    ok_response(&reply);
    app.stop().await;
}

/// Two different tokens, or headers and Basic credentials that disagree: 401, never a guess.
async fn ambiguous_credentials_are_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, other) = app.admin_user_token(pb::AppState::Allow).await;
    // Envoy joins a repeated header's values with a comma in `headers`.
    let joined = format!("{},{other}", app.admin.secret);
    let basic_other = format!("Basic {}", STANDARD.encode(format!("curl:{other}")));
    for headers in [
        vec![(TOKEN, joined.as_str()), (APP, "curl")],
        vec![
            (TOKEN, app.admin.secret.as_str()),
            (APP, "curl"),
            ("authorization", basic_other.as_str()),
        ],
    ] {
        let (status, body) = refusal(&get_with(&app, "GET", &headers).await);
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["code"], "Unauthorized.AmbiguousCredentials", "{body}");
    }
    // `header_map` (encode_raw_headers) lists each occurrence of a header.
    let mut request = http_check("GET", &[]);
    let http = request
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
        .expect("http");
    http.header_map = Some(envoy_types::pb::envoy::config::core::v3::HeaderMap {
        headers: [
            (TOKEN, app.admin.secret.as_str()),
            (TOKEN, other.as_str()),
            (APP, "curl"),
        ]
        .into_iter()
        .map(
            |(k, v)| envoy_types::pb::envoy::config::core::v3::HeaderValue {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            },
        )
        .collect(),
    });
    let (status, body) = refusal(&check(&app, request).await);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "Unauthorized.AmbiguousCredentials", "{body}");
    app.stop().await;
}

on_both_backends!(
    basic_credentials_with_colons_in_the_app_name,
    ambiguous_credentials_are_401,
    allowed_get_passes_identity_and_drops_spoofs_and_the_secret,
    account_token_has_no_user_and_a_spoofed_user_is_removed,
    basic_credentials_are_accepted_and_not_forwarded,
    read_only_token_may_read_but_not_write,
    pending_app_is_401_and_authorize_agrees,
    an_expired_token_is_401_expired,
    unknown_or_malformed_token_is_401_and_never_echoed,
    missing_credentials_are_401,
    malformed_app_name_is_400,
    write_privilege_is_configurable,
    health_reports_the_envoy_service,
    the_source_address_decides_for_a_bound_token,
);

/// A database outage is not a refusal: Check fails with UNAVAILABLE, and Envoy's
/// `failure_mode_allow` decides. Only PostgreSQL can be taken away from under a running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run by .ci/run (cargo test -- --ignored)"]
async fn database_outage_is_unavailable_not_a_denial() {
    let app = spawn_app(Backend::Postgres).await;
    let headers = [(TOKEN, app.admin.secret.as_str()), (APP, "curl")];
    ok_response(&get_with(&app, "GET", &headers).await);

    app.database
        .admin_sql(&format!(
            "DROP DATABASE {} WITH (FORCE)",
            app.database.postgres_name()
        ))
        .await;

    // A name the token has not used yet: no cache can answer for it, only the database.
    let new_app = [
        (TOKEN, app.admin.secret.as_str()),
        (APP, "first-call-during-outage"),
    ];
    let status = AuthorizationClient::new(app.channel.clone())
        .check(http_check("GET", &new_app))
        .await
        .expect_err("no decision without the database");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(!status.message().contains(&app.admin.secret));
    app.stop().await;
}
