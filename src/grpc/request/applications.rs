//! TokenService's application messages: list, decide one or a batch, watch.
use std::collections::HashSet;

use uuid::Uuid;

use super::{Violations, pb};
use crate::domain::{AppState, Rationale};
use crate::service::{MAX_BATCH, PageRequest, ServiceError, WatchRequest};
use crate::storage::AppDecision;

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
