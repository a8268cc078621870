//! Rows to domain types and back. Times are stored as microseconds since the Unix epoch.
use chrono::{DateTime, Utc};

use super::StorageError;
use super::entities::{accounts, applications, members, tokens};
use crate::domain::{
    Account, AddressRanges, AppName, Application, Conditions, Description, Evidence, Member, Named,
    PreviousSecret, Privilege, Token, UserName,
};

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn time(us: i64) -> Result<DateTime<Utc>, StorageError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StorageError::corrupt(format!("time {us} out of range")))
}

pub(crate) fn opt_time(us: Option<i64>) -> Result<Option<DateTime<Utc>>, StorageError> {
    us.map(time).transpose()
}

/// A value stored by its name (`Named`): a name the code does not know is corrupt data.
pub(crate) fn named<T: Named>(name: &str) -> Result<T, StorageError> {
    T::from_name(name).map_err(|e| StorageError::corrupt(format!("{name:?}: {e}")))
}

pub(crate) fn ranges(stored: Option<&str>) -> Result<AddressRanges, StorageError> {
    AddressRanges::from_stored(stored).map_err(StorageError::corrupt)
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
        role: named(&m.role)?,
        created_at: time(m.created_at)?,
        updated_at: time(m.updated_at)?,
        removed_at: opt_time(m.removed_at)?,
    })
}

pub(crate) fn token(m: tokens::Model) -> Result<Token, StorageError> {
    Ok(Token {
        id: m.id,
        account_id: m.account_id,
        token_type: named(&m.token_type)?,
        owner_id: m.owner_id,
        privilege: named(&m.privilege)?,
        default_app_state: named(&m.default_app_state)?,
        description: Description::parse(&m.description).map_err(StorageError::corrupt)?,
        creator_id: m.creator_id,
        created_at: time(m.created_at)?,
        updated_at: time(m.updated_at)?,
        retired_at: opt_time(m.retired_at)?,
        promoted_at: opt_time(m.promoted_at)?,
        last_used_at: opt_time(m.last_used_at)?,
        bound_ranges: ranges(m.bound_cidrs.as_deref())?,
        expires_at: opt_time(m.expire_at)?,
        rotated_at: opt_time(m.rotated_at)?,
        previous_secret: previous_secret(&m)?,
    })
}

/// The secret a token rotated out last, from the token's row: waiting for the new secret's
/// first use, or working until its end (kept after the end, for people to read).
fn previous_secret(m: &tokens::Model) -> Result<Option<PreviousSecret>, StorageError> {
    let (Some(rotated_at), Some(overlap)) = (opt_time(m.rotated_at)?, m.previous_overlap_micros)
    else {
        return Ok(None);
    };
    Ok(Some(PreviousSecret {
        rotated_at,
        overlap: chrono::TimeDelta::microseconds(overlap),
        ends_at: opt_time(m.previous_ends_at)?,
    }))
}

/// An approval's conditions from their three columns; `None` when none is set.
pub(crate) fn conditions(
    until: Option<i64>,
    max_privilege: Option<&str>,
    cidrs: Option<&str>,
) -> Result<Option<Conditions>, StorageError> {
    let conditions = Conditions {
        until: opt_time(until)?,
        max_privilege: max_privilege.map(named::<Privilege>).transpose()?,
        client_ranges: ranges(cidrs)?,
    };
    Ok((!conditions.is_empty()).then_some(conditions))
}

/// The columns of an approval's conditions: until, privilege cap, ranges.
pub(crate) fn condition_columns(
    conditions: Option<&Conditions>,
) -> (Option<i64>, Option<String>, Option<String>) {
    match conditions {
        None => (None, None, None),
        Some(c) => (
            c.until.map(micros),
            c.max_privilege.map(|p| p.as_str().to_owned()),
            c.client_ranges.to_stored(),
        ),
    }
}

pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(crate) fn application(m: applications::Model) -> Result<Application, StorageError> {
    Ok(Application {
        token_id: m.token_id,
        name: AppName::parse(&m.name).map_err(StorageError::corrupt)?,
        state: named(&m.state)?,
        conditions: conditions(
            m.cond_until,
            m.cond_max_privilege.as_deref(),
            m.cond_cidrs.as_deref(),
        )?,
        first_seen_at: time(m.first_seen_at)?,
        last_seen_at: time(m.last_seen_at)?,
        updated_at: time(m.updated_at)?,
        evidence: Evidence {
            refused_attempts: count(m.refused_attempts),
            allowed_count: count(m.allowed_count),
            // An address that no longer parses is evidence lost, not a reason to fail a listing.
            last_client_address: m.last_client_address.and_then(|a| a.parse().ok()),
        },
    })
}
