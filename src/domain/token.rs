//! Tokens: their type, lifecycle and the record the service keeps (never the secret).
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    AddressRanges, AppState, Member, OwnerStatus, Precondition, PreviousSecret, Privilege,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// Owned by one member; dies with the membership.
    User,
    /// Owned by the account; outlives any member.
    Account,
}

super::names!(TokenType {
    User => "user",
    Account => "account",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenState {
    Active,
    Retired,
    /// Not retired, past its expiry: refused everywhere, never revived.
    Expired,
}

super::names!(TokenState {
    Active => "active",
    Retired => "retired",
    Expired => "expired",
});

/// A validated token description: at most 1000 characters, no control characters but newlines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 1000;

    pub fn parse(text: &str) -> Result<Self, String> {
        let count = text.chars().count();
        if count > Self::MAX_CHARS {
            return Err(format!(
                "must be at most {} characters, got {count}",
                Self::MAX_CHARS
            ));
        }
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err("must not contain control characters other than newlines".into());
        }
        super::validate::no_invisible(text)?;
        Ok(Description(text.to_owned()))
    }

    /// A description written in the code (a unit test parses each): no caller's text.
    pub fn fixed(text: &'static str) -> Self {
        debug_assert!(
            Self::parse(text).is_ok(),
            "{text:?} is not a valid description"
        );
        Description(text.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the service knows of a token. The secret is not here: only its digest is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: Uuid,
    pub account_id: Uuid,
    pub token_type: TokenType,
    /// The owning member of a user token; `None` for an account token.
    pub owner_id: Option<Uuid>,
    pub privilege: Privilege,
    pub default_app_state: AppState,
    pub description: Description,
    /// The member who created it; `None` when made by an account token or the command line.
    pub creator_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub promoted_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Where the token may be used from; empty: anywhere.
    pub bound_ranges: AddressRanges,
    /// When it stops working; `None`: never (until retired).
    pub expires_at: Option<DateTime<Utc>>,
    /// When its secret was last rotated.
    pub rotated_at: Option<DateTime<Utc>>,
    /// The secret rotated out last, while it may still work.
    pub previous_secret: Option<PreviousSecret>,
}

/// What the maker of a new token chooses; its id and times are set when it is made.
#[derive(Debug, Clone)]
pub struct TokenDraft {
    pub account_id: Uuid,
    pub token_type: TokenType,
    pub owner_id: Option<Uuid>,
    pub creator_id: Option<Uuid>,
    pub privilege: Privilege,
    pub default_app_state: AppState,
    pub description: Description,
    pub bound_ranges: AddressRanges,
    pub expires_at: Option<DateTime<Utc>>,
}

impl TokenDraft {
    /// A user token of `member`, made by the member: what bootstrap and `issue-token` hand out.
    pub fn user_token_of(
        member: &Member,
        privilege: Privilege,
        default_app_state: AppState,
        description: Description,
    ) -> Self {
        TokenDraft {
            account_id: member.account_id,
            token_type: TokenType::User,
            owner_id: Some(member.id),
            creator_id: Some(member.id),
            privilege,
            default_app_state,
            description,
            bound_ranges: AddressRanges::default(),
            expires_at: None,
        }
    }

    /// The token, made at `now` under a new id: active, never used.
    pub fn made_at(self, now: DateTime<Utc>) -> Token {
        Token {
            id: Uuid::new_v4(),
            account_id: self.account_id,
            token_type: self.token_type,
            owner_id: self.owner_id,
            privilege: self.privilege,
            default_app_state: self.default_app_state,
            description: self.description,
            creator_id: self.creator_id,
            created_at: now,
            updated_at: now,
            retired_at: None,
            promoted_at: None,
            last_used_at: None,
            bound_ranges: self.bound_ranges,
            expires_at: self.expires_at,
            rotated_at: None,
            previous_secret: None,
        }
    }
}

impl Token {
    pub fn is_retired(&self) -> bool {
        self.retired_at.is_some()
    }

    /// Whether its expiry has come at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The secret it rotated out last, as shown at `at`: only while that secret may still
    /// work (its overlap waits or runs, and the token is neither retired nor expired), and
    /// its end never past the token's expiry, past which nothing of the token works.
    pub fn previous_secret_at(&self, at: DateTime<Utc>) -> Option<PreviousSecret> {
        if self.state(at) != TokenState::Active {
            return None;
        }
        let previous = self.previous_secret?;
        if previous.ends_at.is_some_and(|end| end <= at) {
            return None;
        }
        let ends_at = match (previous.ends_at, self.expires_at) {
            (Some(end), Some(expiry)) => Some(end.min(expiry)),
            (end, _) => end,
        };
        Some(PreviousSecret {
            ends_at,
            ..previous
        })
    }

    pub fn state(&self, now: DateTime<Utc>) -> TokenState {
        if self.is_retired() {
            TokenState::Retired
        } else if self.is_expired(now) {
            TokenState::Expired
        } else {
            TokenState::Active
        }
    }

    /// The privilege the token acts with at `now`, given its owner's standing; `None` when
    /// it cannot act at all (retired, expired, or its owner removed).
    pub fn effective_privilege(&self, owner: OwnerStatus, now: DateTime<Utc>) -> Option<Privilege> {
        if self.state(now) != TokenState::Active {
            return None;
        }
        owner.cap(self.privilege)
    }

    /// A retired or expired token changes no more (an expired one is never revived).
    pub fn require_active(&self, now: DateTime<Utc>) -> Result<(), Precondition> {
        match self.state(now) {
            TokenState::Active => Ok(()),
            TokenState::Retired => Err(Precondition::TokenRetired),
            TokenState::Expired => Err(Precondition::TokenExpired),
        }
    }

    /// Only an active user token can be promoted.
    pub fn require_promotable(&self, now: DateTime<Utc>) -> Result<(), Precondition> {
        self.require_active(now)?;
        if self.token_type == TokenType::Account {
            return Err(Precondition::AlreadyAccountToken);
        }
        Ok(())
    }

    /// One-Step-Install needs an active token that may write.
    pub fn require_installable(&self, now: DateTime<Utc>) -> Result<(), Precondition> {
        self.require_active(now)?;
        if self.privilege < Privilege::Normal {
            return Err(Precondition::TokenPrivilegeTooLow);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_limits() {
        assert!(Description::parse("CI deploys\nsecond line").is_ok());
        assert!(Description::parse(&"d".repeat(1001)).is_err());
        assert!(Description::parse("bell\u{7}").is_err());
        assert!(Description::parse("deploys \u{202E}gnp.exe").is_err());
    }
}
