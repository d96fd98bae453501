//! Listeners: the service chain every accepted TCP connection runs through.
//!
//! ```text
//!  TCP accept ─▶ source-IP rate (no crypto yet) ─▶ TLS handshake (caller's rustls config:
//!               └─ refused: closed, event          chain + revoked set)  └─ failed: event
//!            ─▶ MQTT version sniff ─▶ v3 / v5 CONNECT ─▶ hub.connect ─▶ session services
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use ntex_io::{Filter, Io, IoBoxed, Layer, types::PeerAddr};
use ntex_mqtt::{MqttError, MqttServer, v3 as mqtt3, v5 as mqtt5};
use ntex_service::{Ctx, RequestState, Service};
use ntex_tls::rustls::{PeerCert, TlsAcceptor, TlsServerFilter};
use rustls::ServerConfig;

use super::{ConnError, v3, v5};
use crate::counters::inc;
use crate::events::BrokerEvent;
use crate::hub::Hub;
use crate::identity::{self, IdentityError};
use crate::limits::Admission;
use crate::registry::PeerCredential;

/// Remote address of a connection.
pub(crate) fn peer_addr(io: &IoBoxed) -> SocketAddr {
    io.query::<PeerAddr>()
        .get()
        .map_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), |p| p.0)
}

/// The identity the TLS layer verified.
pub(crate) fn credential(io: &IoBoxed, plaintext: bool) -> PeerCredential {
    if plaintext {
        return PeerCredential::DangerPlaintext;
    }
    let cert = io.query::<PeerCert<'static>>();
    PeerCredential::Certificate(match cert.as_ref() {
        Some(c) => identity::from_certificate(c.0.as_ref()),
        None => Err(IdentityError::NoCertificate),
    })
}

/// Applies the per-source connection rate; `false` means "close it now".
fn admit(hub: &Hub, source: Option<SocketAddr>) -> bool {
    let Some(source) = source else {
        return true;
    };
    match hub.sources.admit(source.ip(), Instant::now()) {
        Admission::Admit => true,
        Admission::Refuse { report } => {
            inc(&hub.stats.rate_limited_connections);
            if report {
                hub.events
                    .emit(BrokerEvent::ConnectionRateExceeded { source });
            }
            false
        }
    }
}

/// Source-rate check, then the TLS handshake with the caller's configuration.
pub(crate) struct TlsGate {
    hub: Arc<Hub>,
    acceptor: TlsAcceptor,
}

impl TlsGate {
    pub(crate) fn new(hub: Arc<Hub>, config: Arc<ServerConfig>) -> Self {
        TlsGate {
            hub,
            acceptor: TlsAcceptor::new(config),
        }
    }
}

impl<F: Filter, St> Service<St, Io<F>> for TlsGate {
    type Res = Io<Layer<TlsServerFilter, F>>;
    type Error = MqttError<ConnError>;

    async fn ready(&self, ctx: Ctx<'_, Self, St>) -> Result<(), Self::Error> {
        ctx.ready::<TlsAcceptor, Io<F>>(&self.acceptor)
            .await
            .map_err(|_| MqttError::Service(ConnError::Transport))
    }

    async fn call(&self, io: Io<F>, ctx: Ctx<'_, Self, St>) -> Result<Self::Res, Self::Error> {
        let source = io.query::<PeerAddr>().get().map(|p| p.0);
        if !admit(&self.hub, source) {
            io.terminate();
            return Err(MqttError::Service(ConnError::Transport));
        }
        let started = Instant::now();
        // Boxed, like the CONNECT handlers below: the connection's future stays allocated for
        // its whole life, and inline handshake states would make every idle connection pay
        // for the largest of them.
        match Box::pin(ctx.call(&self.acceptor, io)).await {
            Ok(io) => {
                self.hub.metrics.handshake(started.elapsed());
                Ok(io)
            }
            Err(e) => {
                inc(&self.hub.stats.tls_failures);
                if let Some(source) = source {
                    self.hub.events.emit(BrokerEvent::TlsHandshakeFailed {
                        source,
                        error: e.to_string(),
                    });
                }
                Err(MqttError::Service(ConnError::Transport))
            }
        }
    }
}

/// Source-rate check only: the `danger` plaintext listener.
pub(crate) struct PlainGate {
    hub: Arc<Hub>,
}

impl PlainGate {
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        PlainGate { hub }
    }
}

impl<F: Filter, St> Service<St, Io<F>> for PlainGate {
    type Res = Io<F>;
    type Error = MqttError<ConnError>;

    async fn call(&self, io: Io<F>, _: Ctx<'_, Self, St>) -> Result<Self::Res, Self::Error> {
        let source = io.query::<PeerAddr>().get().map(|p| p.0);
        if !admit(&self.hub, source) {
            io.terminate();
            return Err(MqttError::Service(ConnError::Transport));
        }
        Ok(io)
    }
}

/// The MQTT part of the chain: version sniffing, then the v3.1.1 or v5 server.
pub(crate) fn mqtt_service<St, Req>(
    hub: Arc<Hub>,
    plaintext: bool,
) -> impl Service<St, Req, Res = (), Error = MqttError<ConnError>>
where
    St: 'static,
    Req: RequestState<IoBoxed, State = ()> + 'static,
{
    let (h3, h5) = (hub.clone(), hub);
    MqttServer::new()
        .v3(mqtt3::MqttServer::new(v3::PublishFactory)
            .protocol(v3::protocol)
            .control(v3::control)
            .middleware(v3::ReleaseGuard)
            .build(move |c| Box::pin(v3::connect(h3.clone(), plaintext, c))))
        .v5(mqtt5::MqttServer::new(v5::PublishFactory)
            .protocol(v5::protocol)
            .control(v5::control)
            .build(move |c| Box::pin(v5::connect(h5.clone(), plaintext, c))))
}
