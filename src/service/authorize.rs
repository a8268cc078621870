//! Authorize, and the same decision applied to callers of the management services.
//!
//! Warm, a decision is two memory lookups. Cold, one indexed query fetches the token,
//! its owner's role and the application's state together; a new application name adds
//! one transaction. Concurrent misses for one key share one load. Memory decides only
//! while the replica has read the change log within the maximum staleness; a cold call
//! while the database is known to be unreachable fails at once.
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use crate::domain::{
    AppName, AppStanding, Call, Caller, Decision, Privilege, Secret, SecretDigest, TokenGrant,
    decide_with,
};
use crate::storage::{RecordOutcome, StorageError};

use super::cache::{AppKey, AppRef, CachedGrant};
use super::grants::SecretKey;
use super::{Service, ServiceError};
use crate::metrics::CacheName;

/// What a caller presents: a secret and an application name, from an address.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub secret: Secret,
    pub app: AppName,
    /// The client's address, when known (the peer, or a trusted proxy's forwarded address).
    pub client: Option<IpAddr>,
}

/// A decision and, when the token was found, what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeOutcome {
    pub decision: Decision,
    pub grant: Option<Arc<TokenGrant>>,
    /// When the application's approval ends (its conditions' `until`), if it decided.
    pub approval_ends: Option<DateTime<Utc>>,
}

impl AuthorizeOutcome {
    fn refused(decision: Decision, grant: Option<Arc<TokenGrant>>) -> Self {
        AuthorizeOutcome {
            decision,
            grant,
            approval_ends: None,
        }
    }
}

/// Who presented the credentials being judged, which decides what the judgement records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presented {
    /// A caller presented them now: a name's first use, the last-used time and a rotated-out
    /// secret's use after its overlap are recorded.
    Now,
    /// The server judges again what a caller presented earlier (an open stream, on a change
    /// or at a deadline): nothing is recorded, since the holder presented nothing new.
    Earlier,
}

/// Why an application state could not be loaded into the cache.
#[derive(Debug)]
enum AppLoadError {
    LimitReached,
    /// The token stopped being usable between its lookup and the name's recording.
    Refused(Decision),
    Storage(StorageError),
}

impl Service {
    /// Decides one request. The first use of a name records it under the token's
    /// default state (with its event) before the decision is made. The decision is
    /// counted, and noted with the token id (never the secret) on the call's span.
    pub async fn authorize(
        &self,
        secret: &Secret,
        app: &AppName,
        required: Privilege,
    ) -> Result<AuthorizeOutcome, ServiceError> {
        self.authorize_from(secret, app, required, None).await
    }

    /// `authorize` for a client at a known address (or `None`): a token or an approval
    /// limited to address ranges refuses a client outside them, and one of unknown address.
    pub async fn authorize_from(
        &self,
        secret: &Secret,
        app: &AppName,
        required: Privilege,
        client: Option<IpAddr>,
    ) -> Result<AuthorizeOutcome, ServiceError> {
        let outcome = self
            .decide_request(secret, app, required, client, Presented::Now)
            .await?;
        self.metrics.decision(&outcome.decision);
        let span = tracing::Span::current();
        span.record("decision", outcome.decision.name());
        if let Some(grant) = &outcome.grant {
            span.record("token_id", tracing::field::display(grant.token_id));
        }
        Ok(outcome)
    }

    async fn decide_request(
        &self,
        secret: &Secret,
        app: &AppName,
        required: Privilege,
        client: Option<IpAddr>,
        presented: Presented,
    ) -> Result<AuthorizeOutcome, ServiceError> {
        self.replica.check_fresh()?;
        let cache = &self.replica.cache;
        // A keyed hash, not SHA-256: the digest is computed only on a miss (cache.rs says why).
        let key = cache.key(secret);
        // Set when this call's own cold lookup already saw that the name is new to the token.
        let app_is_new = AtomicBool::new(false);
        let cached = cache.grant(&key);
        self.metrics
            .cache_lookup(CacheName::Tokens, cached.is_some());
        // The cold paths are boxed: their loads were most of this future's size, and a warm
        // call carried them too (the handler's future was 9.9 KB, copied into a fresh
        // allocation on every call; docs/BENCHMARKS.md has the profile).
        let cached = match cached {
            Some(hit) => hit,
            None => Box::pin(self.grant_cold(secret, key, app, &app_is_new)).await?,
        };
        let unknown = AuthorizeOutcome::refused(Decision::UnknownToken, None);
        let CachedGrant::Known(grant) = cached else {
            return Ok(unknown);
        };
        // Expiry and a rotated-out secret's overlap are judged against the clock here, so
        // they take effect at their deadline on every replica with nothing written.
        let now = self.settings.clock.exact_now();
        if grant.secret.is_reuse(now) {
            // Refused as an unknown secret is; its reuse is recorded once, behind, when a
            // caller presented it (a stream's holder presented it before the overlap ended).
            if presented == Presented::Now {
                self.note_reuse(secret.digest());
            }
            return Ok(unknown);
        }
        // A client outside the token's ranges learns nothing of its applications, and
        // records none.
        if let Err(refusal) = grant.usable(now).and_then(|_| grant.check_address(client)) {
            return Ok(AuthorizeOutcome::refused(refusal, Some(grant)));
        }
        let state = cache.app(AppRef {
            token: grant.token_id,
            name: app.as_str(),
        });
        self.metrics
            .cache_lookup(CacheName::Applications, state.is_some());
        let state = match state {
            Some(state) => state,
            None => match Box::pin(self.app_state_cold(&grant, app, &app_is_new, presented)).await?
            {
                Ok(state) => state,
                Err(refusal) => return Ok(AuthorizeOutcome::refused(refusal, Some(grant))),
            },
        };
        let call = Call {
            required,
            client,
            now,
        };
        let decision = decide_with(&grant, state.state, state.conditions.as_deref(), &call);
        if presented == Presented::Now {
            self.last_used
                .record(grant.token_id, app.as_str(), &decision, client, now);
        }
        Ok(AuthorizeOutcome {
            decision,
            grant: Some(grant),
            approval_ends: state.conditions.as_ref().and_then(|c| c.until),
        })
    }

    /// A token-cache miss: loads the grant (one load for concurrent misses of one secret).
    async fn grant_cold(
        &self,
        secret: &Secret,
        key: SecretKey,
        app: &AppName,
        app_is_new: &AtomicBool,
    ) -> Result<CachedGrant, ServiceError> {
        self.replica.check_reachable()?;
        let cache = &self.replica.cache;
        let loaded_at = self.loaded_at();
        let digest = secret.digest();
        let load = self.load_grant(&digest, app, app_is_new, loaded_at);
        let grant = cache
            .grant_or_load(key, load)
            .await
            .map_err(|e| self.storage_failed(e))?;
        cache.drop_if_stale_grant(&key, &grant, loaded_at);
        Ok(grant)
    }

    /// An application-cache miss: the state, or the refusal a new name meets (the token's
    /// application limit, or the token stopped being usable meanwhile).
    async fn app_state_cold(
        &self,
        grant: &TokenGrant,
        app: &AppName,
        app_is_new: &AtomicBool,
        presented: Presented,
    ) -> Result<Result<AppStanding, Decision>, ServiceError> {
        self.replica.check_reachable()?;
        let cache = &self.replica.cache;
        let key = AppKey::new(grant.token_id, app.as_str());
        let loaded_at = self.loaded_at();
        let load = self.load_app_state(grant, app, app_is_new, presented);
        match cache.app_or_load(&key, load).await {
            Ok(state) => {
                cache.drop_if_stale_app(&key, loaded_at);
                Ok(Ok(state))
            }
            Err(AppLoadError::LimitReached) => Ok(Err(Decision::AppLimitReached)),
            Err(AppLoadError::Refused(refusal)) => Ok(Err(refusal)),
            Err(AppLoadError::Storage(e)) => Err(self.storage_failed(e)),
        }
    }

    /// Where the replica stands before a load: a change applied after it may make the
    /// loaded value stale. Before the follower starts nothing loaded is kept.
    fn loaded_at(&self) -> i64 {
        self.replica.position().unwrap_or(-1)
    }

    /// A storage failure on the hot path; an outage also opens the replica's breaker.
    fn storage_failed(&self, e: StorageError) -> ServiceError {
        if matches!(e, StorageError::Unavailable(_)) {
            self.replica.note_unreachable();
        }
        e.into()
    }

    /// The cold path: one query for the token and, while at it, the application's state.
    async fn load_grant(
        &self,
        digest: &SecretDigest,
        app: &AppName,
        app_is_new: &AtomicBool,
        loaded_at: i64,
    ) -> Result<CachedGrant, StorageError> {
        let Some(lookup) = self.repo.find_grant(digest, app).await? else {
            return Ok(CachedGrant::Unknown);
        };
        // The first use of a rotated token's new secret starts the old one's overlap (once,
        // whichever replica sees it first; the log tells the others).
        if lookup.overlap_waiting
            && self
                .repo
                .start_overlap(lookup.grant.account_id, lookup.grant.token_id)
                .await?
        {
            self.replica.wake();
        }
        match lookup.app {
            Some(state) => {
                let key = AppKey::new(lookup.grant.token_id, app.as_str());
                self.replica.cache.keep_app(key, state, loaded_at)
            }
            None => app_is_new.store(true, Ordering::Relaxed),
        }
        Ok(CachedGrant::Known(Arc::new(lookup.grant)))
    }

    /// The application's state, recording the name under the token's default if it is new.
    async fn load_app_state(
        &self,
        grant: &TokenGrant,
        app: &AppName,
        app_is_new: &AtomicBool,
        presented: Presented,
    ) -> Result<AppStanding, AppLoadError> {
        if !app_is_new.load(Ordering::Relaxed)
            && let Some(state) = self
                .repo
                .app_standing(grant.token_id, app)
                .await
                .map_err(AppLoadError::Storage)?
        {
            return Ok(state);
        }
        if presented == Presented::Earlier {
            // Only a caller's own presentation records a name; judged again, it waits.
            return Err(AppLoadError::Refused(Decision::Pending));
        }
        match self
            .repo
            .record_application(grant, app, self.settings.max_apps_per_token)
            .await
        {
            Ok(RecordOutcome::Recorded(state)) => {
                self.replica.wake();
                Ok(AppStanding::plain(state))
            }
            Ok(RecordOutcome::Existing(state)) => Ok(state),
            Ok(RecordOutcome::LimitReached) => Err(AppLoadError::LimitReached),
            Ok(RecordOutcome::Refused(refusal)) => Err(AppLoadError::Refused(refusal)),
            Err(e) => Err(AppLoadError::Storage(e)),
        }
    }

    /// Authenticates a TokenService or AccountService caller through the Authorize
    /// decision, so an unapproved application cannot manage tokens either, and a capped
    /// approval caps the management caller too.
    pub async fn authenticate(&self, credentials: &Credentials) -> Result<Caller, ServiceError> {
        Ok(self.authenticate_until(credentials).await?.0)
    }

    /// `authenticate`, with the moment the credentials stop working by the clock alone (the
    /// token's expiry, a rotated-out secret's overlap end, the approval's end): what a long
    /// stream must heed.
    pub(crate) async fn authenticate_until(
        &self,
        credentials: &Credentials,
    ) -> Result<(Caller, Option<DateTime<Utc>>), ServiceError> {
        let outcome = self
            .authorize_from(
                &credentials.secret,
                &credentials.app,
                Privilege::ReadOnly,
                credentials.client,
            )
            .await?;
        Self::caller_of(credentials, outcome)
    }

    /// `authenticate_until` for credentials a caller presented earlier (an open stream's),
    /// judged again by the server: the same decision, recording nothing.
    pub(crate) async fn authenticate_again(
        &self,
        credentials: &Credentials,
    ) -> Result<(Caller, Option<DateTime<Utc>>), ServiceError> {
        let outcome = self
            .decide_request(
                &credentials.secret,
                &credentials.app,
                Privilege::ReadOnly,
                credentials.client,
                Presented::Earlier,
            )
            .await?;
        Self::caller_of(credentials, outcome)
    }

    /// The caller the decision made of `credentials`: it acts with exactly the privilege
    /// the decision allowed, until the first of its deadlines.
    fn caller_of(
        credentials: &Credentials,
        outcome: AuthorizeOutcome,
    ) -> Result<(Caller, Option<DateTime<Utc>>), ServiceError> {
        match (outcome.decision, outcome.grant) {
            (Decision::Allow { effective }, Some(grant)) => {
                let caller = Caller::allowed(
                    &grant,
                    credentials.app.clone(),
                    credentials.client,
                    effective,
                );
                let deadline = match (grant.deadline(), outcome.approval_ends) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                Ok((caller, deadline))
            }
            (decision, _) => Err(ServiceError::refused(decision, credentials.app.as_str())),
        }
    }
}
