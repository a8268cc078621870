//! The concurrency limit: at most N calls at once, one more shed at once with UNAVAILABLE;
//! health never limited; nothing but health and reflection before the database is there.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::{Request, Response};
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

/// Calls in flight under a limit. A counter, not a semaphore: a call over the limit is shed,
/// never queued, and tokio's semaphore takes its waiters' lock on every release, a lock that
/// every Authorize on every worker thread shared.
#[derive(Debug, Clone)]
pub struct InFlight {
    count: Arc<AtomicUsize>,
    limit: usize,
}

impl InFlight {
    /// The largest limit: far enough below `usize::MAX` that every thread overshooting the
    /// limit at once cannot overflow the counter.
    pub const MAX: usize = usize::MAX >> 3;

    pub fn new(limit: usize) -> Self {
        InFlight {
            count: Arc::new(AtomicUsize::new(0)),
            limit: limit.min(Self::MAX),
        }
    }

    /// A place for one more call, or `None` when `limit` calls are in flight.
    fn enter(&self) -> Option<Entered> {
        let before = self.count.fetch_add(1, Ordering::Acquire);
        if before >= self.limit {
            self.count.fetch_sub(1, Ordering::Release);
            return None;
        }
        Some(Entered(self.count.clone()))
    }
}

/// One call in flight; leaving is dropping it.
struct Entered(Arc<AtomicUsize>);

impl Drop for Entered {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

#[derive(Debug, Clone)]
pub struct ShedLayer {
    pub(super) in_flight: InFlight,
    pub(super) ready: Readiness,
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            inner,
            in_flight: self.in_flight.clone(),
            ready: self.ready.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Shed<S> {
    inner: S,
    in_flight: InFlight,
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
        let Some(entered) = self.in_flight.enter() else {
            return refused(Overloaded::new());
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await.map_err(Into::into);
            drop(entered);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_holds_and_leaving_makes_room() {
        let in_flight = InFlight::new(2);
        let first = in_flight.enter().expect("first");
        let _second = in_flight.enter().expect("second");
        assert!(in_flight.enter().is_none(), "a third over a limit of two");
        drop(first);
        assert!(in_flight.enter().is_some(), "room again after one left");
        assert!(InFlight::new(0).enter().is_none());
    }

    #[test]
    fn racing_threads_never_pass_the_limit_and_leave_nothing_behind() {
        let in_flight = InFlight::new(3);
        let (inside, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        if let Some(entered) = in_flight.enter() {
                            let now = inside.fetch_add(1, Ordering::AcqRel) + 1;
                            most.fetch_max(now, Ordering::Relaxed);
                            inside.fetch_sub(1, Ordering::AcqRel);
                            drop(entered);
                        }
                    }
                });
            }
        });
        assert!(most.load(Ordering::Relaxed) <= 3, "{most:?} inside at once");
        assert_eq!(in_flight.count.load(Ordering::Acquire), 0);
    }
}
