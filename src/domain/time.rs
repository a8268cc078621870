//! The service's clock, at the precision the database keeps.
use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// Now, truncated to whole microseconds: the database stores microseconds, so a time taken
/// here and put in a response is exactly what a later read of the same row returns.
pub fn now() -> DateTime<Utc> {
    truncate_to_micros(Utc::now())
}

/// A time without its sub-microsecond part.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_has_no_nanoseconds() {
        assert_eq!(now().timestamp_subsec_nanos() % 1000, 0);
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(truncate_to_micros(t).timestamp_subsec_nanos(), 123_456_000);
    }
}
