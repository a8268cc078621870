//! The tower layers around every gRPC call, composed in one place: tracing span and
//! metrics, the error-to-status mapping, load shedding, the concurrency limit and the
//! request timeout.
//!
//! Outermost first:
//! 1. `ObserveLayer`: one span per call (continuing a caller's W3C `traceparent`), the
//!    in-flight gauge, and the count and latency by method and final gRPC code. It sits
//!    outside the limits so shed and timed-out calls are counted and traced too.
//! 2. `StatusLayer`: turns errors of the layers below into proper gRPC statuses
//!    (`layer_error_status`), never an HTTP error.
//! 3. `ShedLayer`: at most N calls at once over all connections; one more is refused at
//!    once with UNAVAILABLE, so the client retries elsewhere instead of queueing behind a
//!    stuck database. Health (`grpc.health.v1.Health`) is never limited nor shed: a probe
//!    answered UNAVAILABLE under load would unready or restart a pod that is only busy.
//! 4. `UnaryTimeoutLayer`: a deadline for unary calls only. Streaming calls
//!    (WatchApplications, health Watch, reflection) are long-lived by design and exempt;
//!    which methods stream is read from the descriptor sets, not kept by hand.
//!
//! One layer a file; `methods` is the table of known methods (metric labels, which stream)
//! and `span` the span of a call.
mod methods;
mod observe;
mod shed;
mod span;
mod status;
mod timeout;

use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use http::Response;
use tonic::body::Body;
use tower::BoxError;
use tower::layer::util::{Identity, Stack};

use crate::metrics::Metrics;
pub use observe::{Observe, ObserveLayer};
pub use shed::{InFlight, NotReady, Readiness, Shed, ShedLayer};
pub use status::{StatusLayer, ToStatus, layer_error_status};
pub use timeout::{RequestTimedOut, UnaryTimeout, UnaryTimeoutLayer};

/// The response future of a layer that may fail a call itself (shedding, the timeout): boxed,
/// with its error boxed for `StatusLayer` to turn into a status.
type Fallible = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

/// The inner service's answer, unchanged but for its error, boxed.
fn passed<F, E>(future: F) -> Fallible
where
    F: Future<Output = Result<Response<Body>, E>> + Send + 'static,
    E: Into<BoxError>,
{
    Box::pin(async move { future.await.map_err(Into::into) })
}

/// A call the layer refuses itself, with the error `StatusLayer` maps to a status.
fn refused(error: impl Into<BoxError>) -> Fallible {
    let error = error.into();
    Box::pin(async move { Err(error) })
}

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
            && n > InFlight::MAX
        {
            return Err(format!(
                "--max-concurrent-requests {n} is above the largest supported value {}",
                InFlight::MAX
            ));
        }
        Ok(())
    }
}

/// The whole stack, as `tonic::transport::Server::layer` takes it.
pub type ServerLayers =
    Stack<UnaryTimeoutLayer, Stack<ShedLayer, Stack<StatusLayer, Stack<ObserveLayer, Identity>>>>;

/// Composes the layers in their one order.
pub fn server_layers(metrics: Metrics, limits: LimitSettings, ready: Readiness) -> ServerLayers {
    // No limit is a limit too large to reach, so the stack has one shape either way.
    let limit = limits.max_concurrent_requests.unwrap_or(InFlight::MAX);
    tower::ServiceBuilder::new()
        .layer(ObserveLayer { metrics })
        .layer(StatusLayer)
        .layer(ShedLayer {
            in_flight: InFlight::new(limit),
            ready,
        })
        .layer(UnaryTimeoutLayer {
            timeout: limits.request_timeout,
        })
        .into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_beyond_the_counter_are_refused_clearly() {
        let limits = LimitSettings {
            max_concurrent_requests: Some(usize::MAX),
            request_timeout: None,
        };
        let message = limits.validate().expect_err("too large");
        assert!(message.contains("--max-concurrent-requests"), "{message}");
    }
}
