//! Accounts and members: bootstrap, membership changes with their audit entries.
use std::collections::HashMap;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::audit::{self, Actor, member_json};
use super::change_log::{self, Change};
use super::convert::{self, micros};
use super::entities::{accounts, members};
use super::guard::{self, AccountLock, Locked};
use super::tokens::{NewToken, insert_token};
use super::{Repository, StorageError, WriteMode};
use crate::domain::{Account, Member, Privilege};

/// A change to a current membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    SetRole(Privilege),
    Remove,
}

impl Repository {
    /// Creates an account, its first member and that member's first token, atomically.
    /// `Conflict` if an account of that name exists.
    pub async fn bootstrap(
        &self,
        account: &Account,
        admin: &Member,
        token: &NewToken,
    ) -> Result<(), StorageError> {
        let tx = self.begin_write().await?;
        let exists = accounts::Entity::find()
            .filter(accounts::Column::Name.eq(&account.name))
            .count(&tx)
            .await?;
        if exists > 0 {
            return Err(StorageError::Conflict);
        }
        accounts::Entity::insert(accounts::ActiveModel {
            id: Set(account.id),
            name: Set(account.name.clone()),
            created_at: Set(micros(account.created_at)),
            policy: Set(None),
        })
        .exec_without_returning(&tx)
        .await?;
        insert_member(&tx, admin).await?;
        insert_token(&tx, token).await?;
        let actor = Actor::default();
        let now = account.created_at;
        audit::write(
            &tx,
            account.id,
            actor.clone(),
            "member.add",
            "member",
            admin.id.to_string(),
            None,
            Some(member_json(admin)),
            now,
        )
        .await?;
        audit::write_token(
            &tx,
            account.id,
            actor,
            "token.create",
            None,
            &token.token,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn account(&self, id: Uuid) -> Result<Option<Account>, StorageError> {
        accounts::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(convert::account)
            .transpose()
    }

    /// A membership by id, current or removed.
    pub async fn member(&self, account_id: Uuid, id: Uuid) -> Result<Option<Member>, StorageError> {
        members::Entity::find()
            .filter(members::Column::AccountId.eq(account_id))
            .filter(members::Column::Id.eq(id))
            .one(&self.db)
            .await?
            .map(convert::member)
            .transpose()
    }

    /// Current members, oldest first, after the given position.
    pub async fn list_members(
        &self,
        account_id: Uuid,
        after_seq: Option<i64>,
        limit: u64,
    ) -> Result<Vec<(i64, Member)>, StorageError> {
        let mut query = members::Entity::find()
            .filter(members::Column::AccountId.eq(account_id))
            .filter(members::Column::RemovedAt.is_null());
        if let Some(seq) = after_seq {
            query = query.filter(members::Column::Seq.gt(seq));
        }
        let rows = query
            .order_by_asc(members::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|m| Ok((m.seq, convert::member(m)?)))
            .collect()
    }

    /// Adds a member once `check` approves the caller as its token stands now, under the
    /// locks of a membership change (see `guard`). `Conflict` if a current member already
    /// has the user name.
    pub async fn add_member<E: From<StorageError>>(
        &self,
        member: &Member,
        actor: Actor,
        check: impl FnOnce(&Locked) -> Result<(), E>,
    ) -> Result<(), E> {
        let tx = self.begin_write().await?;
        if actor.token_id.is_some() {
            let (locked, _) = guard::lock(
                &tx,
                member.account_id,
                &actor,
                None,
                AccountLock::Exclusive,
                &self.clock,
            )
            .await?;
            check(&locked)?;
        }
        insert_member(&tx, member).await?;
        audit::write(
            &tx,
            member.account_id,
            actor,
            "member.add",
            "member",
            member.id.to_string(),
            None,
            Some(member_json(member)),
            member.created_at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes a current membership after `check` approves it, given the caller's token as
    /// it stands now, the member and the number of current Admins, all in one transaction.
    /// The account row is locked first (see `guard`), so two Admins changing each other
    /// take turns instead of deadlocking. `Ok(None)`: no such current member.
    pub async fn change_member<E: From<StorageError>>(
        &self,
        account_id: Uuid,
        id: Uuid,
        change: MemberChange,
        actor: Actor,
        mode: WriteMode,
        check: impl FnOnce(&Locked, Option<&Member>, u64) -> Result<(), E>,
    ) -> Result<Option<Member>, E> {
        let tx = self.begin_write().await?;
        let (locked, _) = match actor.token_id {
            Some(_) => {
                guard::lock(
                    &tx,
                    account_id,
                    &actor,
                    None,
                    AccountLock::Exclusive,
                    &self.clock,
                )
                .await?
            }
            None => {
                return Err(StorageError::database("a membership change needs a caller").into());
            }
        };
        let current = members::Entity::find()
            .filter(members::Column::AccountId.eq(account_id))
            .filter(members::Column::Id.eq(id))
            .filter(members::Column::RemovedAt.is_null())
            .one(&tx)
            .await
            .map_err(StorageError::from)?;
        let before = current
            .as_ref()
            .map(|row| convert::member(row.clone()))
            .transpose()?;
        // Under the exclusive account lock no other membership change runs: a plain count holds.
        let admins = members::Entity::find()
            .filter(members::Column::AccountId.eq(account_id))
            .filter(members::Column::RemovedAt.is_null())
            .filter(members::Column::Role.eq(Privilege::Admin.as_str()))
            .count(&tx)
            .await
            .map_err(StorageError::from)?;
        check(&locked, before.as_ref(), admins)?;
        let (Some(row), Some(before)) = (current, before) else {
            return Ok(None);
        };
        let now = locked.now;
        let mut after = before.clone();
        let mut active: members::ActiveModel = row.into();
        active.updated_at = Set(micros(now));
        let action = match change {
            MemberChange::SetRole(role) => {
                active.role = Set(role.as_str().to_owned());
                after.role = role;
                after.updated_at = now;
                "member.update"
            }
            MemberChange::Remove => {
                active.removed_at = Set(Some(micros(now)));
                after.removed_at = Some(now);
                "member.remove"
            }
        };
        members::Entity::update(active)
            .exec(&tx)
            .await
            .map_err(StorageError::from)?;
        let after_json = (change != MemberChange::Remove).then(|| member_json(&after));
        audit::write(
            &tx,
            account_id,
            actor,
            action,
            "member",
            id.to_string(),
            Some(member_json(&before)),
            after_json,
            now,
        )
        .await?;
        let logged = Change::Member {
            member_id: id,
            removed: change == MemberChange::Remove,
        };
        change_log::append(&tx, account_id, &logged, now).await?;
        mode.finish(tx).await?;
        Ok(Some(after))
    }
}

async fn insert_member(
    conn: &impl sea_orm::ConnectionTrait,
    m: &Member,
) -> Result<(), StorageError> {
    members::Entity::insert(members::ActiveModel {
        id: Set(m.id),
        account_id: Set(m.account_id),
        user_name: Set(m.user_name.as_str().to_owned()),
        role: Set(m.role.as_str().to_owned()),
        created_at: Set(micros(m.created_at)),
        updated_at: Set(micros(m.updated_at)),
        removed_at: Set(m.removed_at.map(micros)),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

impl Repository {
    pub async fn account_by_name(&self, name: &str) -> Result<Option<Account>, StorageError> {
        accounts::Entity::find()
            .filter(accounts::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .map(convert::account)
            .transpose()
    }

    pub async fn current_member_by_name(
        &self,
        account_id: Uuid,
        user_name: &str,
    ) -> Result<Option<Member>, StorageError> {
        members::Entity::find()
            .filter(members::Column::AccountId.eq(account_id))
            .filter(members::Column::UserName.eq(user_name))
            .filter(members::Column::RemovedAt.is_null())
            .one(&self.db)
            .await?
            .map(convert::member)
            .transpose()
    }

    /// A current member's role; `None` if removed or unknown.
    pub async fn current_role(
        &self,
        account_id: Uuid,
        member_id: Uuid,
    ) -> Result<Option<Privilege>, StorageError> {
        match self.member(account_id, member_id).await? {
            Some(m) if m.removed_at.is_none() => Ok(Some(m.role)),
            _ => Ok(None),
        }
    }

    /// Every current member's role, to show many tokens' effective privilege at once.
    pub async fn current_roles(
        &self,
        account_id: Uuid,
    ) -> Result<HashMap<Uuid, Privilege>, StorageError> {
        let rows = members::Entity::find()
            .filter(members::Column::AccountId.eq(account_id))
            .filter(members::Column::RemovedAt.is_null())
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|m| Ok((m.id, convert::named(&m.role)?)))
            .collect()
    }
}
