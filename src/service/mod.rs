//! Use cases: authorize, authenticate management callers, manage tokens, applications and members.
mod accounts;
mod authorize;
mod cache;
mod changes;
mod error;
mod idempotency;
mod install;
mod last_used;
mod page;
mod tokens;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::storage::Repository;
use cache::AuthCache;
use changes::EventHub;
use last_used::LastUsed;

pub use accounts::{AccountView, Bootstrapped};
pub use authorize::{AuthorizeOutcome, Credentials};
pub use cache::CacheSettings;
pub use error::ServiceError;
pub use install::{InstallCommand, InstallSettings};
pub use page::{Page, PageRequest};
pub use tokens::{NewTokenRequest, TokenFilters, TokenUpdate, TokenView};
pub use watch::{AppChange, WatchEvent, WatchItem, WatchRequest, decode_cursor, encode_cursor};

/// Settings of the use cases, from the command line.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// At most this many application names recorded per token; `None` for no limit.
    pub max_apps_per_token: Option<u64>,
    pub install: InstallSettings,
    pub cache: CacheSettings,
    /// How often last-used times are written: at most one write per key per interval.
    pub last_used_interval: Duration,
    /// How often an idle watch stream hears a heartbeat.
    pub watch_heartbeat: Duration,
    /// How long application events are kept; older cursors are expired.
    pub event_retention: Duration,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            max_apps_per_token: Some(1000),
            install: InstallSettings::default(),
            cache: CacheSettings::default(),
            last_used_interval: Duration::from_secs(30),
            watch_heartbeat: watch::DEFAULT_HEARTBEAT,
            event_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The service: every RPC handler calls one method of this.
#[derive(Clone)]
pub struct Service {
    repo: Repository,
    settings: ServiceSettings,
    cache: AuthCache,
    last_used: Arc<LastUsed>,
    hub: Arc<EventHub>,
    metrics: Metrics,
    /// First responses of CreateToken calls with a request_id (see `idempotency`).
    created: idempotency::CreatedCache,
}

impl Service {
    pub fn new(repo: Repository, settings: ServiceSettings) -> Self {
        let cache = AuthCache::new(&settings.cache);
        Service {
            repo,
            settings,
            cache,
            last_used: Arc::default(),
            hub: Arc::default(),
            metrics: Metrics::new(),
            created: idempotency::new_cache(),
        }
    }

    /// Writes gathered last-used times now (the server calls this every interval and on shutdown).
    pub async fn flush_last_used(&self) -> Result<(), ServiceError> {
        Ok(self.last_used.flush(&self.repo).await?)
    }

    /// Writes last-used times every interval until `stop` resolves, then once more.
    pub async fn run_last_used_writer(self, stop: impl std::future::Future<Output = ()>) {
        let mut tick = tokio::time::interval(self.settings.last_used_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut stop => break,
            }
            if let Err(e) = self.flush_last_used().await {
                tracing::warn!(error = %e, "last-used times not written; will retry");
            }
        }
        if let Err(e) = self.flush_last_used().await {
            tracing::warn!(error = %e, "last-used times lost at shutdown");
        }
    }

    /// Forgets every cached grant and application state.
    pub fn forget_cached(&self) {
        self.cache.forget_all();
    }

    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// This server's metrics; WatchApplications holds `metrics().watch_stream_opened()`.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
