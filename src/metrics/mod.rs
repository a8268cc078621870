//! Prometheus metrics: the registry of one server and the handles the rest of the code counts with.
//!
//! One `Metrics` per server (not a process-wide global), so tests that run many servers in
//! one process read each server's own numbers. Label values are from closed sets only
//! (method names known at start-up, gRPC codes, decisions, cache names): never a token id,
//! an application name or a secret, so a caller cannot grow the series count.
mod http;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tonic::Code;

use crate::code_name::code_name;
use crate::domain::Decision;

pub use http::{MetricsServer, bind_metrics};

/// The content type of the exposition (OpenMetrics text, which Prometheus reads natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
}

/// Which in-memory cache a lookup went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheName {
    /// Grants by secret digest (known and unknown secrets).
    Tokens,
    /// Application states by (token, name).
    Applications,
}

impl CacheName {
    fn label(self) -> &'static str {
        match self {
            CacheName::Tokens => "tokens",
            CacheName::Applications => "applications",
        }
    }
}

/// Buckets from 100 µs to about 6.5 s: a warm Authorize sits in the first few, a cold
/// one with a database write in the middle, a stuck database at the top.
fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0001, 2.0, 17,
    ))
}

type LatencyFamily = Family<RpcLabels, Histogram, fn() -> Histogram>;

struct Inner {
    registry: Registry,
    rpc_requests: Family<RpcLabels, Counter>,
    rpc_duration: LatencyFamily,
    rpc_in_flight: Gauge,
    decisions: Family<OutcomeLabels, Counter>,
    /// The four lookup counters, `[cache][hit]`, taken from their families once: a warm
    /// Authorize counts two lookups and a decision, and a family's lookup (a lock and a hash
    /// of the labels) cost more than the rest of the count.
    lookups: [[Counter; 2]; 2],
    /// The decisions counter for allowed calls, likewise.
    allowed: Counter,
    watch_streams: Gauge,
    log_position: Gauge,
    log_last_read: Gauge<f64, std::sync::atomic::AtomicU64>,
    database_reachable: Gauge,
    pending_applications: Arc<PendingApplications>,
    database_queries: Counter,
}

/// The pending-applications count, or nothing until one has been read: a server that
/// started during a database outage has no number to give, and 0 would be a wrong one, so
/// its scrapes leave the sample out (the HELP and TYPE lines stay).
#[derive(Debug, Default)]
struct PendingApplications {
    /// The count plus one; 0 while none has been read.
    count_plus_one: AtomicU64,
}

impl PendingApplications {
    fn set(&self, count: u64) {
        self.count_plus_one
            .store(count.saturating_add(1), Ordering::Relaxed);
    }

    fn get(&self) -> Option<u64> {
        self.count_plus_one.load(Ordering::Relaxed).checked_sub(1)
    }
}

impl Collector for PendingApplications {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let gauge = ConstGauge::new(
            self.get()
                .map_or(0, |c| i64::try_from(c).unwrap_or(i64::MAX)),
        );
        let metric = encoder.encode_descriptor(
            "pending_applications",
            "Application names waiting for approval in the whole database (read at scrape time; \
             every replica reports the same number, so aggregate with max, not sum; absent until \
             the first count succeeds)",
            None,
            gauge.metric_type(),
        )?;
        if self.get().is_some() {
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// The metrics of one server; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("api_tokens");
        let rpc_requests = Family::<RpcLabels, Counter>::default();
        registry.register(
            "rpc_requests",
            "gRPC calls finished, by full method name and gRPC status code",
            rpc_requests.clone(),
        );
        let rpc_duration: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "rpc_duration_seconds",
            "gRPC call latency in seconds, from request to the final status (streams: to their end)",
            rpc_duration.clone(),
        );
        let rpc_in_flight = Gauge::default();
        registry.register(
            "rpc_in_flight",
            "gRPC calls started and not yet finished",
            rpc_in_flight.clone(),
        );
        let decisions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "authorize_decisions",
            "Authorization decisions by outcome (Authorize calls and management callers)",
            decisions.clone(),
        );
        let cache_hits = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_hits",
            "Hot-path lookups answered from memory, by cache",
            cache_hits.clone(),
        );
        let cache_misses = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_misses",
            "Hot-path lookups that went to the database, by cache",
            cache_misses.clone(),
        );
        let watch_streams = Gauge::default();
        registry.register(
            "watch_streams",
            "WatchApplications streams open on this replica",
            watch_streams.clone(),
        );
        let pending_applications = Arc::new(PendingApplications::default());
        registry.register_collector(Box::new(pending_applications.clone()));
        let log_position = Gauge::default();
        registry.register(
            "change_log_position",
            "The newest change-log position this replica has applied (compare replicas: the lag \
             is the difference from the highest)",
            log_position.clone(),
        );
        let log_last_read = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "change_log_last_read_timestamp_seconds",
            "When this replica last read the change log (Unix time): time() minus this is how \
             stale its memory is; past --max-staleness-secs it fails closed",
            log_last_read.clone(),
        );
        let database_reachable = Gauge::default();
        registry.register(
            "database_reachable",
            "1 while this replica's change-log follower reads the database, 0 while it cannot \
             (calls that need the database then answer UNAVAILABLE at once)",
            database_reachable.clone(),
        );
        let database_queries = Counter::default();
        registry.register(
            "database_queries",
            "Statements this replica has sent to the database (read from the repository at \
             scrape time; each scrape itself sends one, the pending-applications count)",
            database_queries.clone(),
        );
        let lookups = [CacheName::Tokens, CacheName::Applications].map(|cache| {
            let labels = CacheLabels {
                cache: cache.label(),
            };
            [
                cache_misses.get_or_create(&labels).clone(),
                cache_hits.get_or_create(&labels).clone(),
            ]
        });
        let allowed = decisions
            .get_or_create(&OutcomeLabels {
                outcome: Decision::Allow {
                    effective: crate::domain::Privilege::ReadOnly,
                }
                .name(),
            })
            .clone();
        Metrics {
            inner: Arc::new(Inner {
                registry,
                rpc_requests,
                rpc_duration,
                rpc_in_flight,
                decisions,
                lookups,
                allowed,
                watch_streams,
                log_position,
                log_last_read,
                database_reachable,
                pending_applications,
                database_queries,
            }),
        }
    }

    /// Counts a call as started; the returned guard counts it as finished when dropped.
    pub fn rpc_started(&self) -> InFlight {
        self.inner.rpc_in_flight.inc();
        InFlight {
            gauge: self.inner.rpc_in_flight.clone(),
        }
    }

    /// Records a finished call. `method` must come from a closed set (see `layers/methods.rs`).
    pub fn rpc_finished(&self, method: &'static str, code: Code, elapsed: Duration) {
        let labels = RpcLabels {
            method,
            code: code_name(code),
        };
        self.inner.rpc_requests.get_or_create(&labels).inc();
        self.inner
            .rpc_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn decision(&self, decision: &Decision) {
        if decision.is_allow() {
            self.inner.allowed.inc();
            return;
        }
        self.inner
            .decisions
            .get_or_create(&OutcomeLabels {
                outcome: decision.name(),
            })
            .inc();
    }

    pub fn cache_lookup(&self, cache: CacheName, hit: bool) {
        let cache = match cache {
            CacheName::Tokens => 0,
            CacheName::Applications => 1,
        };
        self.inner.lookups[cache][usize::from(hit)].inc();
    }

    /// For WatchApplications: call when a stream starts and keep the guard inside the
    /// stream; the gauge goes down when the stream is dropped, however it ends.
    pub fn watch_stream_opened(&self) -> WatchStreamGuard {
        self.inner.watch_streams.inc();
        WatchStreamGuard {
            gauge: self.inner.watch_streams.clone(),
        }
    }

    pub fn set_pending_applications(&self, count: u64) {
        self.inner.pending_applications.set(count);
    }

    /// After a read of the change log (or a failed one): where this replica stands.
    pub fn change_log_read(&self, position: Option<i64>, reachable: bool) {
        if let Some(position) = position {
            self.inner.log_position.set(position);
        }
        if reachable {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.inner.log_last_read.set(now);
        }
        self.inner.database_reachable.set(i64::from(reachable));
    }

    /// Catches the counter up with the repository's own count of statements sent. Never
    /// moves it back, so two scrapes at once cannot make it jump.
    pub fn set_database_queries(&self, total: u64) {
        self.inner
            .database_queries
            .inner()
            .fetch_max(total, std::sync::atomic::Ordering::Relaxed);
    }

    /// The exposition text of every metric.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)?;
        Ok(out)
    }
}

/// A call in flight; dropping it ends it (also when the client goes away mid-call).
#[must_use = "the call counts as in flight until this guard is dropped"]
pub struct InFlight {
    gauge: Gauge,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// An open watch stream; dropping it closes it.
#[must_use = "the stream counts as open until this guard is dropped"]
pub struct WatchStreamGuard {
    gauge: Gauge,
}

impl Drop for WatchStreamGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Privilege;

    #[test]
    fn no_pending_count_is_no_sample_rather_than_zero() {
        let text = Metrics::new().encode().expect("encodes");
        assert!(
            text.contains("# TYPE api_tokens_pending_applications gauge"),
            "{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("api_tokens_pending_applications")),
            "no sample before the first count:\n{text}"
        );
    }

    #[test]
    fn exposition_names_and_labels() {
        let metrics = Metrics::new();
        let _call = metrics.rpc_started();
        metrics.rpc_finished(
            "apitokens.v1.AuthorizeService/Authorize",
            Code::Ok,
            Duration::from_micros(300),
        );
        metrics.decision(&Decision::Allow {
            effective: Privilege::Admin,
        });
        metrics.cache_lookup(CacheName::Tokens, true);
        metrics.cache_lookup(CacheName::Applications, false);
        let watch = metrics.watch_stream_opened();
        metrics.set_pending_applications(3);
        metrics.set_database_queries(7);
        metrics.set_database_queries(5);
        let text = metrics.encode().expect("encodes");
        for line in [
            r#"api_tokens_rpc_requests_total{method="apitokens.v1.AuthorizeService/Authorize",code="OK"} 1"#,
            r#"api_tokens_rpc_duration_seconds_count{method="apitokens.v1.AuthorizeService/Authorize",code="OK"} 1"#,
            "api_tokens_rpc_in_flight 1",
            r#"api_tokens_authorize_decisions_total{outcome="allow"} 1"#,
            r#"api_tokens_cache_hits_total{cache="tokens"} 1"#,
            r#"api_tokens_cache_misses_total{cache="applications"} 1"#,
            "api_tokens_watch_streams 1",
            "api_tokens_pending_applications 3",
            "api_tokens_database_queries_total 7",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        drop(watch);
        metrics.set_pending_applications(0);
        assert!(
            metrics
                .encode()
                .expect("encodes")
                .contains("api_tokens_pending_applications 0\n")
        );
        assert!(
            metrics
                .encode()
                .expect("encodes")
                .contains("api_tokens_watch_streams 0")
        );
    }
}
