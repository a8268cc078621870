//! Use cases: authorize, authenticate management callers, manage tokens, applications and members.
mod accounts;
mod authorize;
mod cache;
mod compaction;
mod decisions;
mod error;
mod grants;
mod guard;
mod idempotency;
mod install;
mod last_used;
mod leaks;
mod lifecycle;
mod limiter;
mod notices;
mod page;
mod positions;
mod preview;
mod replica;
mod tokens;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::{AddressRanges, Clock};
use crate::metrics::Metrics;
use crate::storage::{KEY_LEN, Repository};
use crate::telemetry::chain;
use last_used::LastUsed;
use replica::Replica;

pub use accounts::{AccountView, Bootstrapped};
pub use authorize::{AuthorizeOutcome, Credentials};
pub use cache::CacheSettings;
pub use decisions::{DecisionResult, MAX_BATCH};
pub use error::ServiceError;
pub use install::{InstallCommand, InstallSettings};
pub use leaks::LeakReport;
pub use lifecycle::{POLICY_FIELDS, PolicyUpdate, RotateRequest};
pub use limiter::RateLimit;
pub use page::{Page, PageRequest};
pub use positions::{Purpose, Sealer};
pub use preview::{DEFAULT_USAGE_WINDOW, Preview, Previewed, PrivilegeDrop};
pub use replica::{FollowSettings, Lag};
pub use tokens::{AuditView, NewTokenRequest, TokenFilters, TokenUpdate, TokenView};
pub use watch::{AppChange, TokenEvent, TokenWatchRequest, WatchEvent, WatchItem, WatchRequest};

#[cfg(test)]
pub(crate) use grants::tests::grant as test_grant;

/// Settings of the use cases, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSettings {
    /// At most this many application names recorded per token; `None` for no limit.
    pub max_apps_per_token: Option<u64>,
    pub install: InstallSettings,
    pub cache: CacheSettings,
    /// How this replica follows the change log.
    pub follow: FollowSettings,
    /// How often last-used times are written: at most one write per key per interval.
    pub last_used_interval: Duration,
    /// How often an idle watch stream hears a heartbeat.
    pub watch_heartbeat: Duration,
    /// How long application events are kept; older cursors are expired.
    pub event_retention: Duration,
    /// Proxies whose `x-forwarded-for` is believed for management calls; empty: none.
    pub trusted_proxies: AddressRanges,
    /// How often lapsed conditional approvals are written back to Pending (with their event).
    /// Decisions do not wait for it: a lapsed approval is Pending from its end on.
    pub approval_sweep: Duration,
    /// How far back an impact preview looks for applications that used a token.
    pub usage_window: Duration,
    /// How many leaked-secret reports one client address may make.
    pub leak_reports: RateLimit,
    /// How often lifecycle notices (expiring, expired, dormant) are looked for and sent.
    pub notice_sweep: Duration,
    /// Where the rules read the time: the system's clock; tests step one of their own.
    pub clock: Clock,
}

/// How often lapsed conditional approvals are written back to Pending, by default.
pub const DEFAULT_APPROVAL_SWEEP: Duration = Duration::from_secs(5);

/// How often lifecycle notices are looked for, by default: a notice is about days, a minute
/// late is nothing, and each sweep is one query per account plus one per batch of tokens due.
pub const DEFAULT_NOTICE_SWEEP: Duration = Duration::from_secs(60);

/// How long a read waits for this replica to catch up with a requested revision.
const MAX_REVISION_WAIT: Duration = Duration::from_secs(2);

impl ServiceSettings {
    pub const DEFAULT_MAX_APPS_PER_TOKEN: u64 = 1000;
    /// Leaked-secret reports per client address: a scanner reporting a batch it found gets
    /// through; one trying secrets at random gets 10 a minute, and learns nothing from them.
    pub const DEFAULT_LEAK_REPORTS: RateLimit = RateLimit {
        per_minute: 10,
        burst: 10,
    };
    pub const DEFAULT_LAST_USED_INTERVAL: Duration = Duration::from_secs(30);
    pub const DEFAULT_WATCH_HEARTBEAT: Duration = Duration::from_secs(15);
    /// A week.
    pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(168 * 3600);
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            max_apps_per_token: Some(Self::DEFAULT_MAX_APPS_PER_TOKEN),
            install: InstallSettings::default(),
            cache: CacheSettings::default(),
            follow: FollowSettings::default(),
            last_used_interval: Self::DEFAULT_LAST_USED_INTERVAL,
            watch_heartbeat: Self::DEFAULT_WATCH_HEARTBEAT,
            event_retention: Self::DEFAULT_EVENT_RETENTION,
            trusted_proxies: AddressRanges::default(),
            approval_sweep: DEFAULT_APPROVAL_SWEEP,
            usage_window: preview::DEFAULT_USAGE_WINDOW,
            leak_reports: Self::DEFAULT_LEAK_REPORTS,
            notice_sweep: DEFAULT_NOTICE_SWEEP,
            clock: Clock::system(),
        }
    }
}

/// The service: every RPC handler calls one method of this. A cheap handle: clones share
/// the replica (caches, log follower, streams' fanout) and the last-used writer.
#[derive(Clone)]
pub struct Service {
    repo: Repository,
    settings: Arc<ServiceSettings>,
    replica: Arc<Replica>,
    /// Set once by `prepare`: the database holds the key.
    sealer: Arc<std::sync::OnceLock<Sealer>>,
    last_used: Arc<LastUsed>,
    metrics: Metrics,
    /// First responses of CreateToken calls with a request_id (see `idempotency`).
    created: idempotency::CreatedCache,
    /// Leaked-secret reports per client address.
    leak_limiter: Arc<limiter::KeyedLimiter>,
    /// Rotated-out secrets whose reuse this replica has recorded or is recording.
    reused: Arc<lifecycle::ReusedSecrets>,
}

/// The name of the shared key that seals positions.
const POSITIONS_KEY: &str = "positions";

impl Service {
    /// The service over `repo`. It needs the database before it decides anything:
    /// `prepare` (or `open`, which does both) reads the key that seals positions and where
    /// the change log stands; until then calls answer UNAVAILABLE.
    pub fn new(repo: Repository, settings: ServiceSettings) -> Self {
        let repo = repo.with_clock(settings.clock.clone());
        let metrics = Metrics::new();
        let replica = Replica::new(
            &settings.cache,
            settings.follow.clone(),
            metrics.clone(),
            repo.is_postgres(),
        );
        Service {
            repo,
            leak_limiter: Arc::new(limiter::KeyedLimiter::new(settings.leak_reports)),
            settings: Arc::new(settings),
            replica: Arc::new(replica),
            sealer: Arc::default(),
            last_used: Arc::default(),
            metrics,
            created: idempotency::new_cache(),
            reused: Arc::default(),
        }
    }

    /// Reads (or, on first use, makes) the key every replica seals positions with, and
    /// stands at the change log's head. `run_replica` follows the log from there; without
    /// it, memory decides for the maximum staleness only.
    pub async fn prepare(&self) -> Result<(), ServiceError> {
        if self.sealer.get().is_none() {
            let mut fresh = [0u8; KEY_LEN];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut fresh)
                .map_err(|_| ServiceError::Internal("the system random source failed".into()))?;
            let key = self.repo.shared_key(POSITIONS_KEY, fresh).await?;
            let _ = self.sealer.set(Sealer::new(&key.0));
        }
        if self.replica.position().is_none() {
            self.replica.start_at_head(&self.repo).await?;
        }
        Ok(())
    }

    /// `new`, then `prepare`: a service ready to decide.
    pub async fn open(repo: Repository, settings: ServiceSettings) -> Result<Self, ServiceError> {
        let service = Service::new(repo, settings);
        service.prepare().await?;
        Ok(service)
    }

    /// The sealer of positions, once `prepare` has read its key.
    fn sealer(&self) -> Result<&Sealer, ServiceError> {
        self.sealer.get().ok_or_else(|| {
            ServiceError::Unavailable("the service has not reached its database yet; retry".into())
        })
    }

    /// Follows the change log (and, on PostgreSQL, listens for other replicas' appends)
    /// until `stop`. Decisions fail closed until the log has been read once.
    pub async fn run_replica(self, stop: impl std::future::Future<Output = ()>) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let follower = tokio::spawn(
            self.replica
                .clone()
                .run_follower(self.repo.clone(), stopped()),
        );
        let listener = tokio::spawn(
            self.replica
                .clone()
                .run_listener(self.repo.clone(), stopped()),
        );
        stop.await;
        let _ = stop_tx.send(true);
        let _ = follower.await;
        let _ = listener.await;
    }

    /// Reads the change log now and applies what it holds (the follower does this on every
    /// wake and poll), checking it has not fallen behind the retained log. Returns whether
    /// the log could be read.
    pub async fn catch_up_now(&self) -> bool {
        self.replica.catch_up(&self.repo, true).await
    }

    /// Ends every watch stream; the server calls this when shutdown begins.
    pub fn begin_shutdown(&self) {
        self.replica.begin_shutdown();
    }

    /// Fails fast while this replica knows the database is unreachable: every management
    /// call needs it, and waiting for a connect timeout to learn the same helps nobody.
    pub fn require_database(&self) -> Result<(), ServiceError> {
        self.replica.check_reachable()
    }

    /// How far this replica has followed the change log.
    pub fn lag(&self) -> Lag {
        self.replica.lag()
    }

    /// Waits (bounded) until this replica has applied the revision a mutation answered with.
    pub async fn at_least(&self, field: &str, revision: Option<&str>) -> Result<(), ServiceError> {
        let Some(revision) = revision.filter(|r| !r.is_empty()) else {
            return Ok(());
        };
        let position = self
            .sealer()?
            .open(Purpose::Revision, None, revision)
            .ok_or_else(|| ServiceError::invalid(field, "is not a revision this service issued"))?;
        self.replica.wait_for(position, MAX_REVISION_WAIT).await
    }

    /// The revision to answer a mutation with: the change log's head once the write has
    /// committed, so at least the write's own position. This replica forgot what the write
    /// made stale already; another replica asked for this revision waits for its follower.
    pub async fn revision_after_write(&self) -> String {
        self.replica.wake();
        let Ok(head) = self.repo.log_head().await else {
            return String::new();
        };
        self.sealer()
            .map(|sealer| sealer.seal(Purpose::Revision, None, head))
            .unwrap_or_default()
    }

    /// Writes gathered last-used times now (the server calls this every interval and on shutdown).
    pub async fn flush_last_used(&self) -> Result<(), ServiceError> {
        Ok(self.last_used.flush(&self.repo).await?)
    }

    /// Writes last-used times every interval until `stop` resolves, then once more.
    pub async fn run_last_used_writer(self, stop: impl std::future::Future<Output = ()>) {
        let this = &self;
        every(this.settings.last_used_interval, stop, || async move {
            if let Err(e) = this.flush_last_used().await {
                tracing::warn!(error = %chain(&e), "last-used times not written; will retry");
            }
        })
        .await;
        if let Err(e) = self.flush_last_used().await {
            tracing::warn!(error = %chain(&e), "last-used times lost at shutdown");
        }
    }

    /// After a write on this replica: forgets what it made stale at once, and wakes the log
    /// follower so streams and the revision see it without waiting for a poll.
    pub(crate) async fn changed_here(&self, key: cache::StaleKey) {
        self.replica.cache.forget_now(key);
        self.replica.wake();
    }

    /// Now by the service's clock, to the microsecond it stores.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.settings.clock.now()
    }

    /// Forgets every cached grant and application state.
    pub fn forget_cached(&self) {
        self.replica.cache.forget_all();
    }

    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The proxies whose forwarded client addresses management calls believe.
    pub fn trusted_proxies(&self) -> &AddressRanges {
        &self.settings.trusted_proxies
    }

    /// This server's metrics; WatchApplications holds `metrics().watch_stream_opened()`.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// Runs `work` every `interval` until `stop` resolves; a tick missed while `work` ran long
/// is delayed, not bunched up behind it.
pub(crate) async fn every<Work, Done>(
    interval: std::time::Duration,
    stop: impl std::future::Future<Output = ()>,
    mut work: impl FnMut() -> Work,
) where
    Work: std::future::Future<Output = Done>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut stop => return,
        }
        work().await;
    }
}
