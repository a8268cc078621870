//! A token's lifetime and secrets as use cases: the account policy (GetAccount shows it,
//! Admins set it), rotation with an overlap, and recording a rotated-out secret's reuse.
use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{
    AccountPolicy, Caller, ExpiryRefusal, PolicyDenial, Rotation, Secret, SecretDigest, Token,
};
use crate::storage::Actor;
use crate::telemetry::chain;

use super::cache::StaleKey;
use super::guard::{caller_now, visible_now};
use super::tokens::TokenView;
use super::{Service, ServiceError};

/// What SetAccountPolicy asks for: the new values, and which of them to set.
#[derive(Debug, Clone)]
pub struct PolicyUpdate {
    pub policy: AccountPolicy,
    /// The fields to set (`AccountPolicy`'s names); `None`: all of them.
    pub fields: Option<Vec<String>>,
}

/// The fields of a policy SetAccountPolicy may name.
pub const POLICY_FIELDS: [&str; 6] = [
    "max_token_lifetime",
    "require_expiry",
    "default_token_lifetime",
    "expiry_notice_lead_times",
    "dormant_after",
    "retire_on_reuse",
];

impl PolicyUpdate {
    /// `current` with the named fields taken from the update.
    fn apply(&self, current: AccountPolicy) -> AccountPolicy {
        let Some(fields) = &self.fields else {
            return self.policy.clone();
        };
        let mut next = current;
        let asked = &self.policy;
        for field in fields {
            match field.as_str() {
                "max_token_lifetime" => next.max_token_lifetime = asked.max_token_lifetime,
                "require_expiry" => next.require_expiry = asked.require_expiry,
                "default_token_lifetime" => {
                    next.default_token_lifetime = asked.default_token_lifetime
                }
                "expiry_notice_lead_times" => {
                    next.expiry_notice_lead_times = asked.expiry_notice_lead_times.clone()
                }
                "dormant_after" => next.dormant_after = asked.dormant_after,
                "retire_on_reuse" => next.retire_on_reuse = asked.retire_on_reuse,
                _ => {}
            }
        }
        next
    }
}

/// What RotateToken asks for.
#[derive(Debug, Clone, Copy)]
pub struct RotateRequest {
    pub rotation: Rotation,
    /// A new expiry for the token (`Some(None)`: none); `None` keeps it.
    pub expire_time: Option<Option<DateTime<Utc>>>,
}

/// An asked expiry the rules refuse, as the caller is told.
pub(super) fn expiry_refused(refusal: ExpiryRefusal) -> ServiceError {
    match refusal {
        ExpiryRefusal::NotInFuture => ServiceError::invalid("expire_time", "must be in the future"),
        ExpiryRefusal::Policy(precondition) => precondition.into(),
        ExpiryRefusal::DefaultPastLatest => ServiceError::invalid(
            "expire_time",
            "is needed: the account's default_token_lifetime from now ends past 9999-12-31",
        ),
    }
}

/// The rotated-out secrets whose reuse this replica has recorded or is recording: a flood
/// of one reused secret costs one write, whatever the number of calls.
#[derive(Default)]
pub(crate) struct ReusedSecrets(Mutex<HashSet<SecretDigest>>);

impl ReusedSecrets {
    /// Past this many, the set starts again (a later reuse of a forgotten one finds it
    /// recorded in the database and writes nothing).
    const CAPACITY: usize = 10_000;

    /// Whether this is the first time this replica sees `digest` reused.
    fn first(&self, digest: SecretDigest) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= Self::CAPACITY {
            seen.clear();
        }
        seen.insert(digest)
    }

    fn forget(&self, digest: &SecretDigest) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
    }
}

impl Service {
    /// The account's token policy, defaults filled in. Any member.
    pub async fn account_policy(&self, caller: &Caller) -> Result<AccountPolicy, ServiceError> {
        Ok(self.repo.account_policy(caller.account_id).await?)
    }

    /// Sets the account's token policy. Admin only (judged again inside the write).
    pub async fn set_account_policy(
        &self,
        caller: &Caller,
        update: PolicyUpdate,
    ) -> Result<AccountPolicy, ServiceError> {
        caller.require_admin()?;
        self.repo
            .set_account_policy(caller.account_id, Actor::of(caller), |locked, current| {
                if !caller_now(caller, locked)?.is_admin() {
                    return Err(PolicyDenial::AdminRequired.into());
                }
                update
                    .apply(current)
                    .validated()
                    .map_err(ServiceError::InvalidArgument)
            })
            .await
    }

    /// Replaces a token's secret (owner or Admin, Read-Only callers excepted) and returns
    /// the new one, once. The old secret keeps working for the overlap; every replica
    /// learns of it from the change log.
    pub async fn rotate_token(
        &self,
        caller: &Caller,
        id: Uuid,
        req: RotateRequest,
    ) -> Result<(TokenView, Secret), ServiceError> {
        caller.require_write()?;
        let secret = Secret::generate();
        let digest = secret.digest();
        let rotated = self
            .repo
            .rotate_token(
                caller.account_id,
                id,
                Actor::of(caller),
                &digest,
                |locked, policy| {
                    let (caller, current, _) = visible_now(caller, locked, id)?;
                    caller.require_write()?;
                    current.require_active(locked.now)?;
                    let expires_at = match req.expire_time {
                        None => current.expires_at,
                        Some(asked) => policy
                            .expiry_set(asked, locked.now)
                            .map_err(expiry_refused)?,
                    };
                    Ok::<_, ServiceError>(Token {
                        expires_at,
                        previous_secret: Some(req.rotation.rotated_out(locked.now)),
                        ..current.clone()
                    })
                },
            )
            .await?;
        let Some(rotated) = rotated else {
            return Err(ServiceError::not_found("token", id));
        };
        // A guess of the new secret may be remembered as unknown; the old one's grant goes.
        self.replica.cache.forget_secret(&secret);
        self.changed_here(StaleKey::Token(id)).await;
        Ok((self.view(rotated.after).await?, secret))
    }

    /// A rotated-out secret was used after its overlap: records it once (in the background,
    /// so the refused call does not wait, and once per replica however many calls come).
    pub(super) fn note_reuse(&self, digest: SecretDigest) {
        if !self.reused.first(digest) {
            return;
        }
        let service = self.clone();
        tokio::spawn(async move {
            match service.repo.record_secret_reuse(&digest).await {
                Ok(Some(recorded)) => {
                    tracing::warn!(
                        token_id = %recorded.token_id,
                        retired = recorded.retired,
                        "a rotated-out secret was used after its overlap"
                    );
                    service
                        .changed_here(StaleKey::Token(recorded.token_id))
                        .await;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %chain(&e), "a rotated-out secret's reuse was not recorded; the next use tries again");
                    service.reused.forget(&digest);
                }
            }
        });
    }
}
