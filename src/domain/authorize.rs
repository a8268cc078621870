//! The authorization decision: may this token, used by this application, do this?
use uuid::Uuid;

use super::{AppState, Privilege, Reason, TokenType};

/// The owner side of a token at the moment of the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerStatus {
    /// An account token: no owner caps it.
    Account,
    /// A user token whose owner is a member with this role now.
    Member(Privilege),
    /// A user token whose owner has been removed from the account.
    Removed,
}

impl OwnerStatus {
    /// What a token of `privilege` may act with under this owner: never above a member
    /// owner's current role, and nothing once the owner is gone.
    pub fn cap(self, privilege: Privilege) -> Option<Privilege> {
        match self {
            OwnerStatus::Account => Some(privilege),
            OwnerStatus::Member(role) => Some(privilege.min(role)),
            OwnerStatus::Removed => None,
        }
    }
}

/// Everything the decision needs to know about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub token_id: Uuid,
    pub account_id: Uuid,
    pub token_type: TokenType,
    pub owner_id: Option<Uuid>,
    pub privilege: Privilege,
    pub default_app_state: AppState,
    pub retired: bool,
    pub owner: OwnerStatus,
}

impl TokenGrant {
    /// The privilege the token acts with: for a user token never above its owner's
    /// current role. `Err` holds the refusal when the token cannot be used at all.
    pub fn usable(&self) -> Result<Privilege, Decision> {
        if self.retired {
            return Err(Decision::Retired);
        }
        self.owner.cap(self.privilege).ok_or(Decision::OwnerRemoved)
    }

    /// The member a user token acts for; `None` for an account token.
    pub fn member_id(&self) -> Option<Uuid> {
        match self.token_type {
            TokenType::User => self.owner_id,
            TokenType::Account => None,
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
    InsufficientPrivilege {
        effective: Privilege,
        required: Privilege,
    },
    OwnerRemoved,
    AppLimitReached,
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
            Decision::Allow { effective } => format!("allowed with {effective} privilege"),
            Decision::Pending => {
                format!("application '{app}' is waiting for approval on this token")
            }
            Decision::Denied => format!("application '{app}' is not allowed to use this token"),
            Decision::UnknownToken => "the authentication token you supplied is invalid".into(),
            Decision::Retired => "the authentication token you supplied has been retired".into(),
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
            Decision::OwnerRemoved => "The token's owner has left the account".into(),
            Decision::InsufficientPrivilege { required, .. } => {
                format!("{method} requests need a token with {required} privilege")
            }
            Decision::AppLimitReached => format!("App '{app}' cannot be recorded on this token"),
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

/// Decides a request by a usable token, given the application's state on it.
pub fn decide(grant: &TokenGrant, app_state: AppState, required: Privilege) -> Decision {
    let effective = match grant.usable() {
        Ok(p) => p,
        Err(refusal) => return refusal,
    };
    match app_state {
        AppState::Pending => Decision::Pending,
        AppState::Deny => Decision::Denied,
        AppState::Allow if effective < required => Decision::InsufficientPrivilege {
            effective,
            required,
        },
        AppState::Allow => Decision::Allow { effective },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Privilege::*;

    fn grant(privilege: Privilege, owner: OwnerStatus) -> TokenGrant {
        TokenGrant {
            token_id: Uuid::nil(),
            account_id: Uuid::nil(),
            token_type: if owner == OwnerStatus::Account {
                TokenType::Account
            } else {
                TokenType::User
            },
            owner_id: None,
            privilege,
            default_app_state: AppState::Allow,
            retired: false,
            owner,
        }
    }

    #[test]
    fn app_state_maps_to_the_seed_statuses() {
        let g = grant(Admin, OwnerStatus::Account);
        assert_eq!(
            decide(&g, AppState::Allow, ReadOnly),
            Decision::Allow { effective: Admin }
        );
        assert_eq!(decide(&g, AppState::Pending, ReadOnly).http_status(), 401);
        assert_eq!(decide(&g, AppState::Deny, ReadOnly).http_status(), 403);
    }

    #[test]
    fn user_token_never_acts_above_owner_role() {
        let g = grant(Admin, OwnerStatus::Member(Normal));
        assert_eq!(g.usable(), Ok(Normal));
        assert_eq!(
            decide(&g, AppState::Allow, Admin),
            Decision::InsufficientPrivilege {
                effective: Normal,
                required: Admin
            }
        );
        assert_eq!(
            decide(&g, AppState::Allow, Normal),
            Decision::Allow { effective: Normal }
        );
    }

    #[test]
    fn retired_and_orphaned_tokens_are_refused_whatever_the_app() {
        let mut g = grant(Normal, OwnerStatus::Removed);
        assert_eq!(
            decide(&g, AppState::Allow, ReadOnly),
            Decision::OwnerRemoved
        );
        g.owner = OwnerStatus::Account;
        g.retired = true;
        assert_eq!(decide(&g, AppState::Allow, ReadOnly), Decision::Retired);
        assert_eq!(Decision::Retired.http_status(), 401);
    }

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
