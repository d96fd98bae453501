//! Publishing as the broker itself: how the server reaches devices (signed commands on
//! `devices/<id>/commands`) without a client connection of its own.
//!
//! A system message has no publishing session (origin 0), so no `iot:Publish` is decided for
//! it; every subscriber's `iot:Receive` still is, exactly as for a device's message. It is
//! bounded like any other: at most `max_packet_size` bytes, refused while the memory budget
//! is overloaded, charged to the budget while queued, never waiting for room (a full queue
//! drops it for that subscriber, counted). Accepted and refused publishes are counted
//! ([`crate::BrokerStats::system_published`], `system_refused`).

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};

use ntex_bytes::{ByteString, Bytes};
use ntex_mqtt::QoS;

use crate::counters::inc;
use crate::hub::Hub;
use crate::message::Message;
use crate::session::OnFull;

/// The quality of service of a system message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SystemQos {
    /// Delivered to connected subscribers at most once.
    AtMostOnce,
    /// Delivered at least once (queued for offline persistent sessions too).
    AtLeastOnce,
}

/// What a system publish reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// Subscriptions that matched (each decided by `iot:Receive`, then queued or dropped).
    pub matched: usize,
}

/// Why a system publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The broker has stopped.
    #[error("the broker has stopped")]
    Stopped,
    /// Not a valid topic name (empty, wildcard, NUL, too long).
    #[error("invalid topic name for a system publish")]
    InvalidTopic,
    /// Larger than the broker's maximum packet size.
    #[error("system message of {size} bytes is over the {max}-byte packet limit")]
    TooLarge {
        /// Payload bytes.
        size: usize,
        /// The limit.
        max: u32,
    },
    /// The broker is over its memory budget's high watermark.
    #[error("the broker is over its memory budget; try again")]
    Overloaded,
}

/// Publishes as the broker and asks about sessions, without keeping the broker alive (like
/// [`crate::MetricsHandle`]). From [`crate::BrokerHandle::system_publisher`].
#[derive(Debug, Clone)]
pub struct SystemPublisher {
    hub: Weak<Hub>,
    /// The memory-budget account of system messages.
    account: Arc<AtomicUsize>,
}

impl SystemPublisher {
    pub(crate) fn new(hub: &Arc<Hub>) -> Self {
        Self {
            hub: Arc::downgrade(hub),
            account: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Routes one message to every matching subscription, as the broker (see the module doc).
    pub fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: SystemQos,
    ) -> Result<Published, PublishError> {
        let hub = self.hub.upgrade().ok_or(PublishError::Stopped)?;
        let refused = |e: PublishError| {
            inc(&hub.stats.system_refused);
            Err(e)
        };
        if crate::topic::validate_topic_name(topic).is_err() {
            return refused(PublishError::InvalidTopic);
        }
        let max = hub.limits.max_packet_size;
        if payload.len() + topic.len() > max as usize {
            return refused(PublishError::TooLarge {
                size: payload.len(),
                max,
            });
        }
        if hub.budget.overloaded() {
            return refused(PublishError::Overloaded);
        }
        let bytes = Message::footprint(topic, payload, None);
        let msg = Arc::new(Message {
            charge: Some(hub.budget.charge(bytes, &self.account)),
            topic: ByteString::from(topic.to_owned()),
            payload: Bytes::copy_from_slice(payload),
            qos: match qos {
                SystemQos::AtMostOnce => QoS::AtMostOnce,
                SystemQos::AtLeastOnce => QoS::AtLeastOnce,
            },
            retain: false,
            origin: 0,
            props: None,
            expires_at: None,
        });
        let matched = hub.subs.read().count_matches(&msg.topic);
        // Never waits: a full queue drops the message for that subscriber (counted there).
        let blocked = hub.route(&msg, OnFull::Drop);
        debug_assert!(blocked.is_empty());
        inc(&hub.stats.system_published);
        Ok(Published { matched })
    }

    /// Whether `device_id` has a live connection (`false` once the broker stopped).
    pub fn is_connected(&self, device_id: &str) -> bool {
        self.hub
            .upgrade()
            .is_some_and(|hub| hub.is_connected(device_id))
    }
}
