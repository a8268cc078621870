//! The service's clock, at the precision the database keeps; the span of times and durations
//! it accepts (what `google.protobuf.Timestamp` and `Duration` may hold, so every client can
//! read what it answers); and time arithmetic that refuses instead of panicking.
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Timelike, Utc};

/// 0001-01-01T00:00:00Z: the first second a `google.protobuf.Timestamp` may hold.
pub const EARLIEST_SECOND: i64 = -62_135_596_800;
/// 9999-12-31T23:59:59Z: the last second one may hold.
pub const LATEST_SECOND: i64 = 253_402_300_799;
/// The longest a `google.protobuf.Duration` may be: 10,000 years.
pub const LONGEST_DURATION_SECONDS: i64 = 315_576_000_000;
const MOST_NANOS: i32 = 999_999_999;

/// 9999-12-31T23:59:59.999999Z: the last time the service holds, to the microsecond.
pub fn latest() -> DateTime<Utc> {
    DateTime::from_timestamp(LATEST_SECOND, 999_999_000).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Now by the system's clock, truncated to whole microseconds: the database stores
/// microseconds, so a time taken here and put in a response is exactly what a later read of
/// the same row returns. The service reads its `Clock` instead.
pub fn now() -> DateTime<Utc> {
    truncate_to_micros(Utc::now())
}

/// Where the service reads the time: the system's clock, or the system's clock moved forward
/// by a test (`steppable`, then `advance`), so expiry, overlaps, approval ends, notices and
/// dormancy are exercised by stepping time instead of sleeping. Clones share one offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Microseconds ahead of the system's clock; `None` for the system's clock itself.
    ahead: Option<Arc<AtomicI64>>,
}

/// Two clocks are one when both are the system's or they share one offset.
impl PartialEq for Clock {
    fn eq(&self, other: &Clock) -> bool {
        match (&self.ahead, &other.ahead) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Clock {}

impl Clock {
    /// The system's clock: what production runs on.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that starts at the system's time and that `advance` moves forward.
    pub fn steppable() -> Clock {
        Clock {
            ahead: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    /// Moves a steppable clock forward by `by` (never back: time does not run backwards for
    /// the rules). The system's clock cannot be moved: `false`.
    pub fn advance(&self, by: TimeDelta) -> bool {
        let Some(ahead) = &self.ahead else {
            return false;
        };
        let micros = by.num_microseconds().unwrap_or(i64::MAX).max(0);
        ahead
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |a| {
                Some(a.saturating_add(micros))
            })
            .is_ok()
    }

    /// Whether a test steps this clock (its deadlines must be looked at again, not slept to).
    pub fn is_steppable(&self) -> bool {
        self.ahead.is_some()
    }

    /// Now, to the nanosecond the system gives: for decisions, which store nothing.
    pub fn exact_now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        match &self.ahead {
            None => now,
            Some(ahead) => {
                let ahead = TimeDelta::microseconds(ahead.load(Ordering::Relaxed));
                now.checked_add_signed(ahead).unwrap_or(now)
            }
        }
    }

    /// Now, to the microsecond the database keeps: for everything written or answered.
    pub fn now(&self) -> DateTime<Utc> {
        truncate_to_micros(self.exact_now())
    }
}

/// A time without its sub-microsecond part. (Not `duration_trunc`: it goes through
/// nanoseconds since 1970 in an i64, which ends in 2262, and leaves later times untouched.)
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// A span without its sub-microsecond part.
pub fn truncate_span_to_micros(d: TimeDelta) -> TimeDelta {
    d.num_microseconds().map_or(d, TimeDelta::microseconds)
}

/// Whether `t` lies in 0001-01-01T00:00:00Z…9999-12-31T23:59:59.999999999Z, the times
/// every client can render.
pub fn representable(t: DateTime<Utc>) -> bool {
    (EARLIEST_SECOND..=LATEST_SECOND).contains(&t.timestamp())
}

/// `t + d` when that is a representable time; `None` otherwise (never a panic).
pub fn later_by(t: DateTime<Utc>, d: TimeDelta) -> Option<DateTime<Utc>> {
    t.checked_add_signed(d).filter(|t| representable(*t))
}

/// `t - d` when that is a representable time; `None` otherwise (never a panic).
pub fn earlier_by(t: DateTime<Utc>, d: TimeDelta) -> Option<DateTime<Utc>> {
    t.checked_sub_signed(d).filter(|t| representable(*t))
}

/// The time a timestamp's `seconds` and `nanos` stand for, to the microsecond the database
/// keeps; the error says which rule of `google.protobuf.Timestamp` they break.
pub fn time_of(seconds: i64, nanos: i32) -> Result<DateTime<Utc>, String> {
    if !(0..=MOST_NANOS).contains(&nanos) {
        return Err(format!("nanos must be 0 to 999,999,999, got {nanos}"));
    }
    if !(EARLIEST_SECOND..=LATEST_SECOND).contains(&seconds) {
        return Err(
            "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z".into(),
        );
    }
    // Both parts are in range, so chrono holds the time (its span is far wider).
    DateTime::from_timestamp(seconds, nanos.unsigned_abs())
        .map(truncate_to_micros)
        .ok_or_else(|| "is not a valid time".into())
}

/// The span a non-negative duration's `seconds` and `nanos` stand for, exactly; the error
/// says which rule (of `google.protobuf.Duration`, or non-negative) they break.
pub fn span_of(seconds: i64, nanos: i32) -> Result<TimeDelta, String> {
    if seconds < 0 || nanos < 0 {
        return Err("must not be negative".into());
    }
    if nanos > MOST_NANOS {
        return Err(format!("nanos must be 0 to 999,999,999, got {nanos}"));
    }
    if seconds > LONGEST_DURATION_SECONDS {
        return Err(
            "must be at most 315,576,000,000 seconds (10,000 years, the most a google.protobuf.Duration holds)"
                .into(),
        );
    }
    TimeDelta::new(seconds, nanos.unsigned_abs()).ok_or_else(|| "is too long".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steppable_clock_moves_forward_for_every_clone_and_the_system_clock_does_not() {
        let clock = Clock::steppable();
        let shared = clock.clone();
        let before = shared.now();
        assert!(clock.advance(TimeDelta::hours(2)));
        assert!(shared.now() >= before + TimeDelta::hours(2));
        assert!(
            !clock.advance(TimeDelta::hours(-5)) || shared.now() >= before + TimeDelta::hours(2)
        );
        let system = Clock::system();
        assert!(!system.advance(TimeDelta::hours(1)));
        assert!(system.now() < before + TimeDelta::hours(1));
    }

    #[test]
    fn now_has_no_nanoseconds() {
        assert_eq!(now().timestamp_subsec_nanos() % 1000, 0);
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(truncate_to_micros(t).timestamp_subsec_nanos(), 123_456_000);
        let far = DateTime::from_timestamp(LATEST_SECOND, 123_456_789).unwrap();
        assert_eq!(
            truncate_to_micros(far).timestamp_subsec_nanos(),
            123_456_000
        );
        assert_eq!(
            truncate_span_to_micros(TimeDelta::new(1, 1_500).unwrap()),
            TimeDelta::new(1, 1_000).unwrap()
        );
    }

    #[test]
    fn times_are_those_a_timestamp_holds() {
        let last = time_of(LATEST_SECOND, 999_999_999).unwrap();
        assert_eq!(last.to_rfc3339(), "9999-12-31T23:59:59.999999+00:00");
        assert_eq!(
            time_of(EARLIEST_SECOND, 0).unwrap().to_rfc3339(),
            "0001-01-01T00:00:00+00:00"
        );
        assert!(time_of(LATEST_SECOND + 1, 0).unwrap_err().contains("9999"));
        assert!(
            time_of(EARLIEST_SECOND - 1, 0)
                .unwrap_err()
                .contains("0001")
        );
        assert!(time_of(i64::MAX, 0).is_err() && time_of(i64::MIN, 0).is_err());
        // A leap second is how chrono reads nanos of 10^9: not a Timestamp's.
        assert!(time_of(0, 1_000_000_000).unwrap_err().contains("nanos"));
        assert!(time_of(0, -1).unwrap_err().contains("nanos"));
    }

    #[test]
    fn spans_are_those_a_duration_holds() {
        assert_eq!(
            span_of(86_400, 500_000_000),
            Ok(TimeDelta::milliseconds(86_400_500))
        );
        assert_eq!(
            span_of(LONGEST_DURATION_SECONDS, 0),
            Ok(TimeDelta::seconds(LONGEST_DURATION_SECONDS))
        );
        assert!(span_of(LONGEST_DURATION_SECONDS + 1, 0).is_err());
        assert!(span_of(9_000_000_000_000, 0).is_err());
        assert!(span_of(i64::MAX, i32::MAX).is_err());
        assert!(span_of(-1, 0).is_err() && span_of(0, -1).is_err());
        assert!(span_of(0, 1_000_000_000).is_err());
    }

    #[test]
    fn arithmetic_past_the_span_is_none_not_a_panic() {
        let t = time_of(1_800_000_000, 0).unwrap();
        assert_eq!(
            later_by(t, TimeDelta::days(1)),
            Some(t + TimeDelta::days(1))
        );
        assert_eq!(later_by(t, TimeDelta::MAX), None);
        assert_eq!(later_by(t, TimeDelta::days(3_000_000)), None);
        assert_eq!(earlier_by(t, TimeDelta::MAX), None);
        assert_eq!(earlier_by(t, TimeDelta::days(1_000_000)), None);
        let last = time_of(LATEST_SECOND, 999_999_000).unwrap();
        assert_eq!(last, latest());
        assert_eq!(later_by(last, TimeDelta::microseconds(1)), None);
        assert_eq!(later_by(last, TimeDelta::zero()), Some(last));
    }
}
