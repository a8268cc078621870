//! WatchApplications as the watch, approval, evidence and revocation tests read it: a stream
//! of every state, live past its snapshot, and its next message past the heartbeats.
use api_tokens::grpc::pb;
use api_tokens::grpc::pb::token_service_client::TokenServiceClient;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use super::As;
use super::heartbeats::next_past_heartbeats;

pub type Events = Streaming<pb::WatchApplicationsResponse>;

pub const ALL_STATES: [pb::AppState; 3] = [
    pb::AppState::Pending,
    pb::AppState::Allow,
    pb::AppState::Deny,
];

/// `ALL_STATES` as the request's repeated field.
pub fn all_states() -> Vec<i32> {
    ALL_STATES.iter().map(|s| *s as i32).collect()
}

/// A stream as `who` asks for it with `request`.
pub async fn watch(
    tokens: &TokenServiceClient<Channel>,
    who: &As,
    request: pb::WatchApplicationsRequest,
) -> Events {
    tokens
        .clone()
        .watch_applications(who.req(request))
        .await
        .expect("watch starts")
        .into_inner()
}

/// A stream of every state, read past its snapshot: what comes next is live.
pub async fn watch_live(tokens: &TokenServiceClient<Channel>, who: &As) -> Events {
    let request = pb::WatchApplicationsRequest {
        states: all_states(),
        ..Default::default()
    };
    let mut events = watch(tokens, who, request).await;
    loop {
        if next(&mut events).await.r#type() == pb::WatchEventType::SnapshotEnd {
            return events;
        }
    }
}

/// The next message that is not a heartbeat, or the status the stream ended with.
pub async fn next_item(events: &mut Events) -> Result<pb::WatchApplicationsResponse, Status> {
    next_past_heartbeats(events, |item| {
        item.r#type() == pb::WatchEventType::Heartbeat
    })
    .await
}

/// The next message that is not a heartbeat, on a stream that must stay open.
pub async fn next(events: &mut Events) -> pb::WatchApplicationsResponse {
    next_item(events).await.expect("no error")
}
