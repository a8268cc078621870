//! ReportLeakedSecret: whoever holds a secret may report it leaked, and its token is retired
//! at once. The answer never says whether the secret was a token's; reports are limited per
//! client address.
use std::net::IpAddr;

use crate::domain::{Rationale, Secret};

use super::cache::StaleKey;
use super::{Service, ServiceError};

/// A report, as read from the request.
#[derive(Debug, Clone)]
pub struct LeakReport {
    pub secret: Secret,
    pub where_found: Option<Rationale>,
}

impl Service {
    /// Retires the token whose secret this is, if it is active. Every report that passes the
    /// rate limit does the same lookup in the same kind of transaction, and every answer is
    /// the same `Ok(())`, so neither the answer nor an early return tells a guesser anything.
    pub async fn report_leaked_secret(
        &self,
        report: LeakReport,
        reporter: Option<IpAddr>,
    ) -> Result<(), ServiceError> {
        if let Err(wait) = self.leak_limiter.take(reporter, std::time::Instant::now()) {
            return Err(ServiceError::RateLimited {
                message: "too many leaked-secret reports from this address; retry later".into(),
                retry_after: wait,
            });
        }
        let digest = report.secret.digest();
        let where_found = report.where_found.as_ref().map(Rationale::as_str);
        let retired = self
            .repo
            .report_leak(&digest, where_found, reporter)
            .await?;
        if let Some(retired) = retired {
            tracing::warn!(token_id = %retired.token_id, "token retired: its secret was reported leaked");
            self.changed_here(StaleKey::Token(retired.token_id)).await;
        }
        Ok(())
    }
}
