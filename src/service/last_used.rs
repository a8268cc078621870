//! Last-used times gathered in memory and flushed in batches: at most one write per
//! token and per (token, application) each interval, and a final flush on shutdown.
use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::cache::AppKey;
use crate::storage::{Repository, StorageError};

#[derive(Default)]
struct Pending {
    tokens: HashMap<Uuid, DateTime<Utc>>,
    apps: HashMap<AppKey, DateTime<Utc>>,
}

#[derive(Default)]
pub(crate) struct LastUsed {
    pending: Mutex<Pending>,
}

impl LastUsed {
    pub fn record(&self, token_id: Uuid, app: Option<&str>, token_used: bool, at: DateTime<Utc>) {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if token_used {
            pending.tokens.insert(token_id, at);
        }
        if let Some(app) = app {
            pending.apps.insert((token_id, app.to_owned()), at);
        }
    }

    /// Writes what was gathered. On failure the times are kept for the next flush.
    pub async fn flush(&self, repo: &Repository) -> Result<(), StorageError> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let tokens: Vec<_> = taken.tokens.into_iter().collect();
        let apps: Vec<_> = taken.apps.into_iter().collect();
        if let Err(e) = repo.write_last_used(&tokens, &apps).await {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for (id, at) in tokens {
                pending.tokens.entry(id).or_insert(at);
            }
            for (key, at) in apps {
                pending.apps.entry(key).or_insert(at);
            }
            return Err(e);
        }
        Ok(())
    }
}
