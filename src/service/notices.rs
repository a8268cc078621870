//! The sweep that sends lifecycle notices (expiring at each lead time, expired, dormant), by
//! each account's policy. Any replica may sweep, all at once: each notice is sent once (see
//! `Repository::send_notice`). Decisions never wait for it: an expired token is refused from
//! its expiry on; the notice tells people and their tools.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{AccountPolicy, Notice};

use super::{Service, ServiceError};
use crate::telemetry::chain;

/// Tokens looked at per query.
const NOTICE_BATCH: u64 = 500;

impl Service {
    /// Sends every notice due now that no replica has sent; returns how many this one sent.
    pub async fn send_notices_now(&self) -> Result<usize, ServiceError> {
        let now = self.now();
        let mut sent = 0;
        for (account_id, policy) in self.repo.account_policies().await? {
            sent += self.send_account_notices(account_id, &policy, now).await?;
        }
        if sent > 0 {
            self.replica.wake();
        }
        Ok(sent)
    }

    async fn send_account_notices(
        &self,
        account_id: Uuid,
        policy: &AccountPolicy,
        now: DateTime<Utc>,
    ) -> Result<usize, ServiceError> {
        let expiring_by = now
            .checked_add_signed(policy.longest_notice_lead())
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let unused_since = policy.dormant_after.map(|after| {
            now.checked_sub_signed(after)
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        });
        let (mut sent, mut after) = (0, 0);
        loop {
            let batch = self
                .repo
                .notice_candidates(account_id, expiring_by, unused_since, after, NOTICE_BATCH)
                .await?;
            let due: Vec<(Uuid, Notice)> = batch
                .iter()
                .flat_map(|c| {
                    policy
                        .notices_due(c.times, now)
                        .into_iter()
                        .map(move |notice| (c.token_id, notice))
                })
                .collect();
            let already = self.repo.sent_notices(&due).await?;
            for (token_id, notice) in due.iter().filter(|d| !already.contains(d)) {
                if self.repo.send_notice(account_id, *token_id, notice).await? {
                    sent += 1;
                }
            }
            match batch.last() {
                Some(last) if batch.len() as u64 == NOTICE_BATCH => after = last.seq,
                _ => return Ok(sent),
            }
        }
    }

    /// Sends due notices every interval until `stop`.
    pub async fn run_notice_sweeper(self, stop: impl std::future::Future<Output = ()>) {
        let this = &self;
        super::every(this.settings.notice_sweep, stop, || async move {
            if let Err(e) = this.send_notices_now().await {
                tracing::warn!(error = %chain(&e), "lifecycle notices not sent yet; will retry");
            }
        })
        .await;
    }
}
