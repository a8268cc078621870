//! The change log: appended in the transaction of every change that can alter a decision or
//! what a caller may see, in commit order; followed by every replica, compacted past retention.
//! What a change is and how it is stored lives in `change`.
mod change;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseBackend, EntityTrait, QuerySelect, Statement,
};
use uuid::Uuid;

use super::convert::{self, micros, time};
use super::entities::{applications, change_log, tokens};
use super::notify::notify_appended;
use super::{Repository, StorageError};
use crate::domain::Evidence;
use change::Detail;
pub use change::{AppChangeKind, Change, LoggedChange, SeenNow, TokenChange, TokenOwnership};

/// Serialises appends on PostgreSQL so sequence order is commit order: a reader that has
/// seen change N can never later find a committed change below N. (SQLite has one writer.)
const LOG_LOCK_KEY: i64 = 0x6170_692d_6576_656e; // "api-even": the key the event log used

/// Appends a change; call inside the transaction of the change it records. Other replicas
/// are woken when the transaction commits.
pub(crate) async fn append(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    change: &Change,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    append_many(conn, account_id, std::slice::from_ref(change), now).await
}

/// Appends changes in this order with one statement; call inside the transaction of the
/// changes they record. Nothing to append is nothing done.
pub(crate) async fn append_many(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    changes: &[Change],
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    if changes.is_empty() {
        return Ok(());
    }
    if conn.get_database_backend() == DatabaseBackend::Postgres {
        conn.execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [LOG_LOCK_KEY.into()],
        ))
        .await?;
    }
    let rows = changes.iter().map(|change| {
        let (token_id, member_id, app_name, state) = match change {
            Change::Token { token_id, .. } => (Some(*token_id), None, None, None),
            Change::Member { member_id, .. } => (None, Some(*member_id), None, None),
            Change::Application {
                token_id,
                name,
                state,
                ..
            } => (
                Some(*token_id),
                None,
                Some(name.as_str().to_owned()),
                Some(state.as_str().to_owned()),
            ),
        };
        change_log::ActiveModel {
            account_id: Set(account_id),
            kind: Set(change.kind().to_owned()),
            token_id: Set(token_id),
            member_id: Set(member_id),
            app_name: Set(app_name),
            state: Set(state),
            created_at: Set(micros(now)),
            detail: Set(Detail::of(change)),
            ..Default::default()
        }
    });
    // Sequence numbers follow the rows' order in one multi-row INSERT on both backends.
    change_log::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    notify_appended(conn).await
}

impl Repository {
    /// Changes after `after_seq` (of one account, or of all), oldest first, at most `limit`.
    pub async fn changes_after(
        &self,
        account_id: Option<Uuid>,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<LoggedChange>, StorageError> {
        use change_log::Column as C;
        let (log, t, a) = (change_log::Entity, tokens::Entity, applications::Entity);
        let stmt = Query::select()
            .columns([
                (log, C::Seq),
                (log, C::AccountId),
                (log, C::Kind),
                (log, C::TokenId),
                (log, C::MemberId),
                (log, C::AppName),
                (log, C::State),
                (log, C::CreatedAt),
                (log, C::Detail),
            ])
            .expr_as(
                Expr::col((t, tokens::Column::TokenType)),
                Alias::new("token_type"),
            )
            .expr_as(
                Expr::col((t, tokens::Column::OwnerId)),
                Alias::new("owner_id"),
            )
            .expr_as(
                Expr::col((a, applications::Column::FirstSeenAt)),
                Alias::new("first_seen_at"),
            )
            .expr_as(
                Expr::col((a, applications::Column::LastSeenAt)),
                Alias::new("last_seen_at"),
            )
            .expr_as(
                Expr::col((a, applications::Column::RefusedAttempts)),
                Alias::new("refused_attempts"),
            )
            .expr_as(
                Expr::col((a, applications::Column::AllowedCount)),
                Alias::new("allowed_count"),
            )
            .expr_as(
                Expr::col((a, applications::Column::LastClientAddress)),
                Alias::new("last_client_address"),
            )
            .from(log)
            .left_join(
                t,
                Expr::col((t, tokens::Column::Id)).equals((log, C::TokenId)),
            )
            // The application's evidence as it stands when the change is read: what a
            // watcher deciding on it wants to know (a unique index makes this one probe).
            .left_join(
                a,
                Condition::all()
                    .add(Expr::col((a, applications::Column::TokenId)).equals((log, C::TokenId)))
                    .add(Expr::col((a, applications::Column::Name)).equals((log, C::AppName))),
            )
            .and_where(Expr::col((log, C::Seq)).gt(after_seq))
            .and_where_option(account_id.map(|id| Expr::col((log, C::AccountId)).eq(id)))
            .order_by((log, C::Seq), sea_orm::Order::Asc)
            .limit(limit)
            .to_owned();
        let rows = self.db.query_all(&stmt).await?;
        rows.into_iter()
            .map(|row| {
                let model = change_log::Model {
                    seq: row.try_get("", "seq")?,
                    account_id: row.try_get("", "account_id")?,
                    kind: row.try_get("", "kind")?,
                    token_id: row.try_get("", "token_id")?,
                    member_id: row.try_get("", "member_id")?,
                    app_name: row.try_get("", "app_name")?,
                    state: row.try_get("", "state")?,
                    created_at: row.try_get("", "created_at")?,
                    detail: row.try_get("", "detail")?,
                };
                let first_seen: Option<i64> = row.try_get("", "first_seen_at")?;
                let seen = match (first_seen, model.app_name.is_some()) {
                    (Some(first_seen), true) => Some(SeenNow {
                        first_seen_at: time(first_seen)?,
                        last_seen_at: time(row.try_get("", "last_seen_at")?)?,
                        evidence: Evidence {
                            refused_attempts: convert::count(row.try_get("", "refused_attempts")?),
                            allowed_count: convert::count(row.try_get("", "allowed_count")?),
                            last_client_address: row
                                .try_get::<Option<String>>("", "last_client_address")?
                                .and_then(|a| a.parse().ok()),
                        },
                    }),
                    _ => None,
                };
                let token_type: Option<String> = row.try_get("", "token_type")?;
                let token = token_type
                    .map(|ty| {
                        Ok::<_, StorageError>(TokenOwnership {
                            token_type: convert::named(&ty)?,
                            owner_id: row.try_get("", "owner_id")?,
                        })
                    })
                    .transpose()?;
                Ok(LoggedChange {
                    seq: model.seq,
                    account_id: model.account_id,
                    change: Change::parse(&model)?,
                    token,
                    at: time(model.created_at)?,
                    seen,
                })
            })
            .collect()
    }

    /// The newest change's position (0 for an empty log).
    pub async fn log_head(&self) -> Result<i64, StorageError> {
        log_head(&self.db).await
    }
}

/// The newest change's position, read on `conn` (inside a snapshot's transaction, say).
pub(crate) async fn log_head(conn: &impl ConnectionTrait) -> Result<i64, StorageError> {
    let head: Option<i64> = change_log::Entity::find()
        .select_only()
        .expr(Expr::col(change_log::Column::Seq).max())
        .into_tuple()
        .one(conn)
        .await?
        .flatten();
    Ok(head.unwrap_or(0))
}
