//! Token lifecycle and applications under tokens, with the Circonus API Tokens page's rules
//! applied per caller.
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{
    AddressRanges, AppState, Application, Caller, Description, OwnerStatus, PolicyDenial,
    Privilege, Secret, Token, TokenState, TokenType,
};
use crate::storage::{Actor, AuditRecord, CreateRequest, Locked, NewToken, TokenFilter, WriteMode};

use super::cache::StaleKey;
use super::guard::{caller_now, visible_now};
use super::lifecycle::expiry_refused;
use super::positions::Purpose;
use super::{Page, PageRequest, Service, ServiceError};

/// What CreateToken asks for, validated.
#[derive(Debug, Clone)]
pub struct NewTokenRequest {
    pub token_type: TokenType,
    pub privilege: Privilege,
    pub default_app_state: AppState,
    pub description: Description,
    /// AIP-155 idempotency key: a retry with the same one creates nothing more.
    pub request_id: Option<Uuid>,
    /// Where the token may be used from; empty: anywhere.
    pub bound_ranges: AddressRanges,
    /// When it stops working; `None`: the account policy's default lifetime, or never.
    pub expire_time: Option<DateTime<Utc>>,
}

/// The fields UpdateToken may change; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct TokenUpdate {
    pub privilege: Option<Privilege>,
    pub default_app_state: Option<AppState>,
    pub description: Option<Description>,
    pub bound_ranges: Option<AddressRanges>,
    /// A new expiry (`Some(None)`: none, if the policy allows it).
    pub expire_time: Option<Option<DateTime<Utc>>>,
}

/// ListTokens filters.
#[derive(Debug, Clone, Default)]
pub struct TokenFilters {
    pub token_type: Option<TokenType>,
    pub owner_id: Option<Uuid>,
    pub state: Option<TokenState>,
    /// Only tokens that expire before this time.
    pub expire_before: Option<DateTime<Utc>>,
}

/// A token as shown to a caller: with the privilege it acts with now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    pub token: Token,
    /// `None` when the token cannot act: retired, expired, or its owner removed.
    pub effective_privilege: Option<Privilege>,
    /// When it was judged: what its state (active or expired) is as of.
    pub at: DateTime<Utc>,
}

impl Service {
    pub async fn create_token(
        &self,
        caller: &Caller,
        req: NewTokenRequest,
    ) -> Result<(TokenView, Secret), ServiceError> {
        caller.may_create(req.token_type, req.privilege)?;
        match req.request_id {
            Some(request_id) => self.create_token_once(caller, req, request_id).await,
            None => self.create_new_token(caller, req, None).await,
        }
    }

    /// Makes the token (and records `request`'s key with it, in one transaction).
    pub(super) async fn create_new_token(
        &self,
        caller: &Caller,
        req: NewTokenRequest,
        request: Option<&CreateRequest>,
    ) -> Result<(TokenView, Secret), ServiceError> {
        let mut draft = caller.draft(
            req.token_type,
            req.privilege,
            req.default_app_state,
            req.description,
        );
        draft.bound_ranges = req.bound_ranges;
        let now = self.now();
        let policy = self.repo.account_policy(caller.account_id).await?;
        draft.expires_at = policy
            .expiry_for_new(req.expire_time, now)
            .map_err(expiry_refused)?;
        let (new, secret) = NewToken::mint(draft, now);
        let (token_type, privilege) = (req.token_type, req.privilege);
        let expires_at = new.token.expires_at;
        self.repo
            .create_token(&new, Actor::of(caller), request, |locked| {
                caller_now(caller, locked)?.may_create(token_type, privilege)?;
                // The policy read above may have changed since: the expiry must also pass the
                // policy as it stands now, under the account row's lock.
                locked
                    .policy
                    .expiry_set(expires_at, now)
                    .map_err(expiry_refused)?;
                Ok::<_, ServiceError>(())
            })
            .await?;
        // A guess of this very secret may be remembered as unknown.
        self.replica.cache.forget_secret(&secret);
        self.replica.wake();
        Ok((self.view(new.token).await?, secret))
    }

    pub async fn get_token(&self, caller: &Caller, id: Uuid) -> Result<TokenView, ServiceError> {
        let token = self.visible_token(caller, id).await?;
        self.view(token).await
    }

    pub async fn list_tokens(
        &self,
        caller: &Caller,
        filters: TokenFilters,
        page: PageRequest,
    ) -> Result<Page<TokenView>, ServiceError> {
        // The page token is judged first, whatever the caller may see: another account's or a
        // forged one is refused even where the page would be empty.
        let pager = self.pager(&page, Purpose::TokensPage, caller.account_id)?;
        let visible_to_member = if caller.is_admin() {
            None
        } else {
            match caller.member_id {
                Some(member) => Some(member),
                // A non-admin account token has no user tokens of its own and may not see account tokens.
                None => {
                    return Ok(Page {
                        items: vec![],
                        next_page_token: String::new(),
                    });
                }
            }
        };
        let filter = TokenFilter {
            account_id: caller.account_id,
            visible_to_member,
            token_type: filters.token_type,
            owner_id: filters.owner_id,
            state: filters.state,
            expire_before: filters.expire_before,
            now: self.now(),
        };
        let rows = self
            .repo
            .list_tokens(&filter, pager.last_seen, pager.fetch())
            .await?;
        let roles = self.repo.current_roles(caller.account_id).await?;
        let rows = rows
            .into_iter()
            .map(|(seq, token)| (seq, view_with(&roles, token, filter.now)))
            .collect();
        Ok(pager.page(rows))
    }

    /// Changes one token as `caller` (`action` in the audit log) under the locks every token
    /// change takes: `change` reads the locked rows and gives the token after, or `None` to
    /// change nothing.
    async fn change_token(
        &self,
        caller: &Caller,
        id: Uuid,
        action: &str,
        mode: WriteMode,
        change: impl FnOnce(&Locked) -> Result<Option<Token>, ServiceError>,
    ) -> Result<Option<(Token, Token)>, ServiceError> {
        self.repo
            .change_token(
                caller.account_id,
                id,
                action,
                Actor::of(caller),
                mode,
                change,
            )
            .await
    }

    pub async fn update_token(
        &self,
        caller: &Caller,
        id: Uuid,
        update: TokenUpdate,
    ) -> Result<TokenView, ServiceError> {
        caller.require_write()?;
        if let Some(privilege) = update.privilege {
            caller.require_may_grant(privilege)?;
        }
        let changed = self
            .change_token(caller, id, "token.update", WriteMode::Commit, |locked| {
                let (caller, current, _) = visible_now(caller, locked, id)?;
                caller.require_write()?;
                if let Some(privilege) = update.privilege {
                    caller.require_may_grant(privilege)?;
                }
                // An expired token is never revived, by its owner or an Admin.
                current.require_active(locked.now)?;
                let mut next = current.clone();
                if let Some(asked) = update.expire_time {
                    // The policy as it stands now, under the account row's lock.
                    next.expires_at = locked
                        .policy
                        .expiry_set(asked, locked.now)
                        .map_err(expiry_refused)?;
                }
                next.privilege = update.privilege.unwrap_or(next.privilege);
                next.default_app_state = update.default_app_state.unwrap_or(next.default_app_state);
                next.description = update.description.clone().unwrap_or(next.description);
                next.bound_ranges = update.bound_ranges.clone().unwrap_or(next.bound_ranges);
                Ok::<_, ServiceError>(Some(next))
            })
            .await?;
        self.changed_view(changed, id).await
    }

    /// Retiring is final; retiring a retired token changes nothing.
    pub async fn retire_token(&self, caller: &Caller, id: Uuid) -> Result<TokenView, ServiceError> {
        self.retire(caller, id, WriteMode::Commit).await
    }

    /// Retires, or (validating only) says what retiring would leave.
    pub(super) async fn retire(
        &self,
        caller: &Caller,
        id: Uuid,
        mode: WriteMode,
    ) -> Result<TokenView, ServiceError> {
        caller.require_write()?;
        let changed = self
            .change_token(
                caller,
                id,
                "token.retire",
                mode,
                |locked| -> Result<_, ServiceError> {
                    let (caller, current, _) = visible_now(caller, locked, id)?;
                    caller.require_write()?;
                    if current.is_retired() {
                        return Ok(None);
                    }
                    Ok(Some(Token {
                        retired_at: Some(locked.now),
                        ..current.clone()
                    }))
                },
            )
            .await?;
        match mode {
            WriteMode::Commit => self.changed_view(changed, id).await,
            WriteMode::ValidateOnly => match changed {
                Some((_, after)) => self.view(after).await,
                None => Err(ServiceError::not_found("token", id)),
            },
        }
    }

    /// User → Account, Admin only, for good. The token then outlives its creator's membership.
    /// It never gains privilege by it: see `Caller::promoted_privilege`.
    pub async fn promote_token(
        &self,
        caller: &Caller,
        id: Uuid,
        privilege: Option<Privilege>,
    ) -> Result<TokenView, ServiceError> {
        caller.require_admin()?;
        if let Some(privilege) = privilege {
            caller.require_may_grant(privilege)?;
        }
        let changed = self
            .change_token(caller, id, "token.promote", WriteMode::Commit, |locked| {
                let (caller, current, owner) = visible_now(caller, locked, id)?;
                caller.require_admin()?;
                current.require_promotable(locked.now)?;
                let privilege = caller.promoted_privilege(current.privilege, owner, privilege)?;
                Ok::<_, ServiceError>(Some(Token {
                    token_type: TokenType::Account,
                    owner_id: None,
                    privilege,
                    promoted_at: Some(locked.now),
                    ..current.clone()
                }))
            })
            .await?;
        self.changed_view(changed, id).await
    }

    pub async fn list_applications(
        &self,
        caller: &Caller,
        token_id: Uuid,
        state: Option<AppState>,
        page: PageRequest,
    ) -> Result<Page<Application>, ServiceError> {
        let pager = self.pager(&page, Purpose::ApplicationsPage, caller.account_id)?;
        self.visible_token(caller, token_id).await?;
        let rows = self
            .repo
            .list_applications(token_id, state, pager.last_seen, pager.fetch())
            .await?;
        Ok(pager.page(rows))
    }

    pub async fn list_audit_events(
        &self,
        caller: &Caller,
        target_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<AuditView>, ServiceError> {
        if !caller.is_admin() {
            return Err(PolicyDenial::AdminRequired.into());
        }
        let pager = self.pager(&page, Purpose::AuditPage, caller.account_id)?;
        let rows = self
            .repo
            .list_audit(caller.account_id, target_id, pager.last_seen, pager.fetch())
            .await?;
        let sealer = self.sealer()?;
        let rows = rows
            .into_iter()
            .map(|record| {
                let id = sealer.opaque_id(record.account_id, record.seq);
                (record.seq, AuditView { id, record })
            })
            .collect();
        Ok(pager.page(rows))
    }

    /// The token if the caller may see it; NOT_FOUND otherwise, whether or not it exists.
    pub(crate) async fn visible_token(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<Token, ServiceError> {
        match self.repo.token(caller.account_id, id).await? {
            Some(token) if caller.can_see(&token) => Ok(token),
            _ => Err(ServiceError::not_found("token", id)),
        }
    }

    pub(super) async fn view(&self, token: Token) -> Result<TokenView, ServiceError> {
        let roles = match token.owner_id {
            Some(owner) => self
                .repo
                .current_role(token.account_id, owner)
                .await?
                .map(|role| HashMap::from([(owner, role)]))
                .unwrap_or_default(),
            None => HashMap::new(),
        };
        Ok(view_with(&roles, token, self.now()))
    }

    async fn changed_view(
        &self,
        changed: Option<(Token, Token)>,
        id: Uuid,
    ) -> Result<TokenView, ServiceError> {
        match changed {
            Some((_, after)) => {
                self.changed_here(StaleKey::Token(id)).await;
                self.view(after).await
            }
            None => Err(ServiceError::not_found("token", id)),
        }
    }
}

/// An audit entry as callers see it: its id is opaque, not the server-wide sequence.
#[derive(Debug, Clone)]
pub struct AuditView {
    pub id: String,
    pub record: AuditRecord,
}

/// The token with the privilege it acts with, given the current roles of its owners.
fn view_with(roles: &HashMap<Uuid, Privilege>, token: Token, now: DateTime<Utc>) -> TokenView {
    let role = token.owner_id.and_then(|o| roles.get(&o)).copied();
    let owner = OwnerStatus::of(token.token_type, role);
    let effective_privilege = token.effective_privilege(owner, now);
    TokenView {
        token,
        effective_privilege,
        at: now,
    }
}
