//! WatchTokenEvents as the lifecycle, leak and notice tests read it: a stream from now or
//! from a cursor, and its next event past the heartbeats.
use std::time::Duration;

use api_tokens::grpc::pb;
use tokio_stream::StreamExt;
use tonic::{Status, Streaming};

use super::heartbeats::next_past_heartbeats;
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

/// The next message that is not a heartbeat, or the status the stream ended with.
pub async fn next_item(events: &mut Events) -> Result<pb::WatchTokenEventsResponse, Status> {
    next_past_heartbeats(events, |item| {
        item.r#type() == pb::TokenEventType::Heartbeat
    })
    .await
}
