//! WatchApplications: a snapshot of the matching applications, then every later change,
//! each with a cursor to resume after. Live events come from the replica's event hub;
//! a stream that starts from a cursor or falls behind reads the log instead.
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use crate::domain::{AppName, AppState, Application, Caller, TokenType};
use crate::storage::StoredEvent;

use super::{Service, ServiceError};

/// Messages buffered per stream; a consumer slower than this makes its stream wait (reading
/// the log later), never the writers or other streams.
const STREAM_BUFFER: usize = 64;
const CATCH_UP_BATCH: u64 = 256;

/// What a watcher asks for, validated.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// Resume after this position; `None` starts with a snapshot.
    pub cursor: Option<i64>,
    /// Only these states; empty means Pending only.
    pub states: Vec<AppState>,
    pub token_id: Option<Uuid>,
}

/// A change of an application, as an event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppChange {
    pub token_id: Uuid,
    pub name: AppName,
    pub state: AppState,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Snapshot(Application),
    SnapshotEnd,
    Recorded(AppChange),
    StateChanged(AppChange),
    Heartbeat,
}

/// One message of the stream and the cursor to resume after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchItem {
    pub event: WatchEvent,
    pub cursor: String,
}

pub fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("c1:{seq}"))
}

pub fn decode_cursor(cursor: &str) -> Result<i64, String> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("c1:")?.parse().ok())
        .filter(|seq: &i64| *seq >= 0)
        .ok_or_else(|| "is not a cursor this service issued".to_owned())
}

fn expired(cursor: i64, horizon: i64) -> ServiceError {
    ServiceError::OutOfRange {
        reason: "CURSOR_EXPIRED",
        message: format!(
            "the cursor points at position {cursor}, but events up to {horizon} were compacted away; \
             watch again without a cursor to re-list"
        ),
    }
}

/// What one stream filters by.
struct Filter {
    caller: Caller,
    states: Vec<AppState>,
    token_id: Option<Uuid>,
}

impl Filter {
    fn visible(&self, account_id: Uuid, token_type: TokenType, owner_id: Option<Uuid>) -> bool {
        self.caller.can_see_token(account_id, token_type, owner_id)
    }

    fn matches(&self, event: &StoredEvent) -> bool {
        self.states.contains(&event.state)
            && self.token_id.is_none_or(|t| t == event.token_id)
            && self.visible(event.account_id, event.token_type, event.owner_id)
    }
}

/// A queued message, boxed: the channel's blocks keep their slots after a burst (a large
/// snapshot), so slots must be small for thousands of idle streams to stay cheap.
type Queued = Box<Result<WatchItem, ServiceError>>;

/// The client went away: the stream ends quietly.
struct Gone;

struct Stream {
    tx: mpsc::Sender<Queued>,
    last_sent: Instant,
}

impl Stream {
    async fn send(&mut self, event: WatchEvent, cursor: i64) -> Result<(), Gone> {
        self.last_sent = Instant::now();
        let item = WatchItem {
            event,
            cursor: encode_cursor(cursor),
        };
        self.tx.send(Box::new(Ok(item))).await.map_err(|_| Gone)
    }
}

impl Service {
    pub async fn watch_applications(
        &self,
        caller: Caller,
        request: WatchRequest,
    ) -> Result<
        impl tokio_stream::Stream<Item = Result<WatchItem, ServiceError>> + Send + use<>,
        ServiceError,
    > {
        if let Some(token) = request.token_id {
            self.visible_token(&caller, token).await?;
        }
        if let Some(cursor) = request.cursor {
            let horizon = self.repo.compacted_through().await?;
            if cursor < horizon {
                return Err(expired(cursor, horizon));
            }
        }
        let states = if request.states.is_empty() {
            vec![AppState::Pending]
        } else {
            request.states
        };
        let filter = Filter {
            caller,
            states,
            token_id: request.token_id,
        };
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let service = self.clone();
        tokio::spawn(async move {
            // Counted open while this task feeds the stream (it ends when the client goes).
            let _open = service.metrics().watch_stream_opened();
            let errors = tx.clone();
            let mut stream = Stream {
                tx,
                last_sent: Instant::now(),
            };
            if let Ok(Err(e)) = service.stream(&filter, request.cursor, &mut stream).await {
                let _ = errors.send(Box::new(Err(e))).await;
            }
        });
        Ok(ReceiverStream::new(rx).map(|queued| *queued))
    }

    async fn stream(
        &self,
        filter: &Filter,
        cursor: Option<i64>,
        out: &mut Stream,
    ) -> Result<Result<(), ServiceError>, Gone> {
        let mut fanout = self.hub.fanout.subscribe();
        let mut shutdown = self.hub.shutdown.subscribe();
        let heartbeat = self.settings.watch_heartbeat;
        // A hub that starts after this stream read the log would skip what was appended in
        // between: neither the log read nor the fanout would carry it. Waiting for the hub to
        // know its starting point first closes that gap (the hub retries while the database
        // is unreachable; this stream waits with it).
        let mut hub_head = self.hub.head.subscribe();
        tokio::select! {
            _ = hub_head.wait_for(Option::is_some) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return Ok(Err(shutting_down())),
            () = out.tx.closed() => return Err(Gone),
        }
        let mut cursor = match cursor {
            Some(cursor) => cursor,
            None => match self.send_snapshot(filter, out).await? {
                Ok(head) => head,
                Err(e) => return Ok(Err(e)),
            },
        };
        if let Err(e) = self.catch_up(filter, &mut cursor, out).await? {
            return Ok(Err(e));
        }
        if *shutdown.borrow_and_update() {
            return Ok(Err(shutting_down()));
        }
        loop {
            tokio::select! {
                received = fanout.recv() => match received {
                    Ok(event) if event.seq > cursor => {
                        cursor = event.seq;
                        if filter.matches(&event) {
                            out.send(event_from(&event), cursor).await?;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too far behind for the hub's buffer: read the log from where we are.
                        fanout = fanout.resubscribe();
                        if let Err(e) = self.catch_up(filter, &mut cursor, out).await? {
                            return Ok(Err(e));
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(Err(shutting_down())),
                },
                () = tokio::time::sleep_until(out.last_sent + heartbeat) => {
                    out.send(WatchEvent::Heartbeat, cursor).await?;
                }
                // The flag only ever turns on.
                _ = shutdown.changed() => return Ok(Err(shutting_down())),
                () = out.tx.closed() => return Err(Gone),
            }
        }
    }

    /// Sends the matching applications now; returns the log position they reflect.
    async fn send_snapshot(
        &self,
        filter: &Filter,
        out: &mut Stream,
    ) -> Result<Result<i64, ServiceError>, Gone> {
        let (head, items) = match self
            .repo
            .snapshot(filter.caller.account_id, &filter.states, filter.token_id)
            .await
        {
            Ok(snapshot) => snapshot,
            Err(e) => return Ok(Err(e.into())),
        };
        for item in items {
            if filter.visible(filter.caller.account_id, item.token_type, item.owner_id) {
                out.send(WatchEvent::Snapshot(item.application), head)
                    .await?;
            }
        }
        out.send(WatchEvent::SnapshotEnd, head).await?;
        Ok(Ok(head))
    }

    /// Reads the log after `cursor` until the end, sending what matches.
    async fn catch_up(
        &self,
        filter: &Filter,
        cursor: &mut i64,
        out: &mut Stream,
    ) -> Result<Result<(), ServiceError>, Gone> {
        let horizon = match self.repo.compacted_through().await {
            Ok(horizon) => horizon,
            Err(e) => return Ok(Err(e.into())),
        };
        if *cursor < horizon {
            return Ok(Err(expired(*cursor, horizon)));
        }
        loop {
            let batch = match self
                .repo
                .events_after(Some(filter.caller.account_id), *cursor, CATCH_UP_BATCH)
                .await
            {
                Ok(batch) => batch,
                Err(e) => return Ok(Err(e.into())),
            };
            let full = batch.len() as u64 == CATCH_UP_BATCH;
            for event in batch {
                *cursor = event.seq;
                if filter.matches(&event) {
                    out.send(event_from(&event), *cursor).await?;
                }
            }
            if !full {
                return Ok(Ok(()));
            }
        }
    }
}

fn shutting_down() -> ServiceError {
    ServiceError::ShuttingDown(
        "the server is shutting down; watch again with your last cursor".into(),
    )
}

fn event_from(event: &StoredEvent) -> WatchEvent {
    let change = AppChange {
        token_id: event.token_id,
        name: event.app_name.clone(),
        state: event.state,
        at: event.at,
    };
    if event.recorded {
        WatchEvent::Recorded(change)
    } else {
        WatchEvent::StateChanged(change)
    }
}

/// How often an idle stream hears a heartbeat, by default.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Ok(42));
        assert!(decode_cursor("nope").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("c1:-5")).is_err());
    }
}
