//! WatchTokenEvents as the lifecycle, leak and notice tests read it: a stream from now or
//! from a cursor, and its next event past the heartbeats (of either watch stream).
use std::time::Duration;

use api_tokens::grpc::pb;
use tokio_stream::StreamExt;
use tonic::{Status, Streaming};

use super::{As, TestApp};

pub type Events = Streaming<pb::WatchTokenEventsResponse>;

/// A stream resumed after `cursor` ("" for the present).
pub async fn watch_from(app: &TestApp, who: &As, cursor: &str) -> Events {
    app.tokens
        .clone()
        .watch_token_events(who.req(pb::WatchTokenEventsRequest {
            cursor: cursor.into(),
            ..Default::default()
        }))
        .await
        .expect("watch starts")
        .into_inner()
}

/// A stream from now: its first message is a heartbeat standing for the present.
pub async fn watch(app: &TestApp, who: &As) -> Events {
    let mut events = watch_from(app, who, "").await;
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("the first message within 10 s")
        .expect("open")
        .expect("no error");
    assert_eq!(first.r#type(), pb::TokenEventType::Heartbeat);
    assert!(!first.cursor.is_empty(), "the present has a cursor");
    events
}

/// A message of a watch stream, which sends heartbeats while nothing happens.
pub trait WatchItem {
    fn is_heartbeat(&self) -> bool;
}

impl WatchItem for pb::WatchTokenEventsResponse {
    fn is_heartbeat(&self) -> bool {
        self.r#type() == pb::TokenEventType::Heartbeat
    }
}

impl WatchItem for pb::WatchApplicationsResponse {
    fn is_heartbeat(&self) -> bool {
        self.r#type() == pb::WatchEventType::Heartbeat
    }
}

/// The next message that is not a heartbeat, or the status the stream ended with.
pub async fn next_item<T: WatchItem>(events: &mut Streaming<T>) -> Result<T, Status> {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("a message within 10 s")
            .expect("the stream ends with a status, not silently");
        match item {
            Ok(item) if item.is_heartbeat() => continue,
            other => return other,
        }
    }
}
