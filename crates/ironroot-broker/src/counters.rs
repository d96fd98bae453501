//! Per-device counters for the defender (connection attempts, failures, traffic, last source)
//! and broker-wide statistics.
//!
//! Counters are atomics updated on the hot path without locks; each session holds an `Arc` to
//! its device's counters. They live in memory and start from zero when the broker starts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};

/// Live counters of one device.
#[derive(Debug, Default)]
pub(crate) struct DeviceCounters {
    pub(crate) connection_attempts: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) authz_failures: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) messages_dropped: AtomicU64,
    pub(crate) takeovers: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) last: Mutex<LastSeen>,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LastSeen {
    pub(crate) source: Option<SocketAddr>,
    pub(crate) connected_at: Option<SystemTime>,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl DeviceCounters {
    fn snapshot(&self, device_id: &str) -> DeviceStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let last = *self.last.lock();
        DeviceStats {
            device_id: device_id.to_string(),
            connection_attempts: get(&self.connection_attempts),
            connections: get(&self.connections),
            auth_failures: get(&self.auth_failures),
            authz_failures: get(&self.authz_failures),
            messages_in: get(&self.messages_in),
            bytes_in: get(&self.bytes_in),
            messages_out: get(&self.messages_out),
            bytes_out: get(&self.bytes_out),
            messages_dropped: get(&self.messages_dropped),
            takeovers: get(&self.takeovers),
            disconnects: get(&self.disconnects),
            last_source: last.source,
            last_connected_at: last.connected_at,
        }
    }
}

/// A snapshot of one device's counters since the broker started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceStats {
    /// Device id.
    pub device_id: String,
    /// CONNECT packets received from this identity (accepted or not).
    pub connection_attempts: u64,
    /// Accepted connections.
    pub connections: u64,
    /// Authentication failures: client id not matching the certificate, revoked serial at
    /// CONNECT, or a TLS handshake that presented a certificate with this CN and failed (the
    /// CN of a failed handshake is unverified: a defender must treat it as a claim).
    pub auth_failures: u64,
    /// Authorization failures: denied CONNECT, will, PUBLISH, SUBSCRIBE, retained publish, and
    /// deliveries refused by `iot:Receive`.
    pub authz_failures: u64,
    /// PUBLISH packets accepted from the device.
    pub messages_in: u64,
    /// Payload bytes accepted from the device.
    pub bytes_in: u64,
    /// Messages delivered to the device.
    pub messages_out: u64,
    /// Payload bytes delivered to the device.
    pub bytes_out: u64,
    /// Messages for the device dropped (queue full, QoS 0 while offline, too large for the
    /// client's maximum packet size, expired).
    pub messages_dropped: u64,
    /// Times a new connection took over this device's session.
    pub takeovers: u64,
    /// Connections that ended.
    pub disconnects: u64,
    /// Source address of the latest CONNECT.
    pub last_source: Option<SocketAddr>,
    /// Time of the latest accepted CONNECT.
    pub last_connected_at: Option<SystemTime>,
}

/// All device counters, bounded in number.
#[derive(Debug)]
pub(crate) struct CounterMap {
    max: usize,
    map: RwLock<HashMap<Arc<str>, Arc<DeviceCounters>>>,
}

impl CounterMap {
    pub(crate) fn new(max: usize) -> Self {
        CounterMap {
            max,
            map: RwLock::new(HashMap::new()),
        }
    }

    /// The counters of `id`, created when absent. Creation beyond the cap hands out a detached
    /// counter set (counted nowhere) instead of growing the map.
    pub(crate) fn get_or_create(&self, id: &str) -> Arc<DeviceCounters> {
        if let Some(c) = self.map.read().get(id) {
            return c.clone();
        }
        let mut map = self.map.write();
        if let Some(c) = map.get(id) {
            return c.clone();
        }
        let c = Arc::new(DeviceCounters::default());
        if map.len() < self.max {
            map.insert(id.into(), c.clone());
        }
        c
    }

    pub(crate) fn stats(&self, id: &str) -> Option<DeviceStats> {
        self.map.read().get(id).map(|c| c.snapshot(id))
    }

    pub(crate) fn all(&self) -> Vec<DeviceStats> {
        let mut v: Vec<_> = self.map.read().iter().map(|(k, c)| c.snapshot(k)).collect();
        v.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        v
    }
}

/// Broker-wide statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerStats {
    /// Connections with a completed CONNECT right now.
    pub connected: usize,
    /// Sessions kept (connected or persistent and waiting).
    pub sessions: usize,
    /// Subscriptions (filter, session) in the routing trie.
    pub subscriptions: usize,
    /// Retained messages stored.
    pub retained_messages: usize,
    /// PUBLISH packets routed.
    pub messages_routed: u64,
    /// Deliveries enqueued for subscribers.
    pub deliveries: u64,
    /// Events the event sink could not take.
    pub events_dropped: u64,
    /// TCP connections closed before TLS because their source exceeded the connection rate.
    pub connections_rate_limited: u64,
    /// Failed TLS handshakes.
    pub tls_handshake_failures: u64,
    /// QoS 1/2 deliveries that found a connected subscriber's queue full and held their
    /// publisher (backpressure) until there was room.
    pub backpressure_waits: u64,
    /// Of those, deliveries dropped because the subscriber did not drain its queue within
    /// `Limits::backpressure_timeout`.
    pub backpressure_timeouts: u64,
    /// Messages the broker published itself ([`crate::SystemPublisher::publish`]).
    pub system_published: u64,
    /// System publishes refused (invalid topic, too large, over the memory budget).
    pub system_refused: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_shared_and_capped() {
        let m = CounterMap::new(1);
        let a = m.get_or_create("a");
        inc(&a.messages_in);
        add(&m.get_or_create("a").bytes_in, 10);
        let s = m.stats("a").unwrap();
        assert_eq!((s.messages_in, s.bytes_in), (1, 10));
        let b = m.get_or_create("b");
        inc(&b.messages_in);
        assert!(
            m.stats("b").is_none(),
            "beyond the cap nothing new is tracked"
        );
        assert_eq!(m.all().len(), 1);
    }
}
