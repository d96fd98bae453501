//! Rate limits: token buckets per source address and per device id.
//!
//! Buckets live in a sharded in-memory map; idle buckets are dropped by [`RateLimiter::sweep`]
//! (called periodically), so a flood of spoofed-looking keys cannot grow memory without bound
//! beyond one sweep interval, and the map is capped (`max_keys`): when full, unknown keys are
//! refused rather than tracked.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token-bucket limiter keyed by `K`.
#[derive(Debug)]
pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    max_keys: usize,
    shards: Vec<Mutex<HashMap<K, Bucket>>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `rate` tokens per second, at most `burst` saved up.
    pub fn new(rate: f64, burst: f64, max_keys: usize) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            max_keys,
            shards: (0..16).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &K) -> &Mutex<HashMap<K, Bucket>> {
        use std::hash::{BuildHasher, RandomState};
        thread_local!(static STATE: RandomState = RandomState::new());
        let h = STATE.with(|s| s.hash_one(key));
        &self.shards[(h as usize) % self.shards.len()]
    }

    /// Takes one token for `key`; `false` when the bucket is empty.
    pub fn allow(&self, key: &K, now: Instant) -> bool {
        let mut map = self
            .shard(key)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let per_shard = self.max_keys / self.shards.len() + 1;
        if !map.contains_key(key) && map.len() >= per_shard {
            return false;
        }
        let b = map.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops buckets that are full again (idle long enough to have refilled).
    pub fn sweep(&self, now: Instant) {
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, b| {
                let refill = now.saturating_duration_since(b.last).as_secs_f64() * self.rate;
                b.tokens + refill < self.burst
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refuses_after_burst_and_refills() {
        let l = RateLimiter::new(1.0, 3.0, 100);
        let t = Instant::now();
        assert!(l.allow(&1u32, t));
        assert!(l.allow(&1u32, t));
        assert!(l.allow(&1u32, t));
        assert!(!l.allow(&1u32, t));
        assert!(l.allow(&2u32, t), "other keys are independent");
        assert!(l.allow(&1u32, t + Duration::from_millis(1100)));
        assert!(!l.allow(&1u32, t + Duration::from_millis(1100)));
    }

    #[test]
    fn key_cap_refuses_new_keys() {
        let l = RateLimiter::new(1.0, 1.0, 0);
        let t = Instant::now();
        let admitted = (0..100u32).filter(|k| l.allow(k, t)).count();
        assert!(admitted <= 16, "{admitted}");
    }
}
