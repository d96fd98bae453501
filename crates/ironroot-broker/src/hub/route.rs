//! Routing a message to its subscribers, and adding or removing subscriptions.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ntex_mqtt::QoS;

use super::shared::{SharedGroup, Standing};
use super::{Blocked, Hub, SubEntry, SubscribeError};
use crate::authz::Action;
use crate::counters::inc;
use crate::events::{BrokerEvent, DeniedAction};
use crate::message::{Delivery, Message};
use crate::metrics;
use crate::session::{Enqueued, OnFull, SessionState, SubOptions};

/// The delivery of `msg` to the share-group member `member`, with that subscription's options.
fn shared_delivery(member: &SubEntry, msg: &Arc<Message>) -> Delivery {
    Delivery {
        msg: msg.clone(),
        qos: msg.qos.min(member.opts.qos),
        retain: member.opts.retain_as_published && msg.retain,
        dup: false,
        epoch: member.session.epoch(),
        sub_ids: member.opts.id.into_iter().collect(),
    }
}

impl Hub {
    /// Routes a published message to every matching subscription, and to one member of every
    /// matching share group. With [`OnFull::Wait`], the QoS 1/2 deliveries that found a
    /// connected subscriber's queue full are returned (in subscriber order) for the publisher to
    /// offer again when there is room.
    pub(crate) fn route(&self, msg: &Arc<Message>, on_full: OnFull) -> Vec<Blocked> {
        let mut blocked = Vec::new();
        inc(&self.stats.routed);
        let subs = self.subs.read();
        let mut matches: Vec<(u64, &SubEntry)> = Vec::new();
        subs.plain
            .for_each_match(&msg.topic, |sid, e| matches.push((sid, e)));
        if matches.len() > 1 {
            matches.sort_unstable_by_key(|(sid, _)| *sid);
        }
        // A session matching through several filters gets the message once, at the highest
        // granted QoS ([MQTT-3.3.4-2] allows it; MQTT 5 requires the maximum), carrying the
        // identifiers of all those subscriptions (MQTT 5 §3.3.4).
        let mut i = 0;
        while i < matches.len() {
            let sid = matches[i].0;
            let mut j = i;
            while j < matches.len() && matches[j].0 == sid {
                j += 1;
            }
            let group = &matches[i..j];
            i = j;
            // "No local" subscriptions do not match their own session's messages.
            let live = || {
                group
                    .iter()
                    .map(|(_, e)| e)
                    .filter(|e| !(e.opts.no_local && sid == msg.origin))
            };
            let Some(first) = live().next() else {
                continue;
            };
            let qos = live().map(|e| e.opts.qos).max().unwrap_or(QoS::AtMostOnce);
            let retain = msg.retain && live().any(|e| e.opts.retain_as_published);
            let ids: Box<[NonZeroU32]> = live().filter_map(|e| e.opts.id).collect();
            if let Some(d) = self.deliver(&first.session, msg, qos, retain, ids, on_full) {
                blocked.push(Blocked {
                    session: first.session.clone(),
                    delivery: d,
                    group: None,
                });
            }
        }
        let mut groups: Vec<Arc<SharedGroup>> = Vec::new();
        subs.shared
            .for_each_match(&msg.topic, |_, g| groups.push(g.clone()));
        drop(subs);
        for g in groups {
            if let Some(b) = self.deliver_shared(&g, msg, on_full) {
                blocked.push(b);
            }
        }
        blocked
    }

    /// Gives a message to one member of a share group ([`SharedGroup::pick`]). Retained
    /// messages are delivered with RETAIN cleared unless the member asked otherwise.
    pub(crate) fn deliver_shared(
        &self,
        group: &Arc<SharedGroup>,
        msg: &Arc<Message>,
        on_full: OnFull,
    ) -> Option<Blocked> {
        let max = self.limits.max_queued_messages;
        let member = group.pick(|e| {
            if !self.may_receive(&e.session, &msg.topic) {
                Standing::Refused
            } else {
                e.session.standing(max)
            }
        })?;
        self.offer(&member.session, shared_delivery(&member, msg), on_full)
            .map(|delivery| Blocked {
                session: member.session.clone(),
                delivery,
                group: Some(group.clone()),
            })
    }

    /// A QoS 1/2 message held for share-group member `held_by` (its queue is full): offers it to
    /// another member that has room now. `true` when that member took it. Decides
    /// `iot:Receive` without an event (the periodic re-check would repeat it).
    pub(crate) fn offer_to_member_with_room(
        &self,
        group: &SharedGroup,
        msg: &Arc<Message>,
        held_by: u64,
    ) -> bool {
        let max = self.limits.max_queued_messages;
        let Some(member) = group.pick(|e| {
            let ready = e.session.id != held_by
                && e.session.standing(max) == Standing::Ready
                && e.session
                    .policy()
                    .authorize(Action::Receive { topic: &msg.topic })
                    .is_ok();
            if ready {
                Standing::Ready
            } else {
                Standing::Refused
            }
        }) else {
            return false;
        };
        self.offer(
            &member.session,
            shared_delivery(&member, msg),
            OnFull::Retry,
        )
        .is_none()
    }

    /// Decides `iot:Receive` for one subscriber on a concrete topic, emitting the denial event.
    pub(crate) fn may_receive(&self, session: &SessionState, topic: &str) -> bool {
        let policy = session.policy();
        let Err(denied) = policy.authorize(Action::Receive { topic }) else {
            return true;
        };
        inc(&session.counters.authz_failures);
        let source = session.lock().identity.source();
        self.events.emit(BrokerEvent::Denied {
            device_id: session.device_id.to_string(),
            source,
            action: DeniedAction::Receive(topic.to_string()),
            reason: denied.reason().to_string(),
        });
        false
    }

    /// Decides `iot:Receive` for one subscriber and queues the delivery. Returns the delivery
    /// when the queue is full and `on_full` says the caller waits (see [`Hub::route`]).
    pub(crate) fn deliver(
        &self,
        session: &SessionState,
        msg: &Arc<Message>,
        sub_qos: QoS,
        retain: bool,
        sub_ids: Box<[NonZeroU32]>,
        on_full: OnFull,
    ) -> Option<Delivery> {
        let epoch = session.epoch();
        if !self.may_receive(session, &msg.topic) {
            return None;
        }
        let d = Delivery {
            msg: msg.clone(),
            qos: msg.qos.min(sub_qos),
            retain,
            dup: false,
            epoch,
            sub_ids,
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
                        device_id: session.device_id.to_string(),
                        dropped_total: session.counters.messages_dropped.load(Ordering::Relaxed),
                    });
                }
            }
            Enqueued::Full(d) => return Some(d),
        }
        None
    }

    /// Adds (or replaces) a subscription of `session`. Returns whether it existed before.
    /// `filter` is as the client sent it (`$share/<group>/<filter>` for a shared one).
    pub(crate) fn subscribe(
        &self,
        session: &Arc<SessionState>,
        filter: &str,
        opts: SubOptions,
    ) -> Result<bool, SubscribeError> {
        let shared = crate::topic::parse_shared(filter).map_err(|_| SubscribeError::Invalid)?;
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
            shared,
            SubEntry {
                session: session.clone(),
                opts,
            },
        );
        // A concurrent discard (takeover with clean start) may have swept the trie before our
        // insert: undo it so the trie never keeps a dead session alive.
        if session.lock().discarded {
            self.subs.write().remove(filter, session);
            return Err(SubscribeError::SessionGone);
        }
        Ok(existed)
    }

    /// Removes a subscription; returns whether it existed.
    pub(crate) fn unsubscribe(&self, session: &SessionState, filter: &str) -> bool {
        let existed = session.lock().subscriptions.remove(filter).is_some();
        if existed {
            self.subs.write().remove(filter, session);
        }
        existed
    }

    /// Marks a session as ended and removes its subscriptions (share group memberships too).
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
                subs.remove(f, session);
            }
        }
        queued
    }

    /// Queues the retained messages matching a new subscription, each decided by `iot:Receive`
    /// and carrying the subscription's identifier. Never for a shared subscription (MQTT 5
    /// §4.8.2: retained messages are not sent to it).
    pub(crate) fn send_retained(
        &self,
        session: &SessionState,
        filter: &str,
        qos: QoS,
        id: Option<NonZeroU32>,
    ) {
        if crate::topic::is_shared_subscription(filter) {
            return;
        }
        let now = Instant::now();
        let mut found = Vec::new();
        self.retained.read().tree.for_each_match(filter, |m| {
            if !m.is_expired(now) {
                found.push(m.clone());
            }
        });
        for m in &found {
            let ids: Box<[NonZeroU32]> = id.into_iter().collect();
            self.deliver(session, m, qos, true, ids, OnFull::Drop);
        }
    }
}
