//! Errors of the layers below (the limit, the timeout, a server still starting) as gRPC
//! statuses, never as HTTP errors.
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use tonic::body::Body;
use tonic::{Code, Status};
use tower::load_shed::error::Overloaded;
use tower::{BoxError, Layer, Service};

use super::shed::NotReady;
use super::timeout::RequestTimedOut;
use crate::domain::Reason;
use crate::grpc::{internal, retry_after, with_reason};

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

/// The status for an error raised by the layers below this one: load shedding, a server
/// still starting, the request timeout. Handlers' own errors never get here: they are
/// `ServiceError`s, mapped in `grpc/status.rs`.
pub fn layer_error_status(err: &(dyn std::error::Error + Send + Sync + 'static)) -> Status {
    if err.is::<Overloaded>() {
        // UNAVAILABLE, not RESOURCE_EXHAUSTED: the call is safe to retry at once on another
        // replica, and gRPC clients' retry policies retry UNAVAILABLE by default.
        return retry_after(
            Code::Unavailable,
            Reason::Overloaded,
            "the server is at its concurrent-request limit; retry with backoff",
            Duration::from_millis(100),
        );
    }
    if err.is::<NotReady>() {
        return with_reason(Code::Unavailable, Reason::Starting, err.to_string());
    }
    if let Some(timeout) = err.downcast_ref::<RequestTimedOut>() {
        return with_reason(
            Code::DeadlineExceeded,
            Reason::RequestTimeout,
            timeout.to_string(),
        );
    }
    if let Some(status) = err.downcast_ref::<Status>() {
        return Status::new(status.code(), status.message());
    }
    let mut status = internal();
    let cause: Box<dyn std::error::Error + Send + Sync> = crate::telemetry::chain(err).into();
    status.set_source(Arc::from(cause));
    status
}
