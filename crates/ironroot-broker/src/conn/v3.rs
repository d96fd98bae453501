//! MQTT 3.1.1 connections.
//!
//! 3.1.1 has no negative acknowledgments, so refusals look like this:
//!
//! - CONNECT: return code 2 (identifier rejected) for a bad or mismatched client id, 5 (not
//!   authorized) for policy refusals, a refused will, a revoked serial;
//! - SUBSCRIBE: return code `0x80` (failure) for the refused filter; the others are granted;
//! - PUBLISH (and retained PUBLISH) denied: the connection is closed, as [MQTT-3.3.5-2] allows —
//!   acknowledging and dropping would tell a QoS 1/2 sender its message was delivered;
//! - over the PUBLISH rate or the inflight window: the connection is throttled (reading
//!   pauses), nothing is lost.

use std::convert::Infallible;
use std::num::NonZeroU16;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ntex_mqtt::v3::codec::{Decoded, Encoded, Packet};
use ntex_mqtt::v3::{self, ProtocolMessage, ProtocolMessageAck};
use ntex_mqtt::{Control, QoS, Reason, error::DispatcherError};
use ntex_service::{Ctx, Middleware, Service, ServiceFactory};
use ntex_util::time::Seconds;

use super::listener::{credential, peer_addr};
use super::{AcceptError, ConnCore, ConnError, Inbound, Outbound, delivery_loop};
use crate::events::{DisconnectCause, KickReason, Protocol};
use crate::hub::Hub;
use crate::message::Delivery;
use crate::registry::{ConnectRequest, RefuseCode, WillRequest};
use crate::session::SubOptions;

/// The per-connection state as ntex hands it to services.
pub(crate) type Session = v3::Session<ConnCore>;

pub(crate) async fn connect(
    hub: Arc<Hub>,
    plaintext: bool,
    c: v3::Connect,
) -> Result<v3::ConnectAck<ConnCore>, ConnError> {
    let pkt = c.packet();
    let will = pkt.last_will.as_ref().map(|w| WillRequest {
        topic: w.topic.clone(),
        payload: w.message.clone(),
        qos: w.qos,
        retain: w.retain,
        delay: Duration::ZERO,
        expiry_secs: None,
        props: None,
    });
    let expiry = if pkt.clean_session {
        Duration::ZERO
    } else {
        hub.limits.v3_session_expiry
    };
    let req = ConnectRequest {
        client_id: pkt.client_id.to_string(),
        source: peer_addr(c.io()),
        credential: credential(c.io(), plaintext),
        protocol: Protocol::V311,
        clean_start: pkt.clean_session,
        expiry,
        will,
        auth_method: false,
    };
    let keepalive = grant_keepalive(pkt.keep_alive, hub.limits.max_keepalive_secs);
    let window = hub.limits.inflight_window;
    match hub.connect(req) {
        Ok(accepted) => {
            let present = accepted.session_present;
            let core = ConnCore::new(hub, accepted, None);
            // ntex closes the connection after 1.5 × keep-alive without a packet [MQTT-3.1.2-24].
            Ok(c.ack(core, present)
                .idle_timeout(Seconds(keepalive.saturating_add(keepalive / 2)))
                .max_send(Some(window)))
        }
        Err(RefuseCode::IdentifierRejected) => Ok(c.identifier_rejected()),
        Err(
            RefuseCode::NotAuthorized | RefuseCode::TopicNameInvalid | RefuseCode::BadAuthMethod,
        ) => Ok(c.not_authorized()),
        Err(RefuseCode::QuotaExceeded) => Ok(c.service_unavailable()),
    }
}

/// Keep-alive the broker enforces: the client's, capped; "0 = none" becomes the cap.
pub(crate) fn grant_keepalive(requested: u16, max: u16) -> u16 {
    if requested == 0 || requested > max {
        max
    } else {
        requested
    }
}

/// Creates the publish service of a connection, and starts its delivery task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublishFactory;

impl ServiceFactory<Session, v3::Publish> for PublishFactory {
    type Res = ();
    type Error = ConnError;
    type Service = PublishService;
    type InitError = Infallible;

    async fn create(&self, s: &Session) -> Result<PublishService, Infallible> {
        let sink = s.sink().clone();
        let session = s.session.clone();
        let conn_id = s.conn_id;
        let hub = s.hub.clone();
        sink.publish_ack_cb(move |pid, disconnected| {
            if !disconnected && let Some(q) = session.ack_inflight(conn_id, pid.get()) {
                hub.metrics.message_out(q);
            }
        });
        ntex_rt::spawn(delivery_loop(
            V3Out { sink },
            s.hub.clone(),
            s.session.clone(),
            s.signal.clone(),
            s.conn_id,
        ));
        Ok(PublishService)
    }
}

/// Decides and routes PUBLISH packets.
#[derive(Debug)]
pub(crate) struct PublishService;

impl Service<Session, v3::Publish> for PublishService {
    type Res = ();
    type Error = ConnError;

    async fn ready(&self, ctx: Ctx<'_, Self, Session>) -> Result<(), ConnError> {
        ctx.st().publish_ready().await;
        Ok(())
    }

    async fn call(&self, p: v3::Publish, ctx: Ctx<'_, Self, Session>) -> Result<(), ConnError> {
        let core: &ConnCore = ctx.st();
        let admitted = core.begin_publish();
        let topic = p.packet().topic.clone();
        if core.authorize_publish(&topic, p.retain()).is_err() {
            core.set_cause(DisconnectCause::PublishDenied);
            return Err(ConnError::PublishDenied);
        }
        let payload = p.read_all().await.map_err(|_| ConnError::Payload)?;
        if p.qos() == QoS::ExactlyOnce && core.qos2_seen(p.id()) {
            return Ok(()); // re-sent after a reconnect; routed already, PUBREC again
        }
        let inbound = Inbound {
            topic,
            payload,
            qos: p.qos(),
            retain: p.retain(),
            pid: p.id(),
            props: None,
            expiry_secs: None,
        };
        core.accept_publish(&admitted, inbound)
            .await
            .map_err(|e| match e {
                AcceptError::RetainQuota => {
                    core.set_cause(DisconnectCause::ProtocolError(
                        "retained message quota exceeded".into(),
                    ));
                    ConnError::RetainQuota
                }
                AcceptError::SubscriberStalled => {
                    core.set_cause(DisconnectCause::ProtocolError(
                        "subscriber queue full past the backpressure timeout".into(),
                    ));
                    ConnError::SubscriberStalled
                }
            })
    }
}

/// SUBSCRIBE, UNSUBSCRIBE, PUBREL, PINGREQ, DISCONNECT.
pub(crate) async fn protocol(
    s: &Session,
    msg: ProtocolMessage,
) -> Result<ProtocolMessageAck, ConnError> {
    Ok(match msg {
        ProtocolMessage::Subscribe(mut sub) => {
            let mut retained = Vec::new();
            for mut t in sub.iter_mut() {
                let opts = SubOptions {
                    qos: t.qos(),
                    no_local: false,
                    retain_as_published: false,
                    id: None,
                };
                match s.subscribe(t.topic(), opts) {
                    Ok((qos, _)) => {
                        t.confirm(qos);
                        retained.push((t.topic().clone(), qos));
                    }
                    Err(_) => t.fail(),
                }
            }
            let ack = sub.ack();
            for (filter, qos) in retained {
                s.hub.send_retained(&s.session, &filter, qos, None);
            }
            ack
        }
        ProtocolMessage::Unsubscribe(u) => {
            for f in u.iter() {
                s.hub.unsubscribe(&s.session, f);
            }
            u.ack()
        }
        ProtocolMessage::PublishRelease(r) => {
            s.release(r.id());
            r.ack()
        }
        ProtocolMessage::Ping(p) => p.ack(),
        ProtocolMessage::Disconnect(d) => {
            s.set_cause(DisconnectCause::ClientDisconnect);
            s.will.borrow_mut().take(); // [MQTT-3.14.4-3]
            d.ack()
        }
    })
}

/// Records why the connection stopped.
pub(crate) async fn control(
    s: &Session,
    c: Control<ConnError>,
) -> Result<Option<Encoded>, ConnError> {
    if let Control::Stop(reason) = c {
        s.set_cause(match reason {
            Reason::Protocol(e) => match e.get_ref() {
                ntex_mqtt::MqttProtocolError::KeepAliveTimeout => DisconnectCause::KeepAliveTimeout,
                other => DisconnectCause::ProtocolError(other.to_string()),
            },
            Reason::PeerGone(_) => DisconnectCause::ConnectionLost,
            Reason::Error(e) => match e.get_ref() {
                ConnError::PublishDenied => DisconnectCause::PublishDenied,
                other => DisconnectCause::ProtocolError(other.to_string()),
            },
        });
    }
    Ok(None)
}

struct V3Out {
    sink: v3::MqttSink,
}

impl Outbound for V3Out {
    fn is_open(&self) -> bool {
        self.sink.is_open()
    }

    fn is_ready(&self) -> bool {
        self.sink.is_ready()
    }

    fn ready(&self) -> impl Future<Output = bool> {
        self.sink.ready()
    }

    fn send(&self, d: &Delivery, pid: Option<NonZeroU16>, _: Instant) -> bool {
        let mut b = self.sink.publish(d.msg.topic.clone());
        if d.retain {
            b = b.retain();
        }
        if d.dup && pid.is_some() {
            b = b.dup(true);
        }
        let payload = d.msg.payload.clone();
        match pid {
            None => b.send_at_most_once(payload).is_ok(),
            Some(pid) => b
                .packet_id(pid.get())
                .send_at_least_once_no_block(payload)
                .is_ok(),
        }
    }

    fn send_exactly_once(
        &self,
        d: &Delivery,
        pid: NonZeroU16,
        _: Instant,
    ) -> Pin<Box<dyn Future<Output = bool>>> {
        let mut b = self.sink.publish(d.msg.topic.clone()).packet_id(pid.get());
        if d.retain {
            b = b.retain();
        }
        if d.dup {
            b = b.dup(true);
        }
        let payload = d.msg.payload.clone();
        Box::pin(async move {
            match b.send_exactly_once(payload).await {
                Ok(received) => received.release().await.is_ok(),
                Err(_) => false,
            }
        })
    }

    fn fits(&self, _: &Delivery) -> bool {
        true // 3.1.1 clients cannot announce a maximum packet size
    }

    fn close(&self, _: KickReason) {
        // 3.1.1 has no server DISCONNECT: close the network connection.
        self.sink.close();
    }
}

/// Answers a PUBREL for a packet id this connection never saw: a QoS 2 exchange started on a
/// previous connection of the session, whose PUBLISH was routed then. ntex would treat it as a
/// protocol error and close the connection — in a loop, since the client re-sends the PUBREL
/// on every reconnect ([MQTT-4.4.0-1]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReleaseGuard;

impl<S> Middleware<S, Session> for ReleaseGuard {
    type Service = ReleaseGuardService<S>;

    fn create(&self, st: &Session, service: S) -> Self::Service {
        ReleaseGuardService {
            inner: service,
            seen: Default::default(),
            core_session: st.session.clone(),
        }
    }
}

pub(crate) struct ReleaseGuardService<S> {
    inner: S,
    seen: std::cell::RefCell<std::collections::HashSet<u16>>,
    core_session: Arc<crate::session::SessionState>,
}

impl<S, E> Service<Session, Decoded> for ReleaseGuardService<S>
where
    S: Service<Session, Decoded, Res = Option<Encoded>, Error = DispatcherError<E>>,
{
    type Res = Option<Encoded>;
    type Error = DispatcherError<E>;

    ntex_service::forward_ready!(Session, inner);
    ntex_service::forward_shutdown!(Session, inner);

    async fn call(
        &self,
        req: Decoded,
        ctx: Ctx<'_, Self, Session>,
    ) -> Result<Option<Encoded>, DispatcherError<E>> {
        match &req {
            Decoded::Publish(p, _, _) if p.qos == QoS::ExactlyOnce => {
                if let Some(pid) = p.packet_id {
                    self.seen.borrow_mut().insert(pid.get());
                }
            }
            Decoded::Packet(Packet::PublishRelease { packet_id }, _)
                if !self.seen.borrow_mut().remove(&packet_id.get()) =>
            {
                self.core_session.lock().qos2_in.remove(&packet_id.get());
                return Ok(Some(Encoded::Packet(Packet::PublishComplete {
                    packet_id: *packet_id,
                })));
            }
            _ => {}
        }
        ctx.call(&self.inner, req).await
    }
}
