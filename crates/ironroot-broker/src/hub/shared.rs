//! Shared subscriptions (MQTT 5 §4.8.2): `$share/<group>/<filter>` subscribers of one group
//! and filter share its messages, each message going to exactly one member.
//!
//! ```text
//!   Subscriptions ─ plain:  SubTrie<SubEntry>          (session id → options)
//!                 └ shared: SubTrie<Arc<SharedGroup>>  (group key → members, cursor)
//!                           keys: "$share/g/f" → group key
//! ```
//!
//! [`SharedGroup::pick`] is the one place that decides which member gets a message, so that the
//! same rule can later spread a group across broker nodes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;

use super::SubEntry;
use crate::session::SessionState;
use crate::topic::SharedFilter;
use crate::trie::SubTrie;

/// One share group on one filter: its members and the round-robin cursor.
#[derive(Debug, Default)]
pub(crate) struct SharedGroup {
    members: RwLock<Vec<SubEntry>>,
    cursor: AtomicUsize,
}

/// How a member stands for the message being routed, as the caller's probe sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Standing {
    /// `iot:Receive` denies it this topic: never picked.
    Refused,
    /// A persistent session without a connection: queued offline (QoS 1/2) if nobody better.
    Offline,
    /// Connected, queue full: the publisher waits for room (QoS 1/2) if nobody has room.
    Full,
    /// Connected with room in its queue.
    Ready,
}

impl SharedGroup {
    /// The member that gets the next message: in round-robin order from the cursor, the first
    /// connected member with room; else the first connected one (its queue is full); else the
    /// first offline persistent one. `probe` tells how each member stands (and checks
    /// `iot:Receive`). `None` when no member may receive the message.
    pub(crate) fn pick(&self, mut probe: impl FnMut(&SubEntry) -> Standing) -> Option<SubEntry> {
        let members = self.members.read();
        let n = members.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(Standing, usize)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let s = probe(&members[i]);
            if s == Standing::Ready {
                return Some(members[i].clone());
            }
            if s > Standing::Refused && best.is_none_or(|(b, _)| s > b) {
                best = Some((s, i));
            }
        }
        best.map(|(_, i)| members[i].clone())
    }

    /// Number of members.
    pub(crate) fn len(&self) -> usize {
        self.members.read().len()
    }

    fn upsert(&self, entry: SubEntry) -> bool {
        let mut m = self.members.write();
        match m.iter_mut().find(|e| e.session.id == entry.session.id) {
            Some(e) => {
                *e = entry;
                false
            }
            None => {
                m.push(entry);
                true
            }
        }
    }

    fn remove(&self, session_id: u64) -> bool {
        let mut m = self.members.write();
        let before = m.len();
        m.retain(|e| e.session.id != session_id);
        m.len() != before
    }
}

/// Every subscription: ordinary ones by filter, shared ones by inner filter and group.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    pub(crate) plain: SubTrie<SubEntry>,
    pub(crate) shared: SubTrie<Arc<SharedGroup>>,
    /// `$share/<group>/<filter>` → group key in `shared`.
    keys: HashMap<Box<str>, u64>,
    next_key: u64,
    shared_members: usize,
}

impl Subscriptions {
    /// Number of (filter, session) subscriptions, shared ones counted per member.
    pub(crate) fn len(&self) -> usize {
        self.plain.len() + self.shared_members
    }

    /// Adds or replaces a subscription; `shared` is the parsed form of a `$share/` `filter`.
    pub(crate) fn insert(&mut self, filter: &str, shared: Option<SharedFilter<'_>>, e: SubEntry) {
        let Some(sh) = shared else {
            self.plain.insert(filter, e.session.id, e);
            return;
        };
        let key = match self.keys.get(filter) {
            Some(k) => *k,
            None => {
                self.next_key += 1;
                let k = self.next_key;
                self.keys.insert(filter.into(), k);
                self.shared.insert(sh.filter, k, Arc::default());
                k
            }
        };
        let Some(group) = self.shared.get(sh.filter, key) else {
            return; // inserted above; unreachable
        };
        if group.upsert(e) {
            self.shared_members += 1;
        }
    }

    /// Removes the subscription of `session` under `filter` (as the client wrote it).
    pub(crate) fn remove(&mut self, filter: &str, session: &SessionState) {
        let Ok(Some(sh)) = crate::topic::parse_shared(filter) else {
            self.plain.remove(filter, session.id);
            return;
        };
        let Some(&key) = self.keys.get(filter) else {
            return;
        };
        let Some(group) = self.shared.get(sh.filter, key) else {
            return;
        };
        if group.remove(session.id) {
            self.shared_members -= 1;
        }
        if group.len() == 0 {
            self.shared.remove(sh.filter, key);
            self.keys.remove(filter);
        }
    }

    /// Number of subscriptions a message on `topic` reaches: every plain match, one per group.
    pub(crate) fn count_matches(&self, topic: &str) -> usize {
        let mut n = 0;
        self.plain.for_each_match(topic, |_, _| n += 1);
        self.shared.for_each_match(topic, |_, _| n += 1);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::DenyAll;
    use crate::identity::DeviceIdentity;
    use crate::session::SubOptions;
    use ntex_mqtt::QoS;
    use std::time::Duration;

    fn entry(id: u64) -> SubEntry {
        let identity = DeviceIdentity::new(format!("d{id}"), None, "127.0.0.1:1".parse().unwrap());
        SubEntry {
            session: Arc::new(SessionState::new(
                id,
                identity,
                Arc::default(),
                Arc::new(DenyAll),
                Duration::ZERO,
            )),
            opts: SubOptions {
                qos: QoS::AtLeastOnce,
                no_local: false,
                retain_as_published: false,
                id: None,
            },
        }
    }

    #[test]
    fn round_robin_prefers_room_then_full_then_offline() {
        let g = SharedGroup::default();
        for id in 1..=4 {
            assert!(g.upsert(entry(id)));
        }
        assert!(!g.upsert(entry(2)), "re-subscribing replaces");
        let picks: Vec<u64> = (0..8)
            .map(|_| g.pick(|_| Standing::Ready).unwrap().session.id)
            .collect();
        assert_eq!(picks, vec![1, 2, 3, 4, 1, 2, 3, 4], "balanced");
        let standing = |e: &SubEntry| match e.session.id {
            1 => Standing::Refused,
            2 => Standing::Offline,
            3 => Standing::Full,
            _ => Standing::Ready,
        };
        for _ in 0..4 {
            assert_eq!(g.pick(standing).unwrap().session.id, 4, "the one with room");
        }
        let no_room = |e: &SubEntry| match e.session.id {
            3 => Standing::Full,
            2 => Standing::Offline,
            _ => Standing::Refused,
        };
        assert_eq!(
            g.pick(no_room).unwrap().session.id,
            3,
            "connected beats offline"
        );
        assert!(
            g.pick(|_| Standing::Refused).is_none(),
            "nobody may receive"
        );
        assert!(g.remove(4));
        assert!(!g.remove(4));
        assert_eq!(g.len(), 3);
    }

    #[test]
    fn groups_are_per_share_name_and_filter() {
        let mut s = Subscriptions::default();
        let a = crate::topic::parse_shared("$share/a/t/#").unwrap();
        let b = crate::topic::parse_shared("$share/b/t/#").unwrap();
        s.insert("$share/a/t/#", a, entry(1));
        s.insert("$share/a/t/#", a, entry(2));
        s.insert("$share/b/t/#", b, entry(1));
        s.insert("t/x", None, entry(3));
        assert_eq!(s.len(), 4);
        assert_eq!(
            s.count_matches("t/x"),
            3,
            "one per group plus the plain one"
        );
        s.remove("$share/a/t/#", &entry(1).session);
        s.remove("$share/a/t/#", &entry(2).session);
        assert_eq!(s.count_matches("t/x"), 2, "empty group gone");
        assert!(s.keys.len() == 1);
        s.remove("t/x", &entry(3).session);
        s.remove("$share/b/t/#", &entry(1).session);
        assert_eq!(s.len(), 0);
        assert!(s.keys.is_empty());
    }
}
