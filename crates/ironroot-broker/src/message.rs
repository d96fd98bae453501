//! Application messages as routed between sessions.

use std::num::NonZeroU32;
use std::time::Instant;

use ntex_bytes::{ByteString, Bytes};
use ntex_mqtt::QoS;
use ntex_mqtt::v5::codec::UserProperties;

/// One application message, shared by every subscriber it is delivered to.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) topic: ByteString,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    /// The RETAIN flag as published.
    pub(crate) retain: bool,
    /// Session id of the publisher (for MQTT 5 "no local"); 0 for none.
    pub(crate) origin: u64,
    /// MQTT 5 properties forwarded to subscribers.
    pub(crate) props: Option<Box<MessageProps>>,
    /// When the MQTT 5 message expiry interval runs out.
    pub(crate) expires_at: Option<Instant>,
    /// Its bytes in the memory budget, given back when the last holder drops it (`None` for
    /// wills: one per connection at most, bounded by the connection limits). Never read: held
    /// for its `Drop`.
    #[allow(dead_code)]
    pub(crate) charge: Option<crate::budget::Charge>,
}

impl Message {
    /// Bytes a message holds, as charged to the memory budget.
    pub(crate) fn footprint(topic: &str, payload: &[u8], props: Option<&MessageProps>) -> usize {
        let props = props.map_or(0, |p| {
            std::mem::size_of::<MessageProps>()
                + p.content_type.as_ref().map_or(0, |s| s.len())
                + p.correlation_data.as_ref().map_or(0, |b| b.len())
                + p.response_topic.as_ref().map_or(0, |s| s.len())
                + p.user_properties
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        });
        std::mem::size_of::<Message>() + topic.len() + payload.len() + props
    }
}

/// MQTT 5 properties a broker forwards unchanged ([MQTT-3.3.2-*]).
#[derive(Debug, Default, Clone)]
pub(crate) struct MessageProps {
    pub(crate) content_type: Option<ByteString>,
    pub(crate) correlation_data: Option<Bytes>,
    pub(crate) response_topic: Option<ByteString>,
    pub(crate) user_properties: UserProperties,
    pub(crate) is_utf8_payload: bool,
}

impl MessageProps {
    pub(crate) fn is_empty(&self) -> bool {
        self.content_type.is_none()
            && self.correlation_data.is_none()
            && self.response_topic.is_none()
            && self.user_properties.is_empty()
            && !self.is_utf8_payload
    }
}

impl Message {
    /// Seconds left of the MQTT 5 expiry interval, `None` without expiry, `Some(0)` when expired.
    pub(crate) fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            if left.is_zero() {
                0
            } else {
                // Round up so that a message with 0.4 s left still carries 1 s, not "expired".
                u32::try_from(left.as_secs() + u64::from(left.subsec_nanos() > 0))
                    .unwrap_or(u32::MAX)
            }
        })
    }

    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        self.remaining_expiry(now) == Some(0)
    }

    pub(crate) fn expiry_property(&self, now: Instant) -> Option<NonZeroU32> {
        self.remaining_expiry(now).and_then(NonZeroU32::new)
    }
}

/// One message queued for one session, with the QoS and flags of that delivery.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) msg: std::sync::Arc<Message>,
    /// min(published QoS, granted subscription QoS).
    pub(crate) qos: QoS,
    /// RETAIN flag on the outgoing PUBLISH.
    pub(crate) retain: bool,
    /// A re-delivery after a reconnect.
    pub(crate) dup: bool,
    /// The session's policy epoch when `iot:Receive` was decided; re-decided at send time when
    /// the policy changed since.
    pub(crate) epoch: u64,
    /// MQTT 5 subscription identifiers of the subscriptions it matched (empty: none).
    pub(crate) sub_ids: Box<[std::num::NonZeroU32]>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expiry_rounds_up_and_expires() {
        let now = Instant::now();
        let m = Message {
            topic: ByteString::from_static("t"),
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: false,
            origin: 0,
            props: None,
            expires_at: Some(now + Duration::from_millis(1_400)),
            charge: None,
        };
        assert_eq!(m.remaining_expiry(now), Some(2));
        assert!(!m.is_expired(now));
        assert!(m.is_expired(now + Duration::from_secs(2)));
        assert_eq!(m.expiry_property(now + Duration::from_secs(2)), None);
    }
}
