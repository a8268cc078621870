//! TokenService's token messages: create, list, update, promote, rotate, the install command,
//! the token-event stream and leak reports.
use uuid::Uuid;

use super::{Violations, pb};
use crate::domain::{
    AppState, Description, Privilege, Rationale, Rotation, Secret, TokenType, echo,
};
use crate::service::{
    LeakReport, NewTokenRequest, PageRequest, RotateRequest, ServiceError, TokenFilters,
    TokenUpdate, TokenWatchRequest,
};

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
                        "cannot update {}: only privilege, default_app_state, description, bound_cidrs and expire_time may change",
                        echo(other)
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
