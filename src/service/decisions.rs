//! Decisions about applications: one (SetApplicationState) or up to 100 at once with one
//! reason, each judged where it is written; and the sweep that writes lapsed conditional
//! approvals back to Pending, each with its event.
use crate::domain::{Application, Caller, Rationale};
use crate::storage::{AppDecision, Decided, WriteMode};

use super::cache::StaleKey;
use super::guard::{caller_now, visible_now};
use super::{Service, ServiceError};

/// Most decisions one batch may carry.
pub const MAX_BATCH: usize = 100;
/// Lapsed approvals written back per transaction.
const LAPSE_BATCH: u64 = 500;

/// One decision's outcome in a batch: what it did, or why it was refused.
pub type DecisionResult = Result<Decided, ServiceError>;

impl Service {
    /// Allows, denies or sets Pending one application name on a token; an Allow may carry
    /// conditions. Setting what it already is changes nothing and logs nothing.
    pub async fn set_application_state(
        &self,
        caller: &Caller,
        decision: AppDecision,
        reason: Option<Rationale>,
    ) -> Result<Application, ServiceError> {
        let mut results = self
            .decide_applications(caller, vec![decision], reason, WriteMode::Commit)
            .await?;
        match results.pop() {
            Some(result) => Ok(result?.application().clone()),
            None => Err(ServiceError::Internal("a decision without a result".into())),
        }
    }

    /// Up to `MAX_BATCH` decisions with one reason, in one transaction, a result for each.
    pub async fn batch_set_application_states(
        &self,
        caller: &Caller,
        decisions: Vec<AppDecision>,
        reason: Option<Rationale>,
    ) -> Result<Vec<DecisionResult>, ServiceError> {
        if decisions.is_empty() || decisions.len() > MAX_BATCH {
            return Err(ServiceError::invalid(
                "decisions",
                format!("must hold 1 to {MAX_BATCH} decisions"),
            ));
        }
        self.decide_applications(caller, decisions, reason, WriteMode::Commit)
            .await
    }

    /// Writes approvals that reached their end back to Pending now, with their events.
    /// Returns how many lapsed.
    pub async fn lapse_approvals_now(&self) -> Result<usize, ServiceError> {
        let mut total = 0;
        loop {
            let lapsed = self.repo.lapse_approvals(self.now(), LAPSE_BATCH).await?;
            total += lapsed;
            if lapsed > 0 {
                self.replica.wake();
            }
            if (lapsed as u64) < LAPSE_BATCH {
                return Ok(total);
            }
        }
    }

    /// Sweeps lapsed approvals every interval until `stop`. Decisions never wait for it: an
    /// approval is Pending from its end on; the sweep writes it down, for people and bots.
    pub async fn run_approval_sweeper(self, stop: impl std::future::Future<Output = ()>) {
        let this = &self;
        super::every(this.settings.approval_sweep, stop, || async move {
            if let Err(e) = this.lapse_approvals_now().await {
                tracing::warn!(error = %e, "lapsed approvals not written back to Pending yet; will retry");
            }
        })
        .await;
    }

    pub(super) async fn decide_applications(
        &self,
        caller: &Caller,
        decisions: Vec<AppDecision>,
        reason: Option<Rationale>,
        mode: WriteMode,
    ) -> Result<Vec<DecisionResult>, ServiceError> {
        caller.require_write()?;
        let results = self
            .repo
            .decide_applications(
                caller.account_id,
                crate::storage::Actor::of(caller),
                &decisions,
                reason.as_ref().map(Rationale::as_str),
                mode,
                |locked| {
                    caller_now(caller, &locked.of(caller.token_id))?.require_write()?;
                    Ok::<_, ServiceError>(())
                },
                |locked, decision| {
                    let (caller, token, _) = visible_now(caller, locked, decision.token_id)?;
                    caller.require_write()?;
                    caller.may_change_own_approval(
                        decision.token_id,
                        &decision.name,
                        locked.caller_app.as_ref(),
                        decision.state,
                        decision.conditions.as_ref(),
                    )?;
                    Ok(token.require_active(locked.now)?)
                },
            )
            .await?;
        if mode == WriteMode::Commit {
            for decided in results.iter().flatten() {
                if let Decided::Changed { after, .. } = decided {
                    self.replica.cache.forget_now(StaleKey::App(
                        after.token_id,
                        after.name.as_str().to_owned(),
                    ));
                }
            }
            self.replica.wake();
        }
        Ok(results)
    }
}
