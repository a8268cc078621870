//! Times and durations as the protos carry them, and waiting out a deadline: for the expiry,
//! rotation and approval tests.
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use prost_types::Timestamp;

pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// Now plus `seconds` (negative: in the past).
pub fn in_seconds(seconds: i64) -> Timestamp {
    timestamp(Utc::now() + TimeDelta::seconds(seconds))
}

pub fn seconds(seconds: i64) -> prost_types::Duration {
    prost_types::Duration { seconds, nanos: 0 }
}

/// Sleeps until a little after `deadline`.
pub async fn sleep_past(deadline: DateTime<Utc>) {
    let wait = (deadline - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(200)).await;
}
