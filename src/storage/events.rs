//! Application changes: written to the change log (and, for the previous release's watchers,
//! to `app_events`) in the transaction of each change; snapshots for WatchApplications;
//! compaction of both logs past the retention age.
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    AccessMode, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait,
    IsolationLevel, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use uuid::Uuid;

use super::change_log::{self, AppChangeKind, Change};
use super::convert::{self, micros};
use super::entities::{app_events, applications, change_log as log_rows, tokens};
use super::{Repository, StorageError};
use crate::domain::{AppName, AppState, Application, TokenType};

/// Rows of `event_log_horizon`: the previous release's application event log, and the change log.
const APP_EVENTS_HORIZON: i64 = 1;
const CHANGE_LOG_HORIZON: i64 = 2;

/// An application in a snapshot, with its token's type and owner for visibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotItem {
    pub application: Application,
    pub token_type: TokenType,
    pub owner_id: Option<Uuid>,
}

/// Records an application's first use; call inside the transaction that records it.
pub(crate) async fn write_app_change(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    token_id: Uuid,
    name: &AppName,
    kind: AppChangeKind,
    state: AppState,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let change = Change::Application {
        token_id,
        name: name.clone(),
        state,
        kind,
        conditions: None,
        reason: None,
    };
    write_app_changes(conn, account_id, &[change], now).await
}

/// Records applications' changes (`Change::Application`s) in order; call inside the
/// transaction of the changes. One statement per log, however many changes.
pub(crate) async fn write_app_changes(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    changes: &[Change],
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    // The append takes the log's lock first, so both logs are written in commit order.
    change_log::append_many(conn, account_id, changes, now).await?;
    let rows: Vec<_> = changes
        .iter()
        .filter_map(|change| match change {
            Change::Application {
                token_id,
                name,
                state,
                kind,
                ..
            } => Some(app_events::ActiveModel {
                account_id: Set(account_id),
                token_id: Set(*token_id),
                app_name: Set(name.as_str().to_owned()),
                kind: Set(match kind {
                    AppChangeKind::Recorded => "recorded",
                    AppChangeKind::StateChanged | AppChangeKind::Lapsed => "state_changed",
                }
                .to_owned()),
                state: Set(state.as_str().to_owned()),
                created_at: Set(micros(now)),
                ..Default::default()
            }),
            _ => None,
        })
        .collect();
    if !rows.is_empty() {
        app_events::Entity::insert_many(rows)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

impl Repository {
    /// The change log's head and the account's applications in the given states, read from
    /// one snapshot of the database so the stream after it misses nothing.
    pub async fn snapshot(
        &self,
        account_id: Uuid,
        states: &[AppState],
        token_id: Option<Uuid>,
    ) -> Result<(i64, Vec<SnapshotItem>), StorageError> {
        // SQLite's one connection is a snapshot by itself, and it knows no isolation levels.
        let (isolation, access) = if self.is_postgres() {
            (
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
        } else {
            (None, None)
        };
        let tx = self.db.begin_with_config(isolation, access).await?;
        let head = change_log::log_head(&tx).await?;
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
                    token_type: convert::named(&ty)?,
                    owner_id,
                })
            })
            .collect::<Result<_, StorageError>>()?;
        Ok((head, items))
    }

    /// The highest change-log position that may have been deleted: positions below it are expired.
    pub async fn compacted_through(&self) -> Result<i64, StorageError> {
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                self.db.get_database_backend(),
                match self.db.get_database_backend() {
                    DatabaseBackend::Postgres => {
                        "SELECT compacted_through FROM event_log_horizon WHERE id = $1"
                    }
                    _ => "SELECT compacted_through FROM event_log_horizon WHERE id = ?",
                },
                [CHANGE_LOG_HORIZON.into()],
            ))
            .await?;
        Ok(match row {
            Some(row) => row.try_get_by_index(0)?,
            None => 0,
        })
    }

    /// Deletes changes (and previous-release events) older than `before` and moves each
    /// log's horizon past them. Returns how many changes went.
    pub async fn compact_events(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let tx = self.begin_write().await?;
        compact::<app_events::Entity>(
            &tx,
            (app_events::Column::Seq, app_events::Column::CreatedAt),
            APP_EVENTS_HORIZON,
            before,
        )
        .await?;
        let deleted = compact::<log_rows::Entity>(
            &tx,
            (log_rows::Column::Seq, log_rows::Column::CreatedAt),
            CHANGE_LOG_HORIZON,
            before,
        )
        .await?;
        tx.commit().await?;
        Ok(deleted)
    }
}

/// Deletes the rows of one log (`seq`, `created_at`) older than `before` and raises the log's
/// `horizon` row past them; how many went.
async fn compact<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    (seq, created_at): (E::Column, E::Column),
    horizon: i64,
    before: DateTime<Utc>,
) -> Result<u64, StorageError> {
    let newest_old: Option<i64> = E::find()
        .select_only()
        .expr(Expr::col(seq).max())
        .filter(created_at.lt(micros(before)))
        .into_tuple()
        .one(conn)
        .await?
        .flatten();
    let Some(through) = newest_old else {
        return Ok(0);
    };
    let deleted = E::delete_many()
        .filter(seq.lte(through))
        .exec(conn)
        .await?
        .rows_affected;
    raise_horizon(conn, horizon, through).await?;
    Ok(deleted)
}

async fn raise_horizon(
    conn: &impl ConnectionTrait,
    row: i64,
    through: i64,
) -> Result<(), StorageError> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            "UPDATE event_log_horizon SET compacted_through = GREATEST(compacted_through, $1) WHERE id = $2"
        }
        _ => {
            "UPDATE event_log_horizon SET compacted_through = MAX(compacted_through, ?) WHERE id = ?"
        }
    };
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [through.into(), row.into()],
    ))
    .await?;
    Ok(())
}
