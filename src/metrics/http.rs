//! The metrics port: a small HTTP/1.1 server (hyper, already in the tree through tonic) that answers `GET /metrics`.
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::{CONTENT_TYPE, Metrics};
use crate::storage::Repository;

/// Longest a scrape waits for the pending-applications count before serving the last one.
const COUNT_TIMEOUT: Duration = Duration::from_millis(500);

/// The metrics port, bound and not yet serving.
pub struct MetricsServer {
    listener: TcpListener,
}

/// Binds the metrics port now, so a bad address fails start-up rather than a later scrape.
pub async fn bind_metrics(addr: SocketAddr) -> anyhow::Result<MetricsServer> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    Ok(MetricsServer { listener })
}

impl MetricsServer {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Answers scrapes until `shutdown` completes. Scrapes in progress then are dropped:
    /// Prometheus retries at the next interval.
    pub async fn run(self, metrics: Metrics, repo: Repository, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut connections = JoinSet::new();
        loop {
            let stream = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics port: accept failed");
                        continue;
                    }
                },
                // Reap finished connections so the set does not grow.
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let metrics = metrics.clone();
            let repo = repo.clone();
            connections.spawn(async move {
                let service = service_fn(move |request| {
                    let metrics = metrics.clone();
                    let repo = repo.clone();
                    async move { Ok::<_, Infallible>(answer(&request, &metrics, &repo).await) }
                });
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %e, "metrics connection ended with an error");
                }
            });
        }
        connections.shutdown().await;
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn answer(
    request: &Request<Incoming>,
    metrics: &Metrics,
    repo: &Repository,
) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    // The pending count is read at scrape time: one COUNT per scrape interval, and the
    // number is as fresh as the scrape. If the database is slow (SQLite's one connection
    // busy) or down, the last value stays (or, before any count, no sample at all) and the
    // RPC metrics still go out at once.
    match tokio::time::timeout(COUNT_TIMEOUT, repo.count_pending_applications()).await {
        Ok(Ok(count)) => metrics.set_pending_applications(count),
        Ok(Err(e)) => {
            tracing::warn!(error = %crate::telemetry::chain(&e), "metrics: cannot count pending applications")
        }
        Err(_) => tracing::warn!(
            timeout = ?COUNT_TIMEOUT,
            "metrics: counting pending applications took too long; serving the last count"
        ),
    }
    metrics.set_database_queries(repo.query_count());
    match metrics.encode() {
        Ok(text) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(CONTENT_TYPE),
            );
            response
        }
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded\n",
        ),
    }
}
