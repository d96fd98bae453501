//! Events out of the broker: connects, disconnects, refusals, denials, kicks and takeovers.
//!
//! The server forwards them to the audit log (`ironroot-audit`) and the defender. Emitting never
//! blocks a worker thread: the default sink is a bounded channel, and when it is full the event
//! is dropped and counted ([`crate::BrokerStats::events_dropped`]) instead of stalling MQTT
//! traffic.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use tokio::sync::mpsc;

use ironroot_pki::Serial;

/// MQTT protocol level of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0.
    V5,
}

/// Why a CONNECT was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The certificate carries no usable device identity.
    NoIdentity(crate::identity::IdentityError),
    /// The client id is malformed or differs from the certificate CN.
    ClientId(crate::identity::ClientIdError),
    /// The policy denied `iot:Connect`.
    NotAuthorized(String),
    /// The last-will topic is not a valid topic name.
    WillTopicInvalid,
    /// The policy denied publishing the last will (or retaining it).
    WillNotAuthorized {
        /// The will topic.
        topic: String,
        /// The policy's explanation.
        reason: String,
    },
    /// The certificate serial was revoked after the handshake completed.
    Revoked,
    /// MQTT 5 enhanced authentication was requested (not supported).
    AuthMethodUnsupported,
    /// The broker's memory budget is above its high watermark (`memory_budget`): no new
    /// connection until usage is back under the low watermark.
    MemoryBudget,
    /// The identity already holds as many live connections as its limits allow.
    ConnectionQuota {
        /// Its `max_connections`.
        max_connections: u32,
    },
}

/// Why the broker cut a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KickReason {
    /// An operator asked for it ([`crate::BrokerHandle::kick`]).
    Administrative,
    /// The device's certificate was revoked.
    Revoked,
    /// The device was quarantined and its policy no longer allows it to stay connected.
    Quarantined,
    /// A policy change no longer allows `iot:Connect`.
    PolicyChanged,
    /// A second connection with the same client id took the session over.
    TakenOver,
    /// The broker is shutting down.
    Shutdown,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectCause {
    /// The client sent DISCONNECT.
    ClientDisconnect,
    /// The client sent an MQTT 5 DISCONNECT asking for its will to be published (`0x04`).
    ClientDisconnectWithWill,
    /// The TCP/TLS connection was lost or closed without DISCONNECT.
    ConnectionLost,
    /// No packet arrived within 1.5 × keep-alive.
    KeepAliveTimeout,
    /// The client violated the protocol or a limit (packet too large, ...).
    ProtocolError(String),
    /// A publish was refused and MQTT 3.1.1 offers no other way to say so.
    PublishDenied,
    /// The broker cut the session.
    Kicked(KickReason),
}

/// What a policy denied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeniedAction {
    /// PUBLISH to a topic.
    Publish(String),
    /// Retaining a message on a topic.
    RetainPublish(String),
    /// SUBSCRIBE with a filter.
    Subscribe(String),
    /// Delivery of a message on a topic (retained or live).
    Receive(String),
    /// A subscription removed because a policy change no longer allows it.
    SubscriptionRevoked(String),
}

/// Something the audit log or the defender wants to know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerEvent {
    /// A client completed CONNECT.
    Connected {
        /// Device id (certificate CN).
        device_id: String,
        /// MQTT client id: the device id unless a policy widened `iot:Connect`.
        client_id: String,
        /// Remote address.
        source: SocketAddr,
        /// Certificate serial (`None` on a `danger` plaintext listener).
        serial: Option<Serial>,
        /// Protocol level.
        protocol: Protocol,
        /// Whether a stored session was resumed.
        session_present: bool,
        /// Whether the quarantine policy applies.
        quarantined: bool,
    },
    /// A connection ended.
    Disconnected {
        /// Device id.
        device_id: String,
        /// Remote address.
        source: SocketAddr,
        /// Why.
        cause: DisconnectCause,
    },
    /// A CONNECT was refused.
    ConnectRefused {
        /// The client id the client asked for.
        client_id: String,
        /// The certificate CN, when there was one.
        certificate_cn: Option<String>,
        /// Remote address.
        source: SocketAddr,
        /// Why.
        reason: RefusalReason,
    },
    /// The policy denied an action of a connected client.
    Denied {
        /// Device id.
        device_id: String,
        /// Remote address.
        source: SocketAddr,
        /// The action.
        action: DeniedAction,
        /// The policy's explanation.
        reason: String,
    },
    /// The broker cut a session on request (revocation, quarantine, operator, policy change).
    Kicked {
        /// Device id.
        device_id: String,
        /// Remote address of the cut connection.
        source: SocketAddr,
        /// Why.
        reason: KickReason,
    },
    /// A second connection with the same identity took over the first one. Two live sources
    /// for one certificate serial is the signature of a cloned certificate.
    TakenOver {
        /// Device id.
        device_id: String,
        /// Address of the connection that was cut.
        previous_source: SocketAddr,
        /// Address of the new connection.
        new_source: SocketAddr,
        /// Certificate serial of the cut connection.
        previous_serial: Option<Serial>,
        /// Certificate serial of the new connection.
        new_serial: Option<Serial>,
    },
    /// Subscriptions removed after a policy change (each also reported as `Denied`).
    SubscriptionsRevoked {
        /// Device id.
        device_id: String,
        /// Filters removed.
        filters: Vec<String>,
    },
    /// A TLS handshake failed (unknown CA, revoked or expired certificate, timeout, garbage).
    TlsHandshakeFailed {
        /// Remote address.
        source: SocketAddr,
        /// The TLS error, as rustls describes it.
        error: String,
    },
    /// The TLS layer rejected a client certificate (revoked, expired, unknown issuer ...).
    /// Reported only when the broker built its TLS configuration ([`crate::BrokerBuilder::tls_parts`]).
    CertificateRejected {
        /// The common name the certificate claims (unverified).
        claimed_cn: Option<String>,
        /// The serial the certificate claims.
        serial: Option<Serial>,
        /// The verifier's error.
        error: String,
    },
    /// A source address exceeded the new-connection rate; its connection was closed before TLS.
    ConnectionRateExceeded {
        /// Remote address.
        source: SocketAddr,
    },
    /// A client exceeded its PUBLISH rate.
    PublishRateExceeded {
        /// Device id.
        device_id: String,
    },
    /// Messages for a session were dropped because its queue was full (reported once per
    /// episode: when the queue overflows after having had room).
    QueueOverflow {
        /// Device id of the session.
        device_id: String,
        /// Total messages dropped for this device so far.
        dropped_total: u64,
    },
    /// A last-will message was published.
    WillPublished {
        /// Device id.
        device_id: String,
        /// Topic of the will.
        topic: String,
    },
    /// A persistent session expired and was discarded with its queued messages.
    SessionExpired {
        /// Device id.
        device_id: String,
        /// Messages discarded with it.
        discarded_messages: usize,
    },
}

/// An event with the time it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Wall-clock time.
    pub at: SystemTime,
    /// The event.
    pub event: BrokerEvent,
}

/// Receives broker events. `emit` is called on broker worker threads and must return at once.
pub trait EventSink: Send + Sync + fmt::Debug {
    /// Hands over one event; returns `false` when the event had to be dropped.
    fn emit(&self, record: EventRecord) -> bool;
}

/// A sink that discards everything (the default when no sink is configured).
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardEvents;

impl EventSink for DiscardEvents {
    fn emit(&self, _: EventRecord) -> bool {
        true
    }
}

/// The sending half of [`event_channel`].
#[derive(Debug, Clone)]
pub struct ChannelSink {
    tx: mpsc::Sender<EventRecord>,
}

impl EventSink for ChannelSink {
    fn emit(&self, record: EventRecord) -> bool {
        self.tx.try_send(record).is_ok()
    }
}

/// The receiving half of [`event_channel`]: read it from a tokio task (`recv().await`) or a
/// plain thread (`blocking_recv()`).
pub type EventReceiver = mpsc::Receiver<EventRecord>;

/// A bounded, non-blocking event channel holding up to `capacity` undelivered events.
pub fn event_channel(capacity: usize) -> (ChannelSink, EventReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (ChannelSink { tx }, rx)
}

/// Wraps the configured sink and counts what it had to drop.
#[derive(Debug, Clone)]
pub(crate) struct Events {
    sink: Arc<dyn EventSink>,
    dropped: Arc<AtomicU64>,
}

impl Events {
    pub(crate) fn new(sink: Arc<dyn EventSink>) -> Self {
        Events {
            sink,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn emit(&self, event: BrokerEvent) {
        log::debug!("broker event: {event:?}");
        if !self.sink.emit(EventRecord {
            at: SystemTime::now(),
            event,
        }) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_channel_drops_and_counts_instead_of_blocking() {
        let (sink, mut rx) = event_channel(1);
        let events = Events::new(Arc::new(sink));
        let ev = || BrokerEvent::PublishRateExceeded {
            device_id: "d".into(),
        };
        events.emit(ev());
        events.emit(ev());
        assert_eq!(events.dropped(), 1);
        assert_eq!(rx.try_recv().unwrap().event, ev());
        assert!(rx.try_recv().is_err());
    }
}
