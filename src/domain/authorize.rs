//! The authorization decision: may this token, used by this application, from this address, do this?
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{AddressRanges, AppState, Conditions, Privilege, TokenType};

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
    /// Where the token may be used from (Vault's `token_bound_cidrs`); empty: anywhere.
    pub bound_ranges: AddressRanges,
}

impl TokenGrant {
    /// The privilege the token acts with: for a user token never above its owner's
    /// current role. `Err` holds the refusal when the token cannot be used at all.
    pub fn usable(&self) -> Result<Privilege, Decision> {
        if self.retired {
            return Err(Decision::Retired);
        }
        match self.owner {
            OwnerStatus::Account => Ok(self.privilege),
            OwnerStatus::Member(role) => Ok(self.privilege.min(role)),
            OwnerStatus::Removed => Err(Decision::OwnerRemoved),
        }
    }

    /// Refuses a client outside the token's address ranges (or of unknown address, when the
    /// token has ranges): the check made before an application name is looked at or recorded.
    pub fn check_address(&self, client: Option<IpAddr>) -> Result<(), Decision> {
        if self.bound_ranges.permits(client) {
            Ok(())
        } else {
            Err(Decision::AddressNotAllowed(AddressRefusal::of(
                client,
                AddressRule::Token,
            )))
        }
    }
}

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
    fn of(client: Option<IpAddr>, rule: AddressRule) -> Self {
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

    /// 401 when the caller should (re)authenticate or wait for approval; 403 when it is refused.
    pub fn http_status(&self) -> u16 {
        match self {
            Decision::Allow { .. } => 200,
            Decision::Pending
            | Decision::UnknownToken
            | Decision::Retired
            | Decision::OwnerRemoved => 401,
            Decision::Denied
            | Decision::InsufficientPrivilege { .. }
            | Decision::AppLimitReached
            | Decision::AddressNotAllowed(_) => 403,
        }
    }

    /// The `code` of a Circonus-style error body.
    pub fn error_code(&self) -> &'static str {
        match self {
            Decision::Allow { .. } => "",
            Decision::Pending => "Unauthorized.PendingApp",
            Decision::Denied => "Forbidden.BadApp",
            Decision::UnknownToken | Decision::Retired | Decision::OwnerRemoved => {
                "Forbidden.BadToken"
            }
            Decision::InsufficientPrivilege { .. } => "Forbidden.InsufficientPrivilege",
            Decision::AppLimitReached => "Forbidden.TooManyApps",
            Decision::AddressNotAllowed(_) => "Forbidden.BadAddress",
        }
    }

    /// A stable, machine-readable reason (used in gRPC ErrorInfo).
    pub fn reason_code(&self) -> &'static str {
        match self {
            Decision::Allow { .. } => "ALLOW",
            Decision::Pending => "APP_PENDING",
            Decision::Denied => "APP_DENIED",
            Decision::UnknownToken => "UNKNOWN_TOKEN",
            Decision::Retired => "TOKEN_RETIRED",
            Decision::InsufficientPrivilege { .. } => "INSUFFICIENT_PRIVILEGE",
            Decision::OwnerRemoved => "OWNER_REMOVED",
            Decision::AppLimitReached => "APP_LIMIT_REACHED",
            Decision::AddressNotAllowed(_) => "ADDRESS_NOT_ALLOWED",
        }
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
}

/// Decides a request by a token from anywhere, given the application's plain state on it.
pub fn decide(grant: &TokenGrant, app_state: AppState, required: Privilege) -> Decision {
    let call = Call {
        required,
        client: None,
        now: DateTime::<Utc>::MIN_UTC,
    };
    decide_with(grant, app_state, None, &call)
}

/// What one call asks, besides the token and the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub required: Privilege,
    /// The end client's address, when known.
    pub client: Option<IpAddr>,
    pub now: DateTime<Utc>,
}

/// Decides a request: the token must be usable and used from its ranges; then the
/// application's state decides, and an Allow's conditions (until, privilege cap, ranges) hold.
/// A lapsed approval is Pending again from its deadline on, whether or not anything was written.
pub fn decide_with(
    grant: &TokenGrant,
    app_state: AppState,
    conditions: Option<&Conditions>,
    call: &Call,
) -> Decision {
    let effective = match grant.usable() {
        Ok(p) => p,
        Err(refusal) => return refusal,
    };
    if let Err(refusal) = grant.check_address(call.client) {
        return refusal;
    }
    let effective = match (app_state, conditions) {
        (AppState::Pending, _) => return Decision::Pending,
        (AppState::Deny, _) => return Decision::Denied,
        (AppState::Allow, None) => effective,
        (AppState::Allow, Some(conditions)) => {
            if conditions.lapsed(call.now) {
                return Decision::Pending;
            }
            if !conditions.client_ranges.permits(call.client) {
                return Decision::AddressNotAllowed(AddressRefusal::of(
                    call.client,
                    AddressRule::Approval,
                ));
            }
            conditions
                .max_privilege
                .map_or(effective, |cap| effective.min(cap))
        }
    };
    if effective < call.required {
        return Decision::InsufficientPrivilege {
            effective,
            required: call.required,
        };
    }
    Decision::Allow { effective }
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
            bound_ranges: AddressRanges::default(),
        }
    }

    fn at(client: Option<&str>, required: Privilege) -> Call {
        Call {
            required,
            client: client.map(|c| c.parse().unwrap()),
            now: Utc::now(),
        }
    }

    #[test]
    fn token_ranges_refuse_other_and_unknown_addresses() {
        let mut g = grant(Admin, OwnerStatus::Account);
        g.bound_ranges = AddressRanges::parse(&["10.0.0.0/8"]).unwrap();
        let allowed = decide_with(&g, AppState::Allow, None, &at(Some("10.1.1.1"), ReadOnly));
        assert!(allowed.is_allow());
        let outside = decide_with(&g, AppState::Allow, None, &at(Some("11.1.1.1"), ReadOnly));
        assert_eq!(outside.http_status(), 403);
        assert_eq!(outside.reason_code(), "ADDRESS_NOT_ALLOWED");
        let unknown = decide_with(&g, AppState::Allow, None, &at(None, ReadOnly));
        assert!(unknown.explanation("x").contains("not known"));
        // The address is checked before the application: a pending app from outside is refused by address.
        assert_eq!(
            decide_with(&g, AppState::Pending, None, &at(Some("11.1.1.1"), ReadOnly)),
            outside
        );
    }

    #[test]
    fn conditions_cap_limit_and_lapse() {
        let g = grant(Admin, OwnerStatus::Account);
        let now = Utc::now();
        let conditions = Conditions {
            until: Some(now + chrono::TimeDelta::days(30)),
            max_privilege: Some(ReadOnly),
            client_ranges: AddressRanges::parse(&["10.0.0.0/8"]).unwrap(),
        };
        let read = at(Some("10.0.0.1"), ReadOnly);
        assert_eq!(
            decide_with(&g, AppState::Allow, Some(&conditions), &read),
            Decision::Allow {
                effective: ReadOnly
            }
        );
        assert_eq!(
            decide_with(
                &g,
                AppState::Allow,
                Some(&conditions),
                &at(Some("10.0.0.1"), Normal)
            ),
            Decision::InsufficientPrivilege {
                effective: ReadOnly,
                required: Normal
            }
        );
        assert!(matches!(
            decide_with(
                &g,
                AppState::Allow,
                Some(&conditions),
                &at(Some("192.168.0.1"), ReadOnly)
            ),
            Decision::AddressNotAllowed(AddressRefusal {
                rule: AddressRule::Approval,
                unknown: false
            })
        ));
        let later = Call {
            now: now + chrono::TimeDelta::days(31),
            ..read
        };
        assert_eq!(
            decide_with(&g, AppState::Allow, Some(&conditions), &later),
            Decision::Pending
        );
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
