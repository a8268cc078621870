//! The change log: appended in the transaction of every change that can alter a decision or
//! what a caller may see, in commit order; followed by every replica, compacted past retention.
use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseBackend, EntityTrait, QuerySelect, Statement,
};
use uuid::Uuid;

use super::convert::{self, condition_columns, micros, time};
use super::entities::{applications, change_log, tokens};
use super::notify::notify_appended;
use super::{Repository, StorageError};
use crate::domain::{AppName, AppState, Conditions, Evidence, Notice, NoticeKind, TokenType};

/// Serialises appends on PostgreSQL so sequence order is commit order: a reader that has
/// seen change N can never later find a committed change below N. (SQLite has one writer.)
const LOG_LOCK_KEY: i64 = 0x6170_692d_6576_656e; // "api-even": the key the event log used

/// What happened to a token.
///
/// The lifecycle notices (expiring, expired, dormant) change nothing of the token: they are
/// logged so that watchers hear them in order with everything else. Every kind is stored
/// under a kind the previous release knows (`token.retired` for a leak report,
/// `token.updated` for a notice), with the difference in `detail`, so a rolled-back replica
/// follows the log (forgetting the token's cache entry) instead of stopping at a kind it
/// cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenChange {
    Created,
    /// Changed (privilege, default state, description, ranges, expiry), or the overlap of
    /// its rotated-out secret started at the new secret's first use.
    Updated,
    Retired,
    Promoted,
    /// Its secret was replaced (RotateToken): every replica forgets the old secret's grant
    /// and finds both secrets anew. Logged as `token.updated` (the previous release knows
    /// that kind, and forgets the token's grants for it) whose detail says `rotated`.
    Rotated,
    /// A secret it rotated out was used after its overlap (the first such use of that
    /// secret). Logged as `token.updated` whose detail says `secret_reused`.
    SecretReused,
    /// Retired because someone reported its secret leaked, saying where they found it.
    LeakReported {
        where_found: Option<String>,
    },
    /// A lifecycle notice (expiring, expired, dormant): nothing of the token changed.
    Notice(Notice),
}

impl TokenChange {
    /// What the detail of a row says it was, when it was more than its stored kind says.
    fn detail(&self) -> Option<&'static str> {
        match self {
            TokenChange::Rotated => Some("rotated"),
            TokenChange::SecretReused => Some("secret_reused"),
            TokenChange::LeakReported { .. } => Some("leak_reported"),
            TokenChange::Notice(notice) => Some(notice.kind.as_str()),
            _ => None,
        }
    }
}

/// Whether an application's change is its first use or a decision about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppChangeKind {
    /// First used: recorded under the token's default state.
    Recorded,
    /// Its state was set by an owner or an Admin (or pre-allowed).
    StateChanged,
    /// Its conditional approval reached its end and it is Pending again. Logged as a state
    /// change (the previous release knows that kind) whose detail says why.
    Lapsed,
}

/// One change, as a writer appends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Token {
        token_id: Uuid,
        what: TokenChange,
    },
    /// A member's role changed (`removed: false`) or they left the account.
    Member {
        member_id: Uuid,
        removed: bool,
    },
    Application {
        token_id: Uuid,
        name: AppName,
        state: AppState,
        kind: AppChangeKind,
        /// An Allow's conditions, exact as written: replicas cache them from here.
        conditions: Option<Conditions>,
        /// Why the decision was made, as its maker said.
        reason: Option<String>,
    },
}

/// What a logged change carries beyond its columns, as the JSON of `change_log.detail`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Detail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_privilege: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cidrs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    lapsed: bool,
    /// A token change logged under an older kind that was more (see `TokenChange::detail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_change: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    where_found: Option<String>,
    /// A notice's lead time, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lead_secs: Option<i64>,
    /// Microseconds: the time a notice is about (an expiry, a last use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    about: Option<i64>,
}

impl Detail {
    fn of(change: &Change) -> Option<String> {
        if let Change::Token { what, .. } = change {
            return Detail::of_token(what);
        }
        let Change::Application {
            kind,
            conditions,
            reason,
            ..
        } = change
        else {
            return None;
        };
        let (until, max_privilege, cidrs) = condition_columns(conditions.as_ref());
        let detail = Detail {
            until,
            max_privilege,
            cidrs,
            reason: reason.clone(),
            lapsed: *kind == AppChangeKind::Lapsed,
            ..Detail::default()
        };
        let empty = detail.until.is_none()
            && detail.max_privilege.is_none()
            && detail.cidrs.is_none()
            && detail.reason.is_none()
            && !detail.lapsed;
        (!empty).then(|| serde_json::to_string(&detail).unwrap_or_default())
    }

    fn of_token(what: &TokenChange) -> Option<String> {
        let mut detail = Detail {
            token_change: Some(what.detail()?.to_owned()),
            ..Detail::default()
        };
        match what {
            TokenChange::LeakReported { where_found } => detail.where_found = where_found.clone(),
            TokenChange::Notice(notice) => {
                detail.lead_secs = Some(notice.lead.num_seconds());
                detail.about = Some(micros(notice.about));
            }
            _ => {}
        }
        Some(serde_json::to_string(&detail).unwrap_or_default())
    }

    /// The token change a stored kind and its detail stand for. A detail this release does
    /// not know leaves the stored kind, as the previous release reads it.
    fn token_change(
        &self,
        stored: TokenChange,
        corrupt: impl Fn() -> StorageError,
    ) -> Result<TokenChange, StorageError> {
        let notice = |kind| {
            Ok::<_, StorageError>(TokenChange::Notice(Notice {
                kind,
                lead: TimeDelta::seconds(self.lead_secs.unwrap_or(0)),
                about: time(self.about.ok_or_else(&corrupt)?)?,
            }))
        };
        Ok(match (self.token_change.as_deref(), stored) {
            (Some("rotated"), TokenChange::Updated) => TokenChange::Rotated,
            (Some("secret_reused"), TokenChange::Updated) => TokenChange::SecretReused,
            (Some("leak_reported"), TokenChange::Retired) => TokenChange::LeakReported {
                where_found: self.where_found.clone(),
            },
            (Some("expiring"), TokenChange::Updated) => notice(NoticeKind::Expiring)?,
            (Some("expired"), TokenChange::Updated) => notice(NoticeKind::Expired)?,
            (Some("dormant"), TokenChange::Updated) => notice(NoticeKind::Dormant)?,
            (_, stored) => stored,
        })
    }

    fn parse(text: Option<&str>) -> Result<Detail, StorageError> {
        match text {
            None => Ok(Detail::default()),
            Some(text) => serde_json::from_str(text)
                .map_err(|e| StorageError::corrupt(format!("change detail: {e}"))),
        }
    }
}

impl Change {
    fn kind(&self) -> &'static str {
        match self {
            Change::Token { what, .. } => match what {
                TokenChange::Created => "token.created",
                TokenChange::Updated
                | TokenChange::Rotated
                | TokenChange::SecretReused
                | TokenChange::Notice(_) => "token.updated",
                TokenChange::Retired | TokenChange::LeakReported { .. } => "token.retired",
                TokenChange::Promoted => "token.promoted",
            },
            Change::Member { removed: false, .. } => "member.changed",
            Change::Member { removed: true, .. } => "member.removed",
            Change::Application { kind, .. } => match kind {
                AppChangeKind::Recorded => "application.recorded",
                AppChangeKind::StateChanged | AppChangeKind::Lapsed => "application.state_changed",
            },
        }
    }

    fn parse(row: &change_log::Model) -> Result<Change, StorageError> {
        let corrupt =
            || StorageError::corrupt(format!("change {} of kind {:?}", row.seq, row.kind));
        let token_id = || row.token_id.ok_or_else(corrupt);
        let token = |stored| {
            let detail = Detail::parse(row.detail.as_deref())?;
            Ok(Change::Token {
                token_id: token_id()?,
                what: detail.token_change(stored, corrupt)?,
            })
        };
        let application = |kind| {
            let name = row.app_name.as_deref().ok_or_else(corrupt)?;
            let state = row.state.as_deref().ok_or_else(corrupt)?;
            let detail = Detail::parse(row.detail.as_deref())?;
            Ok(Change::Application {
                token_id: token_id()?,
                name: AppName::parse(name).map_err(StorageError::corrupt)?,
                state: convert::named(state)?,
                kind: if detail.lapsed {
                    AppChangeKind::Lapsed
                } else {
                    kind
                },
                conditions: convert::conditions(
                    detail.until,
                    detail.max_privilege.as_deref(),
                    detail.cidrs.as_deref(),
                )?,
                reason: detail.reason,
            })
        };
        let member = |removed| {
            Ok(Change::Member {
                member_id: row.member_id.ok_or_else(corrupt)?,
                removed,
            })
        };
        match row.kind.as_str() {
            "token.created" => token(TokenChange::Created),
            "token.updated" => token(TokenChange::Updated),
            "token.retired" => token(TokenChange::Retired),
            "token.promoted" => token(TokenChange::Promoted),
            "member.changed" => member(false),
            "member.removed" => member(true),
            "application.recorded" => application(AppChangeKind::Recorded),
            "application.state_changed" => application(AppChangeKind::StateChanged),
            _ => Err(corrupt()),
        }
    }
}

/// The token a logged change is about, as it is now: what visibility rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenOwnership {
    pub token_type: TokenType,
    pub owner_id: Option<Uuid>,
}

/// One change as read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedChange {
    pub seq: i64,
    pub account_id: Uuid,
    pub change: Change,
    /// The changed token's type and owner now; `None` for a member change.
    pub token: Option<TokenOwnership>,
    pub at: DateTime<Utc>,
    /// For an application's change: what has been seen of it, as of reading the change.
    pub seen: Option<SeenNow>,
}

/// What the service has seen of an application so far (times and evidence, written behind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenNow {
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub evidence: Evidence,
}

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
