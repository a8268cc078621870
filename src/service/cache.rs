//! The hot path's memory: grants by secret, unknown secrets briefly, and application
//! states by (token, name). Entries do not expire by time: they are forgotten when the change
//! log says their key changed, and are exact as of the replica's position. (Only an unknown
//! secret is remembered for a while, so guesses cannot hammer the database.)
//!
//! The maps are `quick_cache`'s: sharded, bounded by size, no background work, and looked up
//! by a borrowed key, so a warm Authorize allocates nothing here. Secrets are looked up by a
//! keyed hash, not their SHA-256 digest (`grants.rs` says why that is safe).
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quick_cache::Equivalent;
use quick_cache::sync::Cache;
use uuid::Uuid;

use super::grants::{Grants, Holder, Loading, SecretHasher, SecretKey};
use crate::domain::{AppStanding, Secret, TokenGrant};
use crate::storage::Change;

/// Sizes of the caches, and how long an unknown secret is remembered as unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Most tokens held (and, apart, most unknown secrets held).
    pub max_tokens: u64,
    /// Most (token, application) states held.
    pub max_apps: u64,
    /// How long an unknown secret is remembered as unknown, so guesses cannot hammer the
    /// database. (A new token's secret is random: no creation can make a cached guess stale.)
    pub negative_ttl: Duration,
}

impl CacheSettings {
    pub const DEFAULT_MAX_TOKENS: u64 = 100_000;
    pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(2);
    /// Application states held per token held.
    const APPS_PER_TOKEN: u64 = 10;

    /// Caches for `max_tokens` tokens and their applications.
    pub fn for_tokens(max_tokens: u64, negative_ttl: Duration) -> Self {
        CacheSettings {
            max_tokens,
            max_apps: max_tokens.saturating_mul(Self::APPS_PER_TOKEN),
            negative_ttl,
        }
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self::for_tokens(Self::DEFAULT_MAX_TOKENS, Self::DEFAULT_NEGATIVE_TTL)
    }
}

/// A cached answer for a presented secret.
#[derive(Debug, Clone)]
pub(crate) enum CachedGrant {
    Known(Arc<TokenGrant>),
    Unknown,
}

/// The application cache's key: a token and one of its names. The name is boxed (16 bytes,
/// not a `String`'s 24); lookups use `AppRef`, which borrows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct AppKey {
    token: Uuid,
    name: Box<str>,
}

impl AppKey {
    pub fn new(token: Uuid, name: &str) -> Self {
        AppKey {
            token,
            name: name.into(),
        }
    }

    pub fn token(&self) -> Uuid {
        self.token
    }

    pub fn into_name(self) -> String {
        self.name.into()
    }
}

/// An `AppKey` without the allocation: hashes as one (same fields, same order).
#[derive(Debug, Clone, Copy, Hash)]
pub(crate) struct AppRef<'a> {
    pub token: Uuid,
    pub name: &'a str,
}

impl Equivalent<AppKey> for AppRef<'_> {
    fn equivalent(&self, key: &AppKey) -> bool {
        self.token == key.token && self.name == &*key.name
    }
}

/// What a change makes stale.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum StaleKey {
    Token(Uuid),
    Owner(Uuid),
    App(Uuid, String),
}

impl StaleKey {
    /// The key a logged change makes stale.
    pub fn of(change: &Change) -> StaleKey {
        match change {
            Change::Token { token_id, .. } => StaleKey::Token(*token_id),
            Change::Member { member_id, .. } => StaleKey::Owner(*member_id),
            Change::Application { token_id, name, .. } => {
                StaleKey::App(*token_id, name.as_str().to_owned())
            }
        }
    }
}

/// How many recent invalidations are remembered for loads that were under way meanwhile.
const RECENT_CAPACITY: usize = 16_384;

/// The newest position at which each recently changed key was forgotten. A load that began
/// at position `p` and finds its key forgotten after `p` may hold a value from before the
/// change, so it is not kept. Past capacity the oldest are dropped and `floor` says how far.
#[derive(Default)]
struct Recent {
    newest: HashMap<StaleKey, i64>,
    order: VecDeque<(i64, StaleKey)>,
    floor: i64,
}

impl Recent {
    fn note(&mut self, key: StaleKey, position: i64) {
        self.newest.insert(key.clone(), position);
        self.order.push_back((position, key));
        while self.order.len() > RECENT_CAPACITY {
            if let Some((old, key)) = self.order.pop_front() {
                self.floor = self.floor.max(old);
                if self.newest.get(&key) == Some(&old) {
                    self.newest.remove(&key);
                }
            }
        }
    }

    fn changed_since(&self, key: &StaleKey, since: i64) -> bool {
        since < self.floor || self.newest.get(key).is_some_and(|&at| at > since)
    }
}

#[derive(Clone)]
pub(crate) struct AuthCache {
    hasher: SecretHasher,
    grants: Arc<Grants>,
    /// Unknown secrets, until when each is known to be unknown. Apart from the grants, so a
    /// flood of guesses evicts other guesses, never a real token.
    unknown: Arc<Cache<SecretKey, Instant>>,
    negative_ttl: Duration,
    apps: Arc<Cache<AppKey, AppStanding>>,
    recent: Arc<Mutex<Recent>>,
}

fn items(items: u64) -> usize {
    usize::try_from(items.max(1)).unwrap_or(usize::MAX)
}

fn bounded<K: Eq + std::hash::Hash, V: Clone>(items: u64) -> Arc<Cache<K, V>> {
    Arc::new(Cache::new(self::items(items)))
}

impl AuthCache {
    pub fn new(settings: &CacheSettings) -> Self {
        AuthCache {
            hasher: SecretHasher::random(),
            grants: Arc::new(Grants::new(items(settings.max_tokens))),
            unknown: bounded(settings.max_tokens),
            negative_ttl: settings.negative_ttl,
            apps: bounded(settings.max_apps),
            recent: Arc::default(),
        }
    }

    /// A presented secret's key in these caches.
    pub fn key(&self, secret: &Secret) -> SecretKey {
        self.hasher.key(secret)
    }

    /// The cached answer for a secret, if any: a known token, or a secret recently found unknown.
    pub fn grant(&self, key: &SecretKey) -> Option<CachedGrant> {
        if let Some(grant) = self.grants.get(key) {
            return Some(CachedGrant::Known(grant));
        }
        self.known_unknown(key).then_some(CachedGrant::Unknown)
    }

    fn known_unknown(&self, key: &SecretKey) -> bool {
        self.unknown
            .get(key)
            .is_some_and(|until| Instant::now() < until)
    }

    /// The cached answer for a secret, or what `load` finds (then kept). Concurrent misses of
    /// one secret share one load: the others wait for it.
    pub async fn grant_or_load<E>(
        &self,
        key: SecretKey,
        load: impl Future<Output = Result<CachedGrant, E>>,
    ) -> Result<CachedGrant, E> {
        let loading: Loading<'_> = match self.grants.get_or_loading(&key).await {
            Ok(grant) => return Ok(CachedGrant::Known(grant)),
            Err(loading) => loading,
        };
        // A load that found the secret unknown noted it before letting the waiters go.
        if self.known_unknown(&key) {
            return Ok(CachedGrant::Unknown);
        }
        let loaded = load.await?;
        match &loaded {
            CachedGrant::Known(grant) => self.grants.keep(loading, key, Arc::clone(grant)),
            CachedGrant::Unknown => {
                self.unknown.insert(key, Instant::now() + self.negative_ttl);
                drop(loading);
            }
        }
        Ok(loaded)
    }

    /// The cached state of a token's application, if any.
    pub fn app(&self, key: AppRef<'_>) -> Option<AppStanding> {
        self.apps.get(&key)
    }

    /// The state of `key`, or what `load` finds (then kept). Concurrent misses share one load.
    pub async fn app_or_load<E>(
        &self,
        key: &AppKey,
        load: impl Future<Output = Result<AppStanding, E>>,
    ) -> Result<AppStanding, E> {
        match self.apps.get_value_or_guard_async(key).await {
            Ok(state) => Ok(state),
            Err(guard) => {
                let state = load.await?;
                let _ = guard.insert(state.clone());
                Ok(state)
            }
        }
    }

    /// After a grant was loaded while the replica stood at `loaded_at`: forgets it again if
    /// its token or owner changed since, so the next call loads it afresh.
    pub fn drop_if_stale_grant(&self, key: &SecretKey, grant: &CachedGrant, loaded_at: i64) {
        let CachedGrant::Known(g) = grant else { return };
        let stale = {
            let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.changed_since(&StaleKey::Token(g.token_id), loaded_at)
                || g.owner_id
                    .is_some_and(|o| recent.changed_since(&StaleKey::Owner(o), loaded_at))
        };
        if stale {
            self.grants.remove(key);
        }
    }

    /// After an application state was loaded at `loaded_at`: forgets it again if it changed since.
    pub fn drop_if_stale_app(&self, key: &AppKey, loaded_at: i64) {
        let stale = {
            let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.changed_since(&StaleKey::App(key.token, key.name.to_string()), loaded_at)
        };
        if stale {
            self.apps.remove(key);
        }
    }

    /// Keeps an application state loaded at `loaded_at` (unless it changed since).
    pub fn keep_app(&self, key: AppKey, state: AppStanding, loaded_at: i64) {
        self.apps.insert(key.clone(), state);
        self.drop_if_stale_app(&key, loaded_at);
    }

    /// Notes that `key` changed at log position `position`, so loads under way keep nothing.
    pub fn note(&self, key: StaleKey, position: i64) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(key, position);
    }

    /// Forgets what `key` made stale, as of log position `position`.
    pub fn forget(&self, key: StaleKey, position: i64) {
        self.note(key.clone(), position);
        self.forget_now(key);
    }

    /// An application's state changed at `position`: a held entry takes the new state and
    /// conditions (the log carries both, exact).
    pub fn changed_app(&self, key: AppKey, state: AppStanding, position: i64) {
        self.note(StaleKey::App(key.token, key.name.to_string()), position);
        // Only if held: a state nobody asked for here need not take room.
        let _ = self.apps.replace(key, state, true);
    }

    /// Forgets at once what a write on this replica made stale (the log follower will note it
    /// with its position shortly).
    pub fn forget_now(&self, key: StaleKey) {
        match key {
            // The index finds the holder's entries: no scan of the whole cache.
            StaleKey::Token(id) => {
                self.grants.forget(Holder::Token(id));
            }
            StaleKey::Owner(id) => {
                self.grants.forget(Holder::Owner(id));
            }
            StaleKey::App(token, name) => {
                self.apps.remove(&AppRef { token, name: &name });
            }
        }
    }

    /// Forgets one secret's entry (a token was made with it: no stale "unknown" may remain).
    pub fn forget_secret(&self, secret: &Secret) {
        let key = self.key(secret);
        self.unknown.remove(&key);
        self.grants.remove(&key);
    }

    /// Forgets everything: when the replica's position fell behind the retained log.
    pub fn forget_all(&self) {
        self.grants.clear();
        self.unknown.clear();
        self.apps.clear();
    }
}

#[cfg(test)]
mod tests;
