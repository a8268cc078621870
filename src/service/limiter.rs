//! A small keyed rate limiter (a token bucket per client address), for calls anyone may make
//! without credentials. Memory is bounded: past `MAX_KEYS` addresses, full buckets (clients
//! that have been quiet long enough to be owed nothing) are dropped first, then the oldest.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses remembered at once.
const MAX_KEYS: usize = 10_000;

/// How many calls a client may make: a burst of `burst`, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub(crate) struct KeyedLimiter {
    limit: RateLimit,
    /// `None` stands for calls whose address is unknown: they share one bucket.
    buckets: Mutex<HashMap<Option<IpAddr>, Bucket>>,
}

impl KeyedLimiter {
    pub fn new(limit: RateLimit) -> Self {
        KeyedLimiter {
            limit,
            buckets: Mutex::default(),
        }
    }

    fn per_second(&self) -> f64 {
        f64::from(self.limit.per_minute.max(1)) / 60.0
    }

    /// Takes one call from `key`'s bucket; `Err(wait)` when it is empty: the next call is
    /// accepted after `wait`.
    pub fn take(&self, key: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.limit.burst.max(1));
        let rate = self.per_second();
        // A poisoned lock only means another call panicked mid-update: the counts stay usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(&key) {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
            if buckets.len() >= MAX_KEYS
                && let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k)
            {
                buckets.remove(&oldest);
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refilled = now.saturating_duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refilled).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_burst_then_refusals_until_the_bucket_refills() {
        let limiter = KeyedLimiter::new(RateLimit {
            per_minute: 60,
            burst: 3,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(ip("10.0.0.1"), t0).is_ok());
        }
        let wait = limiter.take(ip("10.0.0.1"), t0).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(
            limiter.take(ip("10.0.0.2"), t0).is_ok(),
            "another client has its own bucket"
        );
        assert!(limiter.take(ip("10.0.0.1"), t0 + wait).is_ok());
    }

    #[test]
    fn memory_stays_bounded() {
        let limiter = KeyedLimiter::new(RateLimit {
            per_minute: 1,
            burst: 1,
        });
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS as u32 + 100) {
            let addr = IpAddr::from(i.to_be_bytes());
            let _ = limiter.take(Some(addr), t0);
        }
        assert!(limiter.buckets.lock().unwrap().len() <= MAX_KEYS);
    }
}
