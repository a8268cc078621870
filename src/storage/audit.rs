//! The audit log: written inside each mutation's transaction, read by ListAuditEvents.
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::convert::{micros, time};
use super::entities::audit_events;
use super::{Repository, StorageError};
use crate::domain::{AppName, Application, Caller, Member, Token};

/// Who made a change: a member and/or a token; neither for the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    pub member_id: Option<Uuid>,
    pub token_id: Option<Uuid>,
    /// The application the token was presented with: a write reads its approval again
    /// under its locks (`guard`). Not stored in the audit log.
    pub app: Option<AppName>,
}

impl Actor {
    /// The actor of a change made through the API: the calling member (if any), token and
    /// application.
    pub fn of(caller: &Caller) -> Actor {
        Actor {
            member_id: caller.member_id,
            token_id: Some(caller.token_id),
            app: Some(caller.app.clone()),
        }
    }
}

/// One audit log entry as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: i64,
    pub account_id: Uuid,
    pub actor: Actor,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub created_at: DateTime<Utc>,
    /// Why, as the maker of the change said; `None` when no reason was given.
    pub reason: Option<String>,
}

/// One entry to append (see `write_many`).
#[derive(Debug, Clone)]
pub(crate) struct AuditEntry {
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

pub(crate) fn member_json(m: &Member) -> Value {
    json!({ "user_id": m.id, "user_name": m.user_name.as_str(), "role": m.role.as_str() })
}

pub(crate) fn token_json(t: &Token) -> Value {
    json!({
        "id": t.id,
        "type": t.token_type.as_str(),
        "owner_user_id": t.owner_id,
        "privilege": t.privilege.as_str(),
        "default_app_state": t.default_app_state.as_str(),
        "description": t.description.as_str(),
        "retired": t.is_retired(),
        "bound_cidrs": t.bound_ranges.to_strings(),
        "expire_time": t.expires_at.map(|at| at.to_rfc3339()),
        "rotate_time": t.rotated_at.map(|at| at.to_rfc3339()),
    })
}

pub(crate) fn application_json(a: &Application) -> Value {
    let mut value =
        json!({ "token_id": a.token_id, "name": a.name.as_str(), "state": a.state.as_str() });
    if let (Some(c), Some(map)) = (&a.conditions, value.as_object_mut()) {
        map.insert(
            "conditions".into(),
            json!({
                "until": c.until.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
                "max_privilege": c.max_privilege.map(|p| p.as_str()),
                "client_cidrs": c.client_ranges.to_strings(),
            }),
        );
    }
    value
}

/// Appends one entry; call inside the transaction of the change it records.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    actor: Actor,
    action: &str,
    target_type: &str,
    target_id: String,
    before: Option<Value>,
    after: Option<Value>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    audit_events::Entity::insert(audit_events::ActiveModel {
        account_id: Set(account_id),
        actor_member_id: Set(actor.member_id),
        actor_token_id: Set(actor.token_id),
        action: Set(action.to_owned()),
        target_type: Set(target_type.to_owned()),
        target_id: Set(target_id),
        before_json: Set(before.map(|v| v.to_string())),
        after_json: Set(after.map(|v| v.to_string())),
        created_at: Set(micros(now)),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Records a change of a token under `action`: the token before (`None` for a new one) and after.
pub(crate) async fn write_token(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    actor: Actor,
    action: &str,
    before: Option<&Token>,
    after: &Token,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    write(
        conn,
        account_id,
        actor,
        action,
        "token",
        after.id.to_string(),
        before.map(token_json),
        Some(token_json(after)),
        now,
    )
    .await
}

/// Appends entries made by one actor at one time with one reason, in one statement; call
/// inside the transaction of the changes they record.
pub(crate) async fn write_many(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    actor: Actor,
    entries: Vec<AuditEntry>,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    if entries.is_empty() {
        return Ok(());
    }
    let rows = entries.into_iter().map(|e| audit_events::ActiveModel {
        account_id: Set(account_id),
        actor_member_id: Set(actor.member_id),
        actor_token_id: Set(actor.token_id),
        action: Set(e.action.to_owned()),
        target_type: Set(e.target_type.to_owned()),
        target_id: Set(e.target_id),
        before_json: Set(e.before.map(|v| v.to_string())),
        after_json: Set(e.after.map(|v| v.to_string())),
        created_at: Set(micros(now)),
        reason: Set(reason.map(str::to_owned)),
        ..Default::default()
    });
    audit_events::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

impl Repository {
    /// Newest first, strictly before `before_seq` when given.
    pub async fn list_audit(
        &self,
        account_id: Uuid,
        target_id: Option<&str>,
        before_seq: Option<i64>,
        limit: u64,
    ) -> Result<Vec<AuditRecord>, StorageError> {
        let mut query =
            audit_events::Entity::find().filter(audit_events::Column::AccountId.eq(account_id));
        if let Some(target) = target_id {
            query = query.filter(audit_events::Column::TargetId.eq(target));
        }
        if let Some(seq) = before_seq {
            query = query.filter(audit_events::Column::Seq.lt(seq));
        }
        let rows = query
            .order_by_desc(audit_events::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|m| {
                let parse = |s: Option<String>| -> Result<Option<Value>, StorageError> {
                    s.map(|s| {
                        serde_json::from_str(&s).map_err(|e| StorageError::corrupt(e.to_string()))
                    })
                    .transpose()
                };
                Ok(AuditRecord {
                    seq: m.seq,
                    account_id: m.account_id,
                    actor: Actor {
                        member_id: m.actor_member_id,
                        token_id: m.actor_token_id,
                        app: None,
                    },
                    action: m.action,
                    target_type: m.target_type,
                    target_id: m.target_id,
                    before: parse(m.before_json)?,
                    after: parse(m.after_json)?,
                    created_at: time(m.created_at)?,
                    reason: m.reason,
                })
            })
            .collect()
    }
}
