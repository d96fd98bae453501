//! The glue between ntex-mqtt connections and the hub: per-connection state, the policy checks
//! on PUBLISH/SUBSCRIBE, and the delivery task that drains a session queue into the socket.
//!
//! Each connection lives on one ntex worker thread. Its [`ConnCore`] is reached through the
//! ntex `Session` (`Rc`, not `Send`); everything other threads need is in the `Arc`ed
//! [`SessionState`] and [`ConnSignal`].

mod alias;
mod gate;
pub(crate) mod listener;
pub(crate) mod v3;
pub(crate) mod v5;

use std::cell::RefCell;
use std::future::Future;
use std::num::NonZeroU16;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Instant;

use ntex_bytes::{ByteString, Bytes};
use ntex_mqtt::QoS;
use ntex_util::future::{Either, select};

use crate::authz::{Action, Denied};
use crate::counters::{add, inc};
use crate::events::{BrokerEvent, DeniedAction, DisconnectCause, KickReason};
use crate::hub::{Blocked, Hub, SubscribeError};
use crate::identity::DeviceIdentity;
use crate::message::{Delivery, Message, MessageProps};
use crate::metrics;
use crate::registry::{Accepted, Will};
use crate::session::{ConnSignal, OnFull, SessionState, SubOptions};
use crate::topic;
use gate::{Admitted, InboundGate};

/// Errors of the per-connection ntex services. Each one ends the connection; the control
/// service turns it into a v5 DISCONNECT reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConnError {
    /// A PUBLISH was denied and the protocol (3.1.1) has no negative acknowledgment.
    #[error("publish denied")]
    PublishDenied,
    /// The retained-message store is full and the protocol has no way to say so.
    #[error("retained message quota exceeded")]
    RetainQuota,
    /// A subscriber's queue stayed full past the backpressure timeout and the protocol (3.1.1)
    /// cannot refuse the PUBLISH: closing without PUBACK makes the client send it again.
    #[error("subscriber queue full past the backpressure timeout")]
    SubscriberStalled,
    /// The payload of a PUBLISH could not be read.
    #[error("publish payload could not be read")]
    Payload,
    /// The TLS handshake failed or the connection was refused before it.
    #[error("connection refused before mqtt")]
    Transport,
}

impl TryFrom<ConnError> for ntex_mqtt::v5::PublishAck {
    type Error = ConnError;
    fn try_from(e: ConnError) -> Result<Self, ConnError> {
        Err(e)
    }
}

/// Why an authorized PUBLISH was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// The retained-message store is full.
    RetainQuota,
    /// A subscriber's queue stayed full for `backpressure_timeout`.
    SubscriberStalled,
}

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubRefusal {
    NotAuthorized,
    FilterInvalid,
    /// No Local set on a shared subscription: a protocol error (MQTT 5 §3.8.3.1).
    SharedNoLocal,
    QuotaExceeded,
}

/// An authorized PUBLISH, protocol-neutral.
pub(crate) struct Inbound {
    pub(crate) topic: ByteString,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) pid: Option<NonZeroU16>,
    pub(crate) props: Option<Box<MessageProps>>,
    pub(crate) expiry_secs: Option<u32>,
}

/// State of one live connection.
pub(crate) struct ConnCore {
    pub(crate) hub: Arc<Hub>,
    pub(crate) session: Arc<SessionState>,
    pub(crate) conn_id: u64,
    pub(crate) signal: Arc<ConnSignal>,
    pub(crate) identity: DeviceIdentity,
    pub(crate) will: RefCell<Option<Will>>,
    cause: RefCell<Option<DisconnectCause>>,
    /// Window, rate and order of inbound PUBLISH packets.
    gate: InboundGate,
    /// The client's maximum packet size (MQTT 5 CONNECT property).
    pub(crate) max_outbound_packet: Option<u32>,
    /// Topic aliases the client accepts from the broker (MQTT 5 CONNECT property; 0: none).
    pub(crate) client_alias_max: u16,
    /// Bytes of this connection's messages the broker still holds (memory budget).
    caused: Arc<AtomicUsize>,
}

impl ConnCore {
    pub(crate) fn new(hub: Arc<Hub>, a: Accepted, max_outbound_packet: Option<u32>) -> Self {
        ConnCore {
            gate: InboundGate::new(hub.limits.inflight_window, a.limits.publish_rate),
            hub,
            session: a.session,
            conn_id: a.conn_id,
            signal: a.signal,
            identity: a.identity,
            will: RefCell::new(a.will),
            cause: RefCell::new(None),
            max_outbound_packet,
            client_alias_max: 0,
            caused: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Records why the connection is ending (the first reason recorded wins).
    pub(crate) fn set_cause(&self, cause: DisconnectCause) {
        let mut c = self.cause.borrow_mut();
        if c.is_none() {
            *c = Some(cause);
        }
    }

    pub(crate) fn device_id(&self) -> &str {
        self.identity.device_id()
    }

    fn denied(&self, action: DeniedAction, denied: &Denied) {
        inc(&self.session.counters.authz_failures);
        self.hub.events.emit(BrokerEvent::Denied {
            device_id: self.device_id().to_string(),
            source: self.identity.source(),
            action,
            reason: denied.reason().to_string(),
        });
    }

    /// Decides `iot:Publish` (and `iot:RetainPublish` for a retained message), emitting the
    /// denial event.
    pub(crate) fn authorize_publish(&self, topic: &str, retain: bool) -> Result<(), ()> {
        let policy = self.session.policy();
        if let Err(d) = policy.authorize(Action::Publish { topic }) {
            self.denied(DeniedAction::Publish(topic.to_string()), &d);
            return Err(());
        }
        if retain && let Err(d) = policy.authorize(Action::RetainPublish { topic }) {
            self.denied(DeniedAction::RetainPublish(topic.to_string()), &d);
            return Err(());
        }
        Ok(())
    }

    /// Waits until this connection may take another PUBLISH (see [`gate`]): the publish
    /// services of both protocols call it in `ready`, so ntex stops reading the socket.
    pub(crate) async fn publish_ready(&self) {
        // The fast path keeps this future small: ntex keeps a connection's readiness future
        // allocated, and the waiting states below (two timers) are ~2 KiB per connection.
        if !self.hub.budget.holds(self.caused.load(Ordering::Relaxed)) && self.gate.try_ready() {
            return;
        }
        Box::pin(self.publish_ready_slow()).await;
    }

    /// [`Self::publish_ready`] when the connection must wait (memory budget, window or rate).
    async fn publish_ready_slow(&self) {
        // Over the memory budget, the heaviest publishers stop being read first.
        if self.hub.budget.holds(self.caused.load(Ordering::Relaxed)) {
            self.hub
                .metrics
                .throttled_for(metrics::Throttle::MemoryBudget);
            while self.hub.budget.holds(self.caused.load(Ordering::Relaxed)) {
                ntex_util::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        self.gate
            .ready(|| {
                self.hub
                    .metrics
                    .throttled_for(metrics::Throttle::PublishRate);
                self.hub.events.emit(BrokerEvent::PublishRateExceeded {
                    device_id: self.device_id().to_string(),
                })
            })
            .await;
    }

    /// Admits one PUBLISH after [`Self::publish_ready`].
    pub(crate) fn begin_publish(&self) -> Admitted<'_> {
        self.gate.admit()
    }

    /// Has this (QoS 2) packet id been routed already, on a previous connection of the session?
    pub(crate) fn qos2_seen(&self, pid: Option<NonZeroU16>) -> bool {
        pid.is_some_and(|p| self.session.lock().qos2_in.contains(&p.get()))
    }

    /// Accepts an authorized PUBLISH in its turn: counts it, stores it when retained, routes
    /// it. A QoS 1/2 message is queued for every connected matching subscriber before this
    /// returns (and the protocol layer acknowledges it): when a subscriber's queue is full the
    /// publisher waits for room, up to `backpressure_timeout`; past it the message is dropped
    /// for that subscriber, counted, and the publisher is told (v5 `0x97`; v3 has no negative
    /// acknowledgment, so its connection closes): a successful PUBACK always means queued.
    pub(crate) async fn accept_publish(
        &self,
        admitted: &Admitted<'_>,
        p: Inbound,
    ) -> Result<(), AcceptError> {
        admitted.my_turn().await;
        let counters = &self.session.counters;
        inc(&counters.messages_in);
        self.hub.metrics.message_in(p.qos);
        add(&counters.bytes_in, p.payload.len() as u64);
        let bytes = Message::footprint(&p.topic, &p.payload, p.props.as_deref());
        let msg = Arc::new(Message {
            charge: Some(self.hub.budget.charge(bytes, &self.caused)),
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            origin: self.session.id,
            props: p.props,
            expires_at: p
                .expiry_secs
                .map(|s| Instant::now() + std::time::Duration::from_secs(s.into())),
        });
        if p.retain {
            self.hub
                .store_retained(&msg)
                .map_err(|_| AcceptError::RetainQuota)?;
        }
        if p.qos == QoS::ExactlyOnce
            && let Some(pid) = p.pid
        {
            self.session.lock().qos2_in.insert(pid.get());
        }
        let on_full = if p.qos == QoS::AtMostOnce {
            OnFull::Drop
        } else {
            OnFull::Wait
        };
        let mut all_queued = true;
        for blocked in self.hub.route(&msg, on_full) {
            all_queued &= self.wait_for_room(blocked).await;
        }
        if all_queued {
            Ok(())
        } else {
            Err(AcceptError::SubscriberStalled)
        }
    }

    /// Offers a blocked delivery again each time its subscriber's queue shrinks, until it is
    /// queued, the subscriber disconnects (then the offline rules apply) or the timeout passes
    /// (`false`: the message is dropped for that subscriber, counted).
    async fn wait_for_room(&self, blocked: Blocked) -> bool {
        let Blocked {
            mut session,
            mut delivery,
            group,
        } = blocked;
        let mut waiting = Some(session.waiting());
        inc(&self.hub.stats.backpressure_waits);
        let deadline = Instant::now() + self.hub.limits.backpressure_timeout;
        loop {
            // A share-group member that went away while we waited: the message goes to another
            // member (or to nobody, when the group emptied: no subscription matches any more).
            if let Some(g) = &group
                && !session.is_attached()
            {
                drop(waiting.take());
                match self.hub.deliver_shared(g, &delivery.msg, OnFull::Wait) {
                    None => return true,
                    Some(b) => {
                        session = b.session;
                        delivery = b.delivery;
                        waiting = Some(session.waiting());
                    }
                }
            }
            let mut room = std::pin::pin!(session.space.notified());
            room.as_mut().enable();
            match self.hub.offer(&session, delivery, OnFull::Retry) {
                None => return true,
                Some(d) => delivery = d,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // A share-group message also looks, every few milliseconds, for another member
            // that has room now: room in the awaited member's queue is not the only way out.
            let tick = match group {
                Some(_) => left.min(SHARED_RECHECK),
                None => left,
            };
            if !left.is_zero() && ntex_util::time::timeout(tick, room).await.is_ok() {
                continue;
            }
            if let Some(g) = &group
                && self
                    .hub
                    .offer_to_member_with_room(g, &delivery.msg, session.id)
            {
                return true;
            }
            if tick >= left {
                inc(&self.hub.stats.backpressure_timeouts);
                inc(&session.counters.messages_dropped);
                self.hub.metrics.dropped(metrics::Drop::BackpressureTimeout);
                return false;
            }
        }
    }

    /// PUBREL: the client released a QoS 2 packet id.
    pub(crate) fn release(&self, pid: NonZeroU16) {
        self.session.lock().qos2_in.remove(&pid.get());
    }

    /// Decides and applies one subscription. Returns the granted QoS and whether the
    /// subscription is new.
    pub(crate) fn subscribe(
        &self,
        filter: &str,
        opts: SubOptions,
    ) -> Result<(QoS, bool), SubRefusal> {
        if topic::validate_topic_filter(filter).is_err() {
            return Err(SubRefusal::FilterInvalid);
        }
        // `$share/<group>/<filter>`: the group is checked here; the policy decides on the whole
        // string, as AWS IoT does (`topicfilter/$share/<group>/<filter>`), and `iot:Receive`
        // on the concrete topic of each message.
        match topic::parse_shared(filter) {
            Err(_) => return Err(SubRefusal::FilterInvalid),
            // [MQTT-3.8.3-4]: "No Local" on a shared subscription is a protocol error.
            Ok(Some(_)) if opts.no_local => return Err(SubRefusal::SharedNoLocal),
            Ok(_) => {}
        }
        if let Err(d) = self
            .session
            .policy()
            .authorize(Action::Subscribe { filter })
        {
            self.denied(DeniedAction::Subscribe(filter.to_string()), &d);
            return Err(SubRefusal::NotAuthorized);
        }
        match self.hub.subscribe(&self.session, filter, opts) {
            Ok(existed) => Ok((opts.qos, !existed)),
            Err(SubscribeError::QuotaExceeded) => Err(SubRefusal::QuotaExceeded),
            Err(SubscribeError::SessionGone) => Err(SubRefusal::NotAuthorized),
            Err(SubscribeError::Invalid) => Err(SubRefusal::FilterInvalid),
        }
    }
}

impl Drop for ConnCore {
    fn drop(&mut self) {
        self.signal.close();
        let cause = match self.signal.kick_reason() {
            Some(reason) => DisconnectCause::Kicked(reason),
            None => self.cause.take().unwrap_or(DisconnectCause::ConnectionLost),
        };
        self.hub.detach(
            &self.session,
            self.conn_id,
            self.identity.source(),
            self.will.take(),
            cause,
        );
    }
}

/// What the delivery task needs from an ntex sink (v3 and v5 differ in details).
pub(crate) trait Outbound: 'static {
    fn is_open(&self) -> bool;
    fn is_ready(&self) -> bool;
    fn ready(&self) -> impl Future<Output = bool>;
    /// Sends QoS 0 (`pid` = `None`) or QoS 1 without waiting for the PUBACK.
    fn send(&self, d: &Delivery, pid: Option<NonZeroU16>, now: Instant) -> bool;
    /// Sends QoS 2; the future resolves `true` when PUBCOMP arrives.
    fn send_exactly_once(
        &self,
        d: &Delivery,
        pid: NonZeroU16,
        now: Instant,
    ) -> Pin<Box<dyn Future<Output = bool>>>;
    /// Whether the PUBLISH fits the client's maximum packet size.
    fn fits(&self, d: &Delivery) -> bool;
    fn close(&self, reason: KickReason);
}

const BATCH: usize = 64;

/// How often a publisher held by a full share-group member looks for another member with room.
const SHARED_RECHECK: std::time::Duration = std::time::Duration::from_millis(20);

/// Drains the session queue into the connection until the connection ends, is kicked, or is
/// replaced by another connection of the same session.
pub(crate) async fn delivery_loop<O: Outbound>(
    out: O,
    hub: Arc<Hub>,
    session: Arc<SessionState>,
    signal: Arc<ConnSignal>,
    conn_id: u64,
) {
    'outer: loop {
        if signal.is_closed() || !out.is_open() {
            break;
        }
        if let Some(reason) = signal.kick_reason() {
            out.close(reason);
            break;
        }
        let mut batch = Vec::new();
        if !session.pop_batch(conn_id, BATCH, &mut batch) {
            break; // taken over or detached
        }
        if batch.is_empty() {
            drop(batch);
            signal.notified().await;
            continue;
        }
        let mut items = batch.into_iter();
        while let Some(d) = items.next() {
            if !out.is_ready() {
                match select(out.ready(), signal.notified()).await {
                    Either::Left(true) => {}
                    _ => {
                        session.requeue_front(std::iter::once(d).chain(items));
                        continue 'outer;
                    }
                }
            }
            if !send_one(&out, &hub, &session, conn_id, d).await {
                session.requeue_front(items);
                continue 'outer;
            }
        }
    }
}

/// Sends one delivery; `false` when the connection can no longer take it.
async fn send_one<O: Outbound>(
    out: &O,
    hub: &Arc<Hub>,
    session: &Arc<SessionState>,
    conn_id: u64,
    d: Delivery,
) -> bool {
    let now = Instant::now();
    let counters = &session.counters;
    if d.msg.is_expired(now) || !out.fits(&d) {
        inc(&counters.messages_dropped);
        hub.metrics.dropped(metrics::Drop::ExpiredOrTooLarge);
        return true;
    }
    if d.epoch != session.epoch()
        && let Err(denied) = session.policy().authorize(Action::Receive {
            topic: &d.msg.topic,
        })
    {
        // The policy changed after this message was queued: decide again.
        inc(&counters.authz_failures);
        hub.events.emit(BrokerEvent::Denied {
            device_id: session.device_id.to_string(),
            source: session.lock().identity.source(),
            action: DeniedAction::Receive(d.msg.topic.to_string()),
            reason: denied.reason().to_string(),
        });
        return true;
    }
    match d.qos {
        QoS::AtMostOnce => {
            if out.send(&d, None, now) {
                hub.metrics.message_out(QoS::AtMostOnce);
                inc(&counters.messages_out);
                add(&counters.bytes_out, d.msg.payload.len() as u64);
            }
            true
        }
        QoS::AtLeastOnce => {
            let Some(pid) = session.begin_inflight(conn_id, &d) else {
                return false;
            };
            out.send(&d, Some(pid), now)
        }
        QoS::ExactlyOnce => {
            let Some(pid) = session.begin_inflight(conn_id, &d) else {
                return false;
            };
            // Poll the exchange once here so the PUBLISH is written in queue order; the rest of
            // the PUBREC/PUBREL/PUBCOMP exchange continues in its own task.
            let mut fut = out.send_exactly_once(&d, pid, now);
            let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
            let session = session.clone();
            match first {
                Poll::Ready(done) => {
                    if done && session.ack_inflight(conn_id, pid.get()).is_some() {
                        hub.metrics.message_out(QoS::ExactlyOnce);
                    }
                }
                Poll::Pending => {
                    let hub = hub.clone();
                    ntex_rt::spawn(async move {
                        if fut.await && session.ack_inflight(conn_id, pid.get()).is_some() {
                            hub.metrics.message_out(QoS::ExactlyOnce);
                        }
                    });
                }
            }
            true
        }
    }
}
