//! Operations over real sockets: the Prometheus port after real calls, clear configuration
//! errors, and TLS with and without client certificates (the limit layers: `limits.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::common::tls::{Pki, tls_replica_with};
use crate::common::{Backend, Spawn, TestApp, TestDatabase, spawn_app};
use api_tokens::grpc::pb;
use api_tokens::layers::LimitSettings;
use api_tokens::operations::{OperationsSettings, TlsSettings};
use api_tokens::service::ServiceSettings;
use api_tokens::startup::{Server, ServerSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

pub(super) fn with_metrics() -> OperationsSettings {
    OperationsSettings {
        metrics_listen: Some("127.0.0.1:0".parse().expect("addr")),
        ..OperationsSettings::default()
    }
}

/// GET over a plain TCP socket: status line and body.
async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("metrics port");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

pub(super) async fn scrape(app: &TestApp) -> String {
    let (status, body) = http_get(app.metrics_addr.expect("metrics served"), "/metrics").await;
    assert!(status.contains("200"), "{status}");
    body
}

/// The value of one sample, by its exact name and labels; 0 when absent.
pub(super) fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| {
            v.split_whitespace()
                .next()
                .unwrap_or("0")
                .parse()
                .expect("a number")
        })
        .unwrap_or(0.0)
}

pub(super) const AUTHORIZE: &str = "apitokens.v1.AuthorizeService/Authorize";

async fn metrics_after_real_calls(backend: Backend) {
    let app = Spawn::new(backend).operations(with_metrics()).start().await;
    let admin = app.admin.secret.clone();
    // Two allowed calls (a cold one, then a warm one), one unknown secret, one malformed request.
    for _ in 0..2 {
        let allowed = app
            .authorize(&admin, "metrics-test", pb::Privilege::ReadOnly)
            .await;
        assert_eq!(allowed.decision(), pb::Decision::Allow);
    }
    let unknown = app
        .authorize(
            "fb349ef1-91e4-4b05-aaa2-52246b77ea66",
            "metrics-test",
            pb::Privilege::ReadOnly,
        )
        .await;
    assert_eq!(unknown.decision(), pb::Decision::UnknownToken);
    let malformed = app
        .authorize
        .clone()
        .authorize(pb::AuthorizeRequest {
            token: "not-a-token".into(),
            app_name: "metrics-test".into(),
            required_privilege: 0,
            ..Default::default()
        })
        .await
        .expect_err("malformed");
    assert_eq!(malformed.code(), Code::InvalidArgument);
    // A token whose new application names wait for approval: one pending application.
    let pending_secret = app.pending_read_only_token().await;
    let pending = app
        .authorize(&pending_secret, "new-app", pb::Privilege::ReadOnly)
        .await;
    assert_eq!(pending.decision(), pb::Decision::Pending);

    let text = scrape(&app).await;
    let ok = format!(r#"{{method="{AUTHORIZE}",code="OK"}}"#);
    assert_eq!(
        sample(&text, &format!("api_tokens_rpc_requests_total{ok}")),
        4.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("api_tokens_rpc_duration_seconds_count{ok}")),
        4.0
    );
    assert!(sample(&text, &format!("api_tokens_rpc_duration_seconds_sum{ok}")) > 0.0);
    assert_eq!(
        sample(
            &text,
            &format!(
                r#"api_tokens_rpc_requests_total{{method="{AUTHORIZE}",code="INVALID_ARGUMENT"}}"#
            )
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"api_tokens_rpc_requests_total{method="apitokens.v1.TokenService/CreateToken",code="OK"}"#
        ),
        1.0
    );
    // CreateToken's caller went through the same decision, so allows are at least 3.
    assert!(
        sample(
            &text,
            r#"api_tokens_authorize_decisions_total{outcome="allow"}"#
        ) >= 3.0
    );
    assert_eq!(
        sample(
            &text,
            r#"api_tokens_authorize_decisions_total{outcome="unknown_token"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"api_tokens_authorize_decisions_total{outcome="pending"}"#
        ),
        1.0
    );
    assert!(
        sample(&text, r#"api_tokens_cache_hits_total{cache="tokens"}"#) >= 1.0,
        "{text}"
    );
    assert!(sample(&text, r#"api_tokens_cache_misses_total{cache="tokens"}"#) >= 2.0);
    assert!(
        sample(
            &text,
            r#"api_tokens_cache_misses_total{cache="applications"}"#
        ) >= 1.0
    );
    assert_eq!(sample(&text, "api_tokens_pending_applications"), 1.0);
    assert!(text.contains("api_tokens_watch_streams 0"), "{text}");
    assert!(text.contains("api_tokens_rpc_in_flight 0"));
    // The replica's lag: where it stands in the change log, and when it last read it.
    assert_eq!(
        sample(&text, "api_tokens_database_reachable"),
        1.0,
        "{text}"
    );
    assert!(
        sample(&text, "api_tokens_change_log_position") >= 1.0,
        "{text}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let last_read = sample(&text, "api_tokens_change_log_last_read_timestamp_seconds");
    assert!(
        now - last_read < 60.0,
        "read recently: {last_read} vs {now}"
    );
    assert!(
        !text.contains(&admin) && !text.contains(&pending_secret),
        "no secret in metrics"
    );

    // Only /metrics is served.
    let (status, _) = http_get(app.metrics_addr.expect("served"), "/other").await;
    assert!(status.contains("404"), "{status}");
    app.stop().await;
}

on_both_backends!(metrics_after_real_calls);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_unless_asked_for() {
    let app = crate::common::spawn_app(Backend::Sqlite).await;
    assert_eq!(app.metrics_addr, None);
    app.stop().await;
}
fn settings_for(database: &TestDatabase, operations: OperationsSettings) -> ServerSettings {
    ServerSettings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database: database.settings(),
        service: ServiceSettings::default(),
        ext_authz: api_tokens::grpc::ExtAuthzSettings::default(),
        drain_timeout: Duration::from_secs(5),
        operations,
    }
}

async fn build_error(database: &TestDatabase, operations: OperationsSettings) -> String {
    match Server::build(settings_for(database, operations)).await {
        Ok(_) => panic!("the server should refuse this configuration"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_name_the_setting() {
    let database = TestDatabase::create(Backend::Sqlite).await;
    let too_many = build_error(
        &database,
        OperationsSettings {
            limits: LimitSettings {
                max_concurrent_requests: Some(usize::MAX),
                request_timeout: None,
            },
            ..OperationsSettings::default()
        },
    )
    .await;
    assert!(too_many.contains("--max-concurrent-requests"), "{too_many}");

    let missing = build_error(
        &database,
        OperationsSettings {
            tls: Some(TlsSettings {
                cert: PathBuf::from("/nonexistent/server.pem"),
                key: PathBuf::from("/nonexistent/server.key"),
                client_ca: None,
            }),
            ..OperationsSettings::default()
        },
    )
    .await;
    assert!(
        missing.contains("TLS certificate /nonexistent/server.pem"),
        "{missing}"
    );

    let dir = tempfile::tempdir().expect("dir");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write");
    let invalid = build_error(
        &database,
        OperationsSettings {
            tls: Some(TlsSettings {
                cert: junk.clone(),
                key: junk.clone(),
                client_ca: None,
            }),
            ..OperationsSettings::default()
        },
    )
    .await;
    assert!(invalid.contains("invalid TLS configuration"), "{invalid}");

    // Flags that only make sense together are refused by the command line itself.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_api-tokens"))
        .args(["serve", "--tls-cert", "server.pem"])
        .env_remove("API_TOKENS_TLS_KEY")
        .output()
        .await
        .expect("run the binary");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// TLS

/// A health check over TLS, with or without a client certificate.
async fn health_over_tls(addr: SocketAddr, pki: &Pki, client_cert: bool) -> Result<(), String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pki.pem("ca.pem")))
        .domain_name("localhost");
    if client_cert {
        tls = tls.identity(Identity::from_pem(
            pki.pem("client.pem"),
            pki.pem("client.key"),
        ));
    }
    let channel = Channel::from_shared(format!("https://{addr}"))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| ())
        .map_err(|e| format!("check: {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_tls_clients_and_refuses_plaintext() {
    let pki = Pki::generate();
    let app = spawn_app(Backend::Sqlite).await;
    let server = tls_replica_with(&app, pki.server(false)).await;
    health_over_tls(server.addr, &pki, false)
        .await
        .expect("a TLS client without a certificate is served when none is required");
    let plaintext = HealthClient::new(
        Channel::from_shared(format!("http://{}", server.addr))
            .expect("uri")
            .connect_lazy(),
    )
    .check(HealthCheckRequest {
        service: String::new(),
    })
    .await;
    assert!(plaintext.is_err(), "plaintext is not served on a TLS port");
    server.stop().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::generate();
    let app = spawn_app(Backend::Sqlite).await;
    let server = tls_replica_with(&app, pki.server(true)).await;
    let refused = health_over_tls(server.addr, &pki, false).await;
    assert!(
        refused.is_err(),
        "a client without a certificate is refused"
    );
    health_over_tls(server.addr, &pki, true)
        .await
        .expect("a client with a certificate signed by the CA is served");

    // The admin command line over mTLS, with the same files.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_api-tokens"))
        .args(["members", "list", "--output", "json"])
        .env(
            "API_TOKENS_SERVER",
            format!("https://localhost:{}", server.addr.port()),
        )
        .env("API_TOKENS_TOKEN", &app.admin.secret)
        .env("API_TOKENS_CA_CERT", pki.path("ca.pem"))
        .env("API_TOKENS_CLIENT_CERT", pki.path("client.pem"))
        .env("API_TOKENS_CLIENT_KEY", pki.path("client.key"))
        .env_remove("API_TOKENS_APP")
        .output()
        .await
        .expect("run the binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("admin@example.com"), "{stdout}");
    server.stop().await;
    app.stop().await;
}
