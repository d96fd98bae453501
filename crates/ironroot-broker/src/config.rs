//! Broker configuration: listener, worker threads and the limits that keep one client from
//! hurting the others.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// A token-bucket rate: `per_second` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained rate (tokens added per second).
    pub per_second: f64,
    /// Bucket size: how many events may happen back to back.
    pub burst: f64,
}

impl RateLimit {
    /// `per_second` sustained with a burst of `burst`.
    pub const fn new(per_second: f64, burst: f64) -> Self {
        RateLimit { per_second, burst }
    }
}

/// Who a [`LimitOverride`] applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentitySelector {
    /// One device, by device id (the certificate CN).
    Device(String),
    /// Every member of a registry group (membership as the [`crate::PolicyProvider`] reports
    /// it at CONNECT).
    Group(String),
}

/// Limits that replace the defaults for one device or the members of one group, looked up at
/// CONNECT. A field left `None` keeps the value from [`Limits`] (or from a later override).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LimitOverride {
    /// Whom it applies to.
    pub selector: IdentitySelector,
    /// PUBLISH rate of each connection of the identity: `Some(None)` turns the limit off.
    pub publish_rate: Option<Option<RateLimit>>,
    /// Live connections the identity may hold at once (at least 1).
    pub max_connections: Option<u32>,
}

impl LimitOverride {
    /// An override for `selector` that changes nothing yet.
    pub fn new(selector: IdentitySelector) -> Self {
        LimitOverride {
            selector,
            publish_rate: None,
            max_connections: None,
        }
    }
}

/// The limits one identity gets after its overrides (see [`Limits::for_identity`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct IdentityLimits {
    /// PUBLISH rate of each of its connections (`None`: unlimited).
    pub publish_rate: Option<RateLimit>,
    /// Live connections it may hold at once.
    pub max_connections: u32,
}

/// Live connections one identity may hold unless an override says otherwise. A second CONNECT
/// with the same client id takes the first session over (not counted twice); a second client
/// id, which only a policy widening `iot:Connect` allows, counts against this.
pub const DEFAULT_MAX_CONNECTIONS_PER_IDENTITY: u32 = 1;

/// Limits enforced per connection, per session and per source address.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest MQTT packet accepted from a client, in bytes (advertised in the MQTT 5 CONNACK;
    /// larger packets close the connection, v5 with DISCONNECT `0x95`).
    pub max_packet_size: u32,
    /// Unacknowledged QoS 1/2 messages in flight per connection, in each direction (the v5
    /// "receive maximum" the broker advertises, and the cap on what it sends unacknowledged).
    pub inflight_window: u16,
    /// Messages queued for one session (connected but slow, or disconnected with a persistent
    /// session). When the queue of a connected session is full, a QoS 1/2 publisher waits for
    /// room (backpressure, up to `backpressure_timeout`); QoS 0 messages, and messages for a
    /// disconnected session, are dropped and counted.
    pub max_queued_messages: usize,
    /// How long a QoS 1/2 publisher waits for room in a connected subscriber's full queue
    /// before the message is dropped for that subscriber (counted in
    /// [`crate::BrokerStats::backpressure_timeouts`]). Its PUBACK waits as long.
    pub backpressure_timeout: Duration,
    /// Per-connection PUBLISH rate. `None` disables the limit.
    pub publish_rate: Option<RateLimit>,
    /// Subscriptions one session may hold.
    pub max_subscriptions: usize,
    /// MQTT 5 topic aliases a client may set per connection (the CONNACK "topic alias
    /// maximum"); an alias above it, or an unknown one, closes the connection with `0x94`.
    /// 0 disables inbound aliases.
    pub topic_alias_max: u16,
    /// New TCP connections per source IP address, enforced before the TLS handshake.
    /// `None` disables the limit.
    pub connection_rate_per_ip: Option<RateLimit>,
    /// Longest keep-alive granted (also used when a client asks for 0 = "none"), in seconds.
    pub max_keepalive_secs: u16,
    /// Time allowed for the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time allowed between the TCP/TLS connection and a complete CONNECT packet.
    pub connect_timeout: Duration,
    /// Concurrent TLS handshakes per worker thread (ntex's default of 256 lets a few hundred
    /// idle sockets stall everyone else until the handshake timeout).
    pub max_concurrent_handshakes: usize,
    /// Open connections per worker thread.
    pub max_connections_per_worker: usize,
    /// Upper bound of a v5 session expiry interval.
    pub max_session_expiry: Duration,
    /// How long a v3.1.1 persistent session (clean session = 0) outlives its connection.
    pub v3_session_expiry: Duration,
    /// Retained messages kept in total.
    pub max_retained_messages: usize,
    /// Payload bytes of all retained messages together.
    pub max_retained_bytes: usize,
    /// Devices with counters kept in memory (see [`crate::DeviceStats`]); beyond this, counters
    /// of unknown ids (failed handshakes naming a CN) are not created.
    pub max_tracked_devices: usize,
    /// Bytes of application messages the broker holds at most (queued, inflight, retained;
    /// each message counted once however many subscribers it waits for). Over 90 %, new
    /// CONNECTs are refused with `0x97` and the heaviest publishers are no longer read; under
    /// 75 % normal service resumes. Default: a quarter of the machine's memory, at most 4 GiB.
    pub memory_budget: usize,
    /// Per-identity replacements of `publish_rate` and the connection count, by device or
    /// group. Precedence: the device's own override, then group overrides in this order; each
    /// field comes from the first override that sets it.
    pub overrides: Vec<LimitOverride>,
}

impl Limits {
    /// The limits of the identity `device_id`, member of `groups`.
    pub fn for_identity(&self, device_id: &str, groups: &[String]) -> IdentityLimits {
        let mut publish_rate = None;
        let mut max_connections = None;
        let devices = self
            .overrides
            .iter()
            .filter(|o| matches!(&o.selector, IdentitySelector::Device(d) if d == device_id));
        let by_group = self.overrides.iter().filter(
            |o| matches!(&o.selector, IdentitySelector::Group(g) if groups.iter().any(|m| m == g)),
        );
        for o in devices.chain(by_group) {
            publish_rate = publish_rate.or(o.publish_rate);
            max_connections = max_connections.or(o.max_connections);
        }
        IdentityLimits {
            publish_rate: publish_rate.unwrap_or(self.publish_rate),
            max_connections: max_connections
                .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_IDENTITY)
                .max(1),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: 128 * 1024,
            inflight_window: 32,
            max_queued_messages: 1_000,
            backpressure_timeout: Duration::from_secs(10),
            publish_rate: Some(RateLimit::new(100.0, 200.0)),
            max_subscriptions: 50,
            topic_alias_max: 16,
            connection_rate_per_ip: Some(RateLimit::new(100.0, 200.0)),
            max_keepalive_secs: 1_200,
            tls_handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_concurrent_handshakes: 4_096,
            max_connections_per_worker: 25_000,
            max_session_expiry: Duration::from_secs(7 * 24 * 3600),
            v3_session_expiry: Duration::from_secs(24 * 3600),
            max_retained_messages: 100_000,
            max_retained_bytes: 64 * 1024 * 1024,
            max_tracked_devices: 1_000_000,
            memory_budget: crate::budget::default_budget(),
            overrides: Vec::new(),
        }
    }
}

/// Broker configuration. `Default` listens on `0.0.0.0:8883` with one worker per CPU.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BrokerConfig {
    /// Address of the mutual-TLS listener (8883 is the IANA port for MQTT over TLS).
    pub listen: SocketAddr,
    /// Worker threads (each runs its connections single-threaded).
    pub workers: usize,
    /// Limits.
    pub limits: Limits,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8883)),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            limits: Limits::default(),
        }
    }
}

impl BrokerConfig {
    /// The default configuration listening on `listen` (use port 0 for an ephemeral port).
    pub fn new(listen: SocketAddr) -> Self {
        BrokerConfig {
            listen,
            ..BrokerConfig::default()
        }
    }
}

pub mod danger {
    //! Settings that remove security guarantees. Never enable them in production.

    use std::net::SocketAddr;

    /// A plaintext (no TLS) MQTT listener for local experiments.
    ///
    /// **There is no authentication on it**: a client is whoever its client id says it is, and
    /// it gets that device's policy. Enable only on a loopback address of a development machine.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct PlaintextListener {
        /// Address to listen on (for example `127.0.0.1:1883`).
        pub addr: SocketAddr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        let mut backend = LimitOverride::new(IdentitySelector::Group("backend".into()));
        backend.publish_rate = Some(Some(RateLimit::new(5000.0, 10000.0)));
        backend.max_connections = Some(10);
        let mut lab = LimitOverride::new(IdentitySelector::Group("lab".into()));
        lab.publish_rate = Some(None);
        lab.max_connections = Some(3);
        let mut svc = LimitOverride::new(IdentitySelector::Device("svc-1".into()));
        svc.max_connections = Some(2);
        Limits {
            overrides: vec![backend, lab, svc],
            ..Limits::default()
        }
    }

    #[test]
    fn identity_limits_follow_device_then_groups_in_order() {
        let l = limits();
        let plain = l.for_identity("dev-1", &[]);
        assert_eq!(plain.publish_rate, Limits::default().publish_rate);
        assert_eq!(plain.max_connections, 1, "the default keeps takeover");
        let b = l.for_identity("dev-1", &["backend".into()]);
        assert_eq!(b.publish_rate, Some(RateLimit::new(5000.0, 10000.0)));
        assert_eq!(b.max_connections, 10);
        let lab_first = l.for_identity("dev-1", &["lab".into(), "backend".into()]);
        assert_eq!(
            lab_first.max_connections, 10,
            "file order decides, not the order of the memberships"
        );
        let lab = l.for_identity("dev-1", &["lab".into()]);
        assert_eq!(lab.publish_rate, None, "an override may turn the rate off");
        let svc = l.for_identity("svc-1", &["backend".into()]);
        assert_eq!(svc.max_connections, 2, "the device's own override wins");
        assert_eq!(
            svc.publish_rate,
            Some(RateLimit::new(5000.0, 10000.0)),
            "fields the device override leaves open come from its groups"
        );
        assert_eq!(
            l.for_identity("svc-2", &["other".into()]),
            plain,
            "an unrelated group changes nothing"
        );
    }
}
