//! Tokens: creation, lookup, listing and changes, each change with its audit entry.
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use uuid::Uuid;

use super::audit::{self, Actor};
use super::change_log::{self, Change, TokenChange};
use super::convert::{self, micros};
use super::entities::tokens;
use super::guard::{self, AccountLock, Locked};
use super::{Repository, StorageError, WriteMode};
use crate::domain::{Secret, SecretDigest, Token, TokenDraft, TokenState, TokenType};

/// The idempotency key of a create (AIP-155 `request_id`, per calling token) and a digest
/// of the request's fields, recorded with the token it made.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub caller_token_id: Uuid,
    pub request_id: Uuid,
    pub fingerprint: String,
    /// Records older than this are expired: deleted before this one is written.
    pub expired_before: DateTime<Utc>,
}

/// A token about to be stored, with the digest of its secret.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub token: Token,
    pub digest: SecretDigest,
}

impl NewToken {
    /// The token of `draft`, made at `now`, with a fresh secret: the secret goes to the caller
    /// once; only its digest is stored.
    pub fn mint(draft: TokenDraft, now: chrono::DateTime<Utc>) -> (NewToken, Secret) {
        let secret = Secret::generate();
        let new = NewToken {
            token: draft.made_at(now),
            digest: secret.digest(),
        };
        (new, secret)
    }
}

/// Which tokens of an account to list.
#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    pub account_id: Uuid,
    /// Only the user tokens of this member: what a non-admin may see.
    pub visible_to_member: Option<Uuid>,
    pub token_type: Option<TokenType>,
    pub owner_id: Option<Uuid>,
    pub state: Option<TokenState>,
    /// Only tokens that expire before this time.
    pub expire_before: Option<DateTime<Utc>>,
    /// The time expiry is judged at: what "active" and "expired" mean.
    pub now: DateTime<Utc>,
}

pub(crate) async fn insert_token(
    conn: &impl sea_orm::ConnectionTrait,
    new: &NewToken,
) -> Result<(), StorageError> {
    let t = &new.token;
    tokens::Entity::insert(tokens::ActiveModel {
        id: Set(t.id),
        account_id: Set(t.account_id),
        token_type: Set(t.token_type.as_str().to_owned()),
        owner_id: Set(t.owner_id),
        creator_id: Set(t.creator_id),
        secret_digest: Set(new.digest.0.to_vec()),
        privilege: Set(t.privilege.as_str().to_owned()),
        default_app_state: Set(t.default_app_state.as_str().to_owned()),
        description: Set(t.description.as_str().to_owned()),
        created_at: Set(micros(t.created_at)),
        updated_at: Set(micros(t.updated_at)),
        retired_at: Set(t.retired_at.map(micros)),
        promoted_at: Set(t.promoted_at.map(micros)),
        last_used_at: Set(t.last_used_at.map(micros)),
        bound_cidrs: Set(t.bound_ranges.to_stored()),
        expire_at: Set(t.expires_at.map(micros)),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    let created = Change::Token {
        token_id: t.id,
        what: TokenChange::Created,
    };
    change_log::append(conn, t.account_id, &created, t.created_at).await
}

impl Repository {
    /// Stores a new token once `check` approves its maker as the maker's token stands now,
    /// under the locks of a write (see `guard`). With a `request`, records in the same
    /// transaction the request that made it: a second request with the same key is a
    /// `Conflict` and creates nothing. Records older than the key's window are deleted
    /// first, so an expired key may be used again.
    pub async fn create_token<E: From<StorageError>>(
        &self,
        new: &NewToken,
        actor: Actor,
        request: Option<&CreateRequest>,
        check: impl FnOnce(&Locked) -> Result<(), E>,
    ) -> Result<(), E> {
        let tx = self.begin_write().await?;
        if actor.token_id.is_some() {
            let (locked, _) = guard::lock(
                &tx,
                new.token.account_id,
                &actor,
                None,
                AccountLock::Shared,
                &self.clock,
            )
            .await?;
            check(&locked)?;
        }
        if let Some(request) = request {
            let backend = tx.get_database_backend();
            tx.execute_raw(Statement::from_sql_and_values(
                backend,
                "DELETE FROM create_requests WHERE created_at < $1",
                [micros(request.expired_before).into()],
            ))
            .await
            .map_err(StorageError::from)?;
            tx.execute_raw(Statement::from_sql_and_values(
                backend,
                "INSERT INTO create_requests (caller_token_id, request_id, fingerprint, token_id, created_at) VALUES ($1, $2, $3, $4, $5)",
                [
                    request.caller_token_id.to_string().into(),
                    request.request_id.to_string().into(),
                    request.fingerprint.clone().into(),
                    new.token.id.to_string().into(),
                    micros(new.token.created_at).into(),
                ],
            ))
            .await
            .map_err(StorageError::from)?;
        }
        insert_token(&tx, new).await?;
        let t = &new.token;
        audit::write_token(
            &tx,
            t.account_id,
            actor,
            "token.create",
            None,
            t,
            t.created_at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The fingerprint and token of an earlier create with this key, made at or after `since`.
    pub async fn created_by_request(
        &self,
        caller_token_id: Uuid,
        request_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Option<(String, Uuid)>, StorageError> {
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                self.db.get_database_backend(),
                "SELECT fingerprint, token_id FROM create_requests WHERE caller_token_id = $1 AND request_id = $2 AND created_at >= $3",
                [
                    caller_token_id.to_string().into(),
                    request_id.to_string().into(),
                    micros(since).into(),
                ],
            ))
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let fingerprint: String = row.try_get_by_index(0)?;
        let token_id: String = row.try_get_by_index(1)?;
        let token_id = Uuid::parse_str(&token_id)
            .map_err(|e| StorageError::corrupt(format!("create_requests.token_id: {e}")))?;
        Ok(Some((fingerprint, token_id)))
    }

    pub async fn token(&self, account_id: Uuid, id: Uuid) -> Result<Option<Token>, StorageError> {
        tokens::Entity::find()
            .filter(tokens::Column::AccountId.eq(account_id))
            .filter(tokens::Column::Id.eq(id))
            .one(&self.db)
            .await?
            .map(convert::token)
            .transpose()
    }

    /// Oldest first, after the given position.
    pub async fn list_tokens(
        &self,
        filter: &TokenFilter,
        after_seq: Option<i64>,
        limit: u64,
    ) -> Result<Vec<(i64, Token)>, StorageError> {
        use tokens::Column as C;
        let mut query = tokens::Entity::find().filter(C::AccountId.eq(filter.account_id));
        if let Some(member) = filter.visible_to_member {
            query = query
                .filter(C::TokenType.eq(TokenType::User.as_str()))
                .filter(C::OwnerId.eq(member));
        }
        if let Some(ty) = filter.token_type {
            query = query.filter(C::TokenType.eq(ty.as_str()));
        }
        if let Some(owner) = filter.owner_id {
            query = query.filter(C::OwnerId.eq(owner));
        }
        let now = micros(filter.now);
        query = match filter.state {
            Some(TokenState::Active) => query.filter(C::RetiredAt.is_null()).filter(
                sea_orm::Condition::any()
                    .add(C::ExpireAt.is_null())
                    .add(C::ExpireAt.gt(now)),
            ),
            Some(TokenState::Expired) => query
                .filter(C::RetiredAt.is_null())
                .filter(C::ExpireAt.lte(now)),
            Some(TokenState::Retired) => query.filter(C::RetiredAt.is_not_null()),
            None => query,
        };
        if let Some(before) = filter.expire_before {
            query = query.filter(C::ExpireAt.lt(micros(before)));
        }
        if let Some(seq) = after_seq {
            query = query.filter(C::Seq.gt(seq));
        }
        let rows = query
            .order_by_asc(C::Seq)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|m| Ok((m.seq, convert::token(m)?)))
            .collect()
    }

    /// A member's active user tokens: what a change of their membership affects.
    pub async fn active_tokens_owned_by(
        &self,
        account_id: Uuid,
        member_id: Uuid,
    ) -> Result<Vec<Token>, StorageError> {
        tokens::Entity::find()
            .filter(tokens::Column::AccountId.eq(account_id))
            .filter(tokens::Column::OwnerId.eq(member_id))
            .filter(tokens::Column::TokenType.eq(TokenType::User.as_str()))
            .filter(tokens::Column::RetiredAt.is_null())
            .order_by_asc(tokens::Column::Seq)
            .all(&self.db)
            .await?
            .into_iter()
            .map(convert::token)
            .collect()
    }

    /// Changes a token in one transaction: `change` sees the caller's token and the target as
    /// they stand under the transaction's locks, and returns the new token, or `None` when
    /// there is nothing to do. `Ok(None)`: no such token. Returns the token before and after.
    #[allow(clippy::too_many_arguments)]
    pub async fn change_token<E: From<StorageError>>(
        &self,
        account_id: Uuid,
        id: Uuid,
        action: &str,
        actor: Actor,
        mode: WriteMode,
        change: impl FnOnce(&Locked) -> Result<Option<Token>, E>,
    ) -> Result<Option<(Token, Token)>, E> {
        let tx = self.begin_write().await?;
        let (locked, row) = guard::lock(
            &tx,
            account_id,
            &actor,
            Some(id),
            AccountLock::Shared,
            &self.clock,
        )
        .await?;
        let next = change(&locked)?;
        let (Some(row), Some((before, _))) = (row, locked.target) else {
            return Ok(None);
        };
        let Some(mut after) = next else {
            return Ok(Some((before.clone(), before)));
        };
        let now = locked.now;
        after.updated_at = now;
        let mut active: tokens::ActiveModel = row.into();
        active.token_type = Set(after.token_type.as_str().to_owned());
        active.owner_id = Set(after.owner_id);
        active.privilege = Set(after.privilege.as_str().to_owned());
        active.default_app_state = Set(after.default_app_state.as_str().to_owned());
        active.description = Set(after.description.as_str().to_owned());
        active.updated_at = Set(micros(now));
        active.retired_at = Set(after.retired_at.map(micros));
        active.promoted_at = Set(after.promoted_at.map(micros));
        active.bound_cidrs = Set(after.bound_ranges.to_stored());
        active.expire_at = Set(after.expires_at.map(micros));
        tokens::Entity::update(active)
            .exec(&tx)
            .await
            .map_err(StorageError::from)?;
        audit::write_token(&tx, account_id, actor, action, Some(&before), &after, now).await?;
        let what = if after.is_retired() && !before.is_retired() {
            TokenChange::Retired
        } else if after.promoted_at.is_some() && before.promoted_at.is_none() {
            TokenChange::Promoted
        } else {
            TokenChange::Updated
        };
        change_log::append(&tx, account_id, &Change::Token { token_id: id, what }, now).await?;
        mode.finish(tx).await?;
        Ok(Some((before, after)))
    }
}
