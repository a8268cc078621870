//! Decisions about applications: one or many (token, name, state, conditions) in one
//! transaction, each judged under the write's locks, with their changes logged and audited.
//! Set-based: a batch of 100 sends about the statements one decision does.
use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::audit::{self, Actor, AuditEntry, application_json};
use super::change_log::{AppChangeKind, Change};
use super::convert::{self, condition_columns, micros};
use super::entities::{applications, tokens};
use super::events::write_app_changes;
use super::guard::{self, AccountLock, Locked, LockedMany};
use super::{Repository, StorageError};
use crate::domain::{AppName, AppState, Application, Conditions, Evidence};

/// One decision asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDecision {
    pub token_id: Uuid,
    pub name: AppName,
    pub state: AppState,
    /// Only with `Allow`; the service checks that.
    pub conditions: Option<Conditions>,
}

/// What one decision did (or, validating only, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// The application changed; `before` is `None` for a name recorded by this decision.
    Changed {
        before: Option<Application>,
        after: Application,
    },
    /// It already stood so: nothing written, no event.
    Unchanged(Application),
}

impl Decided {
    pub fn application(&self) -> &Application {
        match self {
            Decided::Changed { after, .. } | Decided::Unchanged(after) => after,
        }
    }
}

/// Whether a write commits, or does everything and rolls back (AIP-163 `validate_only`):
/// a preview runs the very checks and writes a change would, so it says exactly what the
/// change would do, and leaves nothing behind (on PostgreSQL not even a NOTIFY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Commit,
    ValidateOnly,
}

impl WriteMode {
    pub(crate) async fn finish(self, tx: super::write::WriteTx) -> Result<(), StorageError> {
        match self {
            WriteMode::Commit => tx.commit().await?,
            WriteMode::ValidateOnly => tx.rollback().await?,
        }
        Ok(())
    }
}

impl Repository {
    /// Decides applications in one transaction. `check_caller` judges the caller as its token
    /// stands under the locks (its refusal refuses all); `check` judges each decision's target
    /// (its refusal is that decision's result, and nothing of it is written). Decisions that
    /// would change nothing write nothing. Results come in the order asked. The caller makes
    /// sure no (token, name) is asked twice.
    #[allow(clippy::too_many_arguments)]
    pub async fn decide_applications<E: From<StorageError>>(
        &self,
        account_id: Uuid,
        actor: Actor,
        decisions: &[AppDecision],
        reason: Option<&str>,
        mode: WriteMode,
        check_caller: impl FnOnce(&LockedMany) -> Result<(), E>,
        check: impl Fn(&Locked, &AppDecision) -> Result<(), E>,
    ) -> Result<Vec<Result<Decided, E>>, E> {
        let tx = self.begin_write().await?;
        let mut targets: Vec<Uuid> = decisions.iter().map(|d| d.token_id).collect();
        targets.sort();
        targets.dedup();
        let locked = guard::lock_many(
            &tx,
            account_id,
            &actor,
            &targets,
            AccountLock::Shared,
            &self.clock,
        )
        .await?;
        check_caller(&locked)?;
        let now = locked.now;
        let mut results: Vec<Option<Result<Decided, E>>> = Vec::with_capacity(decisions.len());
        let mut admitted = Vec::new();
        for (i, decision) in decisions.iter().enumerate() {
            match check(&locked.of(decision.token_id), decision) {
                Ok(()) => {
                    admitted.push(i);
                    results.push(None);
                }
                Err(refusal) => results.push(Some(Err(refusal))),
            }
        }
        let existing = existing_rows(&tx, decisions, &admitted).await?;
        let mut rows = Vec::new();
        let mut changes = Vec::new();
        let mut entries = Vec::new();
        let mut new_names: HashMap<Uuid, i64> = HashMap::new();
        for i in admitted {
            let d = &decisions[i];
            let before = existing
                .get(&(d.token_id, d.name.as_str().to_owned()))
                .cloned();
            if let Some(before) = &before
                && before.state == d.state
                && before.conditions == d.conditions
            {
                results[i] = Some(Ok(Decided::Unchanged(before.clone())));
                continue;
            }
            let after = match &before {
                Some(before) => Application {
                    state: d.state,
                    conditions: d.conditions.clone(),
                    updated_at: now,
                    ..before.clone()
                },
                None => {
                    *new_names.entry(d.token_id).or_default() += 1;
                    Application {
                        token_id: d.token_id,
                        name: d.name.clone(),
                        state: d.state,
                        conditions: d.conditions.clone(),
                        first_seen_at: now,
                        last_seen_at: now,
                        updated_at: now,
                        evidence: Evidence::default(),
                    }
                }
            };
            rows.push(row_of(account_id, &after));
            changes.push(Change::Application {
                token_id: d.token_id,
                name: d.name.clone(),
                state: d.state,
                kind: AppChangeKind::StateChanged,
                conditions: d.conditions.clone(),
                reason: reason.map(str::to_owned),
            });
            entries.push(AuditEntry {
                action: "application.set_state",
                target_type: "application",
                target_id: format!("{}/{}", d.token_id, d.name.as_str()),
                before: before.as_ref().map(application_json),
                after: Some(application_json(&after)),
            });
            results[i] = Some(Ok(Decided::Changed { before, after }));
        }
        if !rows.is_empty() {
            applications::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::columns([
                        applications::Column::TokenId,
                        applications::Column::Name,
                    ])
                    .update_columns([
                        applications::Column::State,
                        applications::Column::CondUntil,
                        applications::Column::CondMaxPrivilege,
                        applications::Column::CondCidrs,
                        applications::Column::UpdatedAt,
                    ])
                    .to_owned(),
                )
                .exec_without_returning(&tx)
                .await
                .map_err(StorageError::from)?;
        }
        // Counted, but never refused by the cap: the cap stops floods of unknown names, not approvers.
        for (token_id, added) in new_names {
            tokens::Entity::update_many()
                .col_expr(
                    tokens::Column::AppCount,
                    Expr::col(tokens::Column::AppCount).add(added),
                )
                .filter(tokens::Column::Id.eq(token_id))
                .exec(&tx)
                .await
                .map_err(StorageError::from)?;
        }
        write_app_changes(&tx, account_id, &changes, now).await?;
        audit::write_many(&tx, account_id, actor, entries, reason, now).await?;
        mode.finish(tx).await?;
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StorageError::Conflict.into())))
            .collect())
    }
}

impl Repository {
    /// Writes approvals whose end has passed by `now` back to Pending, at most `limit` of them,
    /// each with its change (an event for watchers) and audit entry, in one transaction.
    /// Rows another replica is sweeping are skipped (PostgreSQL), so each lapses once.
    /// Returns how many lapsed.
    pub async fn lapse_approvals(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: u64,
    ) -> Result<usize, StorageError> {
        let tx = self.begin_write().await?;
        let rows = applications::Entity::find()
            .filter(applications::Column::CondUntil.lte(micros(now)))
            .filter(applications::Column::State.eq(AppState::Allow.as_str()))
            .order_by_asc(applications::Column::CondUntil)
            .limit(limit)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&tx)
            .await?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let now = self.now();
        let lapsed = rows.len();
        applications::Entity::update_many()
            .col_expr(
                applications::Column::State,
                Expr::value(AppState::Pending.as_str()),
            )
            .col_expr(
                applications::Column::CondUntil,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                applications::Column::CondMaxPrivilege,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                applications::Column::CondCidrs,
                Expr::value(Option::<String>::None),
            )
            .col_expr(applications::Column::UpdatedAt, Expr::value(micros(now)))
            .filter(applications::Column::Seq.is_in(rows.iter().map(|r| r.seq)))
            .exec(&tx)
            .await?;
        let mut by_account: HashMap<Uuid, (Vec<Change>, Vec<AuditEntry>)> = HashMap::new();
        for row in rows {
            let account_id = row.account_id;
            let before = convert::application(row)?;
            let after = Application {
                state: AppState::Pending,
                conditions: None,
                updated_at: now,
                ..before.clone()
            };
            let (changes, entries) = by_account.entry(account_id).or_default();
            changes.push(Change::Application {
                token_id: after.token_id,
                name: after.name.clone(),
                state: AppState::Pending,
                kind: AppChangeKind::Lapsed,
                conditions: None,
                reason: None,
            });
            entries.push(AuditEntry {
                action: "application.lapse",
                target_type: "application",
                target_id: format!("{}/{}", after.token_id, after.name.as_str()),
                before: Some(application_json(&before)),
                after: Some(application_json(&after)),
            });
        }
        for (account_id, (changes, entries)) in by_account {
            write_app_changes(&tx, account_id, &changes, now).await?;
            audit::write_many(
                &tx,
                account_id,
                Actor::default(),
                entries,
                Some(LAPSE_REASON),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(lapsed)
    }
}

/// The reason audit entries of lapsed approvals carry.
pub const LAPSE_REASON: &str = "the approval reached its end (expire_time)";

/// The rows the admitted decisions are about, by (token, name): one query for all.
async fn existing_rows(
    conn: &impl ConnectionTrait,
    decisions: &[AppDecision],
    admitted: &[usize],
) -> Result<HashMap<(Uuid, String), Application>, StorageError> {
    if admitted.is_empty() {
        return Ok(HashMap::new());
    }
    let mut tokens: Vec<Uuid> = admitted.iter().map(|&i| decisions[i].token_id).collect();
    tokens.sort();
    tokens.dedup();
    let mut names: Vec<&str> = admitted
        .iter()
        .map(|&i| decisions[i].name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    // A superset (every asked name under every asked token), trimmed to the pairs asked.
    let rows = applications::Entity::find()
        .filter(applications::Column::TokenId.is_in(tokens))
        .filter(applications::Column::Name.is_in(names))
        .all(conn)
        .await?;
    rows.into_iter()
        .map(|m| {
            let app = convert::application(m)?;
            Ok(((app.token_id, app.name.as_str().to_owned()), app))
        })
        .collect()
}

fn row_of(account_id: Uuid, app: &Application) -> applications::ActiveModel {
    let (until, max_privilege, cidrs) = condition_columns(app.conditions.as_ref());
    applications::ActiveModel {
        token_id: Set(app.token_id),
        account_id: Set(account_id),
        name: Set(app.name.as_str().to_owned()),
        state: Set(app.state.as_str().to_owned()),
        first_seen_at: Set(micros(app.first_seen_at)),
        last_seen_at: Set(micros(app.last_seen_at)),
        updated_at: Set(micros(app.updated_at)),
        cond_until: Set(until),
        cond_max_privilege: Set(max_privilege),
        cond_cidrs: Set(cidrs),
        ..Default::default()
    }
}
