//! The shared heart of the broker: sessions, the subscription trie, retained messages,
//! counters, and routing. Worker threads call into it; so does the control API.
//!
//! Lock order (never taken in the opposite direction): registry → subscription trie →
//! one session's mutex. The retained store's lock is never held with another.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use ntex_mqtt::QoS;
use parking_lot::{Mutex, RwLock};

use crate::authz::{Action, PolicyProvider};
use crate::budget::MemoryBudget;
use crate::config::Limits;
use crate::counters::{BrokerStats, CounterMap, inc};
use crate::events::{BrokerEvent, DeniedAction, Events};
use crate::limits::SourceLimiter;
use crate::message::{Delivery, Message};
use crate::metrics::{self, Metrics};
use crate::retain::TopicTree;
use crate::session::{Enqueued, OnFull, SessionState, SubOptions};
use ironroot_pki::Serial;

/// A QoS 1/2 delivery waiting for room in a connected subscriber's queue.
pub(crate) struct Blocked {
    pub(crate) session: Arc<SessionState>,
    pub(crate) delivery: Delivery,
}

/// A subscription as stored in the trie.
#[derive(Debug)]
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
    pub(crate) subs: RwLock<crate::trie::SubTrie<SubEntry>>,
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
            subs: RwLock::new(crate::trie::SubTrie::default()),
            retained: RwLock::new(RetainedStore::default()),
            stats: HubStats::default(),
            metrics: Metrics::default(),
            next_id: AtomicU64::new(1),
        }
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Routes a published message to every matching subscription. With [`OnFull::Wait`], the
    /// QoS 1/2 deliveries that found a connected subscriber's queue full are returned (in
    /// subscriber order) for the publisher to offer again when there is room.
    pub(crate) fn route(&self, msg: &Arc<Message>, on_full: OnFull) -> Vec<Blocked> {
        let mut blocked = Vec::new();
        inc(&self.stats.routed);
        let subs = self.subs.read();
        let mut matches: Vec<(u64, &SubEntry)> = Vec::new();
        subs.for_each_match(&msg.topic, |sid, e| matches.push((sid, e)));
        if matches.len() > 1 {
            matches.sort_unstable_by_key(|(sid, _)| *sid);
        }
        // A session matching through several filters gets the message once, at the highest
        // granted QoS ([MQTT-3.3.4-2] allows it; MQTT 5 requires the maximum).
        let mut i = 0;
        while i < matches.len() {
            let (sid, first) = matches[i];
            let mut qos = first.opts.qos;
            let mut retain_as_published = first.opts.retain_as_published;
            let mut all_no_local = first.opts.no_local;
            let mut j = i + 1;
            while j < matches.len() && matches[j].0 == sid {
                qos = qos.max(matches[j].1.opts.qos);
                retain_as_published |= matches[j].1.opts.retain_as_published;
                all_no_local &= matches[j].1.opts.no_local;
                j += 1;
            }
            i = j;
            if all_no_local && sid == msg.origin {
                continue;
            }
            let retain = retain_as_published && msg.retain;
            if let Some(d) = self.deliver(&first.session, msg, qos, retain, false, on_full) {
                blocked.push(Blocked {
                    session: first.session.clone(),
                    delivery: d,
                });
            }
        }
        blocked
    }

    /// Decides `iot:Receive` for one subscriber and queues the delivery. Returns the delivery
    /// when the queue is full and `on_full` says the caller waits (see [`Hub::route`]).
    pub(crate) fn deliver(
        &self,
        session: &SessionState,
        msg: &Arc<Message>,
        sub_qos: QoS,
        retain: bool,
        dup: bool,
        on_full: OnFull,
    ) -> Option<Delivery> {
        let epoch = session.epoch();
        let policy = session.policy();
        if let Err(denied) = policy.authorize(Action::Receive { topic: &msg.topic }) {
            inc(&session.counters.authz_failures);
            let source = session.lock().identity.source();
            self.events.emit(BrokerEvent::Denied {
                device_id: session.client_id.to_string(),
                source,
                action: DeniedAction::Receive(msg.topic.to_string()),
                reason: denied.reason().to_string(),
            });
            return None;
        }
        let d = Delivery {
            msg: msg.clone(),
            qos: msg.qos.min(sub_qos),
            retain,
            dup,
            epoch,
        };
        self.offer(session, d, on_full)
    }

    /// Offers a decided delivery to `session`'s queue (again, after a backpressure wait).
    pub(crate) fn offer(
        &self,
        session: &SessionState,
        d: Delivery,
        on_full: OnFull,
    ) -> Option<Delivery> {
        match session.enqueue(d, self.limits.max_queued_messages, on_full) {
            Enqueued::Queued => inc(&self.stats.deliveries),
            Enqueued::DroppedOffline => self.metrics.dropped(metrics::Drop::Offline),
            Enqueued::DroppedFull(starts) => {
                self.metrics.dropped(metrics::Drop::QueueFull);
                if starts {
                    self.events.emit(BrokerEvent::QueueOverflow {
                        device_id: session.client_id.to_string(),
                        dropped_total: session.counters.messages_dropped.load(Ordering::Relaxed),
                    });
                }
            }
            Enqueued::Full(d) => return Some(d),
        }
        None
    }

    /// Adds (or replaces) a subscription of `session`. Returns whether it existed before.
    pub(crate) fn subscribe(
        &self,
        session: &Arc<SessionState>,
        filter: &str,
        opts: SubOptions,
    ) -> Result<bool, SubscribeError> {
        let existed = {
            let mut inner = session.lock();
            if inner.discarded {
                return Err(SubscribeError::SessionGone);
            }
            let existed = inner.subscriptions.contains_key(filter);
            if !existed && inner.subscriptions.len() >= self.limits.max_subscriptions {
                return Err(SubscribeError::QuotaExceeded);
            }
            inner.subscriptions.insert(filter.into(), opts);
            existed
        };
        self.subs.write().insert(
            filter,
            session.id,
            SubEntry {
                session: session.clone(),
                opts,
            },
        );
        // A concurrent discard (takeover with clean start) may have swept the trie before our
        // insert: undo it so the trie never keeps a dead session alive.
        if session.lock().discarded {
            self.subs.write().remove(filter, session.id);
            return Err(SubscribeError::SessionGone);
        }
        Ok(existed)
    }

    /// Removes a subscription; returns whether it existed.
    pub(crate) fn unsubscribe(&self, session: &SessionState, filter: &str) -> bool {
        let existed = session.lock().subscriptions.remove(filter).is_some();
        if existed {
            self.subs.write().remove(filter, session.id);
        }
        existed
    }

    /// Marks a session as ended and removes its subscriptions from the trie.
    pub(crate) fn discard_subscriptions(&self, session: &SessionState) -> usize {
        let (filters, queued) = {
            let mut inner = session.lock();
            inner.discarded = true;
            let filters: Vec<Box<str>> = inner.subscriptions.drain().map(|(f, _)| f).collect();
            (filters, inner.queued_total())
        };
        if !filters.is_empty() {
            let mut subs = self.subs.write();
            for f in &filters {
                subs.remove(f, session.id);
            }
        }
        queued
    }

    /// Queues the retained messages matching a new subscription, each decided by `iot:Receive`.
    pub(crate) fn send_retained(&self, session: &SessionState, filter: &str, qos: QoS) {
        let now = Instant::now();
        let mut found = Vec::new();
        self.retained.read().tree.for_each_match(filter, |m| {
            if !m.is_expired(now) {
                found.push(m.clone());
            }
        });
        for m in &found {
            self.deliver(session, m, qos, true, false, OnFull::Drop);
        }
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
