//! The JSON a webhook receives for each event, and the delivery id that names it on every
//! retry (cursors are sealed afresh each time, so they cannot name an event).
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::grpc::pb;

/// The stream an event came from, as the `stream` field and the event header name it.
pub const TOKEN_EVENTS: &str = "token_events";
pub const APPLICATIONS: &str = "applications";

fn time(t: Option<&prost_types::Timestamp>) -> Value {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)))
        .unwrap_or(Value::Null)
}

/// The enum value's proto name without its prefix: `LEAK_REPORTED`, `STATE_CHANGED`.
fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_owned()
}

/// A delivery id: the SHA-256 of the event's content, without its cursor.
fn delivery_id(event: &Value) -> String {
    let digest = Sha256::digest(event.to_string().as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// One event, ready to post: its delivery id and its body.
pub struct Payload {
    pub delivery: String,
    pub body: Vec<u8>,
}

fn payload(mut event: Value, cursor: &str) -> Payload {
    let delivery = delivery_id(&event);
    if let Some(map) = event.as_object_mut() {
        map.insert("delivery".into(), json!(delivery));
        map.insert("cursor".into(), json!(cursor));
    }
    Payload {
        delivery,
        body: event.to_string().into_bytes(),
    }
}

pub fn token_event(item: &pb::WatchTokenEventsResponse) -> Payload {
    let mut event = json!({
        "stream": TOKEN_EVENTS,
        "type": short(item.r#type().as_str_name(), "TOKEN_EVENT_TYPE_"),
        "token_id": item.token_id,
        "event_time": time(item.event_time.as_ref()),
    });
    if let Some(map) = event.as_object_mut() {
        if let Some(lead) = &item.lead_time {
            map.insert("lead_time_secs".into(), json!(lead.seconds));
        }
        if !item.where_found.is_empty() {
            map.insert("where_found".into(), json!(item.where_found));
        }
        if item.reference_time.is_some() {
            map.insert("reference_time".into(), time(item.reference_time.as_ref()));
        }
    }
    payload(event, &item.cursor)
}

pub fn application_event(item: &pb::WatchApplicationsResponse) -> Payload {
    let app = item.application.clone().unwrap_or_default();
    let event = json!({
        "stream": APPLICATIONS,
        "type": short(item.r#type().as_str_name(), "WATCH_EVENT_TYPE_"),
        "token_id": app.token_id,
        "name": app.name,
        "state": short(app.state().as_str_name(), "APP_STATE_"),
        "event_time": time(item.event_time.as_ref()),
        "reason": item.reason,
    });
    payload(event, &item.cursor)
}
