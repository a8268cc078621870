//! Compaction of the change log: changes older than the retention age are deleted, and
//! cursors before them answer CURSOR_EXPIRED.
use std::time::Duration;

use super::{Service, ServiceError};
use crate::telemetry::chain;

impl Service {
    /// Deletes changes older than the retention age, every `every`, until `stop`.
    pub async fn run_event_compaction(
        self,
        every: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let this = &self;
        super::every(every, stop, || async move {
            if let Err(e) = this.compact_events().await {
                tracing::warn!(error = %chain(&e), "change log compaction failed; will retry");
            }
        })
        .await;
    }

    /// Deletes changes older than the retention age now. Returns how many were deleted.
    pub async fn compact_events(&self) -> Result<u64, ServiceError> {
        let retention = chrono::Duration::from_std(self.settings.event_retention)
            .unwrap_or(chrono::Duration::MAX);
        let before = self
            .now()
            .checked_sub_signed(retention)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let deleted = self.repo.compact_events(before).await?;
        if deleted > 0 {
            tracing::info!(deleted, "compacted the change log");
        }
        Ok(deleted)
    }
}
