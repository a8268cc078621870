//! Last-used times and evidence gathered in memory and flushed in batches: at most one write
//! per token and per (token, application) each interval, and a final flush on shutdown.
//!
//! Every Authorize that reaches an application records here, so the maps are split into
//! shards by token id: concurrent calls for different tokens rarely meet on one lock, and no
//! lock is held across an await. Each shard keeps two flat maps, tokens and (token, name)
//! pairs, rather than a map of maps: with 100,000 tokens in use a map per token cost about
//! 490 bytes a token, the flat pair about 190. A name is copied only the first time a token
//! uses it in an interval (the lookup borrows it); later calls update the entry in place.
//! Counters are added to the stored ones at flush, so replicas' counts add up and a failed
//! flush loses nothing.
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use hashbrown::HashMap;
use uuid::Uuid;

use super::cache::{AppKey, AppRef};
use crate::domain::Decision;
use crate::storage::{AppUse, Repository, StorageError};

/// A power of two well above the cores a replica runs on, so two calls rarely share a shard.
const SHARDS: usize = 64;

/// What one application did under one token in the current interval.
#[derive(Debug, Clone, Copy)]
struct AppSeen {
    at: DateTime<Utc>,
    refused: u64,
    allowed: u64,
    client: Option<IpAddr>,
}

impl AppSeen {
    /// Folds in what an earlier interval gathered (a flush that failed): counts add, the
    /// newer time and address win.
    fn absorb(&mut self, older: AppSeen) {
        self.refused += older.refused;
        self.allowed += older.allowed;
        if older.at > self.at {
            self.at = older.at;
            self.client = older.client.or(self.client);
        } else if self.client.is_none() {
            self.client = older.client;
        }
    }
}

/// What the tokens of one shard did in the current interval.
#[derive(Default)]
struct Gathered {
    /// When each token was last allowed: a refused call does not count as the token's use.
    tokens: HashMap<Uuid, DateTime<Utc>>,
    apps: HashMap<AppKey, AppSeen>,
}

impl Gathered {
    fn token_used(&mut self, token_id: Uuid, at: DateTime<Utc>) {
        self.tokens
            .entry(token_id)
            .and_modify(|newer| *newer = (*newer).max(at))
            .or_insert(at);
    }

    fn app_seen(&mut self, token: Uuid, name: &str, seen: AppSeen) {
        match self.apps.get_mut(&AppRef { token, name }) {
            Some(existing) => {
                let older = *existing;
                *existing = seen;
                existing.absorb(older);
            }
            None => {
                self.apps.insert(AppKey::new(token, name), seen);
            }
        }
    }
}

/// One shard, on its own cache line so neighbouring locks do not bounce together.
#[derive(Default)]
#[repr(align(128))]
struct Shard(Mutex<Gathered>);

impl Shard {
    fn lock(&self) -> MutexGuard<'_, Gathered> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct LastUsed {
    shards: Box<[Shard]>,
}

impl Default for LastUsed {
    fn default() -> Self {
        LastUsed {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

impl LastUsed {
    fn shard(&self, token_id: Uuid) -> &Shard {
        // Both halves, so random bits decide whichever UUID version the id is.
        let (high, low) = token_id.as_u64_pair();
        &self.shards[((high ^ low) as usize) % SHARDS]
    }

    /// Notes a decision about `app` on a token: the token's use if allowed, and the
    /// application's last sight, refused attempt (Pending or Denied) or allowed call, and
    /// client address.
    pub fn record(
        &self,
        token_id: Uuid,
        app: &str,
        decision: &Decision,
        client: Option<IpAddr>,
        at: DateTime<Utc>,
    ) {
        let allowed = u64::from(decision.is_allow());
        let refused = u64::from(matches!(decision, Decision::Pending | Decision::Denied));
        let mut shard = self.shard(token_id).lock();
        if allowed == 1 {
            shard.token_used(token_id, at);
        }
        let seen = AppSeen {
            at,
            refused,
            allowed,
            client,
        };
        // A call's own time is the newest, so it replaces and the older counts fold in.
        shard.app_seen(token_id, app, seen);
    }

    /// Writes what was gathered. On failure it is kept for the next flush, merged with what
    /// was recorded meanwhile.
    pub async fn flush(&self, repo: &Repository) -> Result<(), StorageError> {
        let mut tokens = Vec::new();
        let mut apps = Vec::new();
        for shard in &self.shards[..] {
            let taken = std::mem::take(&mut *shard.lock());
            tokens.extend(taken.tokens);
            apps.extend(taken.apps.into_iter().map(|(key, seen)| AppUse {
                token_id: key.token(),
                name: key.into_name(),
                at: seen.at,
                refused: seen.refused,
                allowed: seen.allowed,
                client: seen.client,
            }));
        }
        if let Err(e) = repo.write_last_used(&tokens, &apps).await {
            for (id, at) in tokens {
                self.shard(id).lock().token_used(id, at);
            }
            for app in apps {
                let older = AppSeen {
                    at: app.at,
                    refused: app.refused,
                    allowed: app.allowed,
                    client: app.client,
                };
                let mut shard = self.shard(app.token_id).lock();
                match shard.apps.get_mut(&AppRef {
                    token: app.token_id,
                    name: &app.name,
                }) {
                    Some(newer) => newer.absorb(older),
                    None => {
                        shard
                            .apps
                            .insert(AppKey::new(app.token_id, &app.name), older);
                    }
                }
            }
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Privilege;

    #[test]
    fn counts_add_and_the_newest_address_wins() {
        let used = LastUsed::default();
        let token = Uuid::new_v4();
        let t0 = Utc::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        used.record(token, "x", &Decision::Pending, Some(a), t0);
        used.record(token, "x", &Decision::Denied, None, t0);
        let allow = Decision::Allow {
            effective: Privilege::ReadOnly,
        };
        used.record(token, "x", &allow, Some(b), t0);
        let shard = used.shard(token).lock();
        let seen = shard.apps[&AppKey::new(token, "x")];
        assert_eq!((seen.refused, seen.allowed), (2, 1));
        assert_eq!(seen.client, Some(b));
        assert_eq!(shard.tokens.get(&token), Some(&t0));
    }
}
