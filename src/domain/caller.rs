//! Who is calling a management RPC, and what the Circonus API Tokens page lets them do.
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    AppName, AppStanding, AppState, Call, Conditions, Decision, Description, OwnerStatus,
    Privilege, Reason, SecretUse, Token, TokenDraft, TokenGrant, TokenType, decide_with,
};

/// An authenticated caller of TokenService or AccountService.
///
/// The caller *is* the Authorize decision for its credentials: it acts with exactly the
/// decision's privilege. A user token acts as its owner capped at the token's privilege, an
/// account token acts for the account with its own, and either is capped again by the
/// approval of the application it presented (`max_privilege`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account_id: Uuid,
    pub token_id: Uuid,
    pub token_type: TokenType,
    /// The member acting; `None` for an account token.
    pub member_id: Option<Uuid>,
    pub privilege: Privilege,
    /// The application it presented: its approval on the token is part of the decision, and
    /// every write judges it again under its locks.
    pub app: AppName,
    /// The client's address, when known: the token's and the approval's ranges judge it.
    pub client: Option<IpAddr>,
    /// Which of the token's secrets it presented (a rotated-out one works until its overlap ends).
    pub secret: SecretUse,
}

/// Why the rules refuse an action to a caller allowed to see its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyDenial {
    /// Read-Only callers change nothing.
    ReadOnly,
    /// Only Admins may do this.
    AdminRequired,
    /// Nobody grants more than their own privilege.
    AboveOwnPrivilege {
        requested: Privilege,
        own: Privilege,
    },
    /// A user token needs a user to own it; an account token caller has none.
    NoUserToOwn,
    /// Nobody widens the approval they are calling with.
    OwnApproval,
}

impl PolicyDenial {
    pub fn reason(&self) -> Reason {
        match self {
            PolicyDenial::ReadOnly => Reason::ReadOnlyCaller,
            PolicyDenial::AdminRequired => Reason::AdminRequired,
            PolicyDenial::AboveOwnPrivilege { .. } => Reason::PrivilegeAboveCaller,
            PolicyDenial::NoUserToOwn => Reason::NoUserToOwnToken,
            PolicyDenial::OwnApproval => Reason::OwnApproval,
        }
    }

    pub fn message(&self) -> String {
        match self {
            PolicyDenial::ReadOnly => "a Read-Only caller cannot change anything".into(),
            PolicyDenial::AdminRequired => "only an Admin may do this".into(),
            PolicyDenial::AboveOwnPrivilege { requested, own } => {
                format!("cannot grant {requested} privilege: the caller acts with {own}")
            }
            PolicyDenial::NoUserToOwn => {
                "an account token has no user to own a user token; create an account token or call with a user token"
                    .into()
            }
            PolicyDenial::OwnApproval => {
                "a caller cannot widen the approval of the application it calls as on its own token; ask another caller"
                    .into()
            }
        }
    }
}

/// Nobody grants more than their own privilege `own`.
pub fn may_grant(own: Privilege, requested: Privilege) -> Result<(), PolicyDenial> {
    if requested > own {
        Err(PolicyDenial::AboveOwnPrivilege { requested, own })
    } else {
        Ok(())
    }
}

impl Caller {
    /// The caller whose credentials the Authorize decision allowed with `effective`.
    pub fn allowed(
        grant: &TokenGrant,
        app: AppName,
        client: Option<IpAddr>,
        effective: Privilege,
    ) -> Caller {
        Caller {
            account_id: grant.account_id,
            token_id: grant.token_id,
            token_type: grant.token_type,
            member_id: grant.member_id(),
            privilege: effective,
            app,
            client,
            secret: grant.secret,
        }
    }

    /// This caller judged again as its token (`grant`) and its application's approval stand
    /// now, by the same decision as Authorize: `Err` holds the refusal a new call would get.
    /// A name without an approval is Pending (nothing is recorded here).
    pub fn judged_again(
        &self,
        grant: &TokenGrant,
        approval: Option<&AppStanding>,
        now: DateTime<Utc>,
    ) -> Result<Caller, Decision> {
        let grant = TokenGrant {
            secret: self.secret,
            ..grant.clone()
        };
        let (state, conditions) = match approval {
            Some(a) => (a.state, a.conditions.as_deref()),
            None => (AppState::Pending, None),
        };
        let call = Call {
            required: Privilege::ReadOnly,
            client: self.client,
            now,
        };
        match decide_with(&grant, state, conditions, &call) {
            Decision::Allow { effective } => Ok(Caller::allowed(
                &grant,
                self.app.clone(),
                self.client,
                effective,
            )),
            refusal => Err(refusal),
        }
    }

    /// Nobody widens the approval they are calling with: on the caller's own token, its own
    /// application may be denied, set Pending or allowed within what its approval allows
    /// now (`current`), never wider. Other tokens and names are not this rule's concern.
    pub fn may_change_own_approval(
        &self,
        token_id: Uuid,
        name: &AppName,
        current: Option<&AppStanding>,
        state: AppState,
        conditions: Option<&Conditions>,
    ) -> Result<(), PolicyDenial> {
        if token_id != self.token_id || *name != self.app || state != AppState::Allow {
            return Ok(());
        }
        let within = match current {
            Some(AppStanding {
                state: AppState::Allow,
                conditions: None,
            }) => true,
            Some(AppStanding {
                state: AppState::Allow,
                conditions: Some(bound),
            }) => conditions.is_some_and(|c| c.within(bound)),
            _ => false,
        };
        if within {
            Ok(())
        } else {
            Err(PolicyDenial::OwnApproval)
        }
    }

    /// The privilege a user token keeps when this caller promotes it to an account token.
    /// Promotion never raises what a token can do: without `requested` it keeps the lower
    /// of its own privilege and its owner's role at that moment (Read-Only when the owner
    /// is gone). An Admin may set it in the same call, never above their own.
    pub fn promoted_privilege(
        &self,
        current: Privilege,
        owner: OwnerStatus,
        requested: Option<Privilege>,
    ) -> Result<Privilege, PolicyDenial> {
        if let Some(requested) = requested {
            self.require_may_grant(requested)?;
            return Ok(requested);
        }
        Ok(owner.cap(current).unwrap_or(Privilege::ReadOnly))
    }

    /// A token this caller makes: a user token is owned by the caller's member.
    pub fn draft(
        &self,
        token_type: TokenType,
        privilege: Privilege,
        default_app_state: AppState,
        description: Description,
    ) -> TokenDraft {
        TokenDraft {
            account_id: self.account_id,
            token_type,
            owner_id: match token_type {
                TokenType::User => self.member_id,
                TokenType::Account => None,
            },
            creator_id: self.member_id,
            privilege,
            default_app_state,
            description,
            bound_ranges: Default::default(),
            expires_at: None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.privilege == Privilege::Admin
    }

    /// Admins see the account's tokens; everyone else only their own user tokens.
    /// A token the caller cannot see must answer NOT_FOUND, so its existence does not leak.
    pub fn can_see(&self, token: &Token) -> bool {
        self.can_see_token(token.account_id, token.token_type, token.owner_id)
    }

    /// `can_see` from the three facts it depends on.
    pub fn can_see_token(
        &self,
        account_id: Uuid,
        token_type: TokenType,
        owner_id: Option<Uuid>,
    ) -> bool {
        account_id == self.account_id
            && (self.is_admin()
                || (token_type == TokenType::User
                    && self.member_id.is_some()
                    && owner_id == self.member_id))
    }

    pub fn require_write(&self) -> Result<(), PolicyDenial> {
        if self.privilege == Privilege::ReadOnly {
            Err(PolicyDenial::ReadOnly)
        } else {
            Ok(())
        }
    }

    pub fn require_admin(&self) -> Result<(), PolicyDenial> {
        self.require_write()?;
        if self.is_admin() {
            Ok(())
        } else {
            Err(PolicyDenial::AdminRequired)
        }
    }

    pub fn require_may_grant(&self, requested: Privilege) -> Result<(), PolicyDenial> {
        may_grant(self.privilege, requested)
    }

    /// User tokens: Normal or Admin users. Account tokens: Admins. Never above the caller.
    pub fn may_create(
        &self,
        token_type: TokenType,
        privilege: Privilege,
    ) -> Result<(), PolicyDenial> {
        self.require_write()?;
        match token_type {
            TokenType::Account => self.require_admin()?,
            TokenType::User if self.member_id.is_none() => return Err(PolicyDenial::NoUserToOwn),
            TokenType::User => {}
        }
        self.require_may_grant(privilege)
    }
}

#[cfg(test)]
#[path = "caller_tests.rs"]
mod tests;
