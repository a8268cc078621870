//! The hot path's memory: grants by secret digest (with brief negative entries) and
//! application states by (token, name). Writes on this replica invalidate at once.
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use uuid::Uuid;

use crate::domain::{AppState, SecretDigest, TokenGrant};

/// Sizes and lifetimes of the caches.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Most tokens (known or unknown secrets) held.
    pub max_tokens: u64,
    /// Most (token, application) states held.
    pub max_apps: u64,
    /// How long a known token or an application state may be served from memory. Local
    /// writes invalidate at once; this bounds how long a change made elsewhere can go unseen.
    pub ttl: Duration,
    /// How long an unknown secret is remembered as unknown, so guesses cannot hammer the database.
    pub negative_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_tokens: 100_000,
            max_apps: 1_000_000,
            ttl: Duration::from_secs(1),
            negative_ttl: Duration::from_secs(2),
        }
    }
}

/// A cached answer for a secret digest.
#[derive(Debug, Clone)]
pub(crate) enum CachedGrant {
    Known(Arc<TokenGrant>),
    Unknown,
}

struct GrantExpiry {
    ttl: Duration,
    negative_ttl: Duration,
}

impl moka::Expiry<SecretDigest, CachedGrant> for GrantExpiry {
    fn expire_after_create(
        &self,
        _: &SecretDigest,
        value: &CachedGrant,
        _: Instant,
    ) -> Option<Duration> {
        Some(match value {
            CachedGrant::Known(_) => self.ttl,
            CachedGrant::Unknown => self.negative_ttl,
        })
    }
}

pub(crate) type AppKey = (Uuid, String);

#[derive(Clone)]
pub(crate) struct AuthCache {
    pub grants: Cache<SecretDigest, CachedGrant>,
    pub apps: Cache<AppKey, AppState>,
}

impl AuthCache {
    pub fn new(settings: &CacheSettings) -> Self {
        AuthCache {
            grants: Cache::builder()
                .max_capacity(settings.max_tokens)
                .expire_after(GrantExpiry {
                    ttl: settings.ttl,
                    negative_ttl: settings.negative_ttl,
                })
                .support_invalidation_closures()
                .build(),
            apps: Cache::builder()
                .max_capacity(settings.max_apps)
                .time_to_live(settings.ttl)
                .build(),
        }
    }

    /// Forgets a token after it changed (retire, update, promote).
    pub fn forget_token(&self, token_id: Uuid) {
        self.forget_grants_where(move |g| g.token_id == token_id);
    }

    /// Forgets a member's user tokens after their role changed or they were removed.
    pub fn forget_owner(&self, member_id: Uuid) {
        self.forget_grants_where(move |g| g.owner_id == Some(member_id));
    }

    pub async fn forget_app(&self, token_id: Uuid, name: &str) {
        self.apps.invalidate(&(token_id, name.to_owned())).await;
    }

    /// Forgets everything: after a replica may have missed invalidations.
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
