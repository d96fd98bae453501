//! The glue between ntex-mqtt connections and the hub: per-connection state, the policy checks
//! on PUBLISH/SUBSCRIBE, and the delivery task that drains a session queue into the socket.
//!
//! Each connection lives on one ntex worker thread. Its [`ConnCore`] is reached through the
//! ntex `Session` (`Rc`, not `Send`); everything other threads need is in the `Arc`ed
//! [`SessionState`] and [`ConnSignal`].

pub(crate) mod listener;
pub(crate) mod v3;
pub(crate) mod v5;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::num::NonZeroU16;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use ntex_bytes::{ByteString, Bytes};
use ntex_mqtt::QoS;
use ntex_util::future::{Either, select};

use crate::authz::{Action, Denied};
use crate::config::RateLimit;
use crate::counters::{add, inc};
use crate::events::{BrokerEvent, DeniedAction, DisconnectCause, KickReason};
use crate::hub::{Hub, RetainError, SubscribeError};
use crate::identity::DeviceIdentity;
use crate::limits::TokenBucket;
use crate::message::{Delivery, Message, MessageProps};
use crate::registry::{Accepted, Will};
use crate::session::{ConnSignal, SessionState, SubOptions};
use crate::topic;

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

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubRefusal {
    NotAuthorized,
    FilterInvalid,
    SharedNotSupported,
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
    bucket: RefCell<Option<TokenBucket>>,
    rate_limit: Option<RateLimit>,
    throttled: Cell<bool>,
    /// The client's maximum packet size (MQTT 5 CONNECT property).
    pub(crate) max_outbound_packet: Option<u32>,
}

impl ConnCore {
    pub(crate) fn new(hub: Arc<Hub>, a: Accepted, max_outbound_packet: Option<u32>) -> Self {
        let rate_limit = hub.limits.publish_rate;
        ConnCore {
            bucket: RefCell::new(rate_limit.map(|l| TokenBucket::new(&l, Instant::now()))),
            rate_limit,
            hub,
            session: a.session,
            conn_id: a.conn_id,
            signal: a.signal,
            identity: a.identity,
            will: RefCell::new(a.will),
            cause: RefCell::new(None),
            throttled: Cell::new(false),
            max_outbound_packet,
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

    /// MQTT 3.1.1 rate limit: wait until the connection's bucket covers this PUBLISH. Waiting in
    /// the publish service stops ntex from reading further packets once its in-flight limit is
    /// reached, so an over-eager client is slowed down by TCP back-pressure and loses nothing.
    pub(crate) async fn throttle(&self) {
        let Some(limit) = self.rate_limit else {
            return;
        };
        let wait = self
            .bucket
            .borrow_mut()
            .as_mut()
            .map_or(std::time::Duration::ZERO, |b| {
                b.take_or_wait(&limit, Instant::now())
            });
        if wait.is_zero() {
            self.throttled.set(false);
            return;
        }
        self.note_rate_exceeded();
        ntex_util::time::sleep(wait).await;
    }

    /// MQTT 5 rate limit: `false` when this PUBLISH exceeds the rate (answered with `0x97`).
    pub(crate) fn rate_admits(&self) -> bool {
        let Some(limit) = self.rate_limit else {
            return true;
        };
        let ok = self
            .bucket
            .borrow_mut()
            .as_mut()
            .is_none_or(|b| b.try_take(&limit, Instant::now()));
        if ok {
            self.throttled.set(false);
        } else {
            self.note_rate_exceeded();
        }
        ok
    }

    fn note_rate_exceeded(&self) {
        if !self.throttled.replace(true) {
            self.hub.events.emit(BrokerEvent::PublishRateExceeded {
                device_id: self.device_id().to_string(),
            });
        }
    }

    /// Has this (QoS 2) packet id been routed already, on a previous connection of the session?
    pub(crate) fn qos2_seen(&self, pid: Option<NonZeroU16>) -> bool {
        pid.is_some_and(|p| self.session.lock().qos2_in.contains(&p.get()))
    }

    /// Accepts an authorized PUBLISH: counts it, stores it when retained, routes it.
    pub(crate) fn accept_publish(&self, p: Inbound) -> Result<(), RetainError> {
        let counters = &self.session.counters;
        inc(&counters.messages_in);
        add(&counters.bytes_in, p.payload.len() as u64);
        let msg = Arc::new(Message {
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
            self.hub.store_retained(&msg)?;
        }
        if p.qos == QoS::ExactlyOnce
            && let Some(pid) = p.pid
        {
            self.session.lock().qos2_in.insert(pid.get());
        }
        self.hub.route(&msg);
        Ok(())
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
        if topic::is_shared_subscription(filter) {
            return Err(SubRefusal::SharedNotSupported);
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
    hub: &Hub,
    session: &Arc<SessionState>,
    conn_id: u64,
    d: Delivery,
) -> bool {
    let now = Instant::now();
    let counters = &session.counters;
    if d.msg.is_expired(now) || !out.fits(&d) {
        inc(&counters.messages_dropped);
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
            device_id: session.client_id.to_string(),
            source: session.lock().identity.source(),
            action: DeniedAction::Receive(d.msg.topic.to_string()),
            reason: denied.reason().to_string(),
        });
        return true;
    }
    match d.qos {
        QoS::AtMostOnce => {
            if out.send(&d, None, now) {
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
                    if done {
                        session.ack_inflight(conn_id, pid.get());
                    }
                }
                Poll::Pending => {
                    ntex_rt::spawn(async move {
                        if fut.await {
                            session.ack_inflight(conn_id, pid.get());
                        }
                    });
                }
            }
            true
        }
    }
}
