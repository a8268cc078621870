//! OTLP tracing against an in-process fake collector: a caller's `traceparent` is continued,
//! the Authorize span carries the decision and token id, and no attribute holds a secret.
//! Its own test binary: the tracing subscriber is process-wide and installed once.
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_tokens::grpc::pb;
use api_tokens::telemetry::{self, LogFormat, OtlpSettings};
use common::{Backend, spawn_app};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tokio::sync::Notify;
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// Records every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    received: Arc<Notify>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.spans.lock().expect("lock").extend(spans);
        self.received.notify_waiters();
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| text(&kv.value))
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_span_continues_the_callers_trace_without_secrets() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind collector");
    let collector_addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    let telemetry = telemetry::init(
        LogFormat::Text,
        "info",
        Some(&OtlpSettings {
            endpoint: format!("http://{collector_addr}"),
            sample_ratio: 1.0,
        }),
    )
    .expect("telemetry");

    let app = spawn_app(Backend::Sqlite).await;
    let mut request = Request::new(pb::AuthorizeRequest {
        token: app.admin.secret.clone(),
        app_name: "traced-app".into(),
        required_privilege: pb::Privilege::ReadOnly.into(),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01")).expect("ascii"),
    );
    let reply = app
        .authorize
        .clone()
        .authorize(request)
        .await
        .expect("authorize")
        .into_inner();
    assert_eq!(reply.decision(), pb::Decision::Allow);
    // A management call too: its span must not carry the secret from its metadata either.
    app.tokens
        .clone()
        .list_tokens(app.admin.req(pb::ListTokensRequest::default()))
        .await
        .expect("list");

    // The Authorize span ends when its response body has been sent; wait for it to be
    // exported (flush sends whatever has ended), bounded in attempts, not asserted on time.
    let mut found = None;
    for _ in 0..100 {
        telemetry.flush().await;
        let spans = collector.spans.lock().expect("lock").clone();
        let authorize = spans
            .iter()
            .find(|s| s.name == "apitokens.v1.AuthorizeService/Authorize")
            .cloned();
        let list = spans
            .iter()
            .any(|s| s.name == "apitokens.v1.TokenService/ListTokens");
        if let (Some(span), true) = (authorize, list) {
            found = Some((span, spans));
            break;
        }
        let _ =
            tokio::time::timeout(Duration::from_millis(50), collector.received.notified()).await;
    }
    let (span, all) = found.expect("the Authorize and ListTokens spans reach the collector");

    assert_eq!(span.trace_id, hex(TRACE_ID), "continues the caller's trace");
    assert_eq!(
        span.parent_span_id,
        hex(PARENT_SPAN_ID),
        "child of the caller's span"
    );
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(attribute(&span, "decision").as_deref(), Some("allow"));
    assert_eq!(
        attribute(&span, "token_id").as_deref(),
        Some(app.admin_token_id.as_str())
    );
    assert_eq!(attribute(&span, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        attribute(&span, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );

    for span in &all {
        for kv in &span.attributes {
            assert!(
                !text(&kv.value).contains(&app.admin.secret),
                "attribute {} of span {} holds the secret",
                kv.key,
                span.name
            );
        }
        assert!(!span.name.contains(&app.admin.secret));
        for event in &span.events {
            assert!(!event.name.contains(&app.admin.secret));
            for kv in &event.attributes {
                assert!(!text(&kv.value).contains(&app.admin.secret));
            }
        }
    }
    app.stop().await;
    telemetry.shutdown().await;
}
