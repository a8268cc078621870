//! Leaked-secret reports: the token whose secret it is, if any, is retired in one transaction
//! with its audit entry and its change; a secret of no token costs the same lookup and writes
//! nothing. Every secret that still works is found: the token's current one, and one it
//! rotated out whose overlap runs or waits.
use sea_orm::sea_query::LockType;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use super::audit::{self, Actor, AuditEntry, token_json};
use super::change_log::{self, Change, TokenChange};
use super::convert::{self, micros};
use super::entities::{accounts, rotated_secrets, tokens};
use super::lifecycle::lock_token;
use super::write::WriteTx;
use super::{Repository, StorageError};
use crate::domain::{SecretDigest, Token};
use chrono::{DateTime, Utc};

/// What a report did: the token it retired, or nothing (no such secret, or retired already).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakRetired {
    pub account_id: Uuid,
    pub token_id: Uuid,
}

impl Repository {
    /// Retires the token whose secret has `digest`, if it is active: the token row is locked,
    /// then the account row (the order every token write takes), and the retirement, its
    /// audit entry (`token.report_leak`, with where it was found and the reporter's address
    /// as its reason) and its `LeakReported` change commit together.
    pub async fn report_leak(
        &self,
        digest: &SecretDigest,
        where_found: Option<&str>,
        reporter: Option<std::net::IpAddr>,
    ) -> Result<Option<LeakRetired>, StorageError> {
        let tx = self.begin_write().await?;
        let row = match working_secret(&tx, digest, self.now()).await? {
            Some(WorkingSecret::Current(row)) => Some(*row),
            Some(WorkingSecret::RotatedOut(token_id)) => {
                // Locked as every token write locks (token row, then account row); a rotation
                // that ended this secret's overlap meanwhile locked it first, so it is read
                // again under the lock, against the time once the lock is held.
                let row = lock_token(&tx, token_id).await?;
                match working_secret(&tx, digest, self.now()).await? {
                    Some(WorkingSecret::RotatedOut(_)) => row,
                    _ => None,
                }
            }
            None => None,
        };
        let Some(row) = row.filter(|r| r.retired_at.is_none()) else {
            tx.rollback().await?;
            return Ok(None);
        };
        accounts::Entity::find_by_id(row.account_id)
            .lock(LockType::Share)
            .one(&tx)
            .await?;
        let now = self.now();
        let before: Token = convert::token(row.clone())?;
        let after = Token {
            retired_at: Some(now),
            updated_at: now,
            ..before.clone()
        };
        let (account_id, token_id) = (row.account_id, row.id);
        let mut active: tokens::ActiveModel = row.into();
        active.retired_at = Set(Some(micros(now)));
        active.updated_at = Set(micros(now));
        tokens::Entity::update(active).exec(&tx).await?;
        let mut after_json = token_json(&after);
        if let Some(map) = after_json.as_object_mut() {
            map.insert("leak_reported".into(), json!(true));
        }
        let reason = format!(
            "secret reported leaked{}{}",
            where_found
                .map(|w| format!(", found at {w}"))
                .unwrap_or_default(),
            reporter
                .map(|a| format!(", reported from {a}"))
                .unwrap_or_default(),
        );
        audit::write_many(
            &tx,
            account_id,
            Actor::default(),
            vec![AuditEntry {
                action: "token.report_leak",
                target_type: "token",
                target_id: token_id.to_string(),
                before: Some(token_json(&before)),
                after: Some(after_json),
            }],
            Some(&reason),
            now,
        )
        .await?;
        let change = Change::Token {
            token_id,
            what: TokenChange::LeakReported {
                where_found: where_found.map(str::to_owned),
            },
        };
        change_log::append(&tx, account_id, &change, now).await?;
        tx.commit().await?;
        Ok(Some(LeakRetired {
            account_id,
            token_id,
        }))
    }
}

/// Which working secret of a token a digest is.
enum WorkingSecret {
    /// The token's current secret (its row, locked).
    Current(Box<tokens::Model>),
    /// A secret the token rotated out, whose overlap has not ended at `now`.
    RotatedOut(Uuid),
}

/// The token a digest still works for, if any. Both lookups run whatever the secret, so the
/// work does not tell a guesser which kind of secret (if any) it was.
async fn working_secret(
    tx: &WriteTx,
    digest: &SecretDigest,
    now: DateTime<Utc>,
) -> Result<Option<WorkingSecret>, StorageError> {
    let current = tokens::Entity::find()
        .filter(tokens::Column::SecretDigest.eq(digest.0.to_vec()))
        .lock_exclusive()
        .one(tx)
        .await?;
    let rotated = rotated_secrets::Entity::find_by_id(digest.0.to_vec())
        .one(tx)
        .await?;
    if let Some(row) = current {
        return Ok(Some(WorkingSecret::Current(Box::new(row))));
    }
    Ok(rotated
        .filter(|r| r.ends_at.is_none_or(|end| end > micros(now)))
        .map(|r| WorkingSecret::RotatedOut(r.token_id)))
}
