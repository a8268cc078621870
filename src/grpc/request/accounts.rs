//! AccountService's messages: the account policy, the audit log, members.
use uuid::Uuid;

use super::pb;
use super::violations::{Violations, duration};
use crate::domain::{AccountPolicy, Privilege, UserName, echo};
use crate::service::{PageRequest, PolicyUpdate, ServiceError};

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
                        "cannot set {}: the fields are {}",
                        echo(path),
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
/// The audit entries of one target, if given, and the page.
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
