//! Rows to domain types and back. Times are stored as microseconds since the Unix epoch.
use chrono::{DateTime, Utc};

use super::StorageError;
use super::entities::{accounts, applications, members, tokens};
use crate::domain::{
    Account, AppName, AppState, Application, Description, Member, Privilege, Token, TokenType,
    UserName,
};

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn time(us: i64) -> Result<DateTime<Utc>, StorageError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StorageError::corrupt(format!("time {us} out of range")))
}

fn opt_time(us: Option<i64>) -> Result<Option<DateTime<Utc>>, StorageError> {
    us.map(time).transpose()
}

fn corrupt(what: &str, value: &str) -> StorageError {
    StorageError::corrupt(format!("unknown {what} {value:?}"))
}

pub(crate) fn privilege(s: &str) -> Result<Privilege, StorageError> {
    Privilege::parse(s).ok_or_else(|| corrupt("privilege", s))
}

pub(crate) fn token_type(s: &str) -> Result<TokenType, StorageError> {
    TokenType::parse(s).ok_or_else(|| corrupt("token type", s))
}

pub(crate) fn app_state(s: &str) -> Result<AppState, StorageError> {
    AppState::parse(s).ok_or_else(|| corrupt("app state", s))
}

pub(crate) fn account(m: accounts::Model) -> Result<Account, StorageError> {
    Ok(Account {
        id: m.id,
        name: m.name,
        created_at: time(m.created_at)?,
    })
}

pub(crate) fn member(m: members::Model) -> Result<Member, StorageError> {
    Ok(Member {
        id: m.id,
        account_id: m.account_id,
        user_name: UserName::parse(&m.user_name).map_err(StorageError::corrupt)?,
        role: privilege(&m.role)?,
        created_at: time(m.created_at)?,
        updated_at: time(m.updated_at)?,
        removed_at: opt_time(m.removed_at)?,
    })
}

pub(crate) fn token(m: tokens::Model) -> Result<Token, StorageError> {
    Ok(Token {
        id: m.id,
        account_id: m.account_id,
        token_type: TokenType::parse(&m.token_type)
            .ok_or_else(|| corrupt("token type", &m.token_type))?,
        owner_id: m.owner_id,
        privilege: privilege(&m.privilege)?,
        default_app_state: app_state(&m.default_app_state)?,
        description: Description::parse(&m.description).map_err(StorageError::corrupt)?,
        creator_id: m.creator_id,
        created_at: time(m.created_at)?,
        updated_at: time(m.updated_at)?,
        retired_at: opt_time(m.retired_at)?,
        promoted_at: opt_time(m.promoted_at)?,
        last_used_at: opt_time(m.last_used_at)?,
    })
}

pub(crate) fn application(m: applications::Model) -> Result<Application, StorageError> {
    Ok(Application {
        token_id: m.token_id,
        name: AppName::parse(&m.name).map_err(StorageError::corrupt)?,
        state: app_state(&m.state)?,
        first_seen_at: time(m.first_seen_at)?,
        last_seen_at: time(m.last_seen_at)?,
        updated_at: time(m.updated_at)?,
    })
}
