//! Accounts and members: bootstrap from the command line, and the AccountService use cases.
use uuid::Uuid;

use crate::domain::{
    Account, AppState, Caller, Description, Member, Privilege, Reason, Secret, Token, TokenDraft,
    UserName, may_grant,
};
use crate::storage::{Actor, MemberChange, NewToken, StorageError, WriteMode};

use super::cache::StaleKey;
use super::guard::caller_now;
use super::positions::Purpose;
use super::{Page, PageRequest, Service, ServiceError};

/// What `api-tokens bootstrap` made. The secret is shown once and never again.
#[derive(Debug)]
pub struct Bootstrapped {
    pub account: Account,
    pub admin: Member,
    pub token: Token,
    pub secret: Secret,
}

/// The caller's account and who the caller is.
#[derive(Debug, Clone)]
pub struct AccountView {
    pub account: Account,
    pub caller: Option<Member>,
}

/// The description of the first token bootstrap makes.
const BOOTSTRAP_DESCRIPTION: &str = "created by api-tokens bootstrap";
/// The description of a token `issue-token` makes.
const ISSUED_DESCRIPTION: &str = "issued by api-tokens issue-token";

impl Service {
    /// Creates an account, its first Admin and that Admin's first token (user token,
    /// Admin privilege, default app state Allow, so it can be used at once).
    pub async fn bootstrap(
        &self,
        account_name: &str,
        user_name: UserName,
    ) -> Result<Bootstrapped, ServiceError> {
        crate::domain::validate_account_name(account_name)
            .map_err(|e| ServiceError::invalid("account", e))?;
        let now = self.now();
        let account = Account {
            id: Uuid::new_v4(),
            name: account_name.to_owned(),
            created_at: now,
        };
        let admin = Member::new(account.id, user_name, Privilege::Admin, now);
        let draft = TokenDraft::user_token_of(
            &admin,
            Privilege::Admin,
            AppState::Allow,
            Description::fixed(BOOTSTRAP_DESCRIPTION),
        );
        let (new, secret) = NewToken::mint(draft, now);
        match self.repo.bootstrap(&account, &admin, &new).await {
            Ok(()) => Ok(Bootstrapped {
                account,
                admin,
                token: new.token,
                secret,
            }),
            Err(StorageError::Conflict) => Err(ServiceError::AlreadyExists {
                reason: Reason::AccountExists,
                message: format!(
                    "an account named {} already exists; bootstrap runs once per account",
                    crate::domain::echo(account_name)
                ),
            }),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_account(&self, caller: &Caller) -> Result<AccountView, ServiceError> {
        let account = self
            .repo
            .account(caller.account_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("caller's account is missing".into()))?;
        let caller = match caller.member_id {
            Some(id) => self.repo.member(caller.account_id, id).await?,
            None => None,
        };
        Ok(AccountView { account, caller })
    }

    pub async fn list_members(
        &self,
        caller: &Caller,
        page: PageRequest,
    ) -> Result<Page<Member>, ServiceError> {
        let pager = self.pager(&page, Purpose::MembersPage, caller.account_id)?;
        let rows = self
            .repo
            .list_members(caller.account_id, pager.last_seen, pager.fetch())
            .await?;
        Ok(pager.page(rows))
    }

    pub async fn add_member(
        &self,
        caller: &Caller,
        user_name: UserName,
        role: Privilege,
    ) -> Result<Member, ServiceError> {
        caller.require_admin()?;
        let member = Member::new(caller.account_id, user_name, role, self.now());
        let added = self
            .repo
            .add_member(&member, Actor::of(caller), |locked| {
                caller_now(caller, locked)?.require_admin()?;
                Ok::<_, ServiceError>(())
            })
            .await;
        match added {
            Ok(()) => Ok(member),
            Err(e) if e.is_conflict() => Err(ServiceError::AlreadyExists {
                reason: Reason::MemberExists,
                message: format!(
                    "{} is already a member of the account",
                    crate::domain::echo(member.user_name.as_str())
                ),
            }),
            Err(e) => Err(e),
        }
    }

    /// Lowering a role caps the member's user tokens from the very next request: the
    /// grants cached for their tokens are forgotten with the change.
    pub async fn update_member(
        &self,
        caller: &Caller,
        id: Uuid,
        role: Privilege,
    ) -> Result<Member, ServiceError> {
        self.change_membership(caller, id, MemberChange::SetRole(role), WriteMode::Commit)
            .await
    }

    /// The member's user tokens stop working at once; account tokens keep working.
    pub async fn remove_member(&self, caller: &Caller, id: Uuid) -> Result<(), ServiceError> {
        self.change_membership(caller, id, MemberChange::Remove, WriteMode::Commit)
            .await
            .map(drop)
    }

    /// Changes a membership, or (validating only) says what it would be. The account keeps
    /// an Admin.
    pub(super) async fn change_membership(
        &self,
        caller: &Caller,
        id: Uuid,
        change: MemberChange,
        mode: WriteMode,
    ) -> Result<Member, ServiceError> {
        caller.require_admin()?;
        let member = self
            .repo
            .change_member(
                caller.account_id,
                id,
                change,
                Actor::of(caller),
                mode,
                |locked, current, admins| {
                    caller_now(caller, locked)?.require_admin()?;
                    let current = current.ok_or_else(|| ServiceError::not_found("member", id))?;
                    let role = match change {
                        MemberChange::SetRole(role) => Some(role),
                        MemberChange::Remove => None,
                    };
                    Ok::<_, ServiceError>(current.require_keeps_an_admin(role, admins)?)
                },
            )
            .await?
            .ok_or_else(|| ServiceError::not_found("member", id))?;
        if mode == WriteMode::Commit {
            self.changed_here(StaleKey::Owner(id)).await;
        }
        Ok(member)
    }
}

impl Service {
    /// Issues a user token to a member on behalf of whatever signs people in (here, the
    /// `issue-token` command run by an operator): members have no other first credential.
    pub async fn issue_member_token(
        &self,
        account_name: &str,
        user_name: &str,
        privilege: Option<Privilege>,
        default_app_state: AppState,
    ) -> Result<(Token, Secret), ServiceError> {
        let account = self
            .repo
            .account_by_name(account_name)
            .await?
            .ok_or_else(|| ServiceError::not_found("account", crate::domain::echo(account_name)))?;
        let member = self
            .repo
            .current_member_by_name(account.id, user_name)
            .await?
            .ok_or_else(|| ServiceError::not_found("member", crate::domain::echo(user_name)))?;
        let privilege = privilege.unwrap_or(member.role);
        may_grant(member.role, privilege)?;
        let draft = TokenDraft::user_token_of(
            &member,
            privilege,
            default_app_state,
            Description::fixed(ISSUED_DESCRIPTION),
        );
        let (new, secret) = NewToken::mint(draft, self.now());
        self.repo
            .create_token(&new, Actor::default(), None, |_| Ok::<_, ServiceError>(()))
            .await?;
        Ok((new.token, secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_descriptions_are_valid() {
        for text in [BOOTSTRAP_DESCRIPTION, ISSUED_DESCRIPTION] {
            assert!(Description::parse(text).is_ok(), "{text}");
        }
    }
}
