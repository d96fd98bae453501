//! The shared heart of the broker: sessions, the subscription trie, retained messages,
//! counters, and routing. Worker threads call into it; so does the control API.
//!
//! Lock order (never taken in the opposite direction): registry → subscriptions → a share
//! group's members → one session's mutex. The retained store's lock is never held with another.
//!
//! Routing and subscriptions are in `route`, shared subscriptions in `shared`.

mod route;
pub(crate) mod shared;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::authz::PolicyProvider;
use crate::budget::MemoryBudget;
use crate::config::Limits;
use crate::counters::{BrokerStats, CounterMap};
use crate::events::Events;
use crate::limits::SourceLimiter;
use crate::message::{Delivery, Message};
use crate::metrics::{self, Metrics};
use crate::retain::TopicTree;
use crate::session::{SessionState, SubOptions};
use ironroot_pki::Serial;

/// A QoS 1/2 delivery waiting for room in a connected subscriber's queue.
pub(crate) struct Blocked {
    pub(crate) session: Arc<SessionState>,
    pub(crate) delivery: Delivery,
    /// The share group it was picked from: if the member goes away while the publisher waits,
    /// another member is picked.
    pub(crate) group: Option<Arc<shared::SharedGroup>>,
}

/// A subscription as stored in the trie.
#[derive(Debug, Clone)]
pub(crate) struct SubEntry {
    pub(crate) session: Arc<SessionState>,
    pub(crate) opts: SubOptions,
}

/// Sessions by client id, plus the sets that decide whether a connect may proceed.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) sessions: HashMap<Arc<str>, Arc<SessionState>>,
    /// Client ids of sessions without a connection (expiry and delayed wills to watch).
    pub(crate) detached: HashSet<Arc<str>>,
    pub(crate) quarantined: HashSet<Arc<str>>,
    pub(crate) revoked: HashSet<Serial>,
    /// Live connections per identity (`max_connections`).
    pub(crate) connections: crate::limits::IdentityConnections,
}

#[derive(Debug, Default)]
pub(crate) struct RetainedStore {
    pub(crate) tree: TopicTree<Arc<Message>>,
    pub(crate) bytes: usize,
}

/// Why a retained message was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetainError {
    QuotaExceeded,
}

/// Why a subscription was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscribeError {
    QuotaExceeded,
    SessionGone,
    /// A malformed `$share/` filter (callers validate first).
    Invalid,
}

#[derive(Debug, Default)]
pub(crate) struct HubStats {
    pub(crate) connected: AtomicUsize,
    pub(crate) routed: AtomicU64,
    pub(crate) deliveries: AtomicU64,
    pub(crate) rate_limited_connections: AtomicU64,
    pub(crate) tls_failures: AtomicU64,
    pub(crate) backpressure_waits: AtomicU64,
    pub(crate) backpressure_timeouts: AtomicU64,
    /// Messages published as the broker ([`crate::SystemPublisher`]), and those refused.
    pub(crate) system_published: AtomicU64,
    pub(crate) system_refused: AtomicU64,
}

/// Shared broker state.
#[derive(Debug)]
pub(crate) struct Hub {
    pub(crate) limits: Limits,
    pub(crate) provider: Arc<dyn PolicyProvider>,
    pub(crate) events: Events,
    pub(crate) registry: Mutex<Registry>,
    pub(crate) subs: RwLock<shared::Subscriptions>,
    pub(crate) retained: RwLock<RetainedStore>,
    pub(crate) counters: CounterMap,
    pub(crate) sources: SourceLimiter,
    pub(crate) stats: HubStats,
    /// Counters for the Prometheus endpoint.
    pub(crate) metrics: Metrics,
    /// Bytes of the messages held, against `limits.memory_budget`.
    pub(crate) budget: Arc<MemoryBudget>,
    next_id: AtomicU64,
}

impl Hub {
    pub(crate) fn new(limits: Limits, provider: Arc<dyn PolicyProvider>, events: Events) -> Self {
        Hub {
            counters: CounterMap::new(limits.max_tracked_devices),
            sources: SourceLimiter::new(limits.connection_rate_per_ip, 100_000),
            budget: Arc::new(MemoryBudget::new(limits.memory_budget)),
            limits,
            provider,
            events,
            registry: Mutex::new(Registry::default()),
            subs: RwLock::new(shared::Subscriptions::default()),
            retained: RwLock::new(RetainedStore::default()),
            stats: HubStats::default(),
            metrics: Metrics::default(),
            next_id: AtomicU64::new(1),
        }
    }

    /// Whether `id` has a live connection: a device id (under any of its client ids) or a
    /// client id.
    pub(crate) fn is_connected(&self, id: &str) -> bool {
        let reg = self.registry.lock();
        reg.connections.live(id) > 0
            || reg
                .sessions
                .get(id)
                .is_some_and(|s| s.lock().attached.is_some())
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Stores (or, with an empty payload, deletes) the retained message of a topic.
    pub(crate) fn store_retained(&self, msg: &Arc<Message>) -> Result<(), RetainError> {
        let mut store = self.retained.write();
        if msg.payload.is_empty() {
            if let Some(old) = store.tree.remove(&msg.topic) {
                store.bytes -= old.payload.len();
            }
            return Ok(());
        }
        let old_len = store.tree.get(&msg.topic).map(|m| m.payload.len());
        let new_count = store.tree.len() + usize::from(old_len.is_none());
        let new_bytes = store.bytes - old_len.unwrap_or(0) + msg.payload.len();
        if new_count > self.limits.max_retained_messages
            || new_bytes > self.limits.max_retained_bytes
        {
            return Err(RetainError::QuotaExceeded);
        }
        store.tree.insert(&msg.topic, msg.clone());
        store.bytes = new_bytes;
        Ok(())
    }

    /// Appends the Prometheus text exposition of the broker's metrics to `out`.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        let sessions: Vec<Arc<SessionState>> =
            self.registry.lock().sessions.values().cloned().collect();
        let queued_messages = sessions.iter().map(|s| s.lock().queued_total()).sum();
        let (retained_messages, retained_bytes) = {
            let r = self.retained.read();
            (r.tree.len(), r.bytes)
        };
        let stats = self.stats();
        let gauges = metrics::Gauges {
            connected: stats.connected,
            sessions: sessions.len(),
            subscriptions: stats.subscriptions,
            queued_messages,
            retained_messages,
            retained_bytes,
            connections_rate_limited: stats.connections_rate_limited,
            tls_handshake_failures: stats.tls_handshake_failures,
            backpressure_waits: stats.backpressure_waits,
            events_dropped: stats.events_dropped,
            publish_rate: self.limits.publish_rate,
            connection_rate_per_ip: self.limits.connection_rate_per_ip,
            max_queued_messages: self.limits.max_queued_messages,
            memory_budget: self.budget.limit(),
            memory_used: self.budget.used(),
            memory_overloaded: self.budget.overloaded(),
            overrides: self
                .limits
                .overrides
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    (
                        metrics::override_label(o, i),
                        o.publish_rate,
                        o.max_connections,
                    )
                })
                .collect(),
        };
        self.metrics.render(&gauges, out);
    }

    pub(crate) fn stats(&self) -> BrokerStats {
        let sessions = self.registry.lock().sessions.len();
        BrokerStats {
            connected: self.stats.connected.load(Ordering::Relaxed),
            sessions,
            subscriptions: self.subs.read().len(),
            retained_messages: self.retained.read().tree.len(),
            messages_routed: self.stats.routed.load(Ordering::Relaxed),
            deliveries: self.stats.deliveries.load(Ordering::Relaxed),
            events_dropped: self.events.dropped(),
            connections_rate_limited: self.stats.rate_limited_connections.load(Ordering::Relaxed),
            tls_handshake_failures: self.stats.tls_failures.load(Ordering::Relaxed),
            backpressure_waits: self.stats.backpressure_waits.load(Ordering::Relaxed),
            backpressure_timeouts: self.stats.backpressure_timeouts.load(Ordering::Relaxed),
            system_published: self.stats.system_published.load(Ordering::Relaxed),
            system_refused: self.stats.system_refused.load(Ordering::Relaxed),
        }
    }
}
