//! What the watch streams are asked for and what they carry.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{AppName, AppState, Application, Conditions};
use crate::storage::{SeenNow, TokenChange};
/// What a watcher asks for, validated except for the cursor, which only the service can open.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// Resume after this sealed position; `None` starts with a snapshot.
    pub cursor: Option<String>,
    /// Only these states; empty means Pending only.
    pub states: Vec<AppState>,
    pub token_id: Option<Uuid>,
}

/// What a token-events watcher asks for, validated except for the cursor.
#[derive(Debug, Clone)]
pub struct TokenWatchRequest {
    /// Resume after this sealed position; `None` starts now.
    pub cursor: Option<String>,
    pub token_id: Option<Uuid>,
}

/// A token's lifecycle event, as WatchTokenEvents carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEvent {
    pub token_id: Uuid,
    pub what: TokenChange,
    pub at: DateTime<Utc>,
}

/// A change of an application, as an event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppChange {
    pub token_id: Uuid,
    pub name: AppName,
    pub state: AppState,
    pub at: DateTime<Utc>,
    /// An Allow's conditions, as written.
    pub conditions: Option<Conditions>,
    /// Why, as its maker said; for a lapsed approval, that it lapsed.
    pub reason: Option<String>,
    /// Its first and last sight and evidence when the change was read.
    pub seen: Option<SeenNow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Snapshot(Application),
    SnapshotEnd,
    Recorded(AppChange),
    StateChanged(AppChange),
    /// A token's lifecycle event (WatchTokenEvents only).
    Token(TokenEvent),
    Heartbeat,
}

/// One message of the stream and the cursor to resume after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchItem {
    pub event: WatchEvent,
    pub cursor: String,
}
