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
