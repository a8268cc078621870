//! A deadline for unary calls only: streams (WatchApplications, health Watch, reflection)
//! are long-lived by design, and which methods stream is read from the descriptor sets.
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tonic::body::Body;
use tower::{BoxError, Layer, Service};

use super::methods::method_of;
use super::{Fallible, passed};

/// The error of a unary call that ran past `--request-timeout-ms`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the call took longer than the server's request timeout of {0:?}")]
pub struct RequestTimedOut(pub Duration);

#[derive(Debug, Clone, Copy)]
pub struct UnaryTimeoutLayer {
    pub(super) timeout: Option<Duration>,
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
    type Future = Fallible;

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
            None => passed(future),
        }
    }
}
