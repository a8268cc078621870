//! The concurrency limit: at most N calls at once, one more shed at once with UNAVAILABLE;
//! health never limited; nothing but health and reflection before the database is there.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http::{Request, Response};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tower::load_shed::error::Overloaded;
use tower::{BoxError, Layer, Service};

use super::{Fallible, passed, refused};

/// Calls under this prefix are probes: they take no permit and are never shed.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";
/// Reflection needs no database either: served while the server starts.
const REFLECTION_PREFIX: &str = "/grpc.reflection.";

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

#[derive(Debug, Clone)]
pub struct ShedLayer {
    pub(super) permits: Arc<Semaphore>,
    pub(super) ready: Readiness,
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
    type Future = Fallible;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The permit is taken per call, in `call`: readiness must not wait on the limit,
        // or a probe would queue behind the calls it is exempt from.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if path.starts_with(HEALTH_PREFIX) {
            return passed(self.inner.call(request));
        }
        if !self.ready.is_ready() && !path.starts_with(REFLECTION_PREFIX) {
            return refused(NotReady);
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return refused(Overloaded::new());
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await.map_err(Into::into);
            drop(permit);
            result
        })
    }
}
