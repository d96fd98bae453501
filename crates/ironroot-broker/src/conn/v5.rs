//! MQTT 5 connections: the same decisions as 3.1.1, answered with reason codes.
//!
//! | refusal | answer |
//! |---|---|
//! | client id malformed, or ≠ certificate CN and not allowed by `iot:Connect` | CONNACK `0x85` Client Identifier not valid |
//! | `iot:Connect` denied, will denied, revoked serial, client id held by another device | CONNACK `0x87` Not authorized |
//! | will topic malformed | CONNACK `0x90` Topic Name invalid |
//! | enhanced authentication requested | CONNACK `0x8C` Bad authentication method |
//! | `iot:Publish` / `iot:RetainPublish` denied | PUBACK/PUBREC `0x87`; QoS 0 dropped and counted |
//! | retained store full | PUBACK/PUBREC `0x97` Quota exceeded |
//! | over the PUBLISH rate or the receive maximum | reading pauses (TCP backpressure), nothing lost |
//! | `iot:Subscribe` denied | SUBACK `0x87` |
//! | malformed `$share/` filter | SUBACK `0x8F` Topic Filter invalid |
//! | No Local on a shared subscription | DISCONNECT `0x82` Protocol Error (MQTT 5 §3.8.3.1) |
//! | subscription identifier 0 | DISCONNECT `0x81` Malformed Packet (ntex-mqtt's decoder) |
//! | topic alias unknown or above `topic_alias_max` | DISCONNECT `0x94` Topic Alias invalid |
//! | filter malformed / too many | SUBACK `0x8F` / `0x97` |
//! | kicked: operator / revoked, quarantined, policy / takeover / shutdown | DISCONNECT `0x98` / `0x87` / `0x8E` / `0x8B` |
//! | packet too large, keep-alive timeout | DISCONNECT `0x95`, `0x8D` (from ntex) |

use std::cell::RefCell;
use std::convert::Infallible;
use std::num::NonZeroU16;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ntex_mqtt::error::{DecodeError, SpecViolation};
use ntex_mqtt::v5::codec::{
    ConnectAckReason, Disconnect, DisconnectReasonCode, Encoded, Packet, PublishAckReason,
    RetainHandling, SubscribeAckReason, UnsubscribeAckReason,
};
use ntex_mqtt::v5::{self, ProtocolMessage, ProtocolMessageAck, PublishBuilder};
use ntex_mqtt::{Control, QoS, Reason};
use ntex_service::{Ctx, Service, ServiceFactory};

use super::alias::{Alias, OutboundAliases};
use super::listener::{credential, peer_addr};
use super::{ConnCore, ConnError, Inbound, Outbound, SubRefusal, delivery_loop};
use crate::events::{DisconnectCause, KickReason, Protocol};
use crate::hub::Hub;
use crate::message::{Delivery, MessageProps};
use crate::registry::{ConnectRequest, RefuseCode, WillRequest};
use crate::session::SubOptions;

pub(crate) type Session = v5::Session<ConnCore>;

fn props(
    content_type: &Option<ntex_bytes::ByteString>,
    correlation_data: &Option<ntex_bytes::Bytes>,
    response_topic: &Option<ntex_bytes::ByteString>,
    user_properties: &v5::codec::UserProperties,
    is_utf8_payload: bool,
) -> Option<Box<MessageProps>> {
    let p = MessageProps {
        content_type: content_type.clone(),
        correlation_data: correlation_data.clone(),
        response_topic: response_topic.clone(),
        user_properties: user_properties.clone(),
        is_utf8_payload,
    };
    (!p.is_empty()).then(|| Box::new(p))
}

pub(crate) async fn connect(
    hub: Arc<Hub>,
    plaintext: bool,
    c: v5::Connect,
) -> Result<v5::ConnectAck<ConnCore>, ConnError> {
    let pkt = c.packet();
    let limits = &hub.limits;
    let will = pkt.last_will.as_ref().map(|w| WillRequest {
        topic: w.topic.clone(),
        payload: w.message.clone(),
        qos: w.qos,
        retain: w.retain,
        delay: Duration::from_secs(w.will_delay_interval_sec.unwrap_or(0).into()),
        expiry_secs: w.message_expiry_interval.map(|e| e.get()),
        props: props(
            &w.content_type,
            &w.correlation_data,
            &w.response_topic,
            &w.user_properties,
            w.is_utf8_payload.unwrap_or(false),
        ),
    });
    let requested = Duration::from_secs(pkt.session_expiry_interval_secs.into());
    let expiry = requested.min(limits.max_session_expiry);
    let keepalive = super::v3::grant_keepalive(pkt.keep_alive, limits.max_keepalive_secs);
    let max_outbound = pkt.max_packet_size.map(|m| m.get());
    let req = ConnectRequest {
        client_id: pkt.client_id.to_string(),
        source: peer_addr(c.io()),
        credential: credential(c.io(), plaintext),
        protocol: Protocol::V5,
        clean_start: pkt.clean_start,
        expiry,
        will,
        auth_method: pkt.auth_method.is_some(),
    };
    let keepalive_changed = keepalive != pkt.keep_alive;
    let client_alias_max = pkt.topic_alias_max;
    let topic_alias_max = limits.topic_alias_max;
    let expiry_changed = expiry != requested;
    let window = limits.inflight_window;
    match hub.connect(req) {
        Ok(accepted) => {
            let present = accepted.session_present;
            let assigned = accepted.assigned_client_id.clone();
            let mut core = ConnCore::new(hub, accepted, max_outbound);
            core.client_alias_max = client_alias_max;
            Ok(c.ack(core)
                .with(|ack| {
                    ack.session_present = present;
                    ack.retain_available = true;
                    ack.wildcard_subscription_available = true;
                    ack.subscription_identifiers_available = true;
                    ack.shared_subscription_available = true;
                    ack.topic_alias_max = topic_alias_max;
                    ack.assigned_client_id = assigned.map(Into::into);
                    ack.max_qos = QoS::ExactlyOnce;
                    if keepalive_changed {
                        ack.server_keepalive_sec = Some(keepalive);
                    }
                    if expiry_changed {
                        ack.session_expiry_interval_secs =
                            Some(u32::try_from(expiry.as_secs()).unwrap_or(u32::MAX));
                    }
                })
                .keep_alive(keepalive.saturating_add(keepalive / 2).max(1))
                .max_send(Some(window)))
        }
        Err(code) => Ok(c.failed(match code {
            RefuseCode::IdentifierRejected => ConnectAckReason::ClientIdentifierNotValid,
            RefuseCode::NotAuthorized => ConnectAckReason::NotAuthorized,
            RefuseCode::BadAuthMethod => ConnectAckReason::BadAuthenticationMethod,
            RefuseCode::TopicNameInvalid => ConnectAckReason::TopicNameInvalid,
            RefuseCode::QuotaExceeded => ConnectAckReason::QuotaExceeded,
        })),
    }
}

/// Creates the publish service of a connection, and starts its delivery task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublishFactory;

impl ServiceFactory<Session, v5::Publish> for PublishFactory {
    type Res = v5::PublishAck;
    type Error = ConnError;
    type Service = PublishService;
    type InitError = Infallible;

    async fn create(&self, s: &Session) -> Result<PublishService, Infallible> {
        let sink = s.sink().clone();
        let session = s.session.clone();
        let conn_id = s.conn_id;
        let hub = s.hub.clone();
        sink.publish_ack_cb(move |ack, disconnected| {
            if !disconnected && let Some(q) = session.ack_inflight(conn_id, ack.packet_id.get()) {
                hub.metrics.message_out(q);
            }
        });
        let out = V5Out {
            sink,
            max_packet: s.max_outbound_packet,
            aliases: RefCell::new(OutboundAliases::new(s.client_alias_max)),
        };
        ntex_rt::spawn(delivery_loop(
            out,
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

impl Service<Session, v5::Publish> for PublishService {
    type Res = v5::PublishAck;
    type Error = ConnError;

    async fn ready(&self, ctx: Ctx<'_, Self, Session>) -> Result<(), ConnError> {
        ctx.st().publish_ready().await;
        Ok(())
    }

    async fn call(
        &self,
        p: v5::Publish,
        ctx: Ctx<'_, Self, Session>,
    ) -> Result<v5::PublishAck, ConnError> {
        let core: &ConnCore = ctx.st();
        let admitted = core.begin_publish();
        let pkt = p.packet();
        let topic = pkt.topic.clone();
        let retain = pkt.retain;
        if core.authorize_publish(&topic, retain).is_err() {
            return Ok(p.ack().reason_code(PublishAckReason::NotAuthorized));
        }
        let qos = p.qos();
        let pid = p.id();
        let pp = &pkt.properties;
        let props = props(
            &pp.content_type,
            &pp.correlation_data,
            &pp.response_topic,
            &pp.user_properties,
            pp.is_utf8_payload,
        );
        let expiry = pp.message_expiry_interval.map(|e| e.get());
        let payload = p.read_all().await.map_err(|_| ConnError::Payload)?;
        if qos == QoS::ExactlyOnce && core.qos2_seen(pid) {
            return Ok(p.ack());
        }
        let inbound = Inbound {
            topic,
            payload,
            qos,
            retain,
            pid,
            props,
            expiry_secs: expiry,
        };
        match core.accept_publish(&admitted, inbound).await {
            Ok(()) => Ok(p.ack()),
            Err(_) => Ok(p.ack().reason_code(PublishAckReason::QuotaExceeded)),
        }
    }
}

fn sub_reason(r: SubRefusal) -> SubscribeAckReason {
    match r {
        SubRefusal::NotAuthorized => SubscribeAckReason::NotAuthorized,
        SubRefusal::FilterInvalid => SubscribeAckReason::TopicFilterInvalid,
        SubRefusal::SharedNoLocal => SubscribeAckReason::ImplementationSpecificError,
        SubRefusal::QuotaExceeded => SubscribeAckReason::QuotaExceeded,
    }
}

/// SUBSCRIBE, UNSUBSCRIBE, PUBREL, PINGREQ, DISCONNECT, AUTH.
pub(crate) async fn protocol(
    s: &Session,
    msg: ProtocolMessage,
) -> Result<ProtocolMessageAck, ConnError> {
    Ok(match msg {
        ProtocolMessage::Subscribe(mut sub) => {
            let mut retained = Vec::new();
            let id = sub.packet().id;
            let mut protocol_error = false;
            for mut t in sub.iter_mut() {
                let o = *t.options();
                let opts = SubOptions {
                    qos: o.qos,
                    no_local: o.no_local,
                    retain_as_published: o.retain_as_published,
                    id,
                };
                match s.subscribe(t.topic(), opts) {
                    Ok((qos, new)) => {
                        t.confirm(qos);
                        let send = match o.retain_handling {
                            RetainHandling::AtSubscribe => true,
                            RetainHandling::AtSubscribeNew => new,
                            RetainHandling::NoAtSubscribe => false,
                        };
                        if send {
                            retained.push((t.topic().clone(), qos));
                        }
                    }
                    Err(r) => {
                        protocol_error |= r == SubRefusal::SharedNoLocal;
                        t.fail(sub_reason(r));
                    }
                }
            }
            if protocol_error {
                s.set_cause(DisconnectCause::ProtocolError(
                    "no local set on a shared subscription".into(),
                ));
                let mut pkt = Disconnect::new(DisconnectReasonCode::ProtocolError);
                pkt.reason_string = Some(ntex_bytes::ByteString::from_static(
                    "[MQTT-3.8.3-4] No Local on a shared subscription",
                ));
                // Through the sink, like a kick: a DISCONNECT returned as the ack would be
                // encoded after ntex dropped the sink, and never reach the client.
                s.sink().close_with_reason(pkt);
                return Ok(ProtocolMessage::Subscribe(sub).disconnect());
            }
            let ack = sub.ack();
            for (filter, qos) in retained {
                s.hub.send_retained(&s.session, &filter, qos, id);
            }
            ack
        }
        ProtocolMessage::Unsubscribe(mut u) => {
            for mut item in u.iter_mut() {
                if !s.hub.unsubscribe(&s.session, item.topic()) {
                    item.fail(UnsubscribeAckReason::NoSubscriptionExisted);
                }
            }
            u.ack()
        }
        ProtocolMessage::PublishRelease(r) => {
            s.release(r.packet().packet_id);
            r.ack()
        }
        ProtocolMessage::Ping(p) => p.ack(),
        ProtocolMessage::Disconnect(d) => {
            let pkt = d.packet();
            if pkt.reason_code == DisconnectReasonCode::DisconnectWithWillMessage {
                s.set_cause(DisconnectCause::ClientDisconnectWithWill);
            } else {
                s.set_cause(DisconnectCause::ClientDisconnect);
                s.will.borrow_mut().take();
            }
            if let Some(secs) = pkt.session_expiry_interval_secs {
                let expiry = Duration::from_secs(secs.into()).min(s.hub.limits.max_session_expiry);
                s.session.lock().expiry = expiry;
            }
            d.ack()
        }
        ProtocolMessage::Auth(a) => {
            s.set_cause(DisconnectCause::ProtocolError(
                "enhanced authentication is not supported".into(),
            ));
            let ack = ProtocolMessage::Auth(a);
            ack.disconnect_with(Disconnect::new(
                DisconnectReasonCode::BadAuthenticationMethod,
            ))
        }
    })
}

/// Records why the connection stopped and answers protocol errors with a DISCONNECT carrying
/// the reason code (`0x95` packet too large, `0x8D` keep-alive timeout, ...) and a reason string.
pub(crate) async fn control(
    s: &Session,
    c: Control<ConnError>,
) -> Result<Option<Encoded>, ConnError> {
    let Control::Stop(reason) = c else {
        return Ok(None);
    };
    let (cause, pkt) = match reason {
        Reason::Protocol(e) => {
            let err = e.get_ref();
            let mut pkt = Disconnect::from_proto_error(err);
            // ntex-mqtt resolves inbound aliases itself and reports an alias above our maximum
            // as a generic protocol error; MQTT 5 §3.3.2.3.4 names it "Topic Alias invalid".
            if *err == ntex_mqtt::MqttProtocolError::spec(SpecViolation::Connack_3_2_2_17) {
                pkt.reason_code = DisconnectReasonCode::TopicAliasInvalid;
            }
            // A malformed packet (e.g. subscription identifier 0) is 0x81 (MQTT 5 §4.13), not
            // ntex's "implementation specific error".
            if *err == ntex_mqtt::MqttProtocolError::Decode(DecodeError::MalformedPacket) {
                pkt.reason_code = DisconnectReasonCode::MalformedPacket;
            }
            pkt.reason_string = Some(err.to_string().into());
            let cause = match err {
                ntex_mqtt::MqttProtocolError::KeepAliveTimeout => DisconnectCause::KeepAliveTimeout,
                other => DisconnectCause::ProtocolError(other.to_string()),
            };
            (cause, Some(pkt))
        }
        Reason::PeerGone(_) => (DisconnectCause::ConnectionLost, None),
        Reason::Error(e) => {
            let mut pkt = Disconnect::new(DisconnectReasonCode::ImplementationSpecificError);
            pkt.reason_string = Some(e.get_ref().to_string().into());
            (
                DisconnectCause::ProtocolError(e.get_ref().to_string()),
                Some(pkt),
            )
        }
    };
    s.set_cause(cause);
    Ok(pkt.map(|p| Encoded::Packet(Packet::from(p))))
}

struct V5Out {
    sink: v5::MqttSink,
    max_packet: Option<u32>,
    /// Topic aliases this connection's client accepts from us.
    aliases: RefCell<OutboundAliases>,
}

impl V5Out {
    /// The PUBLISH of `d`; with `alias`, the topic is replaced by its alias (or sent once
    /// with the alias that names it from then on).
    fn builder(&self, d: &Delivery, now: Instant, alias: Option<Alias>) -> PublishBuilder {
        let msg = &d.msg;
        let topic = match alias {
            Some(Alias::Known(_)) => ntex_bytes::ByteString::new(),
            _ => msg.topic.clone(),
        };
        self.sink
            .publish(topic)
            .retain(d.retain)
            .dup(d.dup && d.qos != QoS::AtMostOnce)
            .properties(|p| {
                p.topic_alias = alias.map(Alias::get);
                p.subscription_ids = d.sub_ids.to_vec();
                p.message_expiry_interval = msg.expiry_property(now);
                if let Some(mp) = &msg.props {
                    p.content_type = mp.content_type.clone();
                    p.correlation_data = mp.correlation_data.clone();
                    p.response_topic = mp.response_topic.clone();
                    p.user_properties = mp.user_properties.clone();
                    p.is_utf8_payload = mp.is_utf8_payload;
                }
            })
    }
}

impl Outbound for V5Out {
    fn is_open(&self) -> bool {
        self.sink.is_open()
    }

    fn is_ready(&self) -> bool {
        self.sink.is_ready()
    }

    fn ready(&self) -> impl Future<Output = bool> {
        self.sink.ready()
    }

    fn send(&self, d: &Delivery, pid: Option<NonZeroU16>, now: Instant) -> bool {
        let alias = self.aliases.borrow().lookup(&d.msg.topic);
        let b = self.builder(d, now, alias);
        let payload = d.msg.payload.clone();
        let sent = match pid {
            None => b.send_at_most_once(payload).is_ok(),
            Some(pid) => b
                .packet_id(pid.get())
                .send_at_least_once_no_block(payload)
                .is_ok(),
        };
        // The client knows an alias only once a PUBLISH carrying topic and alias went out.
        if sent && let Some(Alias::New(a)) = alias {
            self.aliases.borrow_mut().confirm(&d.msg.topic, a);
        }
        sent
    }

    fn send_exactly_once(
        &self,
        d: &Delivery,
        pid: NonZeroU16,
        now: Instant,
    ) -> Pin<Box<dyn Future<Output = bool>>> {
        // QoS 2 sends run concurrently with the loop: they never introduce an alias.
        let alias = self.aliases.borrow().lookup(&d.msg.topic);
        let alias = alias.filter(|a| matches!(a, Alias::Known(_)));
        let b = self.builder(d, now, alias).packet_id(pid.get());
        let payload = d.msg.payload.clone();
        Box::pin(async move {
            match b.send_exactly_once(payload).await {
                Ok(received) => received.release().await.is_ok(),
                Err(_) => false,
            }
        })
    }

    fn fits(&self, d: &Delivery) -> bool {
        match self.max_packet {
            None => true,
            // Measured with the full topic: an alias only makes the packet smaller.
            Some(max) => {
                self.builder(d, Instant::now(), None)
                    .size(d.msg.payload.len())
                    <= max
            }
        }
    }

    fn close(&self, reason: KickReason) {
        let (code, text) = match reason {
            KickReason::Administrative => (
                DisconnectReasonCode::AdministrativeAction,
                "disconnected by an operator",
            ),
            KickReason::Revoked => (DisconnectReasonCode::NotAuthorized, "certificate revoked"),
            KickReason::Quarantined => (DisconnectReasonCode::NotAuthorized, "device quarantined"),
            KickReason::PolicyChanged => (
                DisconnectReasonCode::NotAuthorized,
                "policy no longer allows this connection",
            ),
            KickReason::TakenOver => (
                DisconnectReasonCode::SessionTakenOver,
                "another connection took over the session",
            ),
            KickReason::Shutdown => (
                DisconnectReasonCode::ServerShuttingDown,
                "broker shutting down",
            ),
        };
        // A reason string also makes clients that skip the reason code of a 2-byte DISCONNECT
        // body (paho-mqtt 2.1) see it.
        let mut pkt = Disconnect::new(code);
        pkt.reason_string = Some(ntex_bytes::ByteString::from_static(text));
        self.sink.close_with_reason(pkt);
    }
}
