//! The outermost layer: one span per call, the in-flight gauge, and the count and latency
//! by method and final gRPC code, recorded when the call's status passes (or as CANCELLED
//! when the client goes away first).
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{HeaderMap, Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Bytes;
use tonic::body::Body;
use tonic::{Code, Status};
use tower::{Layer, Service};

use super::methods::method_of;
use super::span::call_span;
use crate::grpc::log_cause;
use crate::metrics::{InFlight, Metrics};

#[derive(Clone)]
pub struct ObserveLayer {
    pub(super) metrics: Metrics,
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
