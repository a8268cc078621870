//! The browser console on the gRPC port, as a browser meets it (no npm needed): its files
//! with a strict Content-Security-Policy and no cookies, gRPC-Web calls (unary and server
//! streaming) on the same port with the same authentication, and `--console off`.
#[path = "../common/web.rs"]
mod web;

use std::time::Duration;

use crate::common::{Backend, Spawn, TestDatabase, spawn_app};
use api_tokens::console::{CONSOLE_APP_NAME, CONTENT_SECURITY_POLICY, ConsoleMode};
use api_tokens::grpc::pb;
use api_tokens::operations::OperationsSettings;
use prost::Message;
use tonic_types::StatusExt;
use web::{Frame, Frames};

const GET_ACCOUNT: &str = "apitokens.v1.AccountService/GetAccount";
const WATCH: &str = "apitokens.v1.TokenService/WatchApplications";

fn header<'a>(headers: &'a hyper::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// What every console response carries, whatever its status.
fn assert_locked_down(headers: &hyper::HeaderMap, what: &str) {
    assert_eq!(
        header(headers, "content-security-policy"),
        CONTENT_SECURITY_POLICY,
        "{what}"
    );
    assert_eq!(
        header(headers, "x-content-type-options"),
        "nosniff",
        "{what}"
    );
    assert_eq!(header(headers, "x-frame-options"), "DENY", "{what}");
    assert_eq!(header(headers, "referrer-policy"), "no-referrer", "{what}");
    assert!(headers.get("set-cookie").is_none(), "{what} sets a cookie");
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "{what} opens itself to other origins"
    );
}

#[test]
fn the_policy_forbids_inline_script_eval_framing_and_other_origins() {
    let directives: Vec<&str> = CONTENT_SECURITY_POLICY.split(';').map(str::trim).collect();
    for needed in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ] {
        assert!(directives.contains(&needed), "missing {needed}");
    }
    for loose in [
        "unsafe-inline",
        "unsafe-eval",
        "unsafe-hashes",
        "*",
        "http:",
        "https:",
        "data:",
    ] {
        assert!(
            !directives
                .iter()
                .any(|d| d.split_whitespace().skip(1).any(|s| s.contains(loose))),
            "the policy allows {loose}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_files_are_served_locked_down() {
    let app = spawn_app(Backend::Sqlite).await;
    let (index, html) = web::get(app.addr, "/", &[]).await;
    assert_eq!(index.status(), 200);
    assert_eq!(
        header(index.headers(), "content-type"),
        "text/html; charset=utf-8"
    );
    assert_locked_down(index.headers(), "the index");
    assert_eq!(header(index.headers(), "cache-control"), "no-cache");
    let html = String::from_utf8(html.to_vec()).expect("utf-8");
    // Every script is a file of this origin; no inline script, style or handler.
    assert!(html.contains(r#"<script type="module" src="/console/console.js"></script>"#));
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(
        !html.contains(" style=") && !html.contains("<style"),
        "{html}"
    );
    assert!(
        !html.to_ascii_lowercase().contains(" on"),
        "inline handler in {html}"
    );

    for path in api_tokens::console::paths() {
        let (plain, body) = web::get(app.addr, path, &[]).await;
        assert_eq!(plain.status(), 200, "{path}");
        assert_locked_down(plain.headers(), path);
        assert_eq!(
            header(plain.headers(), "content-length"),
            body.len().to_string()
        );
        assert!(plain.headers().get("content-encoding").is_none(), "{path}");

        let (gzip, zipped) = web::get(app.addr, path, &[("accept-encoding", "gzip, br")]).await;
        assert_eq!(header(gzip.headers(), "content-encoding"), "gzip", "{path}");
        assert_eq!(header(gzip.headers(), "vary"), "accept-encoding", "{path}");
        assert!(zipped.starts_with(&[0x1f, 0x8b]), "{path}");
        assert!(zipped.len() < body.len(), "{path}");

        let etag = header(plain.headers(), "etag").to_owned();
        assert!(etag.starts_with('"'), "{path}: {etag}");
        let (again, empty) = web::get(app.addr, path, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), 304, "{path}");
        assert!(empty.is_empty());

        let (head, empty) = web::request(app.addr, "HEAD", path, &[]).await;
        assert_eq!(head.status(), 200, "{path}");
        assert!(empty.is_empty());
    }

    let (_, script) = web::get(app.addr, "/console/console.js", &[]).await;
    let script = String::from_utf8_lossy(&script);
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ] {
        assert!(!script.contains(sink), "the console's script uses {sink}");
    }

    let (missing, _) = web::get(app.addr, "/console/nope.js", &[]).await;
    assert_eq!(missing.status(), 404);
    assert_locked_down(missing.headers(), "a 404");
    let (posted, _) = web::request(app.addr, "POST", "/", &[]).await;
    assert_eq!(posted.status(), 405);
    assert_eq!(header(posted.headers(), "allow"), "GET, HEAD");
    // A CORS preflight from another origin finds nothing to allow.
    let (preflight, _) = web::request(
        app.addr,
        "OPTIONS",
        "/apitokens.v1.TokenService/ListTokens",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ],
    )
    .await;
    assert!(preflight.status().is_client_error());
    assert_locked_down(preflight.headers(), "a preflight");
    app.stop().await;
}

async fn grpc_web_calls_share_the_port_and_the_authentication(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = [
        ("x-circonus-auth-token", app.admin.secret.as_str()),
        ("x-circonus-app-name", CONSOLE_APP_NAME),
    ];
    let reply = web::call(app.addr, GET_ACCOUNT, &pb::GetAccountRequest {}, &admin).await;
    assert_eq!(reply.http_status, 200);
    assert!(
        reply.content_type.starts_with("application/grpc-web"),
        "{reply:?}"
    );
    assert_eq!(reply.grpc_status, Some(0), "{reply:?}");
    let account = pb::GetAccountResponse::decode(reply.messages[0].clone()).expect("decode");
    assert_eq!(account.account.expect("account").id, app.account_id);
    assert_eq!(account.caller_token_id, app.admin_token_id);

    // No credentials, or a secret nobody holds: refused as over gRPC.
    let none = web::call(app.addr, GET_ACCOUNT, &pb::GetAccountRequest {}, &[]).await;
    assert_eq!(
        none.grpc_status,
        Some(tonic::Code::Unauthenticated as i32),
        "{none:?}"
    );
    let wrong = web::call(
        app.addr,
        GET_ACCOUNT,
        &pb::GetAccountRequest {},
        &[
            (
                "x-circonus-auth-token",
                "7d6c5b4a-3f2e-4d1c-9b8a-0f1e2d3c4b5a",
            ),
            ("x-circonus-app-name", CONSOLE_APP_NAME),
        ],
    )
    .await;
    assert_eq!(
        wrong.grpc_status,
        Some(tonic::Code::Unauthenticated as i32),
        "{wrong:?}"
    );

    // On a Pending token the console is itself a new application: refused APP_PENDING, and
    // recorded under the token for its owner to allow.
    let (pending_token, pending_secret) = app.admin_user_token(pb::AppState::Pending).await;
    let creds = [
        ("x-circonus-auth-token", pending_secret.as_str()),
        ("x-circonus-app-name", CONSOLE_APP_NAME),
    ];
    let refused = web::call(app.addr, GET_ACCOUNT, &pb::GetAccountRequest {}, &creds).await;
    assert_eq!(
        refused.grpc_status,
        Some(tonic::Code::Unauthenticated as i32)
    );
    let status = tonic::Status::from_header_map(&refused.metadata).expect("a status");
    assert_eq!(
        status.get_details_error_info().expect("error info").reason,
        "APP_PENDING"
    );
    let apps = app
        .tokens
        .clone()
        .list_applications(app.admin.req(pb::ListApplicationsRequest {
            token_id: pending_token.id.clone(),
            ..Default::default()
        }))
        .await
        .expect("list")
        .into_inner()
        .applications;
    assert_eq!(apps.len(), 1);
    assert_eq!(
        (apps[0].name.as_str(), apps[0].state()),
        (CONSOLE_APP_NAME, pb::AppState::Pending)
    );
    let allowed = web::call(
        app.addr,
        "apitokens.v1.TokenService/SetApplicationState",
        &pb::SetApplicationStateRequest {
            token_id: pending_token.id.clone(),
            name: CONSOLE_APP_NAME.into(),
            state: pb::AppState::Allow.into(),
            ..Default::default()
        },
        &admin,
    )
    .await;
    assert_eq!(allowed.grpc_status, Some(0), "{allowed:?}");
    let now_in = web::call(app.addr, GET_ACCOUNT, &pb::GetAccountRequest {}, &creds).await;
    assert_eq!(now_in.grpc_status, Some(0), "{now_in:?}");
    app.stop().await;
}

async fn a_grpc_web_stream_sees_a_new_pending_application_live(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, secret) = app.admin_user_token(pb::AppState::Pending).await;
    let mut response = web::start_call(
        app.addr,
        WATCH,
        &pb::WatchApplicationsRequest::default(),
        &[
            ("x-circonus-auth-token", app.admin.secret.as_str()),
            ("x-circonus-app-name", CONSOLE_APP_NAME),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    let body = response.body_mut();
    let mut frames = Frames::default();
    let event = |frame: Option<Frame>| match frame {
        Some(Frame::Message(bytes)) => pb::WatchApplicationsResponse::decode(bytes).expect("event"),
        other => panic!("expected an event, got {other:?}"),
    };
    let first = event(frames.next_from(body).await);
    assert_eq!(first.r#type(), pb::WatchEventType::SnapshotEnd);

    // An internal service's Authorize records a new name: the open stream hears of it.
    let decision = app
        .authorize(&secret, "nightly-export", pb::Privilege::ReadOnly)
        .await;
    assert_eq!(decision.decision(), pb::Decision::Pending);
    let recorded = loop {
        let next = tokio::time::timeout(Duration::from_secs(30), frames.next_from(body))
            .await
            .expect("the event arrives while the stream is open");
        let e = event(next);
        if e.r#type() != pb::WatchEventType::Heartbeat {
            break e;
        }
    };
    assert_eq!(recorded.r#type(), pb::WatchEventType::Recorded);
    let application = recorded.application.expect("application");
    assert_eq!(
        (application.token_id.as_str(), application.name.as_str()),
        (token.id.as_str(), "nightly-export")
    );
    assert_eq!(application.state(), pb::AppState::Pending);
    drop(response);
    app.stop().await;
}

on_both_backends!(
    grpc_web_calls_share_the_port_and_the_authentication,
    a_grpc_web_stream_sees_a_new_pending_application_live,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_off_leaves_the_port_to_grpc_over_http2() {
    let database = TestDatabase::create(Backend::Sqlite).await;
    let operations = OperationsSettings {
        console: ConsoleMode::Off,
        ..OperationsSettings::default()
    };
    let app = Spawn::on(database).operations(operations).start().await;
    // No HTTP/1.1 at all: neither the console's files nor gRPC-Web.
    let request = hyper::Request::get("/")
        .header("host", "test")
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .expect("request");
    assert!(
        web::send(app.addr, request).await.is_err(),
        "HTTP/1.1 answered with the console off"
    );
    // gRPC itself is untouched.
    let account = app
        .accounts
        .clone()
        .get_account(app.admin.req(pb::GetAccountRequest {}))
        .await
        .expect("gRPC works with the console off")
        .into_inner();
    assert_eq!(account.account.expect("account").id, app.account_id);
    app.stop().await;
}
