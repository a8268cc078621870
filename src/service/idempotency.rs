//! Idempotent CreateToken (AIP-155 `request_id`): a retry with the same key by the same
//! calling token creates nothing more.
//!
//! The secret must never reach the database, so the first response (secret included) is
//! kept only in this replica's memory, and only as long as a client plausibly retries one
//! call: `SECRET_WINDOW` (10 minutes), at most `MAX_REMEMBERED` (10,000) of them, about 2 MiB.
//! The database keeps the key, a digest of the request and the token id, in the create's own
//! transaction, for `WINDOW` (24 hours): a retry that reaches another replica, this one after
//! a restart, or this one after the secret was let go, is told which token the key made
//! (ALREADY_EXISTS) instead of making a second one.
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use moka::future::Cache;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::tokens::NewTokenRequest;
use super::{Service, ServiceError, TokenView};
use crate::domain::{Caller, Reason, Secret};
use crate::storage::{CreateRequest, StorageError};

/// How long a request_id is remembered (in the database): a retry within it creates nothing.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);
/// `WINDOW` as a span of time; computed when compiling, so it cannot fail when serving.
const WINDOW_SPAN: chrono::TimeDelta = match chrono::TimeDelta::try_seconds(WINDOW.as_secs() as i64)
{
    Some(span) => span,
    None => panic!("WINDOW fits a TimeDelta"),
};
/// How long this replica keeps a first response, secret included, for a retry to get it again.
/// A retry comes seconds or minutes after a call that timed out; a live secret held in memory
/// for a day would be a day's worth of secrets for a heap dump to show.
pub const SECRET_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Most first responses kept in memory (about 200 bytes each with the cache's own); past it,
/// the least used are let go and their retries get ALREADY_EXISTS, as on another replica.
pub const MAX_REMEMBERED: u64 = 10_000;

/// What the first call with a key made. Its `Debug` shows the token id only.
#[derive(Clone)]
pub(super) struct Created {
    /// SHA-256 of the request's fields (see `fingerprint`).
    fingerprint: [u8; 32],
    token_id: Uuid,
    secret: Secret,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

/// First responses by (calling token, request_id).
pub(super) type CreatedCache = Cache<(Uuid, Uuid), Created>;

pub(super) fn new_cache() -> CreatedCache {
    Cache::builder()
        .max_capacity(MAX_REMEMBERED)
        .time_to_live(SECRET_WINDOW)
        .build()
}

/// A digest of the fields that make the token, so a reused key with another body is told apart.
fn fingerprint(req: &NewTokenRequest) -> [u8; 32] {
    let mut text = format!(
        "{}\n{}\n{}\n{}",
        req.token_type.as_str(),
        req.privilege.as_str(),
        req.default_app_state.as_str(),
        req.description.as_str()
    );
    // Only when set, so the fingerprints of requests without ranges stay as they were.
    if let Some(ranges) = req.bound_ranges.to_stored() {
        text.push('\n');
        text.push_str(&ranges);
    }
    if let Some(at) = req.expire_time {
        text.push_str(&format!("\nexpires {}", at.timestamp_micros()));
    }
    Sha256::digest(text.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn different_request() -> ServiceError {
    ServiceError::invalid(
        "request_id",
        "was already used for a different CreateToken request; use a new request_id for a new token",
    )
}

impl Service {
    /// CreateToken with a request_id: see the module's documentation.
    pub(super) async fn create_token_once(
        &self,
        caller: &Caller,
        req: NewTokenRequest,
        request_id: Uuid,
    ) -> Result<(TokenView, Secret), ServiceError> {
        let fingerprint = fingerprint(&req);
        // Concurrent retries of one key on this replica wait for the first: one create.
        let created = self
            .created
            .try_get_with(
                (caller.token_id, request_id),
                self.create_remembered(caller, req, request_id, fingerprint),
            )
            .await
            .map_err(|e: Arc<ServiceError>| (*e).clone())?;
        if created.fingerprint != fingerprint {
            return Err(different_request());
        }
        let token = self
            .repo
            .token(caller.account_id, created.token_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("token", created.token_id))?;
        Ok((self.view(token).await?, created.secret))
    }

    async fn create_remembered(
        &self,
        caller: &Caller,
        req: NewTokenRequest,
        request_id: Uuid,
        fingerprint: [u8; 32],
    ) -> Result<Created, ServiceError> {
        let stored = hex(&fingerprint);
        let now = self.now();
        let since = now - WINDOW_SPAN;
        self.refuse_done(caller, request_id, &stored, since).await?;
        let request = CreateRequest {
            caller_token_id: caller.token_id,
            request_id,
            fingerprint: stored.clone(),
            expired_before: since,
        };
        match self.create_new_token(caller, req, Some(&request)).await {
            Ok((view, secret)) => Ok(Created {
                fingerprint,
                token_id: view.token.id,
                secret,
            }),
            // Another replica recorded the key between our check and our write.
            Err(e) if e.is_conflict() => {
                self.refuse_done(caller, request_id, &stored, since).await?;
                Err(StorageError::Conflict.into())
            }
            Err(e) => Err(e),
        }
    }

    /// Refuses a key the database says was used already (by another replica, or before a restart).
    async fn refuse_done(
        &self,
        caller: &Caller,
        request_id: Uuid,
        fingerprint: &str,
        since: chrono::DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        match self
            .repo
            .created_by_request(caller.token_id, request_id, since)
            .await?
        {
            None => Ok(()),
            Some((stored, _)) if stored != fingerprint => Err(different_request()),
            Some((_, token_id)) => Err(ServiceError::AlreadyExists {
                reason: Reason::RequestAlreadyDone,
                message: format!(
                    "request_id {request_id} already created token {token_id}; its secret was returned to that call and cannot be shown again here: use that token, or retire it and create another with a new request_id"
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_held_first_response_never_shows_its_secret_in_debug() {
        let secret = Secret::generate();
        let created = Created {
            fingerprint: [7; 32],
            token_id: Uuid::new_v4(),
            secret: secret.clone(),
        };
        let cache = new_cache();
        cache
            .insert((Uuid::new_v4(), Uuid::new_v4()), created.clone())
            .await;
        for shown in [format!("{created:?}"), format!("{cache:?}")] {
            assert!(!shown.contains(secret.expose()), "{shown}");
            assert!(shown.contains(&created.token_id.to_string()), "{shown}");
        }
    }
}
