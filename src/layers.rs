//! The tower layers around every gRPC call, composed in one place: tracing span and
//! metrics, the error-to-status mapping, load shedding, the concurrency limit and the
//! request timeout.
//!
//! Outermost first:
//! 1. `ObserveLayer`: one span per call (continuing a caller's W3C `traceparent`), the
//!    in-flight gauge, and the count and latency by method and final gRPC code. It sits
//!    outside the limits so shed and timed-out calls are counted and traced too.
//! 2. `StatusLayer`: turns errors of the layers below into proper gRPC statuses
//!    (`grpc::layer_error_status`), never an HTTP error.
//! 3. `ShedLayer`: at most N calls at once over all connections; one more is refused at
//!    once with UNAVAILABLE, so the client retries elsewhere instead of queueing behind a
//!    stuck database. Health (`grpc.health.v1.Health`) is never limited nor shed: a probe
//!    answered UNAVAILABLE under load would unready or restart a pod that is only busy.
//! 4. `UnaryTimeoutLayer`: a deadline for unary calls only. Streaming calls
//!    (WatchApplications, health Watch, reflection) are long-lived by design and exempt;
//!    which methods stream is read from the descriptor sets, not kept by hand.
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http::{HeaderMap, Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Bytes;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use prost::Message;
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::{Code, Status};
use tower::layer::util::{Identity, Stack};
use tower::load_shed::error::Overloaded;
use tower::{BoxError, Layer, Service};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::grpc::{layer_error_status, log_cause, pb};
use crate::metrics::{InFlight, Metrics};

/// The limits of the layer stack, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Most calls served at once over all connections; `None` for no limit.
    pub max_concurrent_requests: Option<usize>,
    /// Longest a unary call may take; `None` for no limit. Streams are exempt.
    pub request_timeout: Option<Duration>,
}

/// No concurrency limit; the default request timeout.
impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_concurrent_requests: None,
            request_timeout: Some(Self::DEFAULT_REQUEST_TIMEOUT),
        }
    }
}

impl LimitSettings {
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

    /// Checks values the command line cannot (a limit of zero means "none" there).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(n) = self.max_concurrent_requests
            && n > Semaphore::MAX_PERMITS
        {
            return Err(format!(
                "--max-concurrent-requests {n} is above the largest supported value {}",
                Semaphore::MAX_PERMITS
            ));
        }
        Ok(())
    }
}

/// Whether the server has its database: until then only health and reflection are served,
/// and every other call is answered UNAVAILABLE (`STARTING`) at once.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn new(ready: bool) -> Self {
        Readiness(Arc::new(AtomicBool::new(ready)))
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The error of a call that arrives before the database is reachable.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the server is starting: its database is not reachable yet; retry with backoff")]
pub struct NotReady;

/// The whole stack, as `tonic::transport::Server::layer` takes it.
pub type ServerLayers =
    Stack<UnaryTimeoutLayer, Stack<ShedLayer, Stack<StatusLayer, Stack<ObserveLayer, Identity>>>>;

/// Composes the layers in their one order.
pub fn server_layers(metrics: Metrics, limits: LimitSettings, ready: Readiness) -> ServerLayers {
    // No limit is a semaphore too large to run out, so the stack has one shape either way.
    let permits = limits
        .max_concurrent_requests
        .unwrap_or(Semaphore::MAX_PERMITS)
        .min(Semaphore::MAX_PERMITS);
    tower::ServiceBuilder::new()
        .layer(ObserveLayer { metrics })
        .layer(StatusLayer)
        .layer(ShedLayer {
            permits: Arc::new(Semaphore::new(permits)),
            ready,
        })
        .layer(UnaryTimeoutLayer {
            timeout: limits.request_timeout,
        })
        .into_inner()
}

// ---------------------------------------------------------------------------------------
// Known methods

#[derive(Debug)]
struct MethodInfo {
    /// "package.Service/Method": the metric label and span name.
    name: String,
    streaming: bool,
}

/// Every method this server may serve, read from the descriptor sets it registers. Paths
/// outside it are labelled "unknown", so a scanner cannot create metric series.
struct MethodTable {
    by_path: HashMap<String, MethodInfo>,
}

const UNKNOWN_METHOD: &str = "unknown";

static METHODS: LazyLock<MethodTable> = LazyLock::new(|| {
    let mut by_path = HashMap::new();
    for set in [
        pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        // These are compiled into the binary; a set that does not decode only costs labels.
        let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
            continue;
        };
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let service_name = format!("{package}.{}", service.name.unwrap_or_default());
                for method in service.method {
                    let name = format!("{service_name}/{}", method.name.unwrap_or_default());
                    let streaming = method.client_streaming.unwrap_or(false)
                        || method.server_streaming.unwrap_or(false);
                    by_path.insert(format!("/{name}"), MethodInfo { name, streaming });
                }
            }
        }
    }
    // Envoy's ext_authz Check (unary), whose crate ships no descriptor set.
    let check = "envoy.service.auth.v3.Authorization/Check";
    by_path.insert(
        format!("/{check}"),
        MethodInfo {
            name: check.to_owned(),
            streaming: false,
        },
    );
    MethodTable { by_path }
});

/// The label of a request path and whether its method streams.
fn method_of(path: &str) -> (&'static str, bool) {
    let table: &'static MethodTable = &METHODS;
    match table.by_path.get(path) {
        Some(info) => (info.name.as_str(), info.streaming),
        None => (UNKNOWN_METHOD, false),
    }
}

// ---------------------------------------------------------------------------------------
// 1. Span and metrics

#[derive(Clone)]
pub struct ObserveLayer {
    metrics: Metrics,
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Metrics,
}

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
fn call_span(method: &'static str, headers: &HeaderMap) -> tracing::Span {
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

impl<S> Service<Request<Body>> for Observe<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let (method, _) = method_of(request.uri().path());
        let span = call_span(method, request.headers());
        let mut finish = Finish {
            metrics: self.metrics.clone(),
            method,
            started: Instant::now(),
            _in_flight: self.metrics.rpc_started(),
            span: span.clone(),
            done: false,
        };
        let future = span.in_scope(|| self.inner.call(request));
        Box::pin(tracing::Instrument::instrument(
            async move {
                let Ok(response) = future.await;
                // Errors before any message come back "trailers-only": the status is in
                // the headers and the body is empty, so the call is over now.
                if let Some(code) = grpc_code(response.headers()) {
                    // The status that made the response, if tonic kept it: its cause, if any, is logged here.
                    if let Some(status) = response.extensions().get::<Status>() {
                        log_cause(status);
                    }
                    finish.record(code);
                    return Ok(response);
                }
                Ok(response.map(|inner| Body::new(ObservedBody { inner, finish })))
            },
            span,
        ))
    }
}

fn grpc_code(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?;
    Some(Code::from_bytes(value.as_bytes()))
}

/// Records a call's end once: at its status, or as CANCELLED if the body is dropped first
/// (the client went away).
struct Finish {
    metrics: Metrics,
    method: &'static str,
    started: Instant,
    _in_flight: InFlight,
    span: tracing::Span,
    done: bool,
}

impl Finish {
    fn record(&mut self, code: Code) {
        if self.done {
            return;
        }
        self.done = true;
        let elapsed = self.started.elapsed();
        self.metrics.rpc_finished(self.method, code, elapsed);
        self.span.record("rpc.grpc.status_code", code as i32);
        // Server faults only: a refusal the caller caused (NOT_FOUND, PERMISSION_DENIED, ...)
        // is the service working, not an error of this span.
        if matches!(
            code,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        ) {
            self.span.record("otel.status_code", "ERROR");
        }
        tracing::debug!(parent: &self.span, code = ?code, elapsed_us = elapsed.as_micros() as u64, "call finished");
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        self.record(Code::Cancelled);
    }
}

pin_project_lite::pin_project! {
    /// A response body that records the call when its trailers (with grpc-status) pass.
    struct ObservedBody {
        #[pin]
        inner: Body,
        finish: Finish,
    }
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_code) {
                    this.finish.record(code);
                }
            }
            Some(Err(status)) => this.finish.record(status.code()),
            // Ended without a status: not a well-formed gRPC response.
            None => this.finish.record(Code::Unknown),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// ---------------------------------------------------------------------------------------
// 2. Errors of the layers below, as gRPC statuses

#[derive(Debug, Clone, Copy)]
pub struct StatusLayer;

impl<S> Layer<S> for StatusLayer {
    type Service = ToStatus<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ToStatus { inner }
    }
}

#[derive(Debug, Clone)]
pub struct ToStatus<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for ToStatus<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Load shedding makes the layers below always ready; they never fail here.
        // Were one to, the call itself reports the error as a status.
        let _ = ready!(self.inner.poll_ready(cx));
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let future = self.inner.call(request);
        Box::pin(async move {
            Ok(match future.await {
                Ok(response) => response,
                Err(e) => layer_error_status(&*e.into()).into_http(),
            })
        })
    }
}

// ---------------------------------------------------------------------------------------
// 3. The concurrency limit, shedding the excess, health exempt; nothing but health and
// reflection before the database is there

/// Calls under this prefix are probes: they take no permit and are never shed.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";
/// Reflection needs no database either: served while the server starts.
const REFLECTION_PREFIX: &str = "/grpc.reflection.";

#[derive(Debug, Clone)]
pub struct ShedLayer {
    permits: Arc<Semaphore>,
    ready: Readiness,
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            inner,
            permits: self.permits.clone(),
            ready: self.ready.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Shed<S> {
    inner: S,
    permits: Arc<Semaphore>,
    ready: Readiness,
}

impl<S> Service<Request<Body>> for Shed<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The permit is taken per call, in `call`: readiness must not wait on the limit,
        // or a probe would queue behind the calls it is exempt from.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if path.starts_with(HEALTH_PREFIX) {
            let future = self.inner.call(request);
            return Box::pin(async move { future.await.map_err(Into::into) });
        }
        if !self.ready.is_ready() && !path.starts_with(REFLECTION_PREFIX) {
            return Box::pin(async { Err(Box::new(NotReady) as BoxError) });
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Box::pin(async { Err(Box::new(Overloaded::new()) as BoxError) });
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await.map_err(Into::into);
            drop(permit);
            result
        })
    }
}

// ---------------------------------------------------------------------------------------
// 4. The unary timeout

/// The error of a unary call that ran past `--request-timeout-ms`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the call took longer than the server's request timeout of {0:?}")]
pub struct RequestTimedOut(pub Duration);

#[derive(Debug, Clone, Copy)]
pub struct UnaryTimeoutLayer {
    timeout: Option<Duration>,
}

impl<S> Layer<S> for UnaryTimeoutLayer {
    type Service = UnaryTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UnaryTimeout {
            inner,
            timeout: self.timeout,
        }
    }
}

#[derive(Debug, Clone)]
pub struct UnaryTimeout<S> {
    inner: S,
    timeout: Option<Duration>,
}

impl<S> Service<Request<Body>> for UnaryTimeout<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let (_, streaming) = method_of(request.uri().path());
        let future = self.inner.call(request);
        match self.timeout.filter(|_| !streaming) {
            // A unary call's response future is the whole handler, so this bounds it.
            Some(limit) => Box::pin(async move {
                match tokio::time::timeout(limit, future).await {
                    Ok(result) => result.map_err(Into::into),
                    Err(_) => Err(Box::new(RequestTimedOut(limit)) as BoxError),
                }
            }),
            None => Box::pin(async move { future.await.map_err(Into::into) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_come_from_the_descriptor_sets() {
        assert_eq!(
            method_of("/apitokens.v1.AuthorizeService/Authorize"),
            ("apitokens.v1.AuthorizeService/Authorize", false)
        );
        assert_eq!(
            method_of("/apitokens.v1.TokenService/WatchApplications"),
            ("apitokens.v1.TokenService/WatchApplications", true)
        );
        assert!(method_of("/grpc.health.v1.Health/Watch").1);
        assert!(!method_of("/grpc.health.v1.Health/Check").1);
        assert!(method_of("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo").1);
        assert_eq!(
            method_of("/envoy.service.auth.v3.Authorization/Check"),
            ("envoy.service.auth.v3.Authorization/Check", false)
        );
        assert_eq!(method_of("/no.Such/Thing"), (UNKNOWN_METHOD, false));
    }

    #[test]
    fn limits_beyond_the_semaphore_are_refused_clearly() {
        let limits = LimitSettings {
            max_concurrent_requests: Some(usize::MAX),
            request_timeout: None,
        };
        let message = limits.validate().expect_err("too large");
        assert!(message.contains("--max-concurrent-requests"), "{message}");
    }
}
