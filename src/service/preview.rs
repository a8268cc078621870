//! Impact previews (AIP-163 `validate_only`): a change runs its checks and writes in a
//! transaction that is rolled back, and the answer says what it would do: whether the caller
//! may, the tokens whose effective privilege would drop, and the applications that used the
//! affected tokens lately (with when they were last seen and their counts).
use std::time::Duration;

use uuid::Uuid;

use crate::domain::{
    Application, Caller, Member, OwnerStatus, Privilege, Rationale, Reason, Token,
};
use crate::storage::{AppDecision, Decided, MemberChange, WriteMode};

use super::decisions::DecisionResult;
use super::{Service, ServiceError, TokenView};

/// How far back a preview looks for applications that used a token, by default.
pub const DEFAULT_USAGE_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most recently used applications a preview lists.
const MOST_LISTED: u64 = 1000;

/// A token whose effective privilege a change would lower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivilegeDrop {
    pub token_id: Uuid,
    pub description: String,
    pub before: Privilege,
    /// `None`: it could no longer act at all.
    pub after: Option<Privilege>,
}

/// What a change would do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Preview {
    /// `Some((reason, message))` when the caller may not make the change.
    pub refused: Option<(Reason, String)>,
    pub recently_used: Vec<Application>,
    pub privilege_drops: Vec<PrivilegeDrop>,
    pub window_days: u32,
}

/// A preview and what the change would leave behind (none when it would be refused).
#[derive(Debug, Clone)]
pub struct Previewed<T> {
    pub would: Option<T>,
    pub preview: Preview,
}

impl<T> Previewed<T> {
    /// The change's preview. A change the rules refuse becomes a preview saying so; other errors (not found,
    /// unauthenticated, invalid) stay errors, as they would for the change itself, so a
    /// preview reveals nothing the change would not.
    async fn of(
        change: impl Future<Output = Result<(T, Preview), ServiceError>>,
    ) -> Result<Previewed<T>, ServiceError> {
        match change.await {
            Ok((would, preview)) => Ok(Previewed {
                would: Some(would),
                preview,
            }),
            Err(
                ServiceError::PermissionDenied { reason, message }
                | ServiceError::FailedPrecondition { reason, message },
            ) => Ok(Previewed {
                would: None,
                preview: Preview {
                    refused: Some((reason, message)),
                    ..Preview::default()
                },
            }),
            Err(e) => Err(e),
        }
    }
}

impl Service {
    fn window_days(&self) -> u32 {
        u32::try_from(self.settings.usage_window.as_secs() / 86_400).unwrap_or(u32::MAX)
    }

    /// The preview of a permitted change to these tokens, with these drops.
    async fn impact(
        &self,
        token_ids: &[Uuid],
        privilege_drops: Vec<PrivilegeDrop>,
    ) -> Result<Preview, ServiceError> {
        // A window reaching before the first representable time counts every use.
        let since = chrono::TimeDelta::from_std(self.settings.usage_window)
            .ok()
            .and_then(|window| crate::domain::earlier_by(self.now(), window))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        Ok(Preview {
            refused: None,
            recently_used: self
                .repo
                .recently_used(token_ids, since, MOST_LISTED)
                .await?,
            privilege_drops,
            window_days: self.window_days(),
        })
    }

    /// What retiring a token would do.
    pub async fn preview_retire_token(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<Previewed<TokenView>, ServiceError> {
        Previewed::of(async {
            // In the order the change checks: a Read-Only caller is refused before any lookup.
            caller.require_write()?;
            let before = self.visible_token(caller, id).await?;
            let before = self.view(before).await?;
            let after = self.retire(caller, id, WriteMode::ValidateOnly).await?;
            let drops = match (before.effective_privilege, after.token.is_retired()) {
                (Some(now), true) => vec![drop_of(&before.token, now, None)],
                _ => Vec::new(),
            };
            let preview = self.impact(&[id], drops).await?;
            Ok((after, preview))
        })
        .await
    }

    /// What one or many application decisions would do. A decision the rules refuse is
    /// that decision's result, as in the batch itself.
    pub async fn preview_decisions(
        &self,
        caller: &Caller,
        decisions: Vec<AppDecision>,
        reason: Option<Rationale>,
    ) -> Result<Previewed<Vec<DecisionResult>>, ServiceError> {
        Previewed::of(self.decisions_impact(caller, decisions, reason)).await
    }

    /// What one application decision would do (SetApplicationState): the rules refusing it
    /// (a retired or expired token) is a preview saying so, as for every other change.
    pub async fn preview_set_application_state(
        &self,
        caller: &Caller,
        decision: AppDecision,
        reason: Option<Rationale>,
    ) -> Result<Previewed<Application>, ServiceError> {
        Previewed::of(async {
            let (mut results, preview) = self
                .decisions_impact(caller, vec![decision], reason)
                .await?;
            let decided = results
                .pop()
                .ok_or_else(|| ServiceError::Internal("a decision without a result".into()))??;
            Ok((decided.application().clone(), preview))
        })
        .await
    }

    async fn decisions_impact(
        &self,
        caller: &Caller,
        decisions: Vec<AppDecision>,
        reason: Option<Rationale>,
    ) -> Result<(Vec<DecisionResult>, Preview), ServiceError> {
        let results = self
            .decide_applications(caller, decisions, reason, WriteMode::ValidateOnly)
            .await?;
        let mut tokens: Vec<Uuid> = results
            .iter()
            .flatten()
            .filter(|d| matches!(d, Decided::Changed { .. }))
            .map(|d| d.application().token_id)
            .collect();
        tokens.sort();
        tokens.dedup();
        let mut preview = self.impact(&tokens, Vec::new()).await?;
        // Only the applications decided: those are the ones a decision affects.
        preview.recently_used.retain(|used| {
            results.iter().flatten().any(|d| {
                let app = d.application();
                matches!(d, Decided::Changed { .. })
                    && app.token_id == used.token_id
                    && app.name == used.name
            })
        });
        Ok((results, preview))
    }

    /// What changing a member's role would do.
    pub async fn preview_update_member(
        &self,
        caller: &Caller,
        id: Uuid,
        role: Privilege,
    ) -> Result<Previewed<Member>, ServiceError> {
        Previewed::of(async {
            let before = self.current_member(caller, id).await?;
            let after = self
                .change_membership(
                    caller,
                    id,
                    MemberChange::SetRole(role),
                    WriteMode::ValidateOnly,
                )
                .await?;
            let preview = self
                .member_impact(&before, OwnerStatus::Member(role))
                .await?;
            Ok((after, preview))
        })
        .await
    }

    /// What removing a member would do.
    pub async fn preview_remove_member(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<Previewed<()>, ServiceError> {
        Previewed::of(async {
            let before = self.current_member(caller, id).await?;
            self.change_membership(caller, id, MemberChange::Remove, WriteMode::ValidateOnly)
                .await?;
            let preview = self.member_impact(&before, OwnerStatus::Removed).await?;
            Ok(((), preview))
        })
        .await
    }

    /// The preview of a permitted change of a member's standing to `after`: their tokens whose
    /// privilege drops, and the applications that used those.
    async fn member_impact(
        &self,
        member: &Member,
        after: OwnerStatus,
    ) -> Result<Preview, ServiceError> {
        let tokens = self
            .repo
            .active_tokens_owned_by(member.account_id, member.id)
            .await?;
        let drops = drops(&tokens, OwnerStatus::Member(member.role), after, self.now());
        let ids: Vec<Uuid> = drops.iter().map(|d| d.token_id).collect();
        self.impact(&ids, drops).await
    }

    /// A current member of the caller's account, for an Admin; the rules' refusal otherwise.
    async fn current_member(&self, caller: &Caller, id: Uuid) -> Result<Member, ServiceError> {
        caller.require_admin()?;
        self.repo
            .member(caller.account_id, id)
            .await?
            .filter(|m| m.removed_at.is_none())
            .ok_or_else(|| ServiceError::not_found("member", id))
    }
}

/// The tokens whose privilege drops when their owner's standing goes from `before` to `after`.
fn drops(
    tokens: &[Token],
    before: OwnerStatus,
    after: OwnerStatus,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<PrivilegeDrop> {
    tokens
        .iter()
        .filter_map(|token| {
            let now = token.effective_privilege(before, at)?;
            let then = token.effective_privilege(after, at);
            (then < Some(now)).then(|| drop_of(token, now, then))
        })
        .collect()
}

fn drop_of(token: &Token, before: Privilege, after: Option<Privilege>) -> PrivilegeDrop {
    PrivilegeDrop {
        token_id: token.id,
        description: token.description.as_str().to_owned(),
        before,
        after,
    }
}
