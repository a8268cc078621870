//! The hot path's memory: grants by secret digest (with brief negative entries) and
//! application states by (token, name). Entries do not expire by time: they are forgotten
//! when the change log says their key changed, and are exact as of the replica's position.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::future::Cache;
use uuid::Uuid;

use crate::domain::{AppStanding, SecretDigest, TokenGrant};
use crate::storage::Change;

/// Sizes of the caches, and how long an unknown secret is remembered as unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// Most tokens (known or unknown secrets) held.
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

/// A cached answer for a secret digest.
#[derive(Debug, Clone)]
pub(crate) enum CachedGrant {
    Known(Arc<TokenGrant>),
    Unknown,
}

struct GrantExpiry {
    negative_ttl: Duration,
}

impl moka::Expiry<SecretDigest, CachedGrant> for GrantExpiry {
    fn expire_after_create(
        &self,
        _: &SecretDigest,
        value: &CachedGrant,
        _: Instant,
    ) -> Option<Duration> {
        match value {
            CachedGrant::Known(_) => None,
            CachedGrant::Unknown => Some(self.negative_ttl),
        }
    }
}

pub(crate) type AppKey = (Uuid, String);

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
    grants: Cache<SecretDigest, CachedGrant>,
    apps: Cache<AppKey, AppStanding>,
    recent: Arc<Mutex<Recent>>,
}

impl AuthCache {
    pub fn new(settings: &CacheSettings) -> Self {
        AuthCache {
            grants: Cache::builder()
                .max_capacity(settings.max_tokens)
                .expire_after(GrantExpiry {
                    negative_ttl: settings.negative_ttl,
                })
                .support_invalidation_closures()
                .build(),
            apps: Cache::builder().max_capacity(settings.max_apps).build(),
            recent: Arc::default(),
        }
    }

    pub fn grants(&self) -> &Cache<SecretDigest, CachedGrant> {
        &self.grants
    }

    pub fn apps(&self) -> &Cache<AppKey, AppStanding> {
        &self.apps
    }

    /// After a grant was loaded while the replica stood at `loaded_at`: forgets it again if
    /// its token or owner changed since, so the next call loads it afresh.
    pub async fn drop_if_stale_grant(
        &self,
        digest: &SecretDigest,
        grant: &CachedGrant,
        loaded_at: i64,
    ) {
        let CachedGrant::Known(g) = grant else { return };
        let stale = {
            let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.changed_since(&StaleKey::Token(g.token_id), loaded_at)
                || g.owner_id
                    .is_some_and(|o| recent.changed_since(&StaleKey::Owner(o), loaded_at))
        };
        if stale {
            self.grants.invalidate(digest).await;
        }
    }

    /// After an application state was loaded at `loaded_at`: forgets it again if it changed since.
    pub async fn drop_if_stale_app(&self, key: &AppKey, loaded_at: i64) {
        let stale = {
            let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.changed_since(&StaleKey::App(key.0, key.1.clone()), loaded_at)
        };
        if stale {
            self.apps.invalidate(key).await;
        }
    }

    /// Keeps an application state loaded at `loaded_at` (unless it changed since).
    pub async fn keep_app(&self, key: AppKey, state: AppStanding, loaded_at: i64) {
        self.apps.insert(key.clone(), state).await;
        self.drop_if_stale_app(&key, loaded_at).await;
    }

    /// Notes that `key` changed at log position `position`, so loads under way keep nothing.
    pub fn note(&self, key: StaleKey, position: i64) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(key, position);
    }

    /// Forgets what `key` made stale, as of log position `position`.
    pub async fn forget(&self, key: StaleKey, position: i64) {
        self.note(key.clone(), position);
        self.forget_now(key).await;
    }

    /// An application's state changed at `position`: a held entry takes the new state and
    /// conditions (the log carries both, exact).
    pub async fn changed_app(&self, key: AppKey, state: AppStanding, position: i64) {
        self.note(StaleKey::App(key.0, key.1.clone()), position);
        if self.apps.contains_key(&key) {
            self.apps.insert(key, state).await;
        }
    }

    /// Forgets at once what a write on this replica made stale (the log follower will note it
    /// with its position shortly).
    pub async fn forget_now(&self, key: StaleKey) {
        match key {
            StaleKey::Token(id) => self.forget_grants_where(move |g| g.token_id == id),
            StaleKey::Owner(id) => self.forget_grants_where(move |g| g.owner_id == Some(id)),
            StaleKey::App(token, name) => self.apps.invalidate(&(token, name)).await,
        }
    }

    /// Forgets one secret's entry (a token was made with it: no stale "unknown" may remain).
    pub async fn forget_secret(&self, digest: &SecretDigest) {
        self.grants.invalidate(digest).await;
    }

    /// Forgets everything: when the replica's position fell behind the retained log.
    pub fn forget_all(&self) {
        self.grants.invalidate_all();
        self.apps.invalidate_all();
    }

    fn forget_grants_where(&self, matches: impl Fn(&TokenGrant) -> bool + Send + Sync + 'static) {
        let predicate = move |_: &SecretDigest, v: &CachedGrant| matches!(v, CachedGrant::Known(g) if matches(g));
        if self.grants.invalidate_entries_if(predicate).is_err() {
            // Only fails if closures were not enabled at build time; stay correct regardless.
            self.grants.invalidate_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_that_straddles_a_change_is_stale_and_one_after_it_is_not() {
        let mut recent = Recent::default();
        let token = StaleKey::Token(Uuid::new_v4());
        recent.note(token.clone(), 10);
        assert!(recent.changed_since(&token, 9));
        assert!(!recent.changed_since(&token, 10));
        assert!(!recent.changed_since(&StaleKey::Owner(Uuid::new_v4()), 0));
    }

    #[test]
    fn past_capacity_old_loads_count_as_stale() {
        let mut recent = Recent::default();
        for i in 0..(RECENT_CAPACITY as i64 + 10) {
            recent.note(StaleKey::Token(Uuid::new_v4()), i + 1);
        }
        assert!(recent.changed_since(&StaleKey::Owner(Uuid::new_v4()), 5));
        assert!(!recent.changed_since(
            &StaleKey::Owner(Uuid::new_v4()),
            RECENT_CAPACITY as i64 + 10
        ));
    }
}
