//! The global memory budget: every application message the broker holds (in session queues,
//! in inflight windows, in the retained store) is charged, once, to one atomic counter for as
//! long as it lives, and to the connection that published it.
//!
//! ```text
//!  used ≥ high (90 %) ─▶ overloaded: new CONNECTs refused (v5 0x97, v3 server unavailable),
//!                         publishers holding ≥ 1/16 of `used` stop being read (heaviest first)
//!  used ≥ limit       ─▶ every publisher with a message still held stops being read
//!  used ≤ low (75 %)  ─▶ normal service
//! ```
//!
//! The charge rides on the shared `Arc<Message>` ([`Charge`] is dropped with it), so a message
//! queued for a thousand subscribers is charged once, as it is stored once; no queue has to
//! remember to give bytes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Share of `used` that makes a publisher one of the heaviest while overloaded (1/16).
const HEAVY_SHARE: usize = 16;

/// The broker-wide byte budget (see the module documentation).
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: usize,
    high: usize,
    low: usize,
    used: AtomicUsize,
    overloaded: AtomicBool,
}

impl MemoryBudget {
    /// A budget of `limit` bytes (high watermark 90 %, low 75 %).
    pub(crate) fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        MemoryBudget {
            limit,
            high: limit / 10 * 9,
            low: limit / 4 * 3,
            used: AtomicUsize::new(0),
            overloaded: AtomicBool::new(false),
        }
    }

    /// Charges `bytes` published by the connection whose account is `publisher`.
    pub(crate) fn charge(self: &Arc<Self>, bytes: usize, publisher: &Arc<AtomicUsize>) -> Charge {
        let now = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        publisher.fetch_add(bytes, Ordering::Relaxed);
        if now >= self.high {
            self.overloaded.store(true, Ordering::Relaxed);
        }
        Charge {
            bytes,
            budget: self.clone(),
            publisher: publisher.clone(),
        }
    }

    fn release(&self, bytes: usize) {
        let now = self.used.fetch_sub(bytes, Ordering::Relaxed) - bytes;
        if now <= self.low {
            self.overloaded.store(false, Ordering::Relaxed);
        }
    }

    /// Above the high watermark, not yet back under the low one: refuse new connections.
    pub(crate) fn overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }

    /// Should a publisher that has `caused` bytes still held stop being read now?
    pub(crate) fn holds(&self, caused: usize) -> bool {
        if !self.overloaded() || caused == 0 {
            return false;
        }
        let used = self.used();
        used >= self.limit || caused.saturating_mul(HEAVY_SHARE) >= used
    }

    /// Bytes charged now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The configured budget.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }
}

/// Bytes of one message, charged while it lives.
#[derive(Debug)]
pub(crate) struct Charge {
    bytes: usize,
    budget: Arc<MemoryBudget>,
    publisher: Arc<AtomicUsize>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.publisher.fetch_sub(self.bytes, Ordering::Relaxed);
        self.budget.release(self.bytes);
    }
}

/// The default budget: a quarter of the machine's memory (`MemTotal`), at most 4 GiB; 512 MiB
/// when `/proc/meminfo` cannot be read.
pub(crate) fn default_budget() -> usize {
    const CAP: usize = 4 << 30;
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        })
        .map_or(512 << 20, |kib| (kib.saturating_mul(1024) / 4).min(CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_refuse_hold_heaviest_and_resume() {
        let b = Arc::new(MemoryBudget::new(1000));
        let heavy = Arc::new(AtomicUsize::new(0));
        let light = Arc::new(AtomicUsize::new(0));
        let small = b.charge(40, &light);
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(b.charge(100, &heavy));
        }
        assert_eq!(b.used(), 840);
        assert!(!b.overloaded(), "below the high watermark");
        assert!(!b.holds(800));
        held.push(b.charge(100, &heavy));
        assert!(b.overloaded(), "940 ≥ 900");
        assert!(
            b.holds(heavy.load(Ordering::Relaxed)),
            "the heavy publisher"
        );
        assert!(!b.holds(light.load(Ordering::Relaxed)), "40 < 940 / 16");
        held.push(b.charge(100, &heavy));
        assert!(b.used() >= b.limit());
        assert!(
            b.holds(light.load(Ordering::Relaxed)),
            "over the limit: everyone with bytes held"
        );
        assert!(
            !b.holds(0),
            "a publisher with nothing held may still publish"
        );
        held.truncate(8);
        assert_eq!(b.used(), 840);
        assert!(
            b.overloaded(),
            "hysteresis: under high, still over low (750)"
        );
        held.truncate(7);
        assert_eq!(b.used(), 740);
        assert!(!b.overloaded(), "under the low watermark: normal service");
        assert!(!b.holds(700));
        drop(small);
        drop(held);
        assert_eq!(b.used(), 0);
        assert_eq!(heavy.load(Ordering::Relaxed), 0);
        assert_eq!(light.load(Ordering::Relaxed), 0);
        assert!(!b.overloaded());
    }

    #[test]
    fn default_is_a_quarter_of_memory_capped() {
        let d = default_budget();
        assert!(d > 0 && d <= 4 << 30, "{d}");
    }
}
