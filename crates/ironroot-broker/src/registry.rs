//! Session lifecycle on the hub: CONNECT admission, takeover, detach with last will, expiry.
//! The live-enforcement operations (kick, revocation, quarantine, policy change) are in
//! `enforcement`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use ntex_bytes::{ByteString, Bytes};
use ntex_mqtt::QoS;

use crate::authz::{Action, SessionPolicy};
use crate::config::IdentityLimits;
use crate::counters::inc;
use crate::events::{
    BrokerEvent, DeniedAction, DisconnectCause, KickReason, Protocol, RefusalReason,
};
use crate::hub::Hub;
use crate::identity::{self, ClientIdError, DeviceIdentity, IdentityError};
use crate::message::{Message, MessageProps};
use crate::session::{Attached, ConnSignal, OnFull, PendingWill, SessionState};
use crate::topic;
use ironroot_pki::Serial;

/// What the TLS layer told us about the peer.
#[derive(Debug)]
pub(crate) enum PeerCredential {
    /// The verified end-entity certificate, parsed.
    Certificate(Result<(String, Serial), IdentityError>),
    /// A `danger` plaintext listener: the client id is taken on faith.
    DangerPlaintext,
}

/// A last will as sent in CONNECT.
#[derive(Debug)]
pub(crate) struct WillRequest {
    pub(crate) topic: ByteString,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) delay: Duration,
    pub(crate) expiry_secs: Option<u32>,
    pub(crate) props: Option<Box<MessageProps>>,
}

/// A CONNECT packet, protocol-neutral.
#[derive(Debug)]
pub(crate) struct ConnectRequest {
    pub(crate) client_id: String,
    pub(crate) source: SocketAddr,
    pub(crate) credential: PeerCredential,
    pub(crate) protocol: Protocol,
    pub(crate) clean_start: bool,
    pub(crate) expiry: Duration,
    pub(crate) will: Option<WillRequest>,
    pub(crate) auth_method: bool,
}

/// A will ready to fire when the connection ends abnormally.
#[derive(Debug)]
pub(crate) struct Will {
    pub(crate) msg: Arc<Message>,
    pub(crate) delay: Duration,
    /// MQTT 5 message expiry interval, counted from publication.
    pub(crate) expiry: Option<Duration>,
}

impl Will {
    /// The message as published at `at` (its expiry interval starts then).
    fn at(self, at: Instant) -> Arc<Message> {
        match self.expiry {
            None => self.msg,
            Some(expiry) => {
                let m = &self.msg;
                Arc::new(Message {
                    topic: m.topic.clone(),
                    payload: m.payload.clone(),
                    qos: m.qos,
                    retain: m.retain,
                    origin: m.origin,
                    props: m.props.clone(),
                    expires_at: Some(at + expiry),
                    charge: None,
                })
            }
        }
    }
}

/// An admitted connection.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) session: Arc<SessionState>,
    pub(crate) conn_id: u64,
    pub(crate) signal: Arc<ConnSignal>,
    pub(crate) identity: DeviceIdentity,
    pub(crate) session_present: bool,
    pub(crate) will: Option<Will>,
    /// The identity's limits after its overrides.
    pub(crate) limits: IdentityLimits,
    /// The client id the broker assigned for a zero-length one (the device id).
    pub(crate) assigned_client_id: Option<String>,
}

/// How a CONNECT is refused; mapped to a v3 return code or v5 reason code by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefuseCode {
    IdentifierRejected,
    NotAuthorized,
    BadAuthMethod,
    TopicNameInvalid,
    /// A quota (the identity's connections, the memory budget): v5 `0x97`, v3 server unavailable.
    QuotaExceeded,
}

impl Hub {
    fn refuse(
        &self,
        req: &ConnectRequest,
        cn: Option<&str>,
        reason: RefusalReason,
        code: RefuseCode,
    ) -> RefuseCode {
        self.metrics.refused(crate::metrics::Refusal::of(&reason));
        self.events.emit(BrokerEvent::ConnectRefused {
            client_id: req.client_id.clone(),
            certificate_cn: cn.map(str::to_string),
            source: req.source,
            reason,
        });
        code
    }

    /// Admits or refuses a CONNECT. On success the session is attached to the new connection
    /// (taking over any previous one) and events are emitted.
    pub(crate) fn connect(&self, req: ConnectRequest) -> Result<Accepted, RefuseCode> {
        let (device_id, serial) = match &req.credential {
            PeerCredential::DangerPlaintext => (req.client_id.clone(), None),
            PeerCredential::Certificate(Ok((cn, serial))) => (cn.clone(), Some(serial.clone())),
            PeerCredential::Certificate(Err(e)) => {
                let reason = RefusalReason::NoIdentity(e.clone());
                return Err(self.refuse(&req, None, reason, RefuseCode::NotAuthorized));
            }
        };
        let counters = self.counters.get_or_create(&device_id);
        inc(&counters.connection_attempts);
        counters.last.lock().source = Some(req.source);
        let cn = Some(device_id.as_str());
        if self.budget.overloaded() && !self.resumes_session(&req) {
            // Before anything else costs memory; the same CONNECT passes once usage is back
            // under the low watermark. A client resuming its persistent session is let in:
            // reading its queue is what frees the memory.
            return Err(self.refuse(
                &req,
                cn,
                RefusalReason::MemoryBudget,
                RefuseCode::QuotaExceeded,
            ));
        }
        if req.auth_method {
            return Err(self.refuse(
                &req,
                cn,
                RefusalReason::AuthMethodUnsupported,
                RefuseCode::BadAuthMethod,
            ));
        }
        // A zero-length client id gets the certificate's device id (MQTT 5 §3.1.3.1; 3.1.1
        // only with clean session, [MQTT-3.1.3-7]); CONNACK v5 carries it back.
        let assigned = req.client_id.is_empty()
            && serial.is_some()
            && (req.protocol == Protocol::V5 || req.clean_start);
        let client_id = if assigned {
            device_id.clone()
        } else {
            req.client_id.clone()
        };
        if let Err(e) = identity::validate_client_id(&client_id) {
            inc(&counters.auth_failures);
            return Err(self.refuse(
                &req,
                cn,
                RefusalReason::ClientId(e),
                RefuseCode::IdentifierRejected,
            ));
        }
        if let Some(w) = &req.will
            && topic::validate_topic_name(&w.topic).is_err()
        {
            return Err(self.refuse(
                &req,
                cn,
                RefusalReason::WillTopicInvalid,
                RefuseCode::TopicNameInvalid,
            ));
        }
        let identity = DeviceIdentity::new(device_id.as_str(), serial.clone(), req.source)
            .with_client_id(client_id.as_str());
        let limits = self
            .limits
            .for_identity(&device_id, &self.provider.groups(&identity));

        let mut reg = self.registry.lock();
        if let Some(s) = &serial
            && reg.revoked.contains(s)
        {
            drop(reg);
            inc(&counters.auth_failures);
            return Err(self.refuse(&req, cn, RefusalReason::Revoked, RefuseCode::NotAuthorized));
        }
        let quarantined = reg.quarantined.contains(device_id.as_str());
        let policy = self.provider.session_policy(&identity, quarantined);
        // `iot:Connect` on `client/<client id>` decides the client id: the default policy pins
        // it to the device id; a policy may widen it. Another id refused while the device id
        // itself would pass stays "identifier rejected" (0x85), as before widening existed.
        if let Err(denied) = policy.authorize(Action::Connect) {
            drop(reg);
            let as_itself = || {
                let own = identity.clone().with_client_id(device_id.as_str());
                let own = self.provider.session_policy(&own, quarantined);
                own.authorize(Action::Connect).is_ok()
            };
            if client_id != device_id && as_itself() {
                inc(&counters.auth_failures);
                let reason = RefusalReason::ClientId(ClientIdError::CertificateMismatch);
                return Err(self.refuse(&req, cn, reason, RefuseCode::IdentifierRejected));
            }
            inc(&counters.authz_failures);
            let reason = RefusalReason::NotAuthorized(denied.reason().to_string());
            return Err(self.refuse(&req, cn, reason, RefuseCode::NotAuthorized));
        }
        // One live session per client id, and a session stays with the identity that created
        // it: identity B never takes over (or resumes) a session of identity A, even when B's
        // policy allows the client id.
        if let Some(old) = reg.sessions.get(client_id.as_str())
            && *old.device_id != *device_id
        {
            drop(reg);
            inc(&counters.auth_failures);
            let reason = RefusalReason::ClientId(ClientIdError::OwnedByAnotherDevice);
            return Err(self.refuse(&req, cn, reason, RefuseCode::NotAuthorized));
        }
        let will = match &req.will {
            None => None,
            Some(w) => match authorize_will(policy.as_ref(), w) {
                Ok(()) => Some(w),
                Err(reason) => {
                    drop(reg);
                    inc(&counters.authz_failures);
                    let reason = RefusalReason::WillNotAuthorized {
                        topic: w.topic.to_string(),
                        reason,
                    };
                    return Err(self.refuse(&req, cn, reason, RefuseCode::NotAuthorized));
                }
            },
        };

        let conn_id = self.next_id();
        let signal = Arc::new(ConnSignal::default());
        let attached = Attached {
            conn_id,
            signal: signal.clone(),
            source: req.source,
            serial: serial.clone(),
        };
        let existing = reg.sessions.get(client_id.as_str()).cloned();
        let taking_over = existing
            .as_ref()
            .is_some_and(|old| old.lock().attached.is_some());
        // A takeover replaces a connection of the identity; anything else adds one.
        if !taking_over
            && !reg
                .connections
                .try_open(identity.device_id_arc(), limits.max_connections)
        {
            drop(reg);
            let reason = RefusalReason::ConnectionQuota {
                max_connections: limits.max_connections,
            };
            return Err(self.refuse(&req, cn, reason, RefuseCode::QuotaExceeded));
        }
        let mut takeover = None;
        if let Some(old) = &existing
            && let Some(prev) = &old.lock().attached
        {
            prev.signal.kick(KickReason::TakenOver);
            takeover = Some((prev.source, prev.serial.clone()));
        }
        let (session, session_present) = match existing {
            Some(old) if !req.clean_start => {
                old.lock().attach(attached, identity.clone(), req.expiry);
                old.set_policy(policy);
                (old, true)
            }
            other => {
                if let Some(old) = other {
                    self.discard_subscriptions(&old);
                }
                let s = Arc::new(SessionState::new(
                    self.next_id(),
                    identity.clone(),
                    counters.clone(),
                    policy,
                    req.expiry,
                ));
                s.lock().attach(attached, identity.clone(), req.expiry);
                (s, false)
            }
        };
        reg.sessions
            .insert(identity.client_id_arc().clone(), session.clone());
        reg.detached.remove(client_id.as_str());
        drop(reg);

        self.stats.connected.fetch_add(1, Ordering::Relaxed);
        self.metrics.connected();
        inc(&counters.connections);
        counters.last.lock().connected_at = Some(SystemTime::now());
        if let Some((previous_source, previous_serial)) = takeover {
            inc(&counters.takeovers);
            self.events.emit(BrokerEvent::TakenOver {
                device_id: device_id.clone(),
                previous_source,
                new_source: req.source,
                previous_serial,
                new_serial: serial.clone(),
            });
        }
        self.events.emit(BrokerEvent::Connected {
            device_id,
            client_id: client_id.clone(),
            source: req.source,
            serial,
            protocol: req.protocol,
            session_present,
            quarantined,
        });
        let will = will.map(|w| Will {
            msg: Arc::new(Message {
                topic: w.topic.clone(),
                payload: w.payload.clone(),
                qos: w.qos,
                retain: w.retain,
                origin: session.id,
                props: w.props.clone(),
                expires_at: None,
                charge: None,
            }),
            delay: w.delay,
            expiry: w.expiry_secs.map(|secs| Duration::from_secs(secs.into())),
        });
        Ok(Accepted {
            assigned_client_id: assigned.then_some(client_id),
            session,
            conn_id,
            signal,
            identity,
            session_present,
            will,
            limits,
        })
    }

    /// Does `req` resume a session the broker keeps (clean start off, session present)?
    fn resumes_session(&self, req: &ConnectRequest) -> bool {
        !req.clean_start
            && self
                .registry
                .lock()
                .sessions
                .contains_key(req.client_id.as_str())
    }

    /// The connection `conn_id` of `session` ended. Publishes the will when `cause` calls for
    /// it, and discards a session without expiry.
    pub(crate) fn detach(
        &self,
        session: &Arc<SessionState>,
        conn_id: u64,
        source: SocketAddr,
        will: Option<Will>,
        cause: DisconnectCause,
    ) {
        let now = Instant::now();
        let fire = will.filter(|_| will_fires(&cause));
        let mut publish_now = None;
        let mut reg = self.registry.lock();
        let mut inner = session.lock();
        let was_attached = inner.detach(conn_id, now);
        if was_attached {
            reg.connections.close(inner.identity.device_id());
            // Publishers held by backpressure on this session stop waiting for its reader.
            session.space.notify_waiters();
            self.stats.connected.fetch_sub(1, Ordering::Relaxed);
            if inner.expiry.is_zero() {
                drop(inner);
                if reg
                    .sessions
                    .get(&session.client_id)
                    .is_some_and(|s| s.id == session.id)
                {
                    reg.sessions.remove(&session.client_id);
                }
                drop(reg);
                self.discard_subscriptions(session);
                publish_now = fire.map(|w| w.at(now));
            } else {
                if let Some(w) = fire {
                    if w.delay.is_zero() {
                        publish_now = Some(w.at(now));
                    } else {
                        let due = now + w.delay.min(inner.expiry);
                        inner.pending_will = Some(PendingWill {
                            due,
                            msg: w.at(due),
                        });
                    }
                }
                drop(inner);
                reg.detached.insert(session.client_id.clone());
                drop(reg);
            }
        } else {
            // Taken over: the session lives on with the new connection. A will without delay is
            // still published (MQTT 5 §3.1.3.2.2); a delayed one is cancelled by the resumption.
            drop(inner);
            drop(reg);
            publish_now = fire.filter(|w| w.delay.is_zero()).map(|w| w.at(now));
        }
        inc(&session.counters.disconnects);
        self.events.emit(BrokerEvent::Disconnected {
            device_id: session.device_id.to_string(),
            source,
            cause,
        });
        if let Some(msg) = publish_now {
            self.publish_will(session, msg);
        }
    }

    /// Publishes a will, re-deciding it under the session's current policy (a device
    /// quarantined since CONNECT does not get its will out).
    fn publish_will(&self, session: &SessionState, msg: Arc<Message>) {
        let policy = session.policy();
        let denied = policy
            .authorize(Action::Publish { topic: &msg.topic })
            .and_then(|()| {
                if msg.retain {
                    policy.authorize(Action::RetainPublish { topic: &msg.topic })
                } else {
                    Ok(())
                }
            });
        if let Err(d) = denied {
            inc(&session.counters.authz_failures);
            self.events.emit(BrokerEvent::Denied {
                device_id: session.device_id.to_string(),
                source: session.lock().identity.source(),
                action: DeniedAction::Publish(msg.topic.to_string()),
                reason: d.reason().to_string(),
            });
            return;
        }
        if msg.retain && self.store_retained(&msg).is_err() {
            log::warn!(
                "retained store full: will of {} not retained",
                session.client_id
            );
        }
        self.events.emit(BrokerEvent::WillPublished {
            device_id: session.device_id.to_string(),
            topic: msg.topic.to_string(),
        });
        self.route(&msg, OnFull::Drop);
    }

    /// Expires sessions, fires delayed wills, forgets idle source addresses. Called periodically.
    pub(crate) fn housekeeping(&self, now: Instant) {
        self.sources.prune(now);
        let mut wills = Vec::new();
        let mut expired = Vec::new();
        {
            let mut reg = self.registry.lock();
            let ids: Vec<Arc<str>> = reg.detached.iter().cloned().collect();
            for id in ids {
                let Some(session) = reg.sessions.get(&id).cloned() else {
                    reg.detached.remove(&id);
                    continue;
                };
                let mut inner = session.lock();
                if inner.attached.is_some() {
                    drop(inner);
                    reg.detached.remove(&id);
                    continue;
                }
                if inner.pending_will.as_ref().is_some_and(|w| w.due <= now) {
                    let w = inner.pending_will.take().expect("checked");
                    wills.push((session.clone(), w.msg));
                }
                if inner.expires_at().is_some_and(|t| t <= now) {
                    if let Some(w) = inner.pending_will.take() {
                        wills.push((session.clone(), w.msg)); // the session ends first
                    }
                    drop(inner);
                    reg.sessions.remove(&id);
                    reg.detached.remove(&id);
                    expired.push(session);
                }
            }
        }
        for (session, msg) in wills {
            self.publish_will(&session, msg);
        }
        for session in expired {
            let discarded = self.discard_subscriptions(&session);
            self.events.emit(BrokerEvent::SessionExpired {
                device_id: session.device_id.to_string(),
                discarded_messages: discarded,
            });
        }
    }
}

fn authorize_will(policy: &dyn SessionPolicy, w: &WillRequest) -> Result<(), String> {
    policy
        .authorize(Action::Publish { topic: &w.topic })
        .map_err(|d| d.reason().to_string())?;
    if w.retain {
        policy
            .authorize(Action::RetainPublish { topic: &w.topic })
            .map_err(|d| d.reason().to_string())?;
    }
    Ok(())
}

/// Is the last will published for a connection that ended this way? Not after a normal
/// DISCONNECT, and not when the broker cut the device for a security reason (an operator kick,
/// revocation, quarantine, a policy change, shutdown): its last words are not trusted.
fn will_fires(cause: &DisconnectCause) -> bool {
    match cause {
        DisconnectCause::ClientDisconnect => false,
        DisconnectCause::ClientDisconnectWithWill => true,
        DisconnectCause::Kicked(KickReason::TakenOver) => true,
        DisconnectCause::Kicked(_) => false,
        DisconnectCause::ConnectionLost
        | DisconnectCause::KeepAliveTimeout
        | DisconnectCause::ProtocolError(_)
        | DisconnectCause::PublishDenied => true,
    }
}
