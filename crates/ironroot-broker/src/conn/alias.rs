//! Outbound MQTT 5 topic aliases (§3.3.2.3.4): the broker names topics by a number on a
//! connection whose client announced a "topic alias maximum".
//!
//! Assignment is first-come: the first `min(client maximum, OUTBOUND_ALIAS_CAP)` distinct
//! topics delivered on the connection get aliases 1, 2, ... for the connection's lifetime;
//! later topics go out in full. The first PUBLISH of a topic carries topic and alias, later
//! ones an empty topic and the alias. The map is per connection (a reconnect starts afresh,
//! as the client's map does) and bounded. Inbound aliases are resolved by ntex-mqtt, bounded by
//! [`crate::Limits::topic_alias_max`].

use std::collections::HashMap;
use std::num::NonZeroU16;

/// Most aliases the broker keeps per connection, whatever the client allows: each one holds a
/// copy of its topic for the connection's lifetime.
pub(crate) const OUTBOUND_ALIAS_CAP: u16 = 64;

/// The alias to put on one outgoing PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alias {
    /// The client knows it: send the alias with an empty topic.
    Known(NonZeroU16),
    /// A fresh alias: send it with the full topic, then [`OutboundAliases::confirm`].
    New(NonZeroU16),
}

impl Alias {
    /// The alias number.
    pub(crate) fn get(self) -> NonZeroU16 {
        match self {
            Alias::Known(a) | Alias::New(a) => a,
        }
    }
}

/// The aliases of one connection.
#[derive(Debug)]
pub(crate) struct OutboundAliases {
    max: u16,
    by_topic: HashMap<Box<str>, NonZeroU16>,
}

impl OutboundAliases {
    /// Aliases for a client that accepts up to `client_max` (0: none).
    pub(crate) fn new(client_max: u16) -> Self {
        OutboundAliases {
            max: client_max.min(OUTBOUND_ALIAS_CAP),
            by_topic: HashMap::new(),
        }
    }

    /// The alias for `topic`: known, a fresh one while there is room, or none.
    pub(crate) fn lookup(&self, topic: &str) -> Option<Alias> {
        if let Some(a) = self.by_topic.get(topic) {
            return Some(Alias::Known(*a));
        }
        let next = u16::try_from(self.by_topic.len()).ok()?.checked_add(1)?;
        if next > self.max {
            return None;
        }
        NonZeroU16::new(next).map(Alias::New)
    }

    /// A PUBLISH carrying `topic` with the fresh alias `alias` was sent.
    pub(crate) fn confirm(&mut self, topic: &str, alias: NonZeroU16) {
        if usize::from(alias.get()) == self.by_topic.len() + 1 {
            self.by_topic.insert(topic.into(), alias);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u16) -> NonZeroU16 {
        NonZeroU16::new(n).unwrap()
    }

    #[test]
    fn first_topics_get_aliases_then_full_topics() {
        let mut a = OutboundAliases::new(2);
        assert_eq!(a.lookup("t/1"), Some(Alias::New(nz(1))));
        assert_eq!(a.lookup("t/1"), Some(Alias::New(nz(1))), "not sent yet");
        a.confirm("t/1", nz(1));
        assert_eq!(a.lookup("t/1"), Some(Alias::Known(nz(1))));
        assert_eq!(a.lookup("t/2"), Some(Alias::New(nz(2))));
        a.confirm("t/2", nz(2));
        assert_eq!(a.lookup("t/3"), None, "client maximum reached");
        assert_eq!(a.lookup("t/2"), Some(Alias::Known(nz(2))));
        assert_eq!(
            OutboundAliases::new(0).lookup("t"),
            None,
            "client takes none"
        );
        let big = OutboundAliases::new(u16::MAX);
        assert_eq!(big.max, OUTBOUND_ALIAS_CAP, "bounded by the broker");
    }
}
