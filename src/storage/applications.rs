//! Applications under tokens: the Authorize lookup, first-use recording with its event,
//! approval changes, and listing.
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use super::change_log::AppChangeKind;
use super::convert::{self, micros};
use super::entities::{applications, members, tokens};
use super::events::write_app_change;
use super::guard;
use super::{Repository, StorageError};
use crate::domain::{
    AppName, AppStanding, AppState, Application, Decision, OwnerStatus, SecretDigest, SecretUse,
    TokenGrant, TokenType,
};

/// What the Authorize lookup finds for a secret and an application name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantLookup {
    pub grant: TokenGrant,
    /// The application's state and conditions on the token; `None` if the name is new to it.
    pub app: Option<AppStanding>,
    /// Found by the token's current secret while the overlap of the secret it rotated out
    /// last waits for this secret's first use: this use starts it.
    pub overlap_waiting: bool,
}

/// The Authorize lookup: the secret's digest is either a token's secret or one it rotated
/// out (each a unique index), joined to the token, its owner and the application's state.
const FIND_GRANT: &str = "SELECT t.id AS token_id, t.account_id, t.token_type, t.owner_id, \
    t.privilege, t.default_app_state, t.retired_at, t.bound_cidrs, t.expire_at, \
    t.previous_overlap_micros, t.previous_ends_at, \
    s.digest AS secret_digest, s.rotated_out, s.ends_at AS rotated_ends_at, \
    m.role AS owner_role, m.removed_at AS owner_removed_at, \
    a.state AS app_state, a.cond_until, a.cond_max_privilege, a.cond_cidrs \
    FROM (SELECT id AS token_id, secret_digest AS digest, CAST(0 AS BIGINT) AS rotated_out, \
            CAST(NULL AS BIGINT) AS ends_at FROM tokens WHERE secret_digest = $1 \
          UNION ALL \
          SELECT token_id, digest, CAST(1 AS BIGINT), ends_at FROM rotated_secrets WHERE digest = $1) s \
    JOIN tokens t ON t.id = s.token_id \
    LEFT JOIN members m ON m.id = t.owner_id \
    LEFT JOIN applications a ON a.token_id = t.id AND a.name = $2";

/// The result of a first use of an application name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// This call recorded the name, in this state, and wrote its event.
    Recorded(AppState),
    /// Another call recorded it first; this is where it stands.
    Existing(AppStanding),
    /// The token has as many names as it may record; nothing was written.
    LimitReached,
    /// The token can no longer act (retired, or its owner removed) since it was looked up;
    /// nothing was written.
    Refused(Decision),
}

fn col<C: sea_orm::sea_query::IntoIden>(
    table: impl sea_orm::sea_query::IntoIden,
    column: C,
) -> Expr {
    Expr::col((table, column))
}

impl Repository {
    /// One query: the token by the digest of its secret or of a secret it rotated out (two
    /// unique-index probes), its owner's role, and the app's state on it.
    pub async fn find_grant(
        &self,
        digest: &SecretDigest,
        app: &AppName,
    ) -> Result<Option<GrantLookup>, StorageError> {
        let stmt = Statement::from_sql_and_values(
            self.db.get_database_backend(),
            FIND_GRANT,
            [digest.0.to_vec().into(), app.as_str().into()],
        );
        let Some(row) = self.db.query_one_raw(stmt).await? else {
            return Ok(None);
        };
        let stored: Vec<u8> = row.try_get("", "secret_digest")?;
        // The index found it; compare again in constant time so equality is never decided by a short-circuit.
        if SecretDigest::from_slice(&stored).as_ref() != Some(digest) {
            return Ok(None);
        }
        let token_type: String = row.try_get("", "token_type")?;
        let token_type: TokenType = convert::named(&token_type)?;
        let owner_role: Option<String> = row.try_get("", "owner_role")?;
        let owner_removed: Option<i64> = row.try_get("", "owner_removed_at")?;
        let current_role = match (owner_role, owner_removed) {
            (Some(role), None) => Some(convert::named(&role)?),
            _ => None,
        };
        let owner = OwnerStatus::of(token_type, current_role);
        let retired_at: Option<i64> = row.try_get("", "retired_at")?;
        let rotated_out: i64 = row.try_get("", "rotated_out")?;
        let secret = if rotated_out == 0 {
            SecretUse::Current
        } else {
            SecretUse::RotatedOut {
                ends_at: convert::opt_time(row.try_get("", "rotated_ends_at")?)?,
            }
        };
        // The previous secret's overlap waits for this one's first use: this may be it.
        let previous_overlap: Option<i64> = row.try_get("", "previous_overlap_micros")?;
        let previous_ends: Option<i64> = row.try_get("", "previous_ends_at")?;
        let overlap_waiting =
            secret == SecretUse::Current && previous_overlap.is_some() && previous_ends.is_none();
        let app_state: Option<String> = row.try_get("", "app_state")?;
        let app = match app_state {
            None => None,
            Some(state) => Some(AppStanding {
                state: convert::named(&state)?,
                conditions: convert::conditions(
                    row.try_get("", "cond_until")?,
                    row.try_get::<Option<String>>("", "cond_max_privilege")?
                        .as_deref(),
                    row.try_get::<Option<String>>("", "cond_cidrs")?.as_deref(),
                )?
                .map(Arc::new),
            }),
        };
        Ok(Some(GrantLookup {
            grant: TokenGrant {
                token_id: row.try_get("", "token_id")?,
                account_id: row.try_get("", "account_id")?,
                token_type,
                owner_id: row.try_get("", "owner_id")?,
                privilege: convert::named(&row.try_get::<String>("", "privilege")?)?,
                default_app_state: convert::named(
                    &row.try_get::<String>("", "default_app_state")?,
                )?,
                retired: retired_at.is_some(),
                owner,
                bound_ranges: convert::ranges(
                    row.try_get::<Option<String>>("", "bound_cidrs")?.as_deref(),
                )?,
                expires_at: convert::opt_time(row.try_get("", "expire_at")?)?,
                secret,
            },
            app,
            overlap_waiting,
        }))
    }

    /// Where a name stands on a token; `None` if the name is new to it.
    pub async fn app_standing(
        &self,
        token_id: Uuid,
        name: &AppName,
    ) -> Result<Option<AppStanding>, StorageError> {
        Ok(application_row(&self.db, token_id, name)
            .await?
            .map(convert::application)
            .transpose()?
            .map(|app| app.standing()))
    }

    /// Records a name's first use under the token's default state, with its event, in one
    /// transaction: lock the token's row and check it can still act (a retire or an owner's
    /// removal that committed first wins), count the name against the cap, insert it if
    /// absent, and append the event. Idempotent: of many concurrent first uses one records,
    /// the rest find it.
    pub async fn record_application(
        &self,
        grant: &TokenGrant,
        name: &AppName,
        max_apps_per_token: Option<u64>,
    ) -> Result<RecordOutcome, StorageError> {
        let tx = self.begin_write().await?;
        // Counting takes the token's row lock; the conditions are evaluated under it (PostgreSQL
        // re-checks them once a concurrent retire commits), so no name lands after a retire.
        let t = tokens::Entity;
        let m = members::Entity;
        let owner_is_member = Query::select()
            .expr(Expr::val(1))
            .from(m)
            .and_where(col(m, members::Column::Id).equals((t, tokens::Column::OwnerId)))
            .and_where(col(m, members::Column::RemovedAt).is_null())
            .to_owned();
        let mut counted = tokens::Entity::update_many()
            .col_expr(
                tokens::Column::AppCount,
                Expr::col(tokens::Column::AppCount).add(1),
            )
            .filter(tokens::Column::Id.eq(grant.token_id))
            .filter(tokens::Column::RetiredAt.is_null())
            .filter(
                Condition::any()
                    .add(tokens::Column::TokenType.eq(TokenType::Account.as_str()))
                    .add(Expr::exists(owner_is_member)),
            );
        if let Some(max) = max_apps_per_token {
            counted =
                counted.filter(tokens::Column::AppCount.lt(i64::try_from(max).unwrap_or(i64::MAX)));
        }
        if counted.exec(&tx).await?.rows_affected == 0 {
            tx.rollback().await?;
            if let Some(refusal) = self.refusal_now(grant.token_id).await? {
                return Ok(RecordOutcome::Refused(refusal));
            }
            // The cap is reached, unless another call recorded this very name meanwhile.
            return Ok(match self.app_standing(grant.token_id, name).await? {
                Some(state) => RecordOutcome::Existing(state),
                None => RecordOutcome::LimitReached,
            });
        }
        let now = self.now();
        let state = grant.default_app_state;
        let inserted =
            insert_application(&tx, grant.account_id, grant.token_id, name, state, now).await?;
        if !inserted {
            tx.rollback().await?;
            let existing = self.app_standing(grant.token_id, name).await?;
            return existing
                .map(RecordOutcome::Existing)
                .ok_or(StorageError::Conflict);
        }
        write_app_change(
            &tx,
            grant.account_id,
            grant.token_id,
            name,
            AppChangeKind::Recorded,
            state,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(RecordOutcome::Recorded(state))
    }

    /// Why a token cannot act now, if it cannot: retired, owner removed, or gone.
    async fn refusal_now(&self, token_id: Uuid) -> Result<Option<Decision>, StorageError> {
        let Some(row) = tokens::Entity::find()
            .filter(tokens::Column::Id.eq(token_id))
            .one(&self.db)
            .await?
        else {
            return Ok(Some(Decision::UnknownToken));
        };
        let owner = guard::owner_status(&self.db, &row).await?;
        Ok(guard::grant(&row, owner)?.usable(self.now()).err())
    }

    /// How many application names wait for approval, over all accounts: one COUNT for
    /// the metrics gauge, run when Prometheus scrapes, not on any request path.
    pub async fn count_pending_applications(&self) -> Result<u64, StorageError> {
        Ok(applications::Entity::find()
            .filter(applications::Column::State.eq(AppState::Pending.as_str()))
            .count(&self.db)
            .await?)
    }

    /// The applications of these tokens seen at or after `since`, most recently seen first,
    /// at most `limit`: what an impact preview shows.
    pub async fn recently_used(
        &self,
        token_ids: &[Uuid],
        since: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Application>, StorageError> {
        if token_ids.is_empty() {
            return Ok(Vec::new());
        }
        applications::Entity::find()
            .filter(applications::Column::TokenId.is_in(token_ids.iter().copied()))
            .filter(applications::Column::LastSeenAt.gte(micros(since)))
            .order_by_desc(applications::Column::LastSeenAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::application)
            .collect()
    }

    /// A token's names in the order first seen, after the given position.
    pub async fn list_applications(
        &self,
        token_id: Uuid,
        state: Option<AppState>,
        after_seq: Option<i64>,
        limit: u64,
    ) -> Result<Vec<(i64, Application)>, StorageError> {
        let mut query =
            applications::Entity::find().filter(applications::Column::TokenId.eq(token_id));
        if let Some(state) = state {
            query = query.filter(applications::Column::State.eq(state.as_str()));
        }
        if let Some(seq) = after_seq {
            query = query.filter(applications::Column::Seq.gt(seq));
        }
        let rows = query
            .order_by_asc(applications::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|m| Ok((m.seq, convert::application(m)?)))
            .collect()
    }
}

/// Inserts a new application row; a name already there is left alone and `false` comes back.
async fn insert_application(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    token_id: Uuid,
    name: &AppName,
    state: AppState,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let insert = applications::Entity::insert(applications::ActiveModel {
        token_id: Set(token_id),
        account_id: Set(account_id),
        name: Set(name.as_str().to_owned()),
        state: Set(state.as_str().to_owned()),
        first_seen_at: Set(micros(now)),
        last_seen_at: Set(micros(now)),
        updated_at: Set(micros(now)),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([applications::Column::TokenId, applications::Column::Name])
            .do_nothing()
            .to_owned(),
    );
    Ok(insert.exec_without_returning(conn).await? == 1)
}

async fn application_row(
    conn: &impl ConnectionTrait,
    token_id: Uuid,
    name: &AppName,
) -> Result<Option<applications::Model>, StorageError> {
    Ok(applications::Entity::find()
        .filter(applications::Column::TokenId.eq(token_id))
        .filter(applications::Column::Name.eq(name.as_str()))
        .one(conn)
        .await?)
}
