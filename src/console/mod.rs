//! The admin console on the gRPC port: the browser's gRPC-Web calls translated (tonic-web)
//! into the same gRPC services, with the same authentication, and the console's embedded
//! files for every other request. Off (`--console off`), the port is gRPC over HTTP/2 only.
mod assets;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::CONTENT_TYPE;
use http::{Request, Response};
use tonic::body::Body;
use tonic_web::{GrpcWebLayer, GrpcWebService};
use tower::{Layer, Service, ServiceExt};

pub use assets::{CONTENT_SECURITY_POLICY, paths};

/// The application name the console presents (`x-circonus-app-name`), as any other caller.
pub const CONSOLE_APP_NAME: &str = "api-tokens-console";

/// `--console`: whether the port also serves the console and gRPC-Web.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsoleMode {
    On,
    Off,
}

impl ConsoleMode {
    /// HTTP/1.1 is what a browser speaks to a plaintext port; only the console needs it.
    pub fn accepts_http1(self) -> bool {
        self == ConsoleMode::On
    }
}

/// Routes the console's requests around the gRPC services (the outermost layer).
#[derive(Debug, Clone, Copy)]
pub struct ConsoleLayer {
    mode: ConsoleMode,
}

impl ConsoleLayer {
    pub fn new(mode: ConsoleMode) -> Self {
        ConsoleLayer { mode }
    }
}

impl<S: Clone> Layer<S> for ConsoleLayer {
    type Service = WithConsole<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithConsole {
            web: (self.mode == ConsoleMode::On).then(|| GrpcWebLayer::new().layer(inner.clone())),
            inner,
        }
    }
}

/// gRPC (and gRPC-Web, translated) to the services; with the console on, anything else to
/// the embedded files.
#[derive(Debug, Clone)]
pub struct WithConsole<S> {
    inner: S,
    /// The same services behind tonic-web; `None` with the console off.
    web: Option<GrpcWebService<S>>,
}

type BoxFuture<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

impl<S> Service<Request<Body>> for WithConsole<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<S::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each call drives a clone of the service it goes to to readiness (`oneshot`): which
        // one is known only once the request is seen.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let Some(web) = &self.web else {
            return Box::pin(self.inner.clone().oneshot(request));
        };
        if is_grpc(&request) {
            // tonic-web translates gRPC-Web, and passes HTTP/2 gRPC through untouched.
            return Box::pin(web.clone().oneshot(request));
        }
        let response = assets::respond(&request);
        Box::pin(async move { Ok::<_, S::Error>(response) })
    }
}

/// `application/grpc`, `application/grpc+proto`, `application/grpc-web-text`, ...
fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}
