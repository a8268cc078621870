//! The span of one gRPC call: its fields, its level, and the caller's W3C trace context
//! continued when sent.
use http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Reads W3C trace context from request headers (gRPC metadata are HTTP/2 headers).
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The span of one call, at INFO when spans are exported and DEBUG otherwise (then
/// `RUST_LOG=api_tokens=debug` still shows it in the logs). `decision` and `token_id` are
/// filled in by the Authorize decision; the secret is never a field.
pub(super) fn call_span(method: &'static str, headers: &HeaderMap) -> tracing::Span {
    let (service, rpc_method) = method.split_once('/').unwrap_or((method, ""));
    macro_rules! span_at {
        ($level:expr) => {
            tracing::span!(
                $level,
                "grpc",
                otel.name = method,
                otel.kind = "server",
                otel.status_code = Empty,
                rpc.system = "grpc",
                rpc.service = service,
                rpc.method = rpc_method,
                rpc.grpc.status_code = Empty,
                decision = Empty,
                token_id = Empty,
            )
        };
    }
    let span = if crate::telemetry::exporting() {
        span_at!(tracing::Level::INFO)
    } else {
        span_at!(tracing::Level::DEBUG)
    };
    if !span.is_disabled() && headers.contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        // Fails only when no OpenTelemetry layer is installed: then there is nothing to continue.
        let _ = span.set_parent(parent);
    }
    span
}
