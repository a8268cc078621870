//! A token's lifetime and secrets in the database: the account's token policy, rotation
//! (the old secret kept by digest with its overlap), the overlap's start at the new
//! secret's first use, and a rotated-out secret's reuse (recorded once; may retire the token).
use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    Statement,
};
use uuid::Uuid;

use super::audit::{self, Actor, AuditEntry, token_json};
use super::change_log::{self, Change, TokenChange};
use super::convert::{self, micros};
use super::entities::{accounts, rotated_secrets, tokens};
use super::guard::{self, AccountLock, Locked};
use super::write::WriteTx;
use super::{Repository, StorageError};
use crate::domain::{AccountPolicy, SecretDigest, Token};

/// The policy as stored: JSON with durations in seconds, absent fields at their defaults.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct StoredPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_token_lifetime_secs: Option<i64>,
    #[serde(default)]
    require_expiry: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_token_lifetime_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expiry_notice_lead_secs: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dormant_after_secs: Option<i64>,
    #[serde(default)]
    retire_on_reuse: bool,
}

impl StoredPolicy {
    fn of(policy: &AccountPolicy) -> StoredPolicy {
        let secs = |d: TimeDelta| d.num_seconds();
        StoredPolicy {
            max_token_lifetime_secs: policy.max_token_lifetime.map(secs),
            require_expiry: policy.require_expiry,
            default_token_lifetime_secs: policy.default_token_lifetime.map(secs),
            expiry_notice_lead_secs: Some(
                policy
                    .expiry_notice_lead_times
                    .iter()
                    .map(|d| secs(*d))
                    .collect(),
            ),
            dormant_after_secs: policy.dormant_after.map(secs),
            retire_on_reuse: policy.retire_on_reuse,
        }
    }

    /// The policy; a span no `TimeDelta` holds is corrupt (and is not a panic).
    fn policy(self) -> Result<AccountPolicy, StorageError> {
        let secs = |s: i64| {
            TimeDelta::try_seconds(s)
                .ok_or_else(|| StorageError::corrupt(format!("accounts.policy: {s} s")))
        };
        let opt = |s: Option<i64>| s.map(secs).transpose();
        Ok(AccountPolicy {
            max_token_lifetime: opt(self.max_token_lifetime_secs)?,
            require_expiry: self.require_expiry,
            default_token_lifetime: opt(self.default_token_lifetime_secs)?,
            expiry_notice_lead_times: match self.expiry_notice_lead_secs {
                Some(leads) => leads.into_iter().map(secs).collect::<Result<_, _>>()?,
                None => AccountPolicy::default_notice_lead_times(),
            },
            dormant_after: opt(self.dormant_after_secs)?,
            retire_on_reuse: self.retire_on_reuse,
        })
    }
}

pub(super) fn parse_policy(stored: Option<&str>) -> Result<AccountPolicy, StorageError> {
    match stored {
        None => Ok(AccountPolicy::default()),
        Some(text) => serde_json::from_str::<StoredPolicy>(text)
            .map_err(|e| StorageError::corrupt(format!("accounts.policy: {e}")))?
            .policy(),
    }
}

fn policy_json(policy: &AccountPolicy) -> serde_json::Value {
    serde_json::to_value(StoredPolicy::of(policy)).unwrap_or_default()
}

/// The account's policy as read on `conn` (inside a write, say); the defaults for none.
pub(crate) async fn policy_on(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
) -> Result<AccountPolicy, StorageError> {
    let account = accounts::Entity::find_by_id(account_id).one(conn).await?;
    parse_policy(account.and_then(|a| a.policy).as_deref())
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub before: Token,
    pub after: Token,
}

/// What the first use of a rotated-out secret after its overlap did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReuseRecorded {
    pub token_id: Uuid,
    pub account_id: Uuid,
    /// The account's policy retired the token for it.
    pub retired: bool,
}

/// Why a reused secret retires its token, in the audit entry.
const REUSE_REASON: &str = "a rotated-out secret was used after its overlap (retire_on_reuse)";

impl Repository {
    /// The account's token policy; the defaults when none was set.
    pub async fn account_policy(&self, account_id: Uuid) -> Result<AccountPolicy, StorageError> {
        policy_on(&self.db, account_id).await
    }

    /// Sets the account's policy once `change` approves the caller as its token stands now
    /// and makes the new policy from the current one; audited in the same transaction.
    pub async fn set_account_policy<E: From<StorageError>>(
        &self,
        account_id: Uuid,
        actor: Actor,
        change: impl FnOnce(&Locked, AccountPolicy) -> Result<AccountPolicy, E>,
    ) -> Result<AccountPolicy, E> {
        let tx = self.begin_write().await?;
        let (locked, _) = guard::lock(
            &tx,
            account_id,
            &actor,
            None,
            AccountLock::Shared,
            &self.clock,
        )
        .await?;
        let before = policy_on(&tx, account_id).await?;
        let after = change(&locked, before.clone())?;
        let text = serde_json::to_string(&StoredPolicy::of(&after))
            .map_err(|e| StorageError::corrupt(format!("policy: {e}")))?;
        accounts::Entity::update(accounts::ActiveModel {
            id: sea_orm::ActiveValue::Unchanged(account_id),
            policy: Set(Some(text)),
            ..Default::default()
        })
        .exec(&tx)
        .await
        .map_err(StorageError::from)?;
        audit::write(
            &tx,
            account_id,
            actor,
            "account.set_policy",
            "account",
            account_id.to_string(),
            Some(policy_json(&before)),
            Some(policy_json(&after)),
            locked.now,
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Replaces a token's secret with `new_digest` once `change` approves the caller and makes
    /// the rotated token (its `previous_secret` says how the old secret's overlap goes). The
    /// old secret is kept by digest with its overlap; an older one still in its overlap stops
    /// now (at most two secrets work at once). Audited and logged in the same transaction.
    /// `Ok(None)`: no such token.
    pub async fn rotate_token<E: From<StorageError>>(
        &self,
        account_id: Uuid,
        id: Uuid,
        actor: Actor,
        new_digest: &SecretDigest,
        change: impl FnOnce(&Locked, &AccountPolicy) -> Result<Token, E>,
    ) -> Result<Option<Rotated>, E> {
        let tx = self.begin_write().await?;
        let (locked, row) = guard::lock(
            &tx,
            account_id,
            &actor,
            Some(id),
            AccountLock::Shared,
            &self.clock,
        )
        .await?;
        let policy = policy_on(&tx, account_id).await?;
        let after = change(&locked, &policy)?;
        let (Some(row), Some((before, _))) = (row, locked.target.clone()) else {
            return Ok(None);
        };
        let now = locked.now;
        let previous = after
            .previous_secret
            .ok_or_else(|| StorageError::corrupt("a rotation without a rotated-out secret"))?;
        end_overlaps(&tx, id, now).await?;
        rotated_secrets::Entity::insert(rotated_secrets::ActiveModel {
            digest: Set(row.secret_digest.clone()),
            token_id: Set(id),
            account_id: Set(account_id),
            rotated_at: Set(micros(now)),
            overlap_micros: Set(overlap_micros(previous.overlap)),
            ends_at: Set(previous.ends_at.map(micros)),
            reused_at: Set(None),
        })
        .exec_without_returning(&tx)
        .await
        .map_err(StorageError::from)?;
        let mut active: tokens::ActiveModel = row.into();
        active.secret_digest = Set(new_digest.0.to_vec());
        active.rotated_at = Set(Some(micros(now)));
        active.previous_overlap_micros = Set(Some(overlap_micros(previous.overlap)));
        active.previous_ends_at = Set(previous.ends_at.map(micros));
        active.expire_at = Set(after.expires_at.map(micros));
        active.updated_at = Set(micros(now));
        tokens::Entity::update(active)
            .exec(&tx)
            .await
            .map_err(StorageError::from)?;
        let after = Token {
            updated_at: now,
            rotated_at: Some(now),
            ..after
        };
        audit::write_token(
            &tx,
            account_id,
            actor,
            "token.rotate",
            Some(&before),
            &after,
            now,
        )
        .await?;
        let rotated = Change::Token {
            token_id: id,
            what: TokenChange::Rotated,
        };
        change_log::append(&tx, account_id, &rotated, now).await?;
        tx.commit().await?;
        Ok(Some(Rotated { before, after }))
    }

    /// The first use of a token's current secret while the secret it rotated out waits for
    /// it: the old secret's overlap starts now. Of many replicas' first uses one writes (and
    /// logs it, so every replica learns the end); `true` if this call did.
    pub async fn start_overlap(
        &self,
        account_id: Uuid,
        token_id: Uuid,
    ) -> Result<bool, StorageError> {
        let tx = self.begin_write().await?;
        let now = self.now();
        let backend = tx.get_database_backend();
        let started = tx
            .execute_raw(Statement::from_sql_and_values(
                backend,
                "UPDATE tokens SET previous_ends_at = $1 + previous_overlap_micros \
                 WHERE id = $2 AND previous_overlap_micros IS NOT NULL AND previous_ends_at IS NULL",
                [micros(now).into(), token_id.into()],
            ))
            .await?
            .rows_affected();
        if started == 0 {
            return Ok(false);
        }
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            "UPDATE rotated_secrets SET ends_at = $1 + overlap_micros \
             WHERE token_id = $2 AND ends_at IS NULL",
            [micros(now).into(), token_id.into()],
        ))
        .await?;
        audit::write(
            &tx,
            account_id,
            Actor::default(),
            "token.overlap_start",
            "token",
            token_id.to_string(),
            None,
            None,
            now,
        )
        .await?;
        let updated = Change::Token {
            token_id,
            what: TokenChange::Updated,
        };
        change_log::append(&tx, account_id, &updated, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records the first use of a rotated-out secret after its overlap, once whatever the
    /// number of replicas and calls: logged (secret reused) and audited; with the account's
    /// `retire_on_reuse`, the token is retired in the same transaction. `None`: already
    /// recorded (or not a reuse at `now`).
    pub async fn record_secret_reuse(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<ReuseRecorded>, StorageError> {
        let tx = self.begin_write().await?;
        let Some(secret) = rotated_secrets::Entity::find_by_id(digest.0.to_vec())
            .one(&tx)
            .await?
        else {
            return Ok(None);
        };
        if secret.reused_at.is_some() {
            return Ok(None);
        }
        // The token's row first, as every write takes its locks (see `guard`).
        let Some(row) = lock_token(&tx, secret.token_id).await? else {
            return Ok(None);
        };
        let now = self.now();
        let recorded = tx
            .execute_raw(Statement::from_sql_and_values(
                tx.get_database_backend(),
                "UPDATE rotated_secrets SET reused_at = $1 \
                 WHERE digest = $2 AND reused_at IS NULL AND ends_at IS NOT NULL AND ends_at <= $1",
                [micros(now).into(), digest.0.to_vec().into()],
            ))
            .await?
            .rows_affected();
        if recorded == 0 {
            return Ok(None);
        }
        let (token_id, account_id) = (secret.token_id, secret.account_id);
        let reused = Change::Token {
            token_id,
            what: TokenChange::SecretReused,
        };
        change_log::append(&tx, account_id, &reused, now).await?;
        audit::write(
            &tx,
            account_id,
            Actor::default(),
            "token.secret_reused",
            "token",
            token_id.to_string(),
            None,
            Some(serde_json::json!({
                "rotate_time": convert::time(secret.rotated_at)?.to_rfc3339(),
            })),
            now,
        )
        .await?;
        let retired = if policy_on(&tx, account_id).await?.retire_on_reuse {
            retire_for_reuse(&tx, account_id, row, now).await?
        } else {
            false
        };
        tx.commit().await?;
        Ok(Some(ReuseRecorded {
            token_id,
            account_id,
            retired,
        }))
    }
}

/// Overlaps are microseconds in the database; a rotation's is at most 30 days.
fn overlap_micros(overlap: TimeDelta) -> i64 {
    overlap.num_microseconds().unwrap_or(i64::MAX)
}

/// Ends now the overlap of every earlier rotated-out secret of the token still working or
/// waiting.
async fn end_overlaps(
    tx: &WriteTx,
    token_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    tx.execute_raw(Statement::from_sql_and_values(
        tx.get_database_backend(),
        "UPDATE rotated_secrets SET ends_at = $1 WHERE token_id = $2 AND (ends_at IS NULL OR ends_at > $1)",
        [micros(now).into(), token_id.into()],
    ))
    .await?;
    Ok(())
}

/// Retires a token whose rotated-out secret was reused, if it is not retired yet: audited
/// with the reason, and logged.
async fn retire_for_reuse(
    tx: &WriteTx,
    account_id: Uuid,
    row: tokens::Model,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    if row.retired_at.is_some() {
        return Ok(false);
    }
    let token_id = row.id;
    let before = convert::token(row.clone())?;
    let mut active: tokens::ActiveModel = row.into();
    active.retired_at = Set(Some(micros(now)));
    active.updated_at = Set(micros(now));
    tokens::Entity::update(active).exec(tx).await?;
    let after = Token {
        retired_at: Some(now),
        updated_at: now,
        ..before.clone()
    };
    let entry = AuditEntry {
        action: "token.retire",
        target_type: "token",
        target_id: token_id.to_string(),
        before: Some(token_json(&before)),
        after: Some(token_json(&after)),
    };
    audit::write_many(
        tx,
        account_id,
        Actor::default(),
        vec![entry],
        Some(REUSE_REASON),
        now,
    )
    .await?;
    let retired = Change::Token {
        token_id,
        what: TokenChange::Retired,
    };
    change_log::append(tx, account_id, &retired, now).await?;
    Ok(true)
}

/// The token's row, locked for the rest of the transaction.
pub(super) async fn lock_token(
    tx: &WriteTx,
    token_id: Uuid,
) -> Result<Option<tokens::Model>, StorageError> {
    Ok(tokens::Entity::find()
        .filter(tokens::Column::Id.eq(token_id))
        .lock_exclusive()
        .one(tx)
        .await?)
}
