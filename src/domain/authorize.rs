//! The authorization decision: may this token, used by this application, from this address, do this?
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    AddressRanges, AddressRefusal, AddressRule, AppState, Conditions, Decision, Privilege,
    SecretUse, TokenType,
};

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
    /// The owner side of a token of `token_type` whose owner holds `current_role` now (`None`:
    /// no current member owns it): the one statement of it, for every store and view.
    pub fn of(token_type: TokenType, current_role: Option<Privilege>) -> OwnerStatus {
        match (token_type, current_role) {
            (TokenType::Account, _) => OwnerStatus::Account,
            (TokenType::User, Some(role)) => OwnerStatus::Member(role),
            (TokenType::User, None) => OwnerStatus::Removed,
        }
    }

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
    /// Where the token may be used from (Vault's `token_bound_cidrs`); empty: anywhere.
    pub bound_ranges: AddressRanges,
    /// When the token stops working; compared with the clock on every decision, so it
    /// stops at its deadline on every replica with nothing written.
    pub expires_at: Option<DateTime<Utc>>,
    /// Which of the token's secrets this grant was found by.
    pub secret: SecretUse,
}

impl TokenGrant {
    /// The privilege the token acts with at `now`: for a user token never above its owner's
    /// current role. `Err` holds the refusal when the token cannot be used at all. A
    /// rotated-out secret past its overlap is refused as an unknown secret would be.
    pub fn usable(&self, now: DateTime<Utc>) -> Result<Privilege, Decision> {
        if self.secret.is_reuse(now) {
            return Err(Decision::UnknownToken);
        }
        if self.retired {
            return Err(Decision::Retired);
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(Decision::Expired);
        }
        self.owner.cap(self.privilege).ok_or(Decision::OwnerRemoved)
    }

    /// When this grant stops working by the clock alone: the token's expiry, or the end of
    /// a rotated-out secret's overlap, whichever comes first; `None`: neither.
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        let overlap_end = match self.secret {
            SecretUse::RotatedOut { ends_at } => ends_at,
            SecretUse::Current => None,
        };
        match (self.expires_at, overlap_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The member a user token acts for; `None` for an account token.
    pub fn member_id(&self) -> Option<Uuid> {
        match self.token_type {
            TokenType::User => self.owner_id,
            TokenType::Account => None,
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
    let effective = match grant.usable(call.now) {
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
    use crate::domain::Reason;
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
            expires_at: None,
            secret: SecretUse::Current,
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
        assert_eq!(outside.reason(), Some(Reason::AddressNotAllowed));
        let unknown = decide_with(&g, AppState::Allow, None, &at(None, ReadOnly));
        assert!(unknown.explanation("x").contains("not known"));
        // The address is checked before the application: a pending app from outside is refused by address.
        assert_eq!(
            decide_with(&g, AppState::Pending, None, &at(Some("11.1.1.1"), ReadOnly)),
            outside
        );
    }

    #[test]
    fn mapped_ranges_and_mapped_clients_are_judged_as_ipv4() {
        let mapped = AddressRanges::parse(&["::ffff:10.0.0.0/104"]).unwrap();
        let mut g = grant(Admin, OwnerStatus::Account);
        g.bound_ranges = mapped.clone();
        let limited = Conditions {
            client_ranges: mapped,
            ..Default::default()
        };
        let open = grant(Admin, OwnerStatus::Account);
        for client in ["10.1.2.3", "::ffff:10.1.2.3"] {
            let call = at(Some(client), ReadOnly);
            assert!(
                decide_with(&g, AppState::Allow, None, &call).is_allow(),
                "{client}"
            );
            let approved = decide_with(&open, AppState::Allow, Some(&limited), &call);
            assert!(approved.is_allow(), "{client}");
        }
        for client in ["11.1.2.3", "::ffff:11.1.2.3"] {
            let call = at(Some(client), ReadOnly);
            let refused = decide_with(&g, AppState::Allow, None, &call);
            assert_eq!(
                refused.reason(),
                Some(Reason::AddressNotAllowed),
                "{client}"
            );
            let refused = decide_with(&open, AppState::Allow, Some(&limited), &call);
            assert_eq!(
                refused.reason(),
                Some(Reason::AddressNotAllowed),
                "{client}"
            );
        }
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
    fn app_state_maps_to_the_circonus_statuses() {
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
        assert_eq!(g.usable(Utc::now()), Ok(Normal));
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
    fn an_expired_token_is_refused_from_its_deadline_and_a_reused_secret_is_unknown() {
        let now = Utc::now();
        let mut g = grant(Admin, OwnerStatus::Account);
        g.expires_at = Some(now + chrono::TimeDelta::seconds(1));
        let before = Call {
            now,
            ..at(None, ReadOnly)
        };
        assert!(decide_with(&g, AppState::Allow, None, &before).is_allow());
        let at_deadline = Call {
            now: now + chrono::TimeDelta::seconds(1),
            ..before
        };
        let expired = decide_with(&g, AppState::Allow, None, &at_deadline);
        assert_eq!(expired, Decision::Expired);
        assert_eq!(expired.http_status(), 401);
        assert_eq!(expired.reason(), Some(Reason::TokenExpired));
        assert!(expired.error_code().contains("Expired"));
        assert!(expired.explanation("x").contains("expired"));
        g.expires_at = None;
        g.secret = SecretUse::RotatedOut { ends_at: Some(now) };
        assert_eq!(
            decide_with(&g, AppState::Allow, None, &at_deadline),
            Decision::UnknownToken
        );
    }
}
