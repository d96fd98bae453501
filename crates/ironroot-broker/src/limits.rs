//! Rate limiting: token buckets per connection (PUBLISH rate) and per source IP (new
//! connections, checked before the TLS handshake so a flood costs no crypto); live connections
//! per identity (`max_connections` of a [`crate::LimitOverride`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::RateLimit;

/// A token bucket.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
    /// A refusal was already reported since the last admission.
    reported: bool,
}

/// Decision of the [`SourceLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Admit,
    /// Refused; `report` is true for the first refusal after an admission (one event per burst).
    Refuse {
        report: bool,
    },
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(limit: &RateLimit, now: Instant) -> Self {
        TokenBucket {
            tokens: limit.burst,
            last: now,
            reported: false,
        }
    }

    fn refill(&mut self, limit: &RateLimit, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.per_second).min(limit.burst);
        self.last = now;
    }

    /// Takes one token if available.
    pub(crate) fn try_take(&mut self, limit: &RateLimit, now: Instant) -> bool {
        self.refill(limit, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until one token is available (zero when one is), without taking it.
    pub(crate) fn wait_for_token(&mut self, limit: &RateLimit, now: Instant) -> Duration {
        self.refill(limit, now);
        if self.tokens >= 1.0 || limit.per_second <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / limit.per_second)
        }
    }

    /// Takes one token after [`Self::wait_for_token`] said one is there. Goes into debt only
    /// when several admitted packets race for the last token, bounded by the caller's window.
    pub(crate) fn take(&mut self, limit: &RateLimit, now: Instant) {
        self.refill(limit, now);
        self.tokens -= 1.0;
    }

    pub(crate) fn is_full(&mut self, limit: &RateLimit, now: Instant) -> bool {
        self.refill(limit, now);
        self.tokens >= limit.burst
    }
}

/// New-connection rate per source IP.
#[derive(Debug)]
pub(crate) struct SourceLimiter {
    limit: Option<RateLimit>,
    max_sources: usize,
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

impl SourceLimiter {
    pub(crate) fn new(limit: Option<RateLimit>, max_sources: usize) -> Self {
        SourceLimiter {
            limit,
            max_sources,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// May `ip` open another connection now?
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant) -> Admission {
        let Some(limit) = &self.limit else {
            return Admission::Admit;
        };
        let mut buckets = self.buckets.lock();
        if !buckets.contains_key(&ip) && buckets.len() >= self.max_sources {
            // Table full (a spoofing-free flood from very many addresses): drop idle entries
            // first; if none is idle, refuse rather than grow without bound.
            buckets.retain(|_, b| !b.is_full(limit, now));
            if buckets.len() >= self.max_sources {
                return Admission::Refuse { report: false };
            }
        }
        let b = buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(limit, now));
        if b.try_take(limit, now) {
            b.reported = false;
            Admission::Admit
        } else {
            Admission::Refuse {
                report: !std::mem::replace(&mut b.reported, true),
            }
        }
    }

    /// Forgets addresses whose bucket has refilled (called periodically).
    pub(crate) fn prune(&self, now: Instant) {
        if let Some(limit) = &self.limit {
            self.buckets.lock().retain(|_, b| !b.is_full(limit, now));
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().len()
    }
}

/// Live connections per identity (device id), for `max_connections`. Kept under the registry
/// lock: a CONNECT that takes a session over replaces a connection and does not count again.
#[derive(Debug, Default)]
pub(crate) struct IdentityConnections {
    live: HashMap<Arc<str>, u32>,
}

impl IdentityConnections {
    /// Counts a new (not taking over) connection of `id` if fewer than `max` are live.
    pub(crate) fn try_open(&mut self, id: &Arc<str>, max: u32) -> bool {
        let n = self.live.entry(id.clone()).or_insert(0);
        if *n >= max {
            if *n == 0 {
                self.live.remove(id);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// One connection of `id` ended.
    pub(crate) fn close(&mut self, id: &str) {
        if let Some(n) = self.live.get_mut(id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.live.remove(id);
            }
        }
    }

    /// Live connections of `id`.
    pub(crate) fn live(&self, id: &str) -> u32 {
        self.live.get(id).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let limit = RateLimit::new(10.0, 3.0);
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&limit, t0);
        assert!(b.try_take(&limit, t0));
        assert!(b.try_take(&limit, t0));
        assert!(b.try_take(&limit, t0));
        assert!(!b.try_take(&limit, t0));
        assert!(b.try_take(&limit, t0 + Duration::from_millis(100)));
        assert!(!b.try_take(&limit, t0 + Duration::from_millis(100)));
    }

    #[test]
    fn waiting_bucket_says_when_the_next_token_arrives() {
        let limit = RateLimit::new(10.0, 1.0);
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&limit, t0);
        assert_eq!(b.wait_for_token(&limit, t0), Duration::ZERO);
        assert_eq!(
            b.wait_for_token(&limit, t0),
            Duration::ZERO,
            "asking takes nothing"
        );
        b.take(&limit, t0);
        let w = b.wait_for_token(&limit, t0);
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-9, "{w:?}");
        let half = t0 + Duration::from_millis(50);
        let w = b.wait_for_token(&limit, half);
        assert!((w.as_secs_f64() - 0.05).abs() < 1e-9, "{w:?}");
        assert_eq!(
            b.wait_for_token(&limit, t0 + Duration::from_millis(100)),
            Duration::ZERO
        );
    }

    #[test]
    fn source_limiter_is_per_ip_and_bounded() {
        let lim = SourceLimiter::new(Some(RateLimit::new(1.0, 2.0)), 2);
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        assert_eq!(lim.admit(a, t0), Admission::Admit);
        assert_eq!(lim.admit(a, t0), Admission::Admit);
        assert_eq!(
            lim.admit(a, t0),
            Admission::Refuse { report: true },
            "third connection within the burst is refused"
        );
        assert_eq!(
            lim.admit(a, t0),
            Admission::Refuse { report: false },
            "reported once per burst"
        );
        assert_eq!(
            lim.admit(b, t0),
            Admission::Admit,
            "another address has its own bucket"
        );
        assert_eq!(
            lim.admit(c, t0),
            Admission::Refuse { report: false },
            "table full of busy addresses"
        );
        lim.prune(t0 + Duration::from_secs(5));
        assert_eq!(lim.tracked(), 0);
        assert_eq!(lim.admit(c, t0 + Duration::from_secs(5)), Admission::Admit);
    }

    #[test]
    fn identity_connections_are_counted_up_to_max() {
        let mut c = IdentityConnections::default();
        let id: Arc<str> = "svc-1".into();
        assert!(c.try_open(&id, 2));
        assert!(c.try_open(&id, 2));
        assert!(!c.try_open(&id, 2), "a third connection is refused");
        assert_eq!(c.live("svc-1"), 2);
        c.close("svc-1");
        assert!(c.try_open(&id, 2), "room again after one closed");
        let other: Arc<str> = "dev-1".into();
        assert!(c.try_open(&other, 1), "other identities count on their own");
        assert!(!c.try_open(&other, 1));
        c.close("dev-1");
        c.close("dev-1");
        assert_eq!(c.live("dev-1"), 0, "never below zero, entry gone");
        assert!(!c.live.contains_key("dev-1"));
    }
}
