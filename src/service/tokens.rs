//! Token lifecycle and applications under tokens, with the seed's rules applied per caller.
use std::collections::HashMap;

use chrono::Utc;
use uuid::Uuid;

use crate::domain::{
    AppName, AppState, Application, Caller, Description, PolicyDenial, Privilege, Secret, Token,
    TokenDraft, TokenState, TokenType,
};
use crate::storage::{Actor, AuditRecord, CreateRequest, NewToken, TokenFilter};

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
}

/// The fields UpdateToken may change; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct TokenUpdate {
    pub privilege: Option<Privilege>,
    pub default_app_state: Option<AppState>,
    pub description: Option<Description>,
}

/// ListTokens filters.
#[derive(Debug, Clone, Default)]
pub struct TokenFilters {
    pub token_type: Option<TokenType>,
    pub owner_id: Option<Uuid>,
    pub state: Option<TokenState>,
}

/// A token as shown to a caller: with the privilege it acts with now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    pub token: Token,
    /// `None` when the token cannot act: retired, or its owner removed.
    pub effective_privilege: Option<Privilege>,
}

fn retired_error() -> ServiceError {
    ServiceError::FailedPrecondition {
        reason: "TOKEN_RETIRED",
        message: "the token is retired; retirement is final".into(),
    }
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
        let draft = TokenDraft {
            account_id: caller.account_id,
            token_type: req.token_type,
            owner_id: if req.token_type == TokenType::User {
                caller.member_id
            } else {
                None
            },
            creator_id: caller.member_id,
            privilege: req.privilege,
            default_app_state: req.default_app_state,
            description: req.description,
        };
        let (new, secret) = NewToken::mint(draft, Utc::now());
        self.repo
            .create_token_once(&new, Actor::of(caller), request)
            .await?;
        // A guess of this very secret may be remembered as unknown.
        self.cache.grants.invalidate(&new.digest).await;
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
        };
        let rows = self
            .repo
            .list_tokens(&filter, page.after, page.fetch())
            .await?;
        let roles = self.repo.current_roles(caller.account_id).await?;
        let rows = rows
            .into_iter()
            .map(|(seq, token)| (seq, view_with(&roles, token)))
            .collect();
        Ok(page.page(rows))
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
            .repo
            .change_token(
                caller.account_id,
                id,
                "token.update",
                Actor::of(caller),
                |current| {
                    if !caller.can_see(current) {
                        return Err(ServiceError::not_found("token", id));
                    }
                    if current.retired_at.is_some() {
                        return Err(retired_error());
                    }
                    let mut next = current.clone();
                    next.privilege = update.privilege.unwrap_or(next.privilege);
                    next.default_app_state =
                        update.default_app_state.unwrap_or(next.default_app_state);
                    next.description = update.description.clone().unwrap_or(next.description);
                    Ok(Some(next))
                },
            )
            .await?;
        self.changed_view(changed, id).await
    }

    /// Retiring is final; retiring a retired token changes nothing.
    pub async fn retire_token(&self, caller: &Caller, id: Uuid) -> Result<TokenView, ServiceError> {
        caller.require_write()?;
        let changed = self
            .repo
            .change_token(
                caller.account_id,
                id,
                "token.retire",
                Actor::of(caller),
                |current| {
                    if !caller.can_see(current) {
                        return Err(ServiceError::not_found("token", id));
                    }
                    if current.retired_at.is_some() {
                        return Ok(None);
                    }
                    Ok(Some(Token {
                        retired_at: Some(Utc::now()),
                        ..current.clone()
                    }))
                },
            )
            .await?;
        self.changed_view(changed, id).await
    }

    /// User → Account, Admin only, for good. The token then outlives its creator's membership.
    pub async fn promote_token(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<TokenView, ServiceError> {
        caller.require_admin()?;
        let changed = self
            .repo
            .change_token(caller.account_id, id, "token.promote", Actor::of(caller), |current| {
                if !caller.can_see(current) {
                    return Err(ServiceError::not_found("token", id));
                }
                if current.retired_at.is_some() {
                    return Err(retired_error());
                }
                if current.token_type == TokenType::Account {
                    return Err(ServiceError::FailedPrecondition {
                        reason: "ALREADY_ACCOUNT_TOKEN",
                        message: "the token is already an account token; promotion cannot be undone or repeated".into(),
                    });
                }
                Ok(Some(Token {
                    token_type: TokenType::Account,
                    owner_id: None,
                    promoted_at: Some(Utc::now()),
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
        self.visible_token(caller, token_id).await?;
        let rows = self
            .repo
            .list_applications(token_id, state, page.after, page.fetch())
            .await?;
        Ok(page.page(rows))
    }

    pub async fn set_application_state(
        &self,
        caller: &Caller,
        token_id: Uuid,
        name: &AppName,
        state: AppState,
    ) -> Result<Application, ServiceError> {
        caller.require_write()?;
        let token = self.visible_token(caller, token_id).await?;
        if token.retired_at.is_some() {
            return Err(retired_error());
        }
        let app = self
            .repo
            .set_application_state(caller.account_id, token_id, name, state, Actor::of(caller))
            .await?;
        self.cache.forget_app(token_id, name.as_str()).await;
        self.hub.signal();
        Ok(app)
    }

    pub async fn list_audit_events(
        &self,
        caller: &Caller,
        target_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<AuditRecord>, ServiceError> {
        if !caller.is_admin() {
            return Err(PolicyDenial::AdminRequired.into());
        }
        let rows = self
            .repo
            .list_audit(caller.account_id, target_id, page.after, page.fetch())
            .await?;
        let rows = rows.into_iter().map(|r| (r.seq, r)).collect();
        Ok(page.page(rows))
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
        Ok(view_with(&roles, token))
    }

    async fn changed_view(
        &self,
        changed: Option<(Token, Token)>,
        id: Uuid,
    ) -> Result<TokenView, ServiceError> {
        match changed {
            Some((_, after)) => {
                self.cache.forget_token(id);
                self.view(after).await
            }
            None => Err(ServiceError::not_found("token", id)),
        }
    }
}

fn view_with(roles: &HashMap<Uuid, Privilege>, token: Token) -> TokenView {
    let effective_privilege = match (token.retired_at, token.token_type, token.owner_id) {
        (Some(_), _, _) => None,
        (None, TokenType::Account, _) => Some(token.privilege),
        (None, TokenType::User, owner) => owner
            .and_then(|o| roles.get(&o))
            .map(|role| token.privilege.min(*role)),
    };
    TokenView {
        token,
        effective_privilege,
    }
}
