//! Applications to protobuf: as listed, as a watcher sees a change, a batch decision's
//! result, and an impact preview.
use super::{pb, timestamp};
use crate::domain::{Application, Conditions, Evidence};
use crate::service::{AppChange, DecisionResult, Preview};
use crate::storage::Decided;

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
