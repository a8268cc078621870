//! Request messages read into what their use cases take: one `TryFrom` per message, each
//! reporting every bad field at once (INVALID_ARGUMENT with a BadRequest), never the first only.
use std::collections::HashSet;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::convert::Unspecified;
use super::pb;
use crate::domain::{
    AccountPolicy, AddressRanges, AppName, AppState, Conditions, Description, FieldViolation,
    Privilege, Rationale, Rotation, Secret, TokenType, UserName, truncate_to_micros,
};
use crate::service::{
    LeakReport, MAX_BATCH, NewTokenRequest, PageRequest, PolicyUpdate, RotateRequest, ServiceError,
    TokenFilters, TokenUpdate, TokenWatchRequest, WatchRequest,
};
use crate::storage::AppDecision;

/// Reads a request message into what its use case takes.
pub fn parse<'a, M, T>(message: &'a M) -> Result<T, ServiceError>
where
    T: TryFrom<&'a M, Error = ServiceError>,
{
    T::try_from(message)
}

/// Collects the field violations of one request, so the caller learns all of them at once.
#[derive(Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|e| self.0.push(FieldViolation::new(field, e)))
            .ok()
    }

    fn add(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    fn uuid(&mut self, field: &str, value: &str) -> Option<Uuid> {
        self.check(field, uuid(value))
    }

    /// An id that may be left empty.
    fn optional_uuid(&mut self, field: &str, value: &str) -> Option<Option<Uuid>> {
        if value.is_empty() {
            return Some(None);
        }
        self.uuid(field, value).map(Some)
    }

    /// An enum field: `Some(None)` for its UNSPECIFIED value.
    fn enumerated<P, D>(&mut self, field: &str, value: i32) -> Option<Option<D>>
    where
        P: TryFrom<i32>,
        D: TryFrom<P, Error = Unspecified>,
    {
        let known = self.check(
            field,
            P::try_from(value).map_err(|_| format!("unknown enum value {value}")),
        )?;
        Some(D::try_from(known).ok())
    }

    /// An enum field that must be set.
    fn required<P, D>(&mut self, field: &str, value: i32) -> Option<D>
    where
        P: TryFrom<i32>,
        D: TryFrom<P, Error = Unspecified>,
    {
        match self.enumerated::<P, D>(field, value)? {
            Some(value) => Some(value),
            None => {
                self.add(field, "is required");
                None
            }
        }
    }

    /// Address ranges (CIDRs) as a request lists them.
    fn ranges(&mut self, field: &str, values: &[String]) -> Option<AddressRanges> {
        self.check(field, AddressRanges::parse(values))
    }

    /// An optional client address: empty is unknown.
    fn optional_address(&mut self, field: &str, value: &str) -> Option<Option<IpAddr>> {
        if value.is_empty() {
            return Some(None);
        }
        self.check(
            field,
            value
                .parse::<IpAddr>()
                .map(|a| Some(a.to_canonical()))
                .map_err(|_| "must be an IPv4 or IPv6 address, e.g. 10.1.2.3".into()),
        )
    }

    /// A time, to the microsecond the database keeps; `None` when unset.
    fn optional_time(
        &mut self,
        field: &str,
        value: Option<&prost_types::Timestamp>,
    ) -> Option<Option<DateTime<Utc>>> {
        match value {
            None => Some(None),
            Some(t) => self
                .check(
                    field,
                    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(u32::MAX))
                        .map(truncate_to_micros)
                        .ok_or_else(|| "is not a valid time".to_owned()),
                )
                .map(Some),
        }
    }

    /// A duration of whole microseconds or more; `None` when unset. Never negative.
    fn optional_duration(
        &mut self,
        field: &str,
        value: Option<&prost_types::Duration>,
    ) -> Option<Option<chrono::TimeDelta>> {
        match value {
            None => Some(None),
            Some(d) => self.check(field, duration(d)).map(Some),
        }
    }

    /// A decision's conditions, checked against its state at `now`: every bad field is noted
    /// under `field` (e.g. `conditions` or `decisions[3].conditions`).
    fn conditions(
        &mut self,
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
            Some(t) => self
                .check(
                    &format!("{field}.expire_time"),
                    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(u32::MAX))
                        .map(truncate_to_micros)
                        .ok_or_else(|| "is not a valid time".to_owned()),
                )
                .map(Some),
        };
        let max_privilege = self.enumerated::<pb::Privilege, Privilege>(
            &format!("{field}.max_privilege"),
            given.max_privilege,
        );
        let client_ranges = self.ranges(&format!("{field}.client_cidrs"), &given.client_cidrs);
        let conditions = Conditions {
            until: until?,
            max_privilege: max_privilege?,
            client_ranges: client_ranges?,
        };
        // Without a valid state there is nothing to check the conditions against; the state's
        // own violation is reported.
        let state = state?;
        self.check(field, conditions.for_state(state, now))
    }

    /// One decision's fields, under `prefix` (`""` for SetApplicationState's own fields,
    /// `decisions[i].` in a batch); its conditions are checked against its state now.
    fn decision(
        &mut self,
        prefix: &str,
        token_id: &str,
        name: &str,
        state: i32,
        conditions: Option<&pb::ApprovalConditions>,
    ) -> Option<AppDecision> {
        let token_id = self.uuid(&format!("{prefix}token_id"), token_id);
        let name = self.check(&format!("{prefix}name"), AppName::parse(name));
        let state = self.required::<pb::AppState, AppState>(&format!("{prefix}state"), state);
        let conditions = self.conditions(
            &format!("{prefix}conditions"),
            conditions,
            state,
            crate::domain::now(),
        );
        Some(AppDecision {
            token_id: token_id?,
            name: name?,
            state: state?,
            conditions: conditions?,
        })
    }

    fn page(&mut self, page_size: i32, page_token: &str) -> Option<PageRequest> {
        self.check("page_size", PageRequest::parse(page_size, page_token))
    }

    /// `Err` with every violation, or the value built from the parsed fields.
    fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, ServiceError> {
        match (self.0.is_empty(), build()) {
            (true, Some(value)) => Ok(value),
            (true, None) => Err(ServiceError::Internal(
                "request parsed without violations but incomplete".into(),
            )),
            (false, _) => Err(ServiceError::InvalidArgument(self.0)),
        }
    }
}

fn duration(d: &prost_types::Duration) -> Result<chrono::TimeDelta, String> {
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return Err("must be a non-negative duration".into());
    }
    chrono::TimeDelta::try_seconds(d.seconds)
        .and_then(|s| s.checked_add(&chrono::TimeDelta::nanoseconds(i64::from(d.nanos))))
        .ok_or_else(|| "is too long".to_owned())
}

fn uuid(value: &str) -> Result<Uuid, String> {
    if value.is_empty() {
        return Err("is required".into());
    }
    Uuid::parse_str(value).map_err(|_| "must be a UUID".into())
}

/// A request naming one token, member or other resource by id.
macro_rules! by_id {
    ($($message:ident . $field:ident),+ $(,)?) => {$(
        impl TryFrom<&pb::$message> for Uuid {
            type Error = ServiceError;

            fn try_from(req: &pb::$message) -> Result<Self, ServiceError> {
                let mut v = Violations::default();
                let id = v.uuid(stringify!($field), &req.$field);
                v.finish(|| id)
            }
        }
    )+};
}

by_id!(
    GetTokenRequest.id,
    RetireTokenRequest.id,
    RemoveMemberRequest.user_id,
);

/// What an Authorize request asks.
pub struct Asked {
    pub secret: Secret,
    pub app: AppName,
    pub required: Privilege,
    pub client: Option<IpAddr>,
}

impl TryFrom<&pb::AuthorizeRequest> for Asked {
    type Error = ServiceError;

    fn try_from(req: &pb::AuthorizeRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let secret = v.check(
            "token",
            Secret::parse(&req.token).map_err(|e| e.to_string()),
        );
        let app = v.check("app_name", AppName::parse(&req.app_name));
        let required =
            v.enumerated::<pb::Privilege, Privilege>("required_privilege", req.required_privilege);
        let client = v.optional_address("client_address", &req.client_address);
        v.finish(|| {
            Some(Asked {
                secret: secret?,
                app: app?,
                required: required?.unwrap_or(Privilege::ReadOnly),
                client: client?,
            })
        })
    }
}

impl TryFrom<&pb::CreateTokenRequest> for NewTokenRequest {
    type Error = ServiceError;

    fn try_from(req: &pb::CreateTokenRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let token_type = v.required::<pb::TokenType, TokenType>("type", req.r#type);
        let privilege = v.enumerated::<pb::Privilege, Privilege>("privilege", req.privilege);
        let default_app_state =
            v.enumerated::<pb::AppState, AppState>("default_app_state", req.default_app_state);
        let description = v.check("description", Description::parse(&req.description));
        let request_id = v.optional_uuid("request_id", &req.request_id);
        let bound_ranges = v.ranges("bound_cidrs", &req.bound_cidrs);
        let expire_time = v.optional_time("expire_time", req.expire_time.as_ref());
        v.finish(|| {
            Some(NewTokenRequest {
                token_type: token_type?,
                privilege: privilege?.unwrap_or(Privilege::ReadOnly),
                default_app_state: default_app_state?.unwrap_or(AppState::Pending),
                description: description?,
                request_id: request_id?,
                bound_ranges: bound_ranges?,
                expire_time: expire_time?,
            })
        })
    }
}

impl TryFrom<&pb::ListTokensRequest> for (TokenFilters, PageRequest) {
    type Error = ServiceError;

    fn try_from(req: &pb::ListTokensRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let token_type = v.enumerated::<pb::TokenType, _>("type", req.r#type);
        let owner_id = v.optional_uuid("owner_user_id", &req.owner_user_id);
        let state = v.enumerated::<pb::TokenState, _>("state", req.state);
        let expire_before = v.optional_time("expire_before", req.expire_before.as_ref());
        let page = v.page(req.page_size, &req.page_token);
        v.finish(|| {
            let filters = TokenFilters {
                token_type: token_type?,
                owner_id: owner_id?,
                state: state?,
                expire_before: expire_before?,
            };
            Some((filters, page?))
        })
    }
}

impl TryFrom<&pb::UpdateTokenRequest> for (Uuid, TokenUpdate) {
    type Error = ServiceError;

    fn try_from(req: &pb::UpdateTokenRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let Some(token) = req.token.as_ref() else {
            return Err(ServiceError::invalid("token", "is required"));
        };
        let id = v.uuid("token.id", &token.id);
        let paths = req
            .update_mask
            .as_ref()
            .map(|m| m.paths.as_slice())
            .unwrap_or_default();
        if paths.is_empty() {
            v.add(
                "update_mask",
                "is required: name the fields to change (privilege, default_app_state, description, bound_cidrs, expire_time)",
            );
        }
        let mut update = TokenUpdate::default();
        for path in paths {
            match path.as_str() {
                "privilege" => {
                    update.privilege =
                        v.required::<pb::Privilege, _>("token.privilege", token.privilege);
                }
                "default_app_state" => {
                    update.default_app_state = v.required::<pb::AppState, _>(
                        "token.default_app_state",
                        token.default_app_state,
                    );
                }
                "description" => {
                    update.description =
                        v.check("token.description", Description::parse(&token.description));
                }
                "bound_cidrs" => {
                    update.bound_ranges = v.ranges("token.bound_cidrs", &token.bound_cidrs);
                }
                "expire_time" => {
                    update.expire_time =
                        v.optional_time("token.expire_time", token.expire_time.as_ref());
                }
                other => v.add(
                    "update_mask",
                    format!(
                        "cannot update '{other}': only privilege, default_app_state, description, bound_cidrs and expire_time may change"
                    ),
                ),
            }
        }
        v.finish(|| Some((id?, update)))
    }
}

impl TryFrom<&pb::PromoteTokenRequest> for (Uuid, Option<Privilege>) {
    type Error = ServiceError;

    fn try_from(req: &pb::PromoteTokenRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let id = v.uuid("id", &req.id);
        let privilege = v.enumerated::<pb::Privilege, _>("privilege", req.privilege);
        v.finish(|| Some((id?, privilege?)))
    }
}

impl TryFrom<&pb::RotateTokenRequest> for (Uuid, RotateRequest) {
    type Error = ServiceError;

    fn try_from(req: &pb::RotateTokenRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let id = v.uuid("id", &req.id);
        let overlap = v
            .optional_duration("overlap", req.overlap.as_ref())
            .and_then(|overlap| {
                v.check(
                    "overlap",
                    Rotation::new(overlap.unwrap_or_default(), req.overlap_from_first_use),
                )
            });
        let expire_time = v.optional_time("expire_time", req.expire_time.as_ref());
        v.finish(|| {
            Some((
                id?,
                RotateRequest {
                    rotation: overlap?,
                    // Unset keeps the token's expiry: RotateToken cannot remove one.
                    expire_time: expire_time?.map(Some),
                },
            ))
        })
    }
}

impl TryFrom<&pb::SetAccountPolicyRequest> for PolicyUpdate {
    type Error = ServiceError;

    fn try_from(req: &pb::SetAccountPolicyRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let given = req.policy.clone().unwrap_or_default();
        let max = v.optional_duration(
            "policy.max_token_lifetime",
            given.max_token_lifetime.as_ref(),
        );
        let default = v.optional_duration(
            "policy.default_token_lifetime",
            given.default_token_lifetime.as_ref(),
        );
        let dormant = v.optional_duration("policy.dormant_after", given.dormant_after.as_ref());
        let leads: Vec<_> = given
            .expiry_notice_lead_times
            .iter()
            .enumerate()
            .map(|(i, d)| {
                v.check(
                    &format!("policy.expiry_notice_lead_times[{i}]"),
                    duration(d),
                )
            })
            .collect();
        let paths = req
            .update_mask
            .as_ref()
            .map(|m| m.paths.clone())
            .unwrap_or_default();
        for path in &paths {
            if path != "*" && !crate::service::POLICY_FIELDS.contains(&path.as_str()) {
                v.add(
                    "update_mask",
                    format!(
                        "cannot set '{path}': the fields are {}",
                        crate::service::POLICY_FIELDS.join(", ")
                    ),
                );
            }
        }
        let fields = (!paths.is_empty() && !paths.iter().any(|p| p == "*")).then_some(paths);
        v.finish(|| {
            Some(PolicyUpdate {
                policy: AccountPolicy {
                    max_token_lifetime: max?,
                    require_expiry: given.require_expiry,
                    default_token_lifetime: default?,
                    expiry_notice_lead_times: leads.into_iter().collect::<Option<Vec<_>>>()?,
                    dormant_after: dormant?,
                    retire_on_reuse: given.retire_on_reuse,
                },
                fields,
            })
        })
    }
}

impl TryFrom<&pb::ListApplicationsRequest> for (Uuid, Option<AppState>, PageRequest) {
    type Error = ServiceError;

    fn try_from(req: &pb::ListApplicationsRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let token_id = v.uuid("token_id", &req.token_id);
        let state = v.enumerated::<pb::AppState, _>("state", req.state);
        let page = v.page(req.page_size, &req.page_token);
        v.finish(|| Some((token_id?, state?, page?)))
    }
}

/// The decision and the reason given for it.
impl TryFrom<&pb::SetApplicationStateRequest> for (AppDecision, Option<Rationale>) {
    type Error = ServiceError;

    fn try_from(req: &pb::SetApplicationStateRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let decision = v.decision(
            "",
            &req.token_id,
            &req.name,
            req.state,
            req.conditions.as_ref(),
        );
        let reason = v.check("reason", Rationale::parse(&req.reason));
        v.finish(|| Some((decision?, reason?)))
    }
}

/// Every decision of the batch and the reason given for them.
impl TryFrom<&pb::BatchSetApplicationStatesRequest> for (Vec<AppDecision>, Option<Rationale>) {
    type Error = ServiceError;

    fn try_from(req: &pb::BatchSetApplicationStatesRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        if req.decisions.is_empty() || req.decisions.len() > MAX_BATCH {
            v.add(
                "decisions",
                format!(
                    "must hold 1 to {MAX_BATCH} decisions, got {}",
                    req.decisions.len()
                ),
            );
        }
        let mut decisions = Vec::with_capacity(req.decisions.len());
        let mut seen = HashSet::new();
        for (i, d) in req.decisions.iter().enumerate().take(MAX_BATCH) {
            let prefix = format!("decisions[{i}].");
            let parsed = v.decision(
                &prefix,
                &d.token_id,
                &d.name,
                d.state,
                d.conditions.as_ref(),
            );
            if let Some(decision) = parsed {
                if !seen.insert((decision.token_id, decision.name.clone())) {
                    v.add(
                        &format!("decisions[{i}]"),
                        "decides a (token_id, name) an earlier decision of this batch decides",
                    );
                }
                decisions.push(decision);
            }
        }
        let reason = v.check("reason", Rationale::parse(&req.reason));
        v.finish(|| Some((decisions, reason?)))
    }
}

/// The token and, if given, the broker (which the use case checks: it goes into a shell command).
impl TryFrom<&pb::GetInstallCommandRequest> for (Uuid, Option<String>) {
    type Error = ServiceError;

    fn try_from(req: &pb::GetInstallCommandRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let token_id = v.uuid("token_id", &req.token_id);
        let broker = Some(req.broker_id.clone()).filter(|b| !b.is_empty());
        v.finish(|| Some((token_id?, broker)))
    }
}

impl TryFrom<&pb::WatchApplicationsRequest> for WatchRequest {
    type Error = ServiceError;

    fn try_from(req: &pb::WatchApplicationsRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let mut states = Vec::new();
        for (i, state) in req.states.iter().enumerate() {
            states.extend(v.required::<pb::AppState, AppState>(&format!("states[{i}]"), *state));
        }
        let token_id = v.optional_uuid("token_id", &req.token_id);
        v.finish(|| {
            Some(WatchRequest {
                cursor: Some(req.cursor.clone()).filter(|c| !c.is_empty()),
                states,
                token_id: token_id?,
            })
        })
    }
}

/// The audit entries of one target, if given, and the page.
impl TryFrom<&pb::WatchTokenEventsRequest> for TokenWatchRequest {
    type Error = ServiceError;

    fn try_from(req: &pb::WatchTokenEventsRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let token_id = v.optional_uuid("token_id", &req.token_id);
        v.finish(|| {
            Some(TokenWatchRequest {
                cursor: Some(req.cursor.clone()).filter(|c| !c.is_empty()),
                token_id: token_id?,
            })
        })
    }
}

impl TryFrom<&pb::ReportLeakedSecretRequest> for LeakReport {
    type Error = ServiceError;

    fn try_from(req: &pb::ReportLeakedSecretRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        // Only the shape is checked here: whether a token has the secret is never said.
        let secret = v.check(
            "secret",
            Secret::parse(&req.secret).map_err(|e| e.to_string()),
        );
        let where_found = v.check("where_found", Rationale::parse(&req.where_found));
        v.finish(|| {
            Some(LeakReport {
                secret: secret?,
                where_found: where_found?,
            })
        })
    }
}

impl TryFrom<&pb::ListAuditEventsRequest> for (Option<String>, PageRequest) {
    type Error = ServiceError;

    fn try_from(req: &pb::ListAuditEventsRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let page = v.page(req.page_size, &req.page_token);
        let target = Some(req.target_id.clone()).filter(|t| !t.is_empty());
        v.finish(|| Some((target, page?)))
    }
}

impl TryFrom<&pb::ListMembersRequest> for PageRequest {
    type Error = ServiceError;

    fn try_from(req: &pb::ListMembersRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let page = v.page(req.page_size, &req.page_token);
        v.finish(|| page)
    }
}

impl TryFrom<&pb::AddMemberRequest> for (UserName, Privilege) {
    type Error = ServiceError;

    fn try_from(req: &pb::AddMemberRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let user_name = v.check("user_name", UserName::parse(&req.user_name));
        let role = v.required::<pb::Privilege, _>("role", req.role);
        v.finish(|| Some((user_name?, role?)))
    }
}

impl TryFrom<&pb::UpdateMemberRequest> for (Uuid, Privilege) {
    type Error = ServiceError;

    fn try_from(req: &pb::UpdateMemberRequest) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let id = v.uuid("user_id", &req.user_id);
        let role = v.required::<pb::Privilege, _>("role", req.role);
        v.finish(|| Some((id?, role?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(err: ServiceError) -> Vec<String> {
        match err {
            ServiceError::InvalidArgument(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("not INVALID_ARGUMENT: {other:?}"),
        }
    }

    #[test]
    fn every_bad_field_is_reported_the_page_size_too() {
        let req = pb::ListTokensRequest {
            r#type: 99,
            owner_user_id: "nope".into(),
            page_size: -1,
            ..Default::default()
        };
        let err = parse::<_, (TokenFilters, PageRequest)>(&req).unwrap_err();
        assert_eq!(fields(err), ["type", "owner_user_id", "page_size"]);
    }

    #[test]
    fn a_required_enum_left_unspecified_is_named() {
        let req = pb::SetApplicationStateRequest::default();
        let err = parse::<_, (AppDecision, Option<Rationale>)>(&req).unwrap_err();
        assert_eq!(fields(err), ["token_id", "name", "state"]);
    }
}
