//! Members of an account and their roles.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::validate::printable_name;
use super::{Precondition, Privilege};

/// A validated user name (e.g. an email): 1 to 200 printable characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserName(String);

impl UserName {
    pub fn parse(name: &str) -> Result<Self, String> {
        printable_name(name, 200).map(|()| UserName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A membership. A user removed and added again is a new membership with a new id,
/// so the user tokens of the old membership stay dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: Uuid,
    pub account_id: Uuid,
    pub user_name: UserName,
    pub role: Privilege,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
}

impl Member {
    /// A new membership of `account_id`, made at `now` under a new id.
    pub fn new(account_id: Uuid, user_name: UserName, role: Privilege, now: DateTime<Utc>) -> Self {
        Member {
            id: Uuid::new_v4(),
            account_id,
            user_name,
            role,
            created_at: now,
            updated_at: now,
            removed_at: None,
        }
    }

    /// An account always keeps an Admin: refuses a change that takes this member's Admin
    /// role away (`next_role` after it; `None` when the member is removed) while the
    /// account has `admins` Admins.
    pub fn require_keeps_an_admin(
        &self,
        next_role: Option<Privilege>,
        admins: u64,
    ) -> Result<(), Precondition> {
        let demoted = next_role != Some(Privilege::Admin);
        if self.role == Privilege::Admin && demoted && admins <= 1 {
            Err(Precondition::LastAdmin)
        } else {
            Ok(())
        }
    }
}

/// An account: the owner of members and tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Account names: 1 to 100 printable characters.
pub fn validate_account_name(name: &str) -> Result<(), String> {
    printable_name(name, 100)
}
