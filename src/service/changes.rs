//! How a replica learns of changes: its own writes, and other replicas' through PostgreSQL
//! LISTEN. Changes invalidate the caches and wake the event hub, which reads each new event
//! from the log once and fans it out to every watch stream of this replica.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::storage::{Change, Heard, StoredEvent};

use super::Service;

/// How many events the hub keeps for streams that are briefly behind; a stream further
/// behind catches up from the log instead, so memory stays bounded whatever the consumer.
const FANOUT_CAPACITY: usize = 1024;
/// Events read from the log per query.
const READ_BATCH: u64 = 500;
/// Even with no signal, the hub looks at the log this often: a lost signal costs at most this.
const POLL: Duration = Duration::from_secs(5);

/// The event hub's channels.
pub(crate) struct EventHub {
    /// Bumped on every local or remote signal that events may have been appended.
    pub wake: watch::Sender<u64>,
    /// New events, in log order, to every stream.
    pub fanout: broadcast::Sender<Arc<StoredEvent>>,
    /// The newest position the hub has fanned out; `None` until the hub has read where the
    /// log stood when it started. Events up to that point are never fanned out, so a stream
    /// must not read the log before it (see `Service::stream`).
    pub head: watch::Sender<Option<i64>>,
    /// Set when the server begins to shut down: streams end so the drain can finish.
    pub shutdown: watch::Sender<bool>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            wake: watch::channel(0).0,
            fanout: broadcast::channel(FANOUT_CAPACITY).0,
            head: watch::channel(None).0,
            shutdown: watch::channel(false).0,
        }
    }
}

impl EventHub {
    pub fn signal(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Service {
    /// Applies a change heard from any replica (this one included) to this replica.
    pub async fn apply_change(&self, change: &Change) {
        match change {
            Change::Token(id) => self.cache.forget_token(*id),
            Change::Owner(id) => self.cache.forget_owner(*id),
            Change::App(token, name) => self.cache.forget_app(*token, name).await,
            Change::Events => self.hub.signal(),
        }
    }

    /// Ends every watch stream; the server calls this when shutdown begins.
    pub fn begin_shutdown(&self) {
        self.hub.shutdown.send_replace(true);
    }

    /// Reads new events from the log and fans them out, until `stop`.
    pub async fn run_event_hub(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut wake = self.hub.wake.subscribe();
        let mut last = loop {
            match self.repo.event_head().await {
                Ok(head) => break head,
                Err(e) => {
                    tracing::warn!(error = %e, "event hub cannot read the log head; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = &mut stop => return,
                    }
                }
            }
        };
        self.hub.head.send_replace(Some(last));
        loop {
            wake.borrow_and_update();
            loop {
                match self.repo.events_after(None, last, READ_BATCH).await {
                    Ok(batch) => {
                        let full = batch.len() as u64 == READ_BATCH;
                        for event in batch {
                            last = event.seq;
                            // No receivers is fine: nobody is watching.
                            let _ = self.hub.fanout.send(Arc::new(event));
                        }
                        self.hub.head.send_replace(Some(last));
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event hub cannot read the log; streams catch up later");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = wake.changed() => {}
                () = tokio::time::sleep(POLL) => {}
                () = &mut stop => return,
            }
        }
    }

    /// Listens for other replicas' changes (PostgreSQL) until `stop`. After a lost connection
    /// it forgets every cached grant and wakes the hub: what was missed is read from the log.
    pub async fn run_change_listener(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut listener = loop {
            match self.repo.change_listener().await {
                Ok(Some(listener)) => break listener,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for changes; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = &mut stop => return,
                    }
                }
            }
        };
        loop {
            tokio::select! {
                heard = listener.next() => match heard {
                    Ok(Heard::Change(change)) => self.apply_change(&change).await,
                    Ok(Heard::Reconnected) => {
                        tracing::warn!("change listener reconnected; forgetting cached grants");
                        self.cache.forget_all();
                        self.hub.signal();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "change listener failed; forgetting cached grants and retrying");
                        self.cache.forget_all();
                        self.hub.signal();
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = &mut stop => return,
                        }
                    }
                },
                () = &mut stop => return,
            }
        }
    }

    /// Deletes events older than the retention age, every `every`, until `stop`.
    pub async fn run_event_compaction(
        self,
        every: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut stop => return,
            }
            if let Err(e) = self.compact_events().await {
                tracing::warn!(error = %e, "event log compaction failed; will retry");
            }
        }
    }

    /// Deletes events older than the retention age now. Returns how many were deleted.
    pub async fn compact_events(&self) -> Result<u64, super::ServiceError> {
        let retention = chrono::Duration::from_std(self.settings.event_retention)
            .unwrap_or(chrono::Duration::MAX);
        let before = chrono::Utc::now()
            .checked_sub_signed(retention)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let deleted = self.repo.compact_events(before).await?;
        if deleted > 0 {
            tracing::info!(deleted, "compacted the application event log");
        }
        Ok(deleted)
    }
}
