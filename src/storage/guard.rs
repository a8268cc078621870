//! Write guards: what a write checks inside its own transaction, under locks, before it writes.
//!
//! Every transaction that checks a token or a membership and then writes takes its locks in
//! one order, so no two can wait on each other: token rows (in id order, in one statement),
//! then the account row, then member rows. A write about tokens holds the account row shared;
//! a membership change holds it exclusively, so the roles a token write reads cannot change
//! under it, and two membership changes of one account take turns. SQLite has one writer:
//! its write transactions start IMMEDIATE, so what they read is what they write over.
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::LockType;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use uuid::Uuid;

use super::audit::Actor;
use super::convert;
use super::entities::{accounts, applications, members, tokens};
use super::write::WriteTx;
use super::{Repository, StorageError};
use crate::domain::{AccountPolicy, AppStanding, Clock, OwnerStatus, Token, TokenGrant, TokenType};

/// What a write sees inside its transaction, under its locks, before it writes.
#[derive(Debug, Clone)]
pub struct Locked {
    /// The caller's own token as it stands now; `None` if it is gone.
    pub caller: Option<TokenGrant>,
    /// The approval of the application the caller presented, on its token, as it stands
    /// now (read under the caller's token lock, which every change of it takes too); `None`
    /// if the name has none.
    pub caller_app: Option<AppStanding>,
    /// The token written to, with its owner's standing now; `None` if the account has no such token.
    pub target: Option<(Token, OwnerStatus)>,
    /// The time of the write, as stored.
    pub now: DateTime<Utc>,
    /// The account's token policy as it stands now: read from the locked account row, so a
    /// policy change and this write are ordered one after the other.
    pub policy: AccountPolicy,
}

/// How a write holds the account row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountLock {
    /// Token writes: memberships may not change until they commit.
    Shared,
    /// Membership changes: one at a time per account, and no token write in between.
    Exclusive,
}

impl Repository {
    /// A transaction that will write: on SQLite it takes the write lock at BEGIN, so its
    /// checks and its writes see the same database. Its failures are noted, and on SQLite
    /// it is refused at once while the database is known unable to store it (`write`).
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, StorageError> {
        self.writes.admit()?;
        self.begin_write_now().await
    }

    /// `begin_write`, tried whatever the last write met: the probe's.
    pub(crate) async fn begin_write_now(&self) -> Result<WriteTx, StorageError> {
        let options = if self.is_postgres() {
            TransactionOptions::default()
        } else {
            TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            }
        };
        let tx = self.db.begin_with_options(options).await?;
        Ok(WriteTx::new(tx, self.writes.clone()))
    }
}

/// Locks the caller's token and the target token (in id order), then the account row, and
/// reads both tokens and their owners' standing, and the caller's approval, as they are now.
pub(crate) async fn lock(
    tx: &WriteTx,
    account_id: Uuid,
    actor: &Actor,
    target: Option<Uuid>,
    account_lock: AccountLock,
    clock: &Clock,
) -> Result<(Locked, Option<tokens::Model>), StorageError> {
    let mut ids: Vec<Uuid> = actor.token_id.into_iter().collect();
    ids.extend(target);
    let (rows, policy) = lock_rows(tx, account_id, ids, account_lock).await?;
    let caller = match rows.iter().find(|r| Some(r.id) == actor.token_id) {
        Some(row) => Some(grant(row, owner_status(tx, row).await?)?),
        None => None,
    };
    let caller_app = caller_approval(tx, actor).await?;
    let target_row = target.and_then(|id| {
        rows.iter()
            .find(|r| r.id == id && r.account_id == account_id)
            .cloned()
    });
    let target = match &target_row {
        Some(row) => Some((convert::token(row.clone())?, owner_status(tx, row).await?)),
        None => None,
    };
    let locked = Locked {
        caller,
        caller_app,
        target,
        // Read once the locks are held: a deadline passed while waiting for them counts.
        now: clock.now(),
        policy,
    };
    Ok((locked, target_row))
}

/// Locks the tokens `ids` (in id order, the one order every write takes), then the account
/// row, and returns the tokens' rows and the account's policy.
async fn lock_rows(
    tx: &WriteTx,
    account_id: Uuid,
    mut ids: Vec<Uuid>,
    account_lock: AccountLock,
) -> Result<(Vec<tokens::Model>, AccountPolicy), StorageError> {
    ids.sort();
    ids.dedup();
    let rows = tokens::Entity::find()
        .filter(tokens::Column::Id.is_in(ids))
        .order_by_asc(tokens::Column::Id)
        .lock_exclusive()
        .all(tx)
        .await?;
    let lock_type = match account_lock {
        AccountLock::Shared => LockType::Share,
        AccountLock::Exclusive => LockType::NoKeyUpdate,
    };
    let account = accounts::Entity::find_by_id(account_id)
        .lock(lock_type)
        .one(tx)
        .await?;
    let policy = super::lifecycle::parse_policy(account.and_then(|a| a.policy).as_deref())?;
    Ok((rows, policy))
}

/// What a write about many tokens sees inside its transaction, under its locks.
#[derive(Debug, Clone)]
pub struct LockedMany {
    pub caller: Option<TokenGrant>,
    pub caller_app: Option<AppStanding>,
    /// The account's tokens among those asked for, with their owners' standing now.
    pub targets: HashMap<Uuid, (Token, OwnerStatus)>,
    pub now: DateTime<Utc>,
    pub policy: AccountPolicy,
}

impl LockedMany {
    /// The view of one target, as a write about that token alone would see it.
    pub fn of(&self, target: Uuid) -> Locked {
        Locked {
            caller: self.caller.clone(),
            caller_app: self.caller_app.clone(),
            target: self.targets.get(&target).cloned(),
            now: self.now,
            policy: self.policy.clone(),
        }
    }
}

/// `lock` for many targets: the caller's and the targets' rows in id order in one statement,
/// then the account row, then their owners in one query.
pub(crate) async fn lock_many(
    tx: &WriteTx,
    account_id: Uuid,
    actor: &Actor,
    targets: &[Uuid],
    account_lock: AccountLock,
    clock: &Clock,
) -> Result<LockedMany, StorageError> {
    let mut ids = Vec::with_capacity(targets.len() + 1);
    ids.extend(actor.token_id);
    ids.extend_from_slice(targets);
    let (rows, policy) = lock_rows(tx, account_id, ids, account_lock).await?;
    let owner_ids: Vec<Uuid> = rows.iter().filter_map(|r| r.owner_id).collect();
    let roles: HashMap<Uuid, String> = if owner_ids.is_empty() {
        HashMap::new()
    } else {
        members::Entity::find()
            .filter(members::Column::Id.is_in(owner_ids))
            .filter(members::Column::RemovedAt.is_null())
            .all(tx)
            .await?
            .into_iter()
            .map(|m| (m.id, m.role))
            .collect()
    };
    let owner_of = |row: &tokens::Model| -> Result<OwnerStatus, StorageError> {
        let role = row.owner_id.and_then(|o| roles.get(&o));
        Ok(OwnerStatus::of(
            convert::named(&row.token_type)?,
            role.map(|r| convert::named(r)).transpose()?,
        ))
    };
    let mut caller = None;
    let mut found = HashMap::new();
    for row in &rows {
        let owner = owner_of(row)?;
        if Some(row.id) == actor.token_id {
            caller = Some(grant(row, owner)?);
        }
        if row.account_id == account_id && targets.contains(&row.id) {
            found.insert(row.id, (convert::token(row.clone())?, owner));
        }
    }
    let caller_app = caller_approval(tx, actor).await?;
    Ok(LockedMany {
        caller,
        caller_app,
        targets: found,
        // Read once the locks are held: a deadline passed while waiting for them counts.
        now: clock.now(),
        policy,
    })
}

/// The approval of the application the caller presented, on its own token, as it stands
/// now. Read after the caller's token row is locked: every change of an approval locks its
/// token first, so it cannot change before this write commits.
async fn caller_approval(tx: &WriteTx, actor: &Actor) -> Result<Option<AppStanding>, StorageError> {
    let (Some(token_id), Some(app)) = (actor.token_id, actor.app.as_ref()) else {
        return Ok(None);
    };
    let row = applications::Entity::find()
        .filter(applications::Column::TokenId.eq(token_id))
        .filter(applications::Column::Name.eq(app.as_str()))
        .one(tx)
        .await?;
    Ok(row
        .map(convert::application)
        .transpose()?
        .map(|app| app.standing()))
}

/// The standing of a token's owner now. In a write transaction it is read under the account
/// lock, so it holds until commit.
pub(crate) async fn owner_status(
    tx: &impl ConnectionTrait,
    row: &tokens::Model,
) -> Result<OwnerStatus, StorageError> {
    let token_type: TokenType = convert::named(&row.token_type)?;
    let owner = match (token_type, row.owner_id) {
        (TokenType::User, Some(owner)) => Some(owner),
        _ => None,
    };
    let member = match owner {
        Some(owner) => {
            members::Entity::find()
                .filter(members::Column::Id.eq(owner))
                .filter(members::Column::RemovedAt.is_null())
                .one(tx)
                .await?
        }
        None => None,
    };
    let role = member.map(|m| convert::named(&m.role)).transpose()?;
    Ok(OwnerStatus::of(token_type, role))
}

/// What the Authorize decision knows of a token row.
pub(crate) fn grant(row: &tokens::Model, owner: OwnerStatus) -> Result<TokenGrant, StorageError> {
    let token = convert::token(row.clone())?;
    Ok(TokenGrant {
        token_id: token.id,
        account_id: token.account_id,
        token_type: token.token_type,
        owner_id: token.owner_id,
        privilege: token.privilege,
        default_app_state: token.default_app_state,
        retired: token.is_retired(),
        owner,
        bound_ranges: token.bound_ranges,
        expires_at: token.expires_at,
        secret: crate::domain::SecretUse::Current,
    })
}
