//! The field checks every request message uses, collecting each bad field rather than
//! stopping at the first.
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::super::convert::Unspecified;
use super::pb;
use crate::domain::{
    AddressRanges, AppName, AppState, Conditions, FieldViolation, Privilege, span_of, time_of,
};
use crate::service::{PageRequest, ServiceError};
use crate::storage::AppDecision;

/// Collects the field violations of one request, so the caller learns all of them at once.
#[derive(Default)]
pub(super) struct Violations(Vec<FieldViolation>);

impl Violations {
    pub(super) fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result
            .map_err(|e| self.0.push(FieldViolation::new(field, e)))
            .ok()
    }

    pub(super) fn add(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    pub(super) fn uuid(&mut self, field: &str, value: &str) -> Option<Uuid> {
        self.check(field, uuid(value))
    }

    /// An id that may be left empty.
    pub(super) fn optional_uuid(&mut self, field: &str, value: &str) -> Option<Option<Uuid>> {
        if value.is_empty() {
            return Some(None);
        }
        self.uuid(field, value).map(Some)
    }

    /// An enum field: `Some(None)` for its UNSPECIFIED value.
    pub(super) fn enumerated<P, D>(&mut self, field: &str, value: i32) -> Option<Option<D>>
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
    pub(super) fn required<P, D>(&mut self, field: &str, value: i32) -> Option<D>
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
    pub(super) fn ranges(&mut self, field: &str, values: &[String]) -> Option<AddressRanges> {
        self.check(field, AddressRanges::parse(values))
    }

    /// An optional client address: empty is unknown.
    pub(super) fn optional_address(&mut self, field: &str, value: &str) -> Option<Option<IpAddr>> {
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

    /// A time a Timestamp may hold (0001-01-01…9999-12-31, nanos 0…999,999,999), to the
    /// microsecond the database keeps; `None` when unset.
    pub(super) fn optional_time(
        &mut self,
        field: &str,
        value: Option<&prost_types::Timestamp>,
    ) -> Option<Option<DateTime<Utc>>> {
        match value {
            None => Some(None),
            Some(t) => self.check(field, time_of(t.seconds, t.nanos)).map(Some),
        }
    }

    /// A non-negative duration a Duration may hold; `None` when unset.
    pub(super) fn optional_duration(
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
    pub(super) fn conditions(
        &mut self,
        field: &str,
        given: Option<&pb::ApprovalConditions>,
        state: Option<AppState>,
        now: DateTime<Utc>,
    ) -> Option<Option<Conditions>> {
        let Some(given) = given else {
            return Some(None);
        };
        let until = self.optional_time(&format!("{field}.expire_time"), given.expire_time.as_ref());
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
    pub(super) fn decision(
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

    pub(super) fn page(&mut self, page_size: i32, page_token: &str) -> Option<PageRequest> {
        self.check("page_size", PageRequest::parse(page_size, page_token))
    }

    /// `Err` with every violation, or the value built from the parsed fields.
    pub(super) fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, ServiceError> {
        match (self.0.is_empty(), build()) {
            (true, Some(value)) => Ok(value),
            (true, None) => Err(ServiceError::Internal(
                "request parsed without violations but incomplete".into(),
            )),
            (false, _) => Err(ServiceError::InvalidArgument(self.0)),
        }
    }
}

/// A non-negative duration, exactly as sent: what may be kept of it is the use case's rule.
pub(super) fn duration(d: &prost_types::Duration) -> Result<chrono::TimeDelta, String> {
    span_of(d.seconds, d.nanos)
}

fn uuid(value: &str) -> Result<Uuid, String> {
    if value.is_empty() {
        return Err("is required".into());
    }
    Uuid::parse_str(value).map_err(|_| "must be a UUID".into())
}
