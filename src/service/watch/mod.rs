//! WatchApplications and WatchTokenEvents: (for applications, a snapshot of the matching
//! ones, then) every later change, each with a sealed cursor to resume after. Both streams
//! read one change log, so they share positions, cursors and the rules below. Live changes
//! come from the replica's log follower; a stream that starts from a cursor or falls behind
//! reads the log instead. Every change that could affect the caller judges the stream again:
//! it ends with the status a new call would get, or goes on seeing only what the caller may
//! see now.
mod events;
mod watcher;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use crate::domain::{AppState, Caller, Clock, Reason};
use crate::storage::LoggedChange;

use super::cache::StaleKey;
use super::positions::Purpose;
use super::{Credentials, Service, ServiceError};

/// Messages buffered per stream; a consumer slower than this makes its stream wait (reading
/// the log later), never the writers or other streams.
const STREAM_BUFFER: usize = 64;
const CATCH_UP_BATCH: u64 = 256;

pub use events::{AppChange, TokenEvent, TokenWatchRequest, WatchEvent, WatchItem, WatchRequest};
use watcher::{Topic, Watcher};

fn expired() -> ServiceError {
    ServiceError::OutOfRange {
        reason: Reason::CursorExpired,
        message: "the changes after this cursor were compacted away; watch again without a cursor to re-list".into(),
    }
}

/// A queued message, boxed: the channel's blocks keep their slots after a burst (a large
/// snapshot), so slots must be small for thousands of idle streams to stay cheap.
type Queued = Box<Result<WatchItem, ServiceError>>;

/// Why a stream stops feeding: the client went away (quietly), or an error to send.
enum Stop {
    Gone,
    Error(ServiceError),
}

impl From<ServiceError> for Stop {
    fn from(e: ServiceError) -> Self {
        Stop::Error(e)
    }
}

struct Outbox {
    tx: mpsc::Sender<Queued>,
    last_sent: Instant,
}

impl Service {
    pub async fn watch_applications(
        &self,
        credentials: Credentials,
        request: WatchRequest,
    ) -> Result<
        impl tokio_stream::Stream<Item = Result<WatchItem, ServiceError>> + Send + use<>,
        ServiceError,
    > {
        let states = if request.states.is_empty() {
            vec![AppState::Pending]
        } else {
            request.states
        };
        let topic = Topic::Applications { states };
        self.watch(credentials, topic, request.cursor, request.token_id)
            .await
    }

    /// Tokens' lifecycle events from now (the first message a heartbeat at the present) or
    /// after a cursor: an Admin hears of every token of the account, others of their own.
    pub async fn watch_token_events(
        &self,
        credentials: Credentials,
        request: TokenWatchRequest,
    ) -> Result<
        impl tokio_stream::Stream<Item = Result<WatchItem, ServiceError>> + Send + use<>,
        ServiceError,
    > {
        self.watch(
            credentials,
            Topic::TokenEvents,
            request.cursor,
            request.token_id,
        )
        .await
    }

    async fn watch(
        &self,
        credentials: Credentials,
        topic: Topic,
        cursor: Option<String>,
        token_id: Option<Uuid>,
    ) -> Result<
        impl tokio_stream::Stream<Item = Result<WatchItem, ServiceError>> + Send + use<>,
        ServiceError,
    > {
        let (caller, deadline) = self.authenticate_until(&credentials).await?;
        if let Some(token) = token_id {
            self.visible_token(&caller, token).await?;
        }
        let cursor = match &cursor {
            Some(sealed) => Some(self.open_cursor(&caller, sealed).await?),
            None => None,
        };
        let mut watcher = Watcher {
            credentials,
            caller,
            deadline,
            topic,
            token_id,
        };
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let service = self.clone();
        tokio::spawn(async move {
            // Counted open while this task feeds the stream (it ends when the client goes).
            let _open = service.metrics().watch_stream_opened();
            let errors = tx.clone();
            let mut out = Outbox {
                tx,
                last_sent: Instant::now(),
            };
            if let Err(Stop::Error(e)) = service.stream(&mut watcher, cursor, &mut out).await {
                let _ = errors.send(Box::new(Err(e))).await;
            }
        });
        Ok(ReceiverStream::new(rx).map(|queued| *queued))
    }

    /// The position a cursor sealed for this caller's account stands for, if it is still in
    /// the retained log and not past its head.
    async fn open_cursor(&self, caller: &Caller, sealed: &str) -> Result<i64, ServiceError> {
        let position = self
            .sealer()?
            .open(Purpose::WatchCursor, Some(caller.account_id), sealed)
            .ok_or_else(|| {
                ServiceError::invalid(
                    "cursor",
                    "is not a cursor this service issued to this account",
                )
            })?;
        if position < self.repo.compacted_through().await? {
            return Err(expired());
        }
        if position > self.repo.log_head().await? {
            return Err(ServiceError::invalid(
                "cursor",
                "points past the end of the log (was the database restored from a backup?); watch again without a cursor",
            ));
        }
        Ok(position)
    }

    async fn send(
        &self,
        watcher: &Watcher,
        out: &mut Outbox,
        event: WatchEvent,
        position: i64,
    ) -> Result<(), Stop> {
        out.last_sent = Instant::now();
        let item = WatchItem {
            event,
            cursor: self.sealer()?.seal(
                Purpose::WatchCursor,
                Some(watcher.caller.account_id),
                position,
            ),
        };
        out.tx
            .send(Box::new(Ok(item)))
            .await
            .map_err(|_| Stop::Gone)
    }

    /// Judges the stream's caller again after a change that concerns it: its credentials
    /// decide as a new call's would, and a watched token must still be visible to it.
    async fn judge_again(&self, watcher: &mut Watcher, change: &LoggedChange) -> Result<(), Stop> {
        // The follower forgot this key before fanning the change out; a stream catching up
        // from the log may be ahead of it, so forget it here too.
        self.replica.cache.forget_now(StaleKey::of(&change.change));
        self.judge_caller(watcher).await
    }

    /// Judges the stream's credentials as a new call's would be judged now.
    async fn judge_caller(&self, watcher: &mut Watcher) -> Result<(), Stop> {
        (watcher.caller, watcher.deadline) = self.authenticate_again(&watcher.credentials).await?;
        if let Some(token) = watcher.token_id {
            self.visible_token(&watcher.caller, token).await?;
        }
        Ok(())
    }

    /// Applies one change to a stream: judges it again if needed, then sends what it may see.
    async fn handle(
        &self,
        watcher: &mut Watcher,
        out: &mut Outbox,
        change: &LoggedChange,
    ) -> Result<(), Stop> {
        if watcher.concerns_caller(change) {
            self.judge_again(watcher, change).await?;
        }
        if let Some(event) = watcher.event(change) {
            self.send(watcher, out, event, change.seq).await?;
        }
        Ok(())
    }

    async fn stream(
        &self,
        watcher: &mut Watcher,
        cursor: Option<i64>,
        out: &mut Outbox,
    ) -> Result<(), Stop> {
        let mut fanout = self.replica.subscribe();
        let mut shutdown = self.replica.shutdown_signal();
        let heartbeat = self.settings.watch_heartbeat;
        // A follower that starts after this stream read the log would skip what was appended
        // in between: neither the log read nor the fanout would carry it. Waiting for the
        // follower to know its starting point first closes that gap (it retries while the
        // database is unreachable; this stream waits with it).
        let mut applied = self.replica.applied();
        tokio::select! {
            _ = applied.wait_for(Option::is_some) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return Err(shutting_down().into()),
            () = out.tx.closed() => return Err(Stop::Gone),
        }
        let mut position = match (cursor, &watcher.topic) {
            (Some(cursor), _) => cursor,
            (None, Topic::Applications { states }) => {
                self.send_snapshot(watcher, states, out).await?
            }
            (None, Topic::TokenEvents) => {
                // Nothing to list: the stream starts at the present, which its first cursor says.
                let head = self.repo.log_head().await.map_err(ServiceError::from)?;
                self.send(watcher, out, WatchEvent::Heartbeat, head).await?;
                head
            }
        };
        if cursor.is_none() {
            // The caller was judged when the stream opened; a change that committed between
            // then and the position read above is behind the stream's start, so judge again.
            self.judge_caller(watcher).await?;
        }
        self.catch_up(watcher, &mut position, out).await?;
        if *shutdown.borrow_and_update() {
            return Err(shutting_down().into());
        }
        loop {
            tokio::select! {
                received = fanout.recv() => match received {
                    Ok(change) if change.seq > position => {
                        position = change.seq;
                        self.handle(watcher, out, &change).await?;
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too far behind for the fanout's buffer: read the log from where we are.
                        fanout = fanout.resubscribe();
                        self.catch_up(watcher, &mut position, out).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Err(shutting_down().into()),
                },
                // `sleep` caps a huge heartbeat (`--watch-heartbeat-secs`); `Instant + it` panics.
                () = tokio::time::sleep(heartbeat.saturating_sub(out.last_sent.elapsed())) => {
                    self.send(watcher, out, WatchEvent::Heartbeat, position).await?;
                }
                () = until(&self.settings.clock, watcher.deadline) => self.judge_caller(watcher).await?,
                // The flag only ever turns on.
                _ = shutdown.changed() => return Err(shutting_down().into()),
                () = out.tx.closed() => return Err(Stop::Gone),
            }
        }
    }

    /// Sends the matching applications now; returns the log position they reflect.
    async fn send_snapshot(
        &self,
        watcher: &Watcher,
        states: &[AppState],
        out: &mut Outbox,
    ) -> Result<i64, Stop> {
        let (head, items) = self
            .repo
            .snapshot(watcher.caller.account_id, states, watcher.token_id)
            .await
            .map_err(ServiceError::from)?;
        for item in items {
            if watcher.caller.can_see_token(
                watcher.caller.account_id,
                item.token_type,
                item.owner_id,
            ) {
                self.send(watcher, out, WatchEvent::Snapshot(item.application), head)
                    .await?;
            }
        }
        self.send(watcher, out, WatchEvent::SnapshotEnd, head)
            .await?;
        Ok(head)
    }

    /// Reads the log after `position` until the end, handling each change of the account.
    async fn catch_up(
        &self,
        watcher: &mut Watcher,
        position: &mut i64,
        out: &mut Outbox,
    ) -> Result<(), Stop> {
        if *position
            < self
                .repo
                .compacted_through()
                .await
                .map_err(ServiceError::from)?
        {
            return Err(expired().into());
        }
        loop {
            let batch = self
                .repo
                .changes_after(Some(watcher.caller.account_id), *position, CATCH_UP_BATCH)
                .await
                .map_err(ServiceError::from)?;
            let full = batch.len() as u64 == CATCH_UP_BATCH;
            for change in batch {
                *position = change.seq;
                self.handle(watcher, out, &change).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }
}

fn shutting_down() -> ServiceError {
    ServiceError::ShuttingDown(
        "the server is shutting down; watch again with your last cursor".into(),
    )
}

/// Sleeps until `deadline` by the service's clock; forever for none. A steppable clock is
/// looked at again every 50 ms, so a test's step ends the wait as the deadline passing would.
async fn until(clock: &Clock, deadline: Option<DateTime<Utc>>) {
    let Some(at) = deadline else {
        return std::future::pending().await;
    };
    loop {
        let wait = (at - clock.exact_now()).to_std().unwrap_or_default();
        if wait.is_zero() {
            return;
        }
        let nap = if clock.is_steppable() {
            wait.min(std::time::Duration::from_millis(50))
        } else {
            wait
        };
        tokio::time::sleep(nap).await;
    }
}
