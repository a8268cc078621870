//! Why the state of a target refuses a change that the caller may otherwise make.
use super::Reason;

/// A change the rules allow the caller, refused by what its target is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Retirement is final: a retired token changes no more.
    TokenRetired,
    /// Promotion happens once and is never undone.
    AlreadyAccountToken,
    /// One-Step-Install creates checks and graphs: Read-Only tokens cannot.
    TokenPrivilegeTooLow,
    /// An account always keeps an Admin.
    LastAdmin,
    /// An expired token changes no more: it is never revived (issue a new one).
    TokenExpired,
    /// The account's policy says every token must expire.
    ExpiryRequired,
    /// The expiry is further away than the account's policy allows.
    LifetimeAbovePolicy,
}

impl Precondition {
    pub fn reason(self) -> Reason {
        match self {
            Precondition::TokenRetired => Reason::TokenRetired,
            Precondition::AlreadyAccountToken => Reason::AlreadyAccountToken,
            Precondition::TokenPrivilegeTooLow => Reason::TokenPrivilegeTooLow,
            Precondition::LastAdmin => Reason::LastAdmin,
            Precondition::TokenExpired => Reason::TokenExpired,
            Precondition::ExpiryRequired => Reason::ExpiryRequired,
            Precondition::LifetimeAbovePolicy => Reason::LifetimeAbovePolicy,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Precondition::TokenRetired => "the token is retired; retirement is final",
            Precondition::AlreadyAccountToken => {
                "the token is already an account token; promotion cannot be undone or repeated"
            }
            Precondition::TokenPrivilegeTooLow => {
                "One-Step-Install creates checks and graphs: the token needs Normal or Admin privilege"
            }
            Precondition::LastAdmin => {
                "the account must keep at least one Admin; promote another member first"
            }
            Precondition::TokenExpired => {
                "the token has expired; an expired token is never revived: create a new one"
            }
            Precondition::ExpiryRequired => {
                "the account's policy requires every token to expire: give an expire_time"
            }
            Precondition::LifetimeAbovePolicy => {
                "the expire_time is further away than the account policy's max_token_lifetime"
            }
        }
    }
}
