//! Last-used times gathered in memory and flushed in batches: at most one write per
//! token and per (token, application) each interval, and a final flush on shutdown.
//!
//! Every allowed Authorize records here, so the map is split into shards by token id:
//! concurrent calls for different tokens rarely meet on one lock, and no lock is held across
//! an await. An application name is copied into a `String` only the first time a token uses
//! it in an interval; later calls overwrite the time in place.
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::storage::{Repository, StorageError};

/// A power of two well above the cores a replica runs on, so two calls rarely share a shard.
const SHARDS: usize = 64;

/// What one token did in the current interval.
#[derive(Default)]
struct TokenUse {
    /// Set only by allowed calls: a refused call does not count as the token's use.
    at: Option<DateTime<Utc>>,
    apps: HashMap<String, DateTime<Utc>>,
}

/// One shard, on its own cache line so neighbouring locks do not bounce together.
#[derive(Default)]
#[repr(align(128))]
struct Shard(Mutex<HashMap<Uuid, TokenUse>>);

impl Shard {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, TokenUse>> {
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

    pub fn record(&self, token_id: Uuid, app: Option<&str>, token_used: bool, at: DateTime<Utc>) {
        if !token_used && app.is_none() {
            return;
        }
        let mut shard = self.shard(token_id).lock();
        let entry = shard.entry(token_id).or_default();
        if token_used {
            entry.at = Some(at);
        }
        if let Some(app) = app {
            match entry.apps.get_mut(app) {
                Some(seen) => *seen = at,
                None => {
                    entry.apps.insert(app.to_owned(), at);
                }
            }
        }
    }

    /// Writes what was gathered. On failure the times are kept for the next flush (a time
    /// recorded meanwhile is newer and wins).
    pub async fn flush(&self, repo: &Repository) -> Result<(), StorageError> {
        let mut tokens = Vec::new();
        let mut apps = Vec::new();
        for shard in &self.shards[..] {
            let taken = std::mem::take(&mut *shard.lock());
            for (id, used) in taken {
                if let Some(at) = used.at {
                    tokens.push((id, at));
                }
                apps.extend(used.apps.into_iter().map(|(name, at)| ((id, name), at)));
            }
        }
        if let Err(e) = repo.write_last_used(&tokens, &apps).await {
            for (id, at) in tokens {
                let mut shard = self.shard(id).lock();
                shard.entry(id).or_default().at.get_or_insert(at);
            }
            for ((id, name), at) in apps {
                let mut shard = self.shard(id).lock();
                shard.entry(id).or_default().apps.entry(name).or_insert(at);
            }
            return Err(e);
        }
        Ok(())
    }
}
