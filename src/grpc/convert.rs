//! Domain types to protobuf messages and back: `From` the domain for what is sent, `TryFrom`
//! the wire for enum values received (requests are read in `request`).
use chrono::{DateTime, Utc};
use prost_types::{ListValue, Struct, Timestamp, Value as PbValue, value::Kind};
use serde_json::Value;
use uuid::Uuid;

use super::pb;
use crate::domain::{
    Account, AccountPolicy, AppState, Application, Conditions, Decision, Evidence, Member,
    Privilege, TokenGrant, TokenState, TokenType,
};
use crate::service::{
    AppChange, AuditView, DecisionResult, Preview, TokenView, WatchEvent, WatchItem,
};
use crate::storage::Decided;

/// The UNSPECIFIED value of a protobuf enum, which no domain value stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unspecified;

/// One domain enum and its protobuf enum, both ways: the two matches sit side by side.
macro_rules! enum_pair {
    ($domain:ident, $pb:ident, { $($d:ident <=> $p:ident),+ $(,)? }) => {
        impl From<$domain> for pb::$pb {
            fn from(value: $domain) -> Self {
                match value {
                    $($domain::$d => pb::$pb::$p,)+
                }
            }
        }

        impl TryFrom<pb::$pb> for $domain {
            type Error = Unspecified;

            fn try_from(value: pb::$pb) -> Result<Self, Unspecified> {
                match value {
                    pb::$pb::Unspecified => Err(Unspecified),
                    $(pb::$pb::$p => Ok($domain::$d),)+
                }
            }
        }
    };
}

enum_pair!(Privilege, Privilege, { ReadOnly <=> ReadOnly, Normal <=> Normal, Admin <=> Admin });
enum_pair!(AppState, AppState, { Allow <=> Allow, Pending <=> Pending, Deny <=> Deny });
enum_pair!(TokenType, TokenType, { User <=> User, Account <=> Account });
enum_pair!(TokenState, TokenState, { Active <=> Active, Retired <=> Retired, Expired <=> Expired });

pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn id_or_empty(id: Option<Uuid>) -> String {
    id.map(id_string).unwrap_or_default()
}

/// An id as text, hex-encoded straight into its string: `to_string` goes through the
/// formatting machinery, and an allowed Authorize answers with three ids.
fn id_string(id: Uuid) -> String {
    id.hyphenated()
        .encode_lower(&mut Uuid::encode_buffer())
        .to_owned()
}

impl From<TokenView> for pb::Token {
    fn from(view: TokenView) -> Self {
        let t = view.token;
        pb::Token {
            id: t.id.to_string(),
            account_id: t.account_id.to_string(),
            r#type: pb::TokenType::from(t.token_type).into(),
            owner_user_id: id_or_empty(t.owner_id),
            privilege: pb::Privilege::from(t.privilege).into(),
            effective_privilege: view
                .effective_privilege
                .map_or(pb::Privilege::Unspecified, pb::Privilege::from)
                .into(),
            default_app_state: pb::AppState::from(t.default_app_state).into(),
            description: t.description.as_str().to_owned(),
            state: pb::TokenState::from(t.state(view.at)).into(),
            creator_user_id: id_or_empty(t.creator_id),
            create_time: Some(timestamp(t.created_at)),
            update_time: Some(timestamp(t.updated_at)),
            retire_time: t.retired_at.map(timestamp),
            promote_time: t.promoted_at.map(timestamp),
            last_used_time: t.last_used_at.map(timestamp),
            bound_cidrs: t.bound_ranges.to_strings(),
            expire_time: t.expires_at.map(timestamp),
            rotate_time: t.rotated_at.map(timestamp),
            previous_secret: t
                .previous_secret
                .filter(|p| p.ends_at.is_none_or(|end| end > view.at))
                .map(|p| pb::RotatedSecret {
                    rotate_time: Some(timestamp(p.rotated_at)),
                    end_time: p.ends_at.map(timestamp),
                    overlap: Some(duration(p.overlap)),
                }),
        }
    }
}

/// A duration on the wire.
pub fn duration(d: chrono::TimeDelta) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.num_seconds(),
        nanos: d.subsec_nanos(),
    }
}

impl From<AccountPolicy> for pb::AccountPolicy {
    fn from(p: AccountPolicy) -> Self {
        pb::AccountPolicy {
            max_token_lifetime: p.max_token_lifetime.map(duration),
            require_expiry: p.require_expiry,
            default_token_lifetime: p.default_token_lifetime.map(duration),
            expiry_notice_lead_times: p
                .expiry_notice_lead_times
                .into_iter()
                .map(duration)
                .collect(),
            dormant_after: p.dormant_after.map(duration),
            retire_on_reuse: p.retire_on_reuse,
        }
    }
}

impl From<Application> for pb::Application {
    fn from(a: Application) -> Self {
        pb::Application {
            token_id: a.token_id.to_string(),
            name: a.name.as_str().to_owned(),
            state: pb::AppState::from(a.state).into(),
            first_seen_time: Some(timestamp(a.first_seen_at)),
            last_seen_time: Some(timestamp(a.last_seen_at)),
            update_time: Some(timestamp(a.updated_at)),
            conditions: a.conditions.as_ref().map(Into::into),
            evidence: Some((&a.evidence).into()),
        }
    }
}

impl From<&Conditions> for pb::ApprovalConditions {
    fn from(c: &Conditions) -> Self {
        pb::ApprovalConditions {
            expire_time: c.until.map(timestamp),
            max_privilege: c
                .max_privilege
                .map_or(pb::Privilege::Unspecified, pb::Privilege::from)
                .into(),
            client_cidrs: c.client_ranges.to_strings(),
        }
    }
}

impl From<&Evidence> for pb::ApplicationEvidence {
    fn from(e: &Evidence) -> Self {
        pb::ApplicationEvidence {
            refused_attempts: i64::try_from(e.refused_attempts).unwrap_or(i64::MAX),
            allowed_count: i64::try_from(e.allowed_count).unwrap_or(i64::MAX),
            last_client_address: e
                .last_client_address
                .map(|a| a.to_string())
                .unwrap_or_default(),
        }
    }
}

/// A change as a watcher sees it: its sightings only when the change carries them.
impl From<&AppChange> for pb::Application {
    fn from(c: &AppChange) -> Self {
        pb::Application {
            token_id: c.token_id.to_string(),
            name: c.name.as_str().to_owned(),
            state: pb::AppState::from(c.state).into(),
            update_time: Some(timestamp(c.at)),
            conditions: c.conditions.as_ref().map(Into::into),
            first_seen_time: c.seen.as_ref().map(|s| timestamp(s.first_seen_at)),
            last_seen_time: c.seen.as_ref().map(|s| timestamp(s.last_seen_at)),
            evidence: c.seen.as_ref().map(|s| (&s.evidence).into()),
        }
    }
}

/// One batch decision's result: the application, or the status it was refused with.
impl From<DecisionResult> for pb::ApplicationDecisionResult {
    fn from(result: DecisionResult) -> Self {
        match result {
            Ok(decided) => pb::ApplicationDecisionResult {
                changed: matches!(decided, Decided::Changed { .. }),
                application: Some(decided.application().clone().into()),
                ..Default::default()
            },
            Err(error) => {
                // As the call would have been refused on its own: the same code and reason.
                let status = tonic::Status::from(error);
                let reason = tonic_types::StatusExt::get_error_details(&status)
                    .error_info()
                    .map(|info| info.reason.clone());
                pb::ApplicationDecisionResult {
                    code: status.code() as i32,
                    reason: reason.unwrap_or_default(),
                    message: status.message().to_owned(),
                    ..Default::default()
                }
            }
        }
    }
}

impl From<Preview> for pb::ImpactPreview {
    fn from(p: Preview) -> Self {
        let (denied_reason, denied_message) = p
            .refused
            .map(|(reason, message)| (reason.as_str().to_owned(), message))
            .unwrap_or_default();
        pb::ImpactPreview {
            permitted: denied_reason.is_empty(),
            denied_reason,
            denied_message,
            recently_used: p.recently_used.into_iter().map(Into::into).collect(),
            privilege_drops: p
                .privilege_drops
                .into_iter()
                .map(|d| pb::PrivilegeDrop {
                    token_id: d.token_id.to_string(),
                    description: d.description,
                    before: pb::Privilege::from(d.before).into(),
                    after: d
                        .after
                        .map_or(pb::Privilege::Unspecified, pb::Privilege::from)
                        .into(),
                })
                .collect(),
            usage_window_days: i32::try_from(p.window_days).unwrap_or(i32::MAX),
        }
    }
}

impl From<Member> for pb::Member {
    fn from(m: Member) -> Self {
        pb::Member {
            user_id: m.id.to_string(),
            account_id: m.account_id.to_string(),
            user_name: m.user_name.as_str().to_owned(),
            role: pb::Privilege::from(m.role).into(),
            create_time: Some(timestamp(m.created_at)),
            update_time: Some(timestamp(m.updated_at)),
        }
    }
}

impl From<Account> for pb::Account {
    fn from(a: Account) -> Self {
        pb::Account {
            id: a.id.to_string(),
            name: a.name,
            create_time: Some(timestamp(a.created_at)),
        }
    }
}

impl From<AuditView> for pb::AuditEvent {
    fn from(view: AuditView) -> Self {
        let r = view.record;
        pb::AuditEvent {
            id: view.id,
            account_id: r.account_id.to_string(),
            actor_user_id: id_or_empty(r.actor.member_id),
            actor_token_id: id_or_empty(r.actor.token_id),
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            before: r.before.and_then(json_struct),
            after: r.after.and_then(json_struct),
            create_time: Some(timestamp(r.created_at)),
            reason: r.reason.unwrap_or_default(),
        }
    }
}

fn json_struct(value: Value) -> Option<Struct> {
    match value {
        Value::Object(map) => Some(Struct {
            fields: map.into_iter().map(|(k, v)| (k, json_value(v))).collect(),
        }),
        _ => None,
    }
}

fn json_value(value: Value) -> PbValue {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(json_value).collect(),
        }),
        Value::Object(_) => {
            return PbValue {
                kind: json_struct(value).map(Kind::StructValue),
            };
        }
    };
    PbValue { kind: Some(kind) }
}

impl From<Decision> for pb::Decision {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Allow { .. } => pb::Decision::Allow,
            Decision::Pending => pb::Decision::Pending,
            Decision::Denied => pb::Decision::Denied,
            Decision::UnknownToken => pb::Decision::UnknownToken,
            Decision::Retired => pb::Decision::Retired,
            Decision::Expired => pb::Decision::Expired,
            Decision::InsufficientPrivilege { .. } => pb::Decision::InsufficientPrivilege,
            Decision::OwnerRemoved => pb::Decision::OwnerRemoved,
            Decision::AppLimitReached => pb::Decision::AppLimitReached,
            Decision::AddressNotAllowed(_) => pb::Decision::AddressNotAllowed,
        }
    }
}

/// Who an allowed token acts for, and with what.
pub fn principal(grant: &TokenGrant, effective: Privilege) -> pb::Principal {
    pb::Principal {
        account_id: id_string(grant.account_id),
        user_id: id_or_empty(grant.member_id()),
        token_id: id_string(grant.token_id),
        token_type: pb::TokenType::from(grant.token_type).into(),
        effective_privilege: pb::Privilege::from(effective).into(),
    }
}

impl From<WatchItem> for pb::WatchApplicationsResponse {
    fn from(item: WatchItem) -> Self {
        let reason = match &item.event {
            WatchEvent::Recorded(c) | WatchEvent::StateChanged(c) => c.reason.clone(),
            _ => None,
        };
        let (kind, application, event_time) = match item.event {
            WatchEvent::Snapshot(app) => {
                let at = timestamp(app.updated_at);
                (pb::WatchEventType::Snapshot, Some(app.into()), Some(at))
            }
            WatchEvent::SnapshotEnd => (pb::WatchEventType::SnapshotEnd, None, None),
            WatchEvent::Recorded(c) => {
                let at = timestamp(c.at);
                (pb::WatchEventType::Recorded, Some((&c).into()), Some(at))
            }
            WatchEvent::StateChanged(c) => {
                let at = timestamp(c.at);
                (
                    pb::WatchEventType::StateChanged,
                    Some((&c).into()),
                    Some(at),
                )
            }
            WatchEvent::Heartbeat => (
                pb::WatchEventType::Heartbeat,
                None,
                Some(timestamp(Utc::now())),
            ),
        };
        pb::WatchApplicationsResponse {
            r#type: kind.into(),
            application,
            cursor: item.cursor,
            event_time,
            reason: reason.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_unspecified_is_no_value() {
        for p in [Privilege::ReadOnly, Privilege::Normal, Privilege::Admin] {
            assert_eq!(Privilege::try_from(pb::Privilege::from(p)), Ok(p));
        }
        for s in [AppState::Allow, AppState::Pending, AppState::Deny] {
            assert_eq!(AppState::try_from(pb::AppState::from(s)), Ok(s));
        }
        assert_eq!(
            TokenType::try_from(pb::TokenType::Unspecified),
            Err(Unspecified)
        );
    }
}
