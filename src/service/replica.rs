//! A replica's machinery: its caches, the follower that applies the change log to them in
//! order and fans each change out to this replica's watch streams, the LISTEN connection
//! that wakes the follower, and the staleness and database-reachability it reports.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::domain::AppStanding;
use crate::metrics::Metrics;
use crate::storage::{Change, Heard, LoggedChange, Repository, TokenChange};
use crate::telemetry::chain;

use super::ServiceError;
use super::cache::{AppKey, AuthCache, CacheSettings, StaleKey};

/// How many changes the fanout keeps for streams that are briefly behind; a stream further
/// behind catches up from the log instead, so memory stays bounded whatever the consumer.
const FANOUT_CAPACITY: usize = 1024;
/// Changes read from the log per query.
const READ_BATCH: u64 = 500;
/// A log read slower than this counts as the database being unreachable.
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a follower that reads fine still checks it has not fallen behind the retained log.
const HORIZON_CHECK: Duration = Duration::from_secs(10);

/// How a replica follows the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowSettings {
    /// How often the log is read even when no notification came: a lost NOTIFY costs at most this.
    pub poll: Duration,
    /// How long warm decisions are served from memory after the last successful read of the
    /// log; past it, every decision fails closed (UNAVAILABLE) until the log is read again.
    pub max_staleness: Duration,
}

impl FollowSettings {
    pub const DEFAULT_POLL: Duration = Duration::from_millis(250);
    pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(60);
}

impl Default for FollowSettings {
    fn default() -> Self {
        FollowSettings {
            poll: Self::DEFAULT_POLL,
            max_staleness: Self::DEFAULT_MAX_STALENESS,
        }
    }
}

/// How far a replica has followed the log, for health and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// The newest change applied; `None` until the follower started.
    pub position: Option<i64>,
    /// Time since the log was last read successfully; `None` before the first read.
    pub since_last_read: Option<Duration>,
    pub database_reachable: bool,
}

pub(crate) struct Replica {
    pub cache: AuthCache,
    metrics: Metrics,
    /// Whether database failures open the breaker (PostgreSQL, a server that can be away).
    breaker: bool,
    settings: FollowSettings,
    /// The newest position applied; `None` until the follower read where the log stood.
    applied: watch::Sender<Option<i64>>,
    /// Every change, in log order, after its keys were forgotten.
    fanout: broadcast::Sender<Arc<LoggedChange>>,
    wake: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    /// When the log was last read, in milliseconds since `epoch`; -1 before the first read.
    last_read_ms: AtomicI64,
    epoch: tokio::time::Instant,
    reachable: AtomicBool,
    /// One reader of the log at a time, so changes are applied once and in order.
    reading: tokio::sync::Mutex<()>,
}

impl Replica {
    pub fn new(
        cache: &CacheSettings,
        settings: FollowSettings,
        metrics: Metrics,
        breaker: bool,
    ) -> Self {
        Replica {
            cache: AuthCache::new(cache),
            metrics,
            breaker,
            settings,
            applied: watch::channel(None).0,
            fanout: broadcast::channel(FANOUT_CAPACITY).0,
            wake: watch::channel(0).0,
            shutdown: watch::channel(false).0,
            last_read_ms: AtomicI64::new(-1),
            epoch: tokio::time::Instant::now(),
            reachable: AtomicBool::new(true),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    /// Asks the follower to read the log now (after a write on this replica).
    pub fn wake(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The newest position applied, if the follower has started.
    pub fn position(&self) -> Option<i64> {
        *self.applied.borrow()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LoggedChange>> {
        self.fanout.subscribe()
    }

    pub fn applied(&self) -> watch::Receiver<Option<i64>> {
        self.applied.subscribe()
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Ends every watch stream; the server calls this when shutdown begins.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Whether memory may still decide: the log was read within the maximum staleness.
    pub fn check_fresh(&self) -> Result<(), ServiceError> {
        let last = self.last_read_ms.load(Ordering::Relaxed);
        let max = i64::try_from(self.settings.max_staleness.as_millis()).unwrap_or(i64::MAX);
        if last >= 0 && self.now_ms().saturating_sub(last) <= max {
            return Ok(());
        }
        Err(ServiceError::Unavailable(
            "this replica cannot read the change log and its memory is older than the maximum staleness; retry".into(),
        ))
    }

    /// Fails fast while the database is known to be unreachable: the follower probes it in
    /// the background, so a call need not wait for a connect timeout to learn the same.
    pub fn check_reachable(&self) -> Result<(), ServiceError> {
        if self.reachable.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(ServiceError::Unavailable(
                "the database is unreachable from this replica; retry".into(),
            ))
        }
    }

    /// Notes that a call found the database unreachable; the follower's next read decides again.
    pub fn note_unreachable(&self) {
        // An SQLite file is not a server that can be away: a slow read or a queue for its one
        // connection under a burst of writes is load, and shedding it as an outage would
        // refuse calls that would have succeeded.
        if !self.breaker {
            return;
        }
        self.reachable.store(false, Ordering::Relaxed);
        self.metrics.change_log_read(None, false);
    }

    /// Notes a good read of the log, standing at `position`.
    fn note_read(&self, position: i64) {
        self.last_read_ms.store(self.now_ms(), Ordering::Relaxed);
        self.reachable.store(true, Ordering::Relaxed);
        self.metrics.change_log_read(Some(position), true);
    }

    pub fn lag(&self) -> Lag {
        let last = self.last_read_ms.load(Ordering::Relaxed);
        Lag {
            position: self.position(),
            since_last_read: (last >= 0).then(|| {
                Duration::from_millis(
                    u64::try_from(self.now_ms().saturating_sub(last)).unwrap_or(0),
                )
            }),
            database_reachable: self.reachable.load(Ordering::Relaxed),
        }
    }

    /// Waits until this replica has applied `position`, for at most `wait`.
    pub async fn wait_for(&self, position: i64, wait: Duration) -> Result<(), ServiceError> {
        let mut applied = self.applied.subscribe();
        self.wake();
        match tokio::time::timeout(wait, applied.wait_for(|p| p.is_some_and(|p| p >= position)))
            .await
        {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ServiceError::Unavailable(
                "this replica has not caught up with the requested revision yet; retry".into(),
            )),
        }
    }

    async fn apply(&self, change: &LoggedChange) {
        let seq = change.seq;
        match &change.change {
            // Nothing can be cached yet for a token just made.
            created @ Change::Token {
                what: TokenChange::Created,
                ..
            } => self.cache.note(StaleKey::of(created), seq),
            // The log carries the new state: a held entry takes it, so the replica that
            // recorded a first use does not read it back.
            Change::Application {
                token_id,
                name,
                state,
                conditions,
                ..
            } => {
                let key = AppKey::new(*token_id, name.as_str());
                let standing = AppStanding {
                    state: *state,
                    conditions: conditions.clone().map(Arc::new),
                };
                self.cache.changed_app(key, standing, seq)
            }
            other => self.cache.forget(StaleKey::of(other), seq),
        }
    }

    /// Reads the log after `position` until its end, applying and fanning out each change.
    /// Returns the new position, or `None` if the log could not be read.
    async fn read_from(&self, repo: &Repository, mut position: i64) -> Option<i64> {
        loop {
            let batch = match tokio::time::timeout(
                READ_TIMEOUT,
                repo.changes_after(None, position, READ_BATCH),
            )
            .await
            {
                Ok(Ok(batch)) => batch,
                Ok(Err(e)) => {
                    tracing::warn!(error = %chain(&e), "cannot read the change log; serving from memory within the maximum staleness");
                    self.note_unreachable();
                    return None;
                }
                Err(_) => {
                    tracing::warn!(
                        "reading the change log timed out; serving from memory within the maximum staleness"
                    );
                    self.note_unreachable();
                    return None;
                }
            };
            let full = batch.len() as u64 == READ_BATCH;
            for change in batch {
                self.apply(&change).await;
                position = change.seq;
                self.applied.send_replace(Some(position));
                // No receivers is fine: nobody is watching.
                let _ = self.fanout.send(Arc::new(change));
            }
            if !full {
                self.note_read(position);
                return Some(position);
            }
        }
    }

    /// Starts at the log's head: what came before is in the database that loads read.
    pub async fn start_at_head(&self, repo: &Repository) -> Result<(), ServiceError> {
        let head = repo.log_head().await?;
        self.applied.send_replace(Some(head));
        self.note_read(head);
        Ok(())
    }

    /// Reads what the log holds after this replica's position and applies it. A replica
    /// whose position fell behind the retained log cannot know what it missed: it forgets
    /// everything (checked when `check_horizon`). Returns whether the log was read.
    pub async fn catch_up(&self, repo: &Repository, check_horizon: bool) -> bool {
        let _one_at_a_time = self.reading.lock().await;
        let position = match self.position() {
            Some(position) => position,
            None => match self.start_at_head(repo).await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(error = %chain(&e), "cannot read the change log's head; retrying");
                    self.note_unreachable();
                    return false;
                }
            },
        };
        let horizon = if check_horizon {
            repo.compacted_through().await.ok()
        } else {
            None
        };
        let position = match horizon {
            Some(horizon) if position < horizon => {
                tracing::warn!(
                    position,
                    horizon,
                    "this replica fell behind the retained change log; forgetting every cached decision"
                );
                self.cache.forget_all();
                self.applied.send_replace(Some(horizon));
                horizon
            }
            _ => position,
        };
        self.read_from(repo, position).await.is_some()
    }

    /// Follows the log until `stop`: woken by writes here and notifications from other
    /// replicas, and polling as a safety net. A replica whose position fell behind the
    /// retained log cannot know what it missed, and forgets everything.
    pub async fn run_follower(
        self: Arc<Self>,
        repo: Repository,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut wake = self.wake.subscribe();
        let mut cut_off = true;
        let mut horizon_checked = tokio::time::Instant::now();
        loop {
            wake.borrow_and_update();
            // Falling behind the retained log takes a long outage or a paused process: look
            // at the horizon after a failed read and now and then, not on every poll.
            let check_horizon = cut_off || horizon_checked.elapsed() >= HORIZON_CHECK;
            if check_horizon {
                horizon_checked = tokio::time::Instant::now();
            }
            cut_off = !self.catch_up(&repo, check_horizon).await;
            tokio::select! {
                _ = wake.changed() => {}
                () = tokio::time::sleep(self.settings.poll) => {}
                () = &mut stop => return,
            }
        }
    }

    /// Listens for other replicas' appends (PostgreSQL) until `stop`, waking the follower.
    /// After a lost connection the follower reads what it missed from its position.
    pub async fn run_listener(
        self: Arc<Self>,
        repo: Repository,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            let mut listener = match repo.change_listener().await {
                Ok(Some(listener)) => listener,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %chain(&e), "cannot LISTEN for changes; polling meanwhile");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = &mut stop => return,
                    }
                }
            };
            loop {
                tokio::select! {
                    heard = listener.next() => match heard {
                        Ok(Heard::Appended) => self.wake(),
                        Ok(Heard::Reconnected) => {
                            tracing::info!("change listener reconnected; the follower reads what it missed");
                            self.wake();
                        }
                        Err(e) => {
                            tracing::warn!(error = %chain(&e), "change listener failed; polling meanwhile");
                            self.wake();
                            tokio::select! {
                                () = tokio::time::sleep(Duration::from_secs(1)) => break,
                                () = &mut stop => return,
                            }
                        }
                    },
                    () = &mut stop => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(breaker: bool) -> Replica {
        Replica::new(
            &CacheSettings::default(),
            FollowSettings::default(),
            Metrics::new(),
            breaker,
        )
    }

    #[test]
    fn only_a_database_server_opens_the_breaker() {
        let postgres = replica(true);
        postgres.note_unreachable();
        assert!(
            postgres.check_reachable().is_err(),
            "PostgreSQL away: fail fast"
        );
        let sqlite = replica(false);
        sqlite.note_unreachable();
        assert!(
            sqlite.check_reachable().is_ok(),
            "an SQLite file under load is not away"
        );
    }

    #[tokio::test]
    async fn memory_decides_only_after_a_read_and_within_the_staleness_bound() {
        let replica = replica(true);
        assert!(replica.check_fresh().is_err(), "nothing read yet");
        replica.note_read(7);
        assert!(replica.check_fresh().is_ok());
        assert!(replica.lag().database_reachable);
    }
}
