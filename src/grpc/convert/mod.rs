//! Domain types to protobuf messages and back: `From` the domain for what is sent, `TryFrom`
//! the wire for enum values received (requests are read in `request`).
//! Applications in `applications`, the watch streams' messages in `watch`.
mod applications;
mod watch;

use chrono::{DateTime, Utc};
use prost_types::{ListValue, Struct, Timestamp, Value as PbValue, value::Kind};
use serde_json::Value;
use uuid::Uuid;

use super::pb;
use crate::domain::{
    Account, AccountPolicy, AppState, Decision, Member, Privilege, TokenState, TokenType,
};
use crate::service::{AuditView, TokenView};

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
/// formatting machinery.
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
            previous_secret: t.previous_secret_at(view.at).map(|p| pb::RotatedSecret {
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
