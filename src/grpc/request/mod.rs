//! Request messages read into what their use cases take: one `TryFrom` per message, each
//! reporting every bad field at once (INVALID_ARGUMENT with a BadRequest), never the first only.
//! The field checks in `violations`; the messages of each service by noun in `tokens`,
//! `applications` and `accounts`.
mod accounts;
mod applications;
mod tokens;
mod violations;

use std::net::IpAddr;

use uuid::Uuid;

use super::authorize_call::AuthorizeCall;
use super::pb;
use crate::domain::{AppName, Privilege, Secret};
use crate::service::ServiceError;
use violations::Violations;

/// Reads a request message into what its use case takes.
pub fn parse<'a, M, T>(message: &'a M) -> Result<T, ServiceError>
where
    T: TryFrom<&'a M, Error = ServiceError>,
{
    T::try_from(message)
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

/// By value: the application name keeps the request's string (the hot path allocates no copy).
impl TryFrom<AuthorizeCall> for Asked {
    type Error = ServiceError;

    fn try_from(call: AuthorizeCall) -> Result<Self, ServiceError> {
        let mut v = Violations::default();
        let secret = v.check("token", call.token.map_err(|e| e.to_string()));
        let app = v.check("app_name", AppName::parse_owned(call.app_name));
        let required =
            v.enumerated::<pb::Privilege, Privilege>("required_privilege", call.required_privilege);
        let client = v.optional_address("client_address", &call.client_address);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Rationale;
    use crate::service::{PageRequest, TokenFilters};
    use crate::storage::AppDecision;

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
