//! An authorization's outcome, and what each audience is told of it: the metric name, the
//! HTTP status, the Circonus error code, the gRPC reason and a sentence for people.
use std::net::IpAddr;

use super::{Privilege, Reason};
/// Which address rule refused a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRule {
    /// The token's own ranges.
    Token,
    /// The ranges the application's approval is limited to.
    Approval,
}

/// Why a client's address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRefusal {
    pub rule: AddressRule,
    /// No client address was known: a restricted token fails closed.
    pub unknown: bool,
}

impl AddressRefusal {
    pub(super) fn of(client: Option<IpAddr>, rule: AddressRule) -> Self {
        AddressRefusal {
            rule,
            unknown: client.is_none(),
        }
    }
}

/// The outcome of an authorization, and what a REST gateway should answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow {
        effective: Privilege,
    },
    Pending,
    Denied,
    UnknownToken,
    Retired,
    /// The token's expiry has come.
    Expired,
    InsufficientPrivilege {
        effective: Privilege,
        required: Privilege,
    },
    OwnerRemoved,
    AppLimitReached,
    /// The client's address is outside the ranges the token or the approval allows.
    AddressNotAllowed(AddressRefusal),
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// What this outcome tells each audience, from one table so they cannot disagree.
    fn outcome(&self) -> Outcome {
        let (name, http_status, error_code, reason) = match self {
            Decision::Allow { .. } => ("allow", 200, "", None),
            Decision::Pending => (
                "pending",
                401,
                "Unauthorized.PendingApp",
                Some(Reason::AppPending),
            ),
            Decision::Denied => ("denied", 403, "Forbidden.BadApp", Some(Reason::AppDenied)),
            Decision::UnknownToken => (
                "unknown_token",
                401,
                "Forbidden.BadToken",
                Some(Reason::UnknownToken),
            ),
            Decision::Retired => (
                "retired",
                401,
                "Forbidden.BadToken",
                Some(Reason::TokenRetired),
            ),
            Decision::Expired => (
                "expired",
                401,
                "Unauthorized.ExpiredToken",
                Some(Reason::TokenExpired),
            ),
            Decision::InsufficientPrivilege { .. } => (
                "insufficient_privilege",
                403,
                "Forbidden.InsufficientPrivilege",
                Some(Reason::InsufficientPrivilege),
            ),
            Decision::OwnerRemoved => (
                "owner_removed",
                401,
                "Forbidden.BadToken",
                Some(Reason::OwnerRemoved),
            ),
            Decision::AppLimitReached => (
                "app_limit_reached",
                403,
                "Forbidden.TooManyApps",
                Some(Reason::AppLimitReached),
            ),
            Decision::AddressNotAllowed(_) => (
                "address_not_allowed",
                403,
                "Forbidden.BadAddress",
                Some(Reason::AddressNotAllowed),
            ),
        };
        Outcome {
            name,
            http_status,
            error_code,
            reason,
        }
    }

    /// A stable lower-case name: the metric label and the span field.
    pub fn name(&self) -> &'static str {
        self.outcome().name
    }

    /// 401 when the caller should (re)authenticate or wait for approval; 403 when it is refused.
    pub fn http_status(&self) -> u16 {
        self.outcome().http_status
    }

    /// The `code` of a Circonus-style error body; empty for an allowed call.
    pub fn error_code(&self) -> &'static str {
        self.outcome().error_code
    }

    /// Why a refused caller was refused (gRPC ErrorInfo); `None` for an allowed call.
    pub fn reason(&self) -> Option<Reason> {
        self.outcome().reason
    }

    /// A sentence for people. Names the application, never the secret.
    pub fn explanation(&self, app: &str) -> String {
        match self {
            Decision::Allow { effective } => effective.allowed_explanation().to_owned(),
            Decision::Pending => {
                format!("application '{app}' is waiting for approval on this token")
            }
            Decision::Denied => format!("application '{app}' is not allowed to use this token"),
            Decision::UnknownToken => "the authentication token you supplied is invalid".into(),
            Decision::Retired => "the authentication token you supplied has been retired".into(),
            Decision::Expired => {
                "the authentication token you supplied has expired; create a new one".into()
            }
            Decision::InsufficientPrivilege {
                effective,
                required,
            } => {
                format!(
                    "this operation needs {required} privilege; the token acts with {effective}"
                )
            }
            Decision::OwnerRemoved => {
                "the owner of this user token is no longer a member of the account".into()
            }
            Decision::AppLimitReached => {
                format!(
                    "application '{app}' is new and this token has recorded as many applications as it may"
                )
            }
            Decision::AddressNotAllowed(AddressRefusal { unknown: true, .. }) => {
                "this token may be used only from listed addresses, and the client's address is not known".into()
            }
            Decision::AddressNotAllowed(AddressRefusal {
                rule: AddressRule::Token,
                ..
            }) => "this token may not be used from the client's address".into(),
            Decision::AddressNotAllowed(AddressRefusal {
                rule: AddressRule::Approval,
                ..
            }) => format!(
                "application '{app}' is approved on this token only from other addresses"
            ),
        }
    }

    /// The short `message` of a Circonus-style error body, for a request made with HTTP
    /// `method`; `explanation` is the full sentence beside it.
    pub fn summary(&self, app: &str, method: &str) -> String {
        match self {
            Decision::Allow { .. } => "Allowed".into(),
            Decision::Pending => format!("App '{app}' is pending approval"),
            Decision::Denied => format!("App '{app}' not allowed"),
            Decision::UnknownToken => "The token is not valid".into(),
            Decision::Retired => "The token has been retired".into(),
            Decision::Expired => "The token has expired".into(),
            Decision::OwnerRemoved => "The token's owner has left the account".into(),
            Decision::InsufficientPrivilege { required, .. } => {
                format!("{method} requests need a token with {required} privilege")
            }
            Decision::AppLimitReached => format!("App '{app}' cannot be recorded on this token"),
            Decision::AddressNotAllowed(_) => "The token may not be used from this address".into(),
        }
    }
}

/// One row of the table behind a decision's names and codes.
struct Outcome {
    name: &'static str,
    http_status: u16,
    error_code: &'static str,
    reason: Option<Reason>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_name_the_app_only() {
        assert!(
            Decision::Pending
                .explanation("Terraform")
                .contains("'Terraform'")
        );
        assert!(!Decision::UnknownToken.explanation("x").contains('x'));
    }
}
