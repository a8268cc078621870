//! Lifecycle notices in the database: the tokens that may be due one, which notices were sent,
//! and sending one exactly once however many replicas sweep: its key is inserted, and only
//! the transaction whose insert took the key logs the notice (and audits it) before it commits.
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde_json::json;
use uuid::Uuid;

use super::audit::{self, Actor, AuditEntry};
use super::change_log::{self, Change, TokenChange};
use super::convert::{micros, time};
use super::entities::{accounts, tokens};
use super::lifecycle::policy_on;
use super::{Repository, StorageError};
use crate::domain::{AccountPolicy, Notice, TokenTimes};

/// An active token that may be due a notice, with what they are decided from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeCandidate {
    pub seq: i64,
    pub token_id: Uuid,
    pub times: TokenTimes,
}

/// The key a sent notice is kept under.
type NoticeKey = (Uuid, String, i64, i64);

fn key(token_id: Uuid, notice: &Notice) -> NoticeKey {
    (
        token_id,
        notice.kind.as_str().to_owned(),
        notice.lead.num_seconds(),
        micros(notice.about),
    )
}

impl Repository {
    /// Every account's id and token policy.
    pub async fn account_policies(&self) -> Result<Vec<(Uuid, AccountPolicy)>, StorageError> {
        let ids: Vec<Uuid> = accounts::Entity::find()
            .select_only()
            .column(accounts::Column::Id)
            .order_by_asc(accounts::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut policies = Vec::with_capacity(ids.len());
        for id in ids {
            policies.push((id, policy_on(&self.db, id).await?));
        }
        Ok(policies)
    }

    /// The account's active tokens after `after_seq` (oldest first, at most `limit`) that
    /// expire by `expiring_by`, or, with `unused_since`, were last active by then.
    pub async fn notice_candidates(
        &self,
        account_id: Uuid,
        expiring_by: DateTime<Utc>,
        unused_since: Option<DateTime<Utc>>,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<NoticeCandidate>, StorageError> {
        use tokens::Column as C;
        let mut due = Condition::any().add(C::ExpireAt.lte(micros(expiring_by)));
        if let Some(since) = unused_since {
            let last_active = Expr::col(C::LastUsedAt).if_null(Expr::col(C::CreatedAt));
            due = due.add(last_active.lte(micros(since)));
        }
        let rows = tokens::Entity::find()
            .filter(C::AccountId.eq(account_id))
            .filter(C::RetiredAt.is_null())
            .filter(C::Seq.gt(after_seq))
            .filter(due)
            .order_by_asc(C::Seq)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(NoticeCandidate {
                    seq: row.seq,
                    token_id: row.id,
                    times: TokenTimes {
                        expires_at: row.expire_at.map(time).transpose()?,
                        last_active: time(row.last_used_at.unwrap_or(row.created_at))?,
                    },
                })
            })
            .collect()
    }

    /// Which of these notices were sent already (by any replica).
    pub async fn sent_notices(
        &self,
        due: &[(Uuid, Notice)],
    ) -> Result<HashSet<(Uuid, Notice)>, StorageError> {
        if due.is_empty() {
            return Ok(HashSet::new());
        }
        let backend = self.db.get_database_backend();
        let ids: Vec<Uuid> = due.iter().map(|(id, _)| *id).collect();
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT token_id, kind, lead_secs, about FROM lifecycle_notices WHERE token_id IN ({})",
                    placeholders.join(", ")
                ),
                ids.into_iter().map(Into::into),
            ))
            .await?;
        let mut sent = HashSet::new();
        for row in rows {
            sent.insert((
                row.try_get_by_index::<Uuid>(0)?,
                row.try_get_by_index::<String>(1)?,
                row.try_get_by_index::<i64>(2)?,
                row.try_get_by_index::<i64>(3)?,
            ));
        }
        Ok(due
            .iter()
            .filter(|(id, notice)| sent.contains(&key(*id, notice)))
            .copied()
            .collect())
    }

    /// Sends one notice, once, about a token still active: in one transaction, its key is
    /// inserted and, only if this insert took it, the notice is logged and audited. A replica racing on the same key
    /// waits for the first to commit, then finds the key taken. Returns whether it was sent
    /// here.
    pub async fn send_notice(
        &self,
        account_id: Uuid,
        token_id: Uuid,
        notice: &Notice,
    ) -> Result<bool, StorageError> {
        let tx = self.begin_write().await?;
        let now = self.now();
        let (_, kind, lead_secs, about) = key(token_id, notice);
        let inserted = tx
            .execute_raw(Statement::from_sql_and_values(
                tx.get_database_backend(),
                "INSERT INTO lifecycle_notices (token_id, kind, lead_secs, about, sent_at) SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM tokens WHERE id = $1 AND retired_at IS NULL) ON CONFLICT DO NOTHING",
                [
                    token_id.into(),
                    kind.clone().into(),
                    lead_secs.into(),
                    about.into(),
                    micros(now).into(),
                ],
            ))
            .await?
            .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let change = Change::Token {
            token_id,
            what: TokenChange::Notice(*notice),
        };
        change_log::append(&tx, account_id, &change, now).await?;
        let entry = AuditEntry {
            action: match notice.kind {
                crate::domain::NoticeKind::Expiring => "token.notice_expiring",
                crate::domain::NoticeKind::Expired => "token.notice_expired",
                crate::domain::NoticeKind::Dormant => "token.notice_dormant",
            },
            target_type: "token",
            target_id: token_id.to_string(),
            before: None,
            after: Some(json!({
                "notice": kind,
                "lead_secs": lead_secs,
                "about": notice.about.to_rfc3339(),
            })),
        };
        audit::write_many(&tx, account_id, Actor::default(), vec![entry], None, now).await?;
        tx.commit().await?;
        Ok(true)
    }
}
