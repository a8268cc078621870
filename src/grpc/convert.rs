//! Protobuf messages to domain types and back. Request parsing collects every bad field.
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use prost_types::{ListValue, Struct, Timestamp, Value as PbValue, value::Kind};
use serde_json::Value;
use uuid::Uuid;

use super::pb;
use crate::domain::{
    Account, AddressRanges, AppName, AppState, Application, Conditions, Decision, Evidence,
    FieldViolation, Member, Privilege, TokenGrant, TokenState, TokenType, truncate_to_micros,
};
use crate::service::{
    AppChange, AuditView, DecisionResult, Preview, ServiceError, TokenView, WatchEvent, WatchItem,
    WatchRequest,
};
use crate::storage::Decided;

/// Collects the field violations of one request, so the caller learns all of them at once.
#[derive(Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|e| self.0.push(FieldViolation::new(field, e)))
            .ok()
    }

    pub fn add(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// `Err` with every violation, or the value built from the parsed fields.
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, ServiceError> {
        match (self.0.is_empty(), build()) {
            (true, Some(value)) => Ok(value),
            (true, None) => Err(ServiceError::Internal(
                "request parsed without violations but incomplete".into(),
            )),
            (false, _) => Err(ServiceError::InvalidArgument(self.0)),
        }
    }
}

pub fn uuid(value: &str) -> Result<Uuid, String> {
    if value.is_empty() {
        return Err("is required".into());
    }
    Uuid::parse_str(value).map_err(|_| "must be a UUID".into())
}

pub fn optional_uuid(value: &str) -> Result<Option<Uuid>, String> {
    if value.is_empty() {
        Ok(None)
    } else {
        uuid(value).map(Some)
    }
}

/// An optional client address: empty is unknown.
pub fn optional_address(value: &str) -> Result<Option<IpAddr>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse::<IpAddr>()
        .map(|a| Some(a.to_canonical()))
        .map_err(|_| "must be an IPv4 or IPv6 address, e.g. 10.1.2.3".into())
}

/// Address ranges (CIDRs) as a request lists them.
pub fn ranges(values: &[String]) -> Result<AddressRanges, String> {
    AddressRanges::parse(values)
}

/// A decision's conditions, checked against its state at `now`: every bad field is noted
/// under `field` (e.g. `conditions` or `decisions[3].conditions`).
pub fn conditions(
    v: &mut Violations,
    field: &str,
    given: Option<&pb::ApprovalConditions>,
    state: Option<AppState>,
    now: DateTime<Utc>,
) -> Option<Option<Conditions>> {
    let Some(given) = given else {
        return Some(None);
    };
    let until = match &given.expire_time {
        None => Some(None),
        Some(t) => v
            .check(
                &format!("{field}.expire_time"),
                DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(u32::MAX))
                    .map(truncate_to_micros)
                    .ok_or_else(|| "is not a valid time".to_owned()),
            )
            .map(Some),
    };
    let max_privilege = v.check(
        &format!("{field}.max_privilege"),
        privilege(given.max_privilege),
    );
    let client_ranges = v.check(
        &format!("{field}.client_cidrs"),
        ranges(&given.client_cidrs),
    );
    let conditions = Conditions {
        until: until?,
        max_privilege: max_privilege?,
        client_ranges: client_ranges?,
    };
    // Without a valid state there is nothing to check the conditions against; the state's
    // own violation is reported.
    let state = state?;
    v.check(field, conditions.for_state(state, now))
}

pub fn app_name(value: &str) -> Result<AppName, String> {
    AppName::parse(value)
}

fn unknown(value: i32) -> String {
    format!("unknown enum value {value}")
}

/// `Ok(None)` for the UNSPECIFIED value.
pub fn privilege(value: i32) -> Result<Option<Privilege>, String> {
    match pb::Privilege::try_from(value).map_err(|_| unknown(value))? {
        pb::Privilege::Unspecified => Ok(None),
        pb::Privilege::ReadOnly => Ok(Some(Privilege::ReadOnly)),
        pb::Privilege::Normal => Ok(Some(Privilege::Normal)),
        pb::Privilege::Admin => Ok(Some(Privilege::Admin)),
    }
}

pub fn required<T>(value: Result<Option<T>, String>) -> Result<T, String> {
    value?.ok_or_else(|| "is required".into())
}

pub fn app_state(value: i32) -> Result<Option<AppState>, String> {
    match pb::AppState::try_from(value).map_err(|_| unknown(value))? {
        pb::AppState::Unspecified => Ok(None),
        pb::AppState::Allow => Ok(Some(AppState::Allow)),
        pb::AppState::Pending => Ok(Some(AppState::Pending)),
        pb::AppState::Deny => Ok(Some(AppState::Deny)),
    }
}

pub fn token_type(value: i32) -> Result<Option<TokenType>, String> {
    match pb::TokenType::try_from(value).map_err(|_| unknown(value))? {
        pb::TokenType::Unspecified => Ok(None),
        pb::TokenType::User => Ok(Some(TokenType::User)),
        pb::TokenType::Account => Ok(Some(TokenType::Account)),
    }
}

pub fn token_state(value: i32) -> Result<Option<TokenState>, String> {
    match pb::TokenState::try_from(value).map_err(|_| unknown(value))? {
        pb::TokenState::Unspecified => Ok(None),
        pb::TokenState::Active => Ok(Some(TokenState::Active)),
        pb::TokenState::Retired => Ok(Some(TokenState::Retired)),
    }
}

pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn privilege_pb(p: Privilege) -> pb::Privilege {
    match p {
        Privilege::ReadOnly => pb::Privilege::ReadOnly,
        Privilege::Normal => pb::Privilege::Normal,
        Privilege::Admin => pb::Privilege::Admin,
    }
}

pub fn app_state_pb(s: AppState) -> pb::AppState {
    match s {
        AppState::Allow => pb::AppState::Allow,
        AppState::Pending => pb::AppState::Pending,
        AppState::Deny => pb::AppState::Deny,
    }
}

pub fn token_type_pb(t: TokenType) -> pb::TokenType {
    match t {
        TokenType::User => pb::TokenType::User,
        TokenType::Account => pb::TokenType::Account,
    }
}

fn id_or_empty(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

pub fn token_pb(view: TokenView) -> pb::Token {
    let t = view.token;
    let state = match t.state() {
        TokenState::Active => pb::TokenState::Active,
        TokenState::Retired => pb::TokenState::Retired,
    };
    pb::Token {
        id: t.id.to_string(),
        account_id: t.account_id.to_string(),
        r#type: token_type_pb(t.token_type).into(),
        owner_user_id: id_or_empty(t.owner_id),
        privilege: privilege_pb(t.privilege).into(),
        effective_privilege: view
            .effective_privilege
            .map_or(pb::Privilege::Unspecified, privilege_pb)
            .into(),
        default_app_state: app_state_pb(t.default_app_state).into(),
        description: t.description.as_str().to_owned(),
        state: state.into(),
        creator_user_id: id_or_empty(t.creator_id),
        create_time: Some(timestamp(t.created_at)),
        update_time: Some(timestamp(t.updated_at)),
        retire_time: t.retired_at.map(timestamp),
        promote_time: t.promoted_at.map(timestamp),
        last_used_time: t.last_used_at.map(timestamp),
        bound_cidrs: t.bound_ranges.to_strings(),
    }
}

pub fn application_pb(a: Application) -> pb::Application {
    pb::Application {
        token_id: a.token_id.to_string(),
        name: a.name.as_str().to_owned(),
        state: app_state_pb(a.state).into(),
        first_seen_time: Some(timestamp(a.first_seen_at)),
        last_seen_time: Some(timestamp(a.last_seen_at)),
        update_time: Some(timestamp(a.updated_at)),
        conditions: a.conditions.as_ref().map(conditions_pb),
        evidence: Some(evidence_pb(&a.evidence)),
    }
}

pub fn conditions_pb(c: &Conditions) -> pb::ApprovalConditions {
    pb::ApprovalConditions {
        expire_time: c.until.map(timestamp),
        max_privilege: c
            .max_privilege
            .map_or(pb::Privilege::Unspecified, privilege_pb)
            .into(),
        client_cidrs: c.client_ranges.to_strings(),
    }
}

pub fn evidence_pb(e: &Evidence) -> pb::ApplicationEvidence {
    pb::ApplicationEvidence {
        refused_attempts: i64::try_from(e.refused_attempts).unwrap_or(i64::MAX),
        allowed_count: i64::try_from(e.allowed_count).unwrap_or(i64::MAX),
        last_client_address: e
            .last_client_address
            .map(|a| a.to_string())
            .unwrap_or_default(),
    }
}

pub fn member_pb(m: Member) -> pb::Member {
    pb::Member {
        user_id: m.id.to_string(),
        account_id: m.account_id.to_string(),
        user_name: m.user_name.as_str().to_owned(),
        role: privilege_pb(m.role).into(),
        create_time: Some(timestamp(m.created_at)),
        update_time: Some(timestamp(m.updated_at)),
    }
}

pub fn account_pb(a: Account) -> pb::Account {
    pb::Account {
        id: a.id.to_string(),
        name: a.name,
        create_time: Some(timestamp(a.created_at)),
    }
}

pub fn audit_pb(view: AuditView) -> pb::AuditEvent {
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

pub fn decision_pb(d: Decision) -> pb::Decision {
    match d {
        Decision::Allow { .. } => pb::Decision::Allow,
        Decision::Pending => pb::Decision::Pending,
        Decision::Denied => pb::Decision::Denied,
        Decision::UnknownToken => pb::Decision::UnknownToken,
        Decision::Retired => pb::Decision::Retired,
        Decision::InsufficientPrivilege { .. } => pb::Decision::InsufficientPrivilege,
        Decision::OwnerRemoved => pb::Decision::OwnerRemoved,
        Decision::AppLimitReached => pb::Decision::AppLimitReached,
        Decision::AddressNotAllowed(_) => pb::Decision::AddressNotAllowed,
    }
}

pub fn principal_pb(grant: &TokenGrant, effective: Privilege) -> pb::Principal {
    pb::Principal {
        account_id: grant.account_id.to_string(),
        user_id: if grant.token_type == TokenType::User {
            id_or_empty(grant.owner_id)
        } else {
            String::new()
        },
        token_id: grant.token_id.to_string(),
        token_type: token_type_pb(grant.token_type).into(),
        effective_privilege: privilege_pb(effective).into(),
    }
}

pub fn watch_request(req: &pb::WatchApplicationsRequest) -> Result<WatchRequest, ServiceError> {
    let mut v = Violations::default();
    let cursor = v.check(
        "cursor",
        Ok::<_, String>(Some(req.cursor.clone()).filter(|c| !c.is_empty())),
    );
    let mut states = Vec::new();
    for (i, state) in req.states.iter().enumerate() {
        if let Some(state) = v.check(&format!("states[{i}]"), required(app_state(*state))) {
            states.push(state);
        }
    }
    let token_id = v.check("token_id", optional_uuid(&req.token_id));
    v.finish(|| {
        Some(WatchRequest {
            cursor: cursor?,
            states,
            token_id: token_id?,
        })
    })
}

/// One batch decision's result: the application, or the status it was refused with.
pub fn decision_result_pb(result: DecisionResult) -> pb::ApplicationDecisionResult {
    match result {
        Ok(decided) => pb::ApplicationDecisionResult {
            changed: matches!(decided, Decided::Changed { .. }),
            application: Some(application_pb(decided.application().clone())),
            ..Default::default()
        },
        Err(error) => {
            let status = tonic::Status::from(error);
            let reason = tonic_types::StatusExt::get_error_details(&status)
                .error_info()
                .map(|info| info.reason.clone())
                .unwrap_or_default();
            pb::ApplicationDecisionResult {
                code: status.code() as i32,
                reason,
                message: status.message().to_owned(),
                ..Default::default()
            }
        }
    }
}

pub fn preview_pb(p: Preview) -> pb::ImpactPreview {
    let (denied_reason, denied_message) = p
        .refused
        .map(|(reason, message)| (reason.as_str().to_owned(), message))
        .unwrap_or_default();
    pb::ImpactPreview {
        permitted: denied_reason.is_empty(),
        denied_reason,
        denied_message,
        recently_used: p.recently_used.into_iter().map(application_pb).collect(),
        privilege_drops: p
            .privilege_drops
            .into_iter()
            .map(|d| pb::PrivilegeDrop {
                token_id: d.token_id.to_string(),
                description: d.description,
                before: privilege_pb(d.before).into(),
                after: d
                    .after
                    .map_or(pb::Privilege::Unspecified, privilege_pb)
                    .into(),
            })
            .collect(),
        usage_window_days: i32::try_from(p.window_days).unwrap_or(i32::MAX),
    }
}

fn change_pb(c: &AppChange) -> pb::Application {
    pb::Application {
        token_id: c.token_id.to_string(),
        name: c.name.as_str().to_owned(),
        state: app_state_pb(c.state).into(),
        update_time: Some(timestamp(c.at)),
        conditions: c.conditions.as_ref().map(conditions_pb),
        first_seen_time: c.seen.as_ref().map(|s| timestamp(s.first_seen_at)),
        last_seen_time: c.seen.as_ref().map(|s| timestamp(s.last_seen_at)),
        evidence: c.seen.as_ref().map(|s| evidence_pb(&s.evidence)),
    }
}

pub fn watch_item_pb(item: WatchItem) -> pb::WatchApplicationsResponse {
    let reason = match &item.event {
        WatchEvent::Recorded(c) | WatchEvent::StateChanged(c) => c.reason.clone(),
        _ => None,
    };
    let (kind, application, event_time) = match item.event {
        WatchEvent::Snapshot(app) => {
            let at = app.updated_at;
            (
                pb::WatchEventType::Snapshot,
                Some(application_pb(app)),
                Some(timestamp(at)),
            )
        }
        WatchEvent::SnapshotEnd => (pb::WatchEventType::SnapshotEnd, None, None),
        WatchEvent::Recorded(c) => {
            let at = timestamp(c.at);
            (pb::WatchEventType::Recorded, Some(change_pb(&c)), Some(at))
        }
        WatchEvent::StateChanged(c) => {
            let at = timestamp(c.at);
            (
                pb::WatchEventType::StateChanged,
                Some(change_pb(&c)),
                Some(at),
            )
        }
        WatchEvent::Heartbeat => (
            pb::WatchEventType::Heartbeat,
            None,
            Some(timestamp(chrono::Utc::now())),
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
