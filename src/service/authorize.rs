//! Authorize, and the same decision applied to callers of the management services.
use crate::domain::{AppName, Caller, Decision, Privilege, Secret, TokenGrant, TokenType, decide};
use crate::storage::RecordOutcome;

use super::{Service, ServiceError};

/// What a caller presents: a secret and an application name.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub secret: Secret,
    pub app: AppName,
}

/// A decision and, when the token was found, what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeOutcome {
    pub decision: Decision,
    pub grant: Option<TokenGrant>,
}

impl Service {
    /// Decides one request. The first use of a name records it under the token's
    /// default state (with its event) before the decision is made.
    pub async fn authorize(
        &self,
        secret: &Secret,
        app: &AppName,
        required: Privilege,
    ) -> Result<AuthorizeOutcome, ServiceError> {
        let Some(lookup) = self.repo.find_grant(&secret.digest(), app).await? else {
            return Ok(AuthorizeOutcome {
                decision: Decision::UnknownToken,
                grant: None,
            });
        };
        let grant = lookup.grant;
        if let Err(refusal) = grant.usable() {
            return Ok(AuthorizeOutcome {
                decision: refusal,
                grant: Some(grant),
            });
        }
        let state = match lookup.app_state {
            Some(state) => state,
            None => match self
                .repo
                .record_application(&grant, app, self.settings.max_apps_per_token)
                .await?
            {
                RecordOutcome::Recorded(state) | RecordOutcome::Existing(state) => state,
                RecordOutcome::LimitReached => {
                    return Ok(AuthorizeOutcome {
                        decision: Decision::AppLimitReached,
                        grant: Some(grant),
                    });
                }
            },
        };
        let decision = decide(&grant, state, required);
        Ok(AuthorizeOutcome {
            decision,
            grant: Some(grant),
        })
    }

    /// Authenticates a TokenService or AccountService caller through the Authorize
    /// decision, so an unapproved application cannot manage tokens either.
    pub async fn authenticate(&self, credentials: &Credentials) -> Result<Caller, ServiceError> {
        let outcome = self
            .authorize(&credentials.secret, &credentials.app, Privilege::ReadOnly)
            .await?;
        match (outcome.decision, outcome.grant) {
            (Decision::Allow { effective }, Some(grant)) => Ok(Caller {
                account_id: grant.account_id,
                token_id: grant.token_id,
                token_type: grant.token_type,
                member_id: if grant.token_type == TokenType::User {
                    grant.owner_id
                } else {
                    None
                },
                privilege: effective,
            }),
            (decision, _) => Err(ServiceError::refused(decision, credentials.app.as_str())),
        }
    }
}
