//! What the change log records: each kind of change, how it is stored (a kind the previous
//! release knows and a detail), and how a row reads back.
use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::super::StorageError;
use super::super::convert::{self, condition_columns, micros, time};
use super::super::entities::change_log;
use crate::domain::{AppName, AppState, Conditions, Evidence, Notice, NoticeKind, TokenType};

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
pub(super) struct Detail {
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
    pub(super) fn of(change: &Change) -> Option<String> {
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
                lead: TimeDelta::try_seconds(self.lead_secs.unwrap_or(0)).ok_or_else(&corrupt)?,
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
    pub(super) fn kind(&self) -> &'static str {
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

    pub(super) fn parse(row: &change_log::Model) -> Result<Change, StorageError> {
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
