//! The watch streams' messages: application events and token lifecycle events.
use chrono::Utc;

use super::{pb, timestamp};
use crate::domain::NoticeKind;
use crate::service::{TokenEvent, WatchEvent, WatchItem};
use crate::storage::TokenChange;

impl From<WatchItem> for pb::WatchApplicationsResponse {
    fn from(item: WatchItem) -> Self {
        let reason = match &item.event {
            WatchEvent::Recorded(c) | WatchEvent::StateChanged(c) => c.reason.clone(),
            _ => None,
        };
        let (kind, application, event_time) = match item.event {
            WatchEvent::Snapshot(app) => {
                let at = timestamp(app.updated_at);
                (pb::WatchEventType::Snapshot, Some(app.into()), Some(at))
            }
            WatchEvent::SnapshotEnd => (pb::WatchEventType::SnapshotEnd, None, None),
            WatchEvent::Recorded(c) => {
                let at = timestamp(c.at);
                (pb::WatchEventType::Recorded, Some((&c).into()), Some(at))
            }
            WatchEvent::StateChanged(c) => {
                let at = timestamp(c.at);
                (
                    pb::WatchEventType::StateChanged,
                    Some((&c).into()),
                    Some(at),
                )
            }
            // A token event never travels on this stream; were one to, it says nothing.
            WatchEvent::Heartbeat | WatchEvent::Token(_) => (
                pb::WatchEventType::Heartbeat,
                None,
                Some(timestamp(Utc::now())),
            ),
        };
        pb::WatchApplicationsResponse {
            r#type: kind.into(),
            application,
            cursor: item.cursor,
            event_time,
            reason: reason.unwrap_or_default(),
        }
    }
}

impl From<&TokenEvent> for pb::WatchTokenEventsResponse {
    fn from(event: &TokenEvent) -> Self {
        let mut out = pb::WatchTokenEventsResponse {
            token_id: event.token_id.to_string(),
            event_time: Some(timestamp(event.at)),
            ..Default::default()
        };
        let kind = match &event.what {
            TokenChange::Created => pb::TokenEventType::Created,
            // Plain updates are not lifecycle events and are never sent.
            TokenChange::Updated => pb::TokenEventType::Unspecified,
            TokenChange::Retired => pb::TokenEventType::Retired,
            TokenChange::Promoted => pb::TokenEventType::Promoted,
            TokenChange::Rotated => pb::TokenEventType::Rotated,
            TokenChange::SecretReused => pb::TokenEventType::RotatedOutSecretReused,
            TokenChange::LeakReported { where_found } => {
                out.where_found = where_found.clone().unwrap_or_default();
                pb::TokenEventType::LeakReported
            }
            TokenChange::Notice(notice) => {
                out.reference_time = Some(timestamp(notice.about));
                match notice.kind {
                    NoticeKind::Expiring => {
                        out.lead_time = prost_types::Duration::try_from(
                            notice.lead.to_std().unwrap_or_default(),
                        )
                        .ok();
                        pb::TokenEventType::Expiring
                    }
                    NoticeKind::Expired => pb::TokenEventType::Expired,
                    NoticeKind::Dormant => pb::TokenEventType::Dormant,
                }
            }
        };
        out.r#type = kind.into();
        out
    }
}

impl From<WatchItem> for pb::WatchTokenEventsResponse {
    fn from(item: WatchItem) -> Self {
        let mut out = match &item.event {
            WatchEvent::Token(event) => event.into(),
            // Application events never travel on this stream; were one to, it says nothing.
            _ => pb::WatchTokenEventsResponse {
                r#type: pb::TokenEventType::Heartbeat.into(),
                event_time: Some(timestamp(Utc::now())),
                ..Default::default()
            },
        };
        out.cursor = item.cursor;
        out
    }
}
