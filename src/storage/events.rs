//! The application event log (outbox): appended in the transaction of each change,
//! read in order by WatchApplications, compacted past the retention age.
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    AccessMode, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait,
    IsolationLevel, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use uuid::Uuid;

use super::convert::{self, micros, time};
use super::entities::{app_events, applications, tokens};
use super::notify::{Change, publish};
use super::{Repository, StorageError};
use crate::domain::{AppName, AppState, Application, TokenType};

/// Kinds of rows in the application event log.
pub const EVENT_RECORDED: &str = "recorded";
pub const EVENT_STATE_CHANGED: &str = "state_changed";

/// Serialises event appends on PostgreSQL so sequence order is commit order: a reader
/// that has seen event N can never later find a committed event below N.
const EVENT_LOCK_KEY: i64 = 0x6170_692d_6576_656e; // "api-even"

/// One event, with what visibility rules need to know of its token now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub account_id: Uuid,
    pub token_id: Uuid,
    pub token_type: TokenType,
    pub owner_id: Option<Uuid>,
    pub app_name: AppName,
    /// True for a first use, false for a state change.
    pub recorded: bool,
    pub state: AppState,
    pub at: DateTime<Utc>,
}

/// An application in a snapshot, with its token's type and owner for visibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotItem {
    pub application: Application,
    pub token_type: TokenType,
    pub owner_id: Option<Uuid>,
}

/// Appends an event; call inside the transaction of the change it records.
pub(crate) async fn write_event(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    token_id: Uuid,
    name: &AppName,
    kind: &str,
    state: AppState,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    if conn.get_database_backend() == DatabaseBackend::Postgres {
        conn.execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [EVENT_LOCK_KEY.into()],
        ))
        .await?;
    }
    app_events::Entity::insert(app_events::ActiveModel {
        account_id: Set(account_id),
        token_id: Set(token_id),
        app_name: Set(name.as_str().to_owned()),
        kind: Set(kind.to_owned()),
        state: Set(state.as_str().to_owned()),
        created_at: Set(micros(now)),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    publish(conn, &Change::Events).await
}

fn token_type(s: &str) -> Result<TokenType, StorageError> {
    TokenType::parse(s).ok_or_else(|| StorageError::Corrupt(format!("unknown token type {s:?}")))
}

impl Repository {
    /// Events after `after_seq` (of one account, or of all), oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        account_id: Option<Uuid>,
        after_seq: i64,
        limit: u64,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        let (e, t) = (app_events::Entity, tokens::Entity);
        let stmt = Query::select()
            .column((e, app_events::Column::Seq))
            .column((e, app_events::Column::AccountId))
            .column((e, app_events::Column::TokenId))
            .column((e, app_events::Column::AppName))
            .column((e, app_events::Column::Kind))
            .column((e, app_events::Column::State))
            .column((e, app_events::Column::CreatedAt))
            .expr_as(
                Expr::col((t, tokens::Column::TokenType)),
                Alias::new("token_type"),
            )
            .expr_as(
                Expr::col((t, tokens::Column::OwnerId)),
                Alias::new("owner_id"),
            )
            .from(e)
            .inner_join(
                t,
                Expr::col((t, tokens::Column::Id)).equals((e, app_events::Column::TokenId)),
            )
            .and_where(Expr::col((e, app_events::Column::Seq)).gt(after_seq))
            .and_where_option(
                account_id.map(|id| Expr::col((e, app_events::Column::AccountId)).eq(id)),
            )
            .order_by((e, app_events::Column::Seq), sea_orm::Order::Asc)
            .limit(limit)
            .to_owned();
        let rows = self.db.query_all(&stmt).await?;
        rows.into_iter()
            .map(|row| {
                let kind: String = row.try_get("", "kind")?;
                Ok(StoredEvent {
                    seq: row.try_get("", "seq")?,
                    account_id: row.try_get("", "account_id")?,
                    token_id: row.try_get("", "token_id")?,
                    token_type: token_type(&row.try_get::<String>("", "token_type")?)?,
                    owner_id: row.try_get("", "owner_id")?,
                    app_name: AppName::parse(&row.try_get::<String>("", "app_name")?)
                        .map_err(StorageError::Corrupt)?,
                    recorded: kind == EVENT_RECORDED,
                    state: convert::app_state(&row.try_get::<String>("", "state")?)?,
                    at: time(row.try_get("", "created_at")?)?,
                })
            })
            .collect()
    }

    /// The newest event's position and the account's applications in the given states, read
    /// from one snapshot of the database so the stream after it misses nothing.
    pub async fn snapshot(
        &self,
        account_id: Uuid,
        states: &[AppState],
        token_id: Option<Uuid>,
    ) -> Result<(i64, Vec<SnapshotItem>), StorageError> {
        let tx = self
            .db
            .begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?;
        let head: Option<i64> = app_events::Entity::find()
            .select_only()
            .expr(Expr::col(app_events::Column::Seq).max())
            .into_tuple()
            .one(&tx)
            .await?
            .flatten();
        let owners: std::collections::HashMap<Uuid, (String, Option<Uuid>)> =
            tokens::Entity::find()
                .select_only()
                .columns([
                    tokens::Column::Id,
                    tokens::Column::TokenType,
                    tokens::Column::OwnerId,
                ])
                .filter(tokens::Column::AccountId.eq(account_id))
                .into_tuple::<(Uuid, String, Option<Uuid>)>()
                .all(&tx)
                .await?
                .into_iter()
                .map(|(id, ty, owner)| (id, (ty, owner)))
                .collect();
        let mut query = applications::Entity::find()
            .filter(applications::Column::AccountId.eq(account_id))
            .filter(applications::Column::State.is_in(states.iter().map(|s| s.as_str())));
        if let Some(token) = token_id {
            query = query.filter(applications::Column::TokenId.eq(token));
        }
        let rows = query
            .order_by_asc(applications::Column::Seq)
            .all(&tx)
            .await?;
        tx.commit().await?;
        let items = rows
            .into_iter()
            .filter_map(|app| owners.get(&app.token_id).cloned().map(|t| (app, t)))
            .map(|(app, (ty, owner_id))| {
                Ok(SnapshotItem {
                    application: convert::application(app)?,
                    token_type: token_type(&ty)?,
                    owner_id,
                })
            })
            .collect::<Result<_, StorageError>>()?;
        Ok((head.unwrap_or(0), items))
    }

    /// The newest event's position (0 for an empty log).
    pub async fn event_head(&self) -> Result<i64, StorageError> {
        let head: Option<i64> = app_events::Entity::find()
            .select_only()
            .expr(Expr::col(app_events::Column::Seq).max())
            .into_tuple()
            .one(&self.db)
            .await?
            .flatten();
        Ok(head.unwrap_or(0))
    }

    /// The highest position whose events may have been deleted: cursors below it are expired.
    pub async fn compacted_through(&self) -> Result<i64, StorageError> {
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                "SELECT compacted_through FROM event_log_horizon WHERE id = 1",
            ))
            .await?;
        Ok(match row {
            Some(row) => row.try_get_by_index(0)?,
            None => 0,
        })
    }

    /// Deletes events older than `before` and moves the horizon past them. Returns how many went.
    pub async fn compact_events(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let tx = self.db.begin().await?;
        let newest_old: Option<i64> = app_events::Entity::find()
            .select_only()
            .expr(Expr::col(app_events::Column::Seq).max())
            .filter(app_events::Column::CreatedAt.lt(micros(before)))
            .into_tuple()
            .one(&tx)
            .await?
            .flatten();
        let Some(through) = newest_old else {
            return Ok(0);
        };
        let deleted = app_events::Entity::delete_many()
            .filter(app_events::Column::Seq.lte(through))
            .exec(&tx)
            .await?
            .rows_affected;
        let backend = tx.get_database_backend();
        let sql = match backend {
            DatabaseBackend::Postgres => {
                "UPDATE event_log_horizon SET compacted_through = GREATEST(compacted_through, $1) WHERE id = 1"
            }
            _ => {
                "UPDATE event_log_horizon SET compacted_through = MAX(compacted_through, ?) WHERE id = 1"
            }
        };
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [through.into()],
        ))
        .await?;
        tx.commit().await?;
        Ok(deleted)
    }
}
