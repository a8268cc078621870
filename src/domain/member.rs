//! Members of an account and their roles.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Privilege;
use super::validate::printable_name;

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
