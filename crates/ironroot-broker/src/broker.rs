//! Starting the broker and the handle that controls it.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ntex_mqtt::{MqttServiceConfig, QoS};
use ntex_server::net::Connection;
use ntex_service::cfg::SharedCfg;
use ntex_util::time::Seconds;
use parking_lot::Mutex;
use rustls::ServerConfig;

use crate::authz::{DenyAll, PolicyProvider};
use crate::config::{BrokerConfig, danger};
use crate::conn::listener::{PlainGate, TlsGate, mqtt_service};
use crate::counters::{BrokerStats, DeviceStats};
use crate::enforcement::EnforcementReport;
use crate::events::{DiscardEvents, EventSink, Events, KickReason};
use crate::hub::Hub;
use ironroot_pki::Serial;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Neither a TLS configuration nor a `danger` plaintext listener was given.
    #[error("no listener configured: call BrokerBuilder::tls with a rustls ServerConfig")]
    NoListener,
    /// The TLS configuration could not be built from [`BrokerBuilder::tls_parts`].
    #[error("invalid TLS configuration: {0}")]
    Tls(crate::tls::TlsConfigError),
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// The broker's runtime thread could not start.
    #[error("cannot start the broker runtime: {0}")]
    Runtime(io::Error),
}

/// Configures and starts a broker.
///
/// ```no_run
/// # use std::sync::Arc;
/// # fn demo(tls: Arc<rustls::ServerConfig>) -> Result<(), ironroot_broker::StartError> {
/// use ironroot_broker::{BrokerBuilder, BrokerConfig, IronrootPolicies, PolicySnapshot};
/// let broker = BrokerBuilder::new(BrokerConfig::default())
///     .tls(tls)
///     .policy(Arc::new(IronrootPolicies::new(PolicySnapshot::with_default_device_policy())))
///     .start()?;
/// println!("listening on {}", broker.local_addr().unwrap());
/// broker.shutdown();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BrokerBuilder {
    config: BrokerConfig,
    tls: Option<Arc<ServerConfig>>,
    tls_parts: Option<crate::tls::TlsParts>,
    provider: Arc<dyn PolicyProvider>,
    events: Arc<dyn EventSink>,
    plaintext: Option<danger::PlaintextListener>,
}

impl BrokerBuilder {
    /// A builder with `config`, no listener, the deny-all policy and no event sink.
    pub fn new(config: BrokerConfig) -> Self {
        BrokerBuilder {
            config,
            tls: None,
            tls_parts: None,
            provider: Arc::new(DenyAll),
            events: Arc::new(DiscardEvents),
            plaintext: None,
        }
    }

    /// The rustls configuration of the mutual-TLS listener. It decides the protocol versions,
    /// cipher suites and — through its `ClientCertVerifier` — which client certificates are
    /// trusted and which are revoked. Build it with [`crate::tls::server_config`], which
    /// insists on a mandatory client certificate; a connection that arrives without one anyway
    /// is refused at CONNECT (not authorized).
    pub fn tls(mut self, config: Arc<ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The broker's certificate chain, key and client-certificate verifier. The broker builds
    /// its configuration with [`crate::tls::server_config`] and reports every rejected client
    /// certificate (event [`crate::BrokerEvent::CertificateRejected`], `auth_failures` of the
    /// claimed CN). Preferred over [`BrokerBuilder::tls`].
    pub fn tls_parts(mut self, parts: crate::tls::TlsParts) -> Self {
        self.tls_parts = Some(parts);
        self
    }

    /// Where session policies come from.
    pub fn policy(mut self, provider: Arc<dyn PolicyProvider>) -> Self {
        self.provider = provider;
        self
    }

    /// Where events go (see [`crate::event_channel`]).
    pub fn events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = sink;
        self
    }

    /// Adds an unauthenticated plaintext listener. See [`danger::PlaintextListener`].
    pub fn danger_plaintext_listener(mut self, listener: danger::PlaintextListener) -> Self {
        self.plaintext = Some(listener);
        self
    }

    /// Binds the listeners and starts the broker's threads.
    pub fn start(mut self) -> Result<BrokerHandle, StartError> {
        if self.tls.is_none() && self.tls_parts.is_none() && self.plaintext.is_none() {
            return Err(StartError::NoListener);
        }
        let hub = Arc::new(Hub::new(
            self.config.limits.clone(),
            self.provider,
            Events::new(self.events),
        ));
        if let Some(parts) = self.tls_parts.take() {
            let verifier = Arc::new(crate::tls::AuditingVerifier {
                inner: parts.verifier,
                hub: Arc::downgrade(&hub),
            });
            let config = crate::tls::server_config(parts.chain, parts.key, verifier)
                .map_err(StartError::Tls)?;
            self.tls = Some(Arc::new(config));
        }
        let bind = |addr: SocketAddr| {
            ntex_server::net::create_tcp_listener(addr, 4096)
                .map_err(|source| StartError::Bind { addr, source })
        };
        let tls_listener = match &self.tls {
            Some(_) => Some(bind(self.config.listen)?),
            None => None,
        };
        let plain_listener = match &self.plaintext {
            Some(p) => Some(bind(p.addr)?),
            None => None,
        };
        let local = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
        let local_addr = local(&tls_listener);
        let plaintext_addr = local(&plain_listener);

        let (tx, rx) = mpsc::sync_channel(1);
        let run = RunArgs {
            hub: hub.clone(),
            config: self.config,
            tls: self.tls.zip(tls_listener),
            plain: plain_listener,
        };
        let thread = std::thread::Builder::new()
            .name("ironroot-broker".into())
            .spawn(move || run_system(run, tx))
            .map_err(StartError::Runtime)?;
        let server = match rx.recv() {
            Ok(Ok(server)) => server,
            Ok(Err(e)) => return Err(StartError::Runtime(e)),
            Err(_) => {
                return Err(StartError::Runtime(io::Error::other(
                    "broker runtime thread exited",
                )));
            }
        };

        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let hk_hub = hub.clone();
        let housekeeping = std::thread::Builder::new()
            .name("ironroot-broker-housekeeping".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(Duration::from_millis(200))
                {
                    hk_hub.housekeeping(Instant::now());
                }
            })
            .map_err(StartError::Runtime)?;

        Ok(BrokerHandle {
            inner: Arc::new(Inner {
                hub,
                local_addr,
                plaintext_addr,
                running: Mutex::new(Some(Running {
                    server,
                    thread,
                    stop_housekeeping: stop_tx,
                    housekeeping,
                })),
            }),
        })
    }
}

struct RunArgs {
    hub: Arc<Hub>,
    config: BrokerConfig,
    tls: Option<(Arc<ServerConfig>, TcpListener)>,
    plain: Option<TcpListener>,
}

type Server = ntex_server::Server<Connection>;

fn shared_cfg(config: &BrokerConfig) -> SharedCfg {
    let l = &config.limits;
    SharedCfg::new("ironroot-mqtt")
        .add(
            MqttServiceConfig::new()
                .set_max_qos(QoS::ExactlyOnce)
                .set_max_size(l.max_packet_size)
                .set_max_receive(l.inflight_window)
                .set_max_send(l.inflight_window)
                .protocol_version_timeout(Seconds(secs(l.connect_timeout)))
                .set_connect_timeout(Seconds(secs(l.connect_timeout)))
                .set_handshake_timeout(Seconds(secs(l.connect_timeout))),
        )
        .add(
            ntex_tls::TlsConfig::new()
                .set_handshake_timeout(Seconds(secs(l.tls_handshake_timeout))),
        )
        .add(
            // A packet that arrives slower than 256 bytes per 5 s, or takes more than 60 s in
            // total, closes the connection (slow-loris on large frames).
            ntex_io::IoConfig::new().set_frame_read_rate(Seconds(5), Seconds(60), 256),
        )
        .into()
}

fn secs(d: Duration) -> u16 {
    u16::try_from(d.as_secs().max(1)).unwrap_or(u16::MAX)
}

fn run_system(run: RunArgs, tx: mpsc::SyncSender<io::Result<Server>>) {
    let runner = ntex_rt::System::build()
        .name("ironroot-broker")
        .build(ntex_net::DefaultRuntime);
    runner.block_on(async move {
        let server = match build_server(run) {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let _ = tx.send(Ok(server.clone()));
        let _ = server.await;
    });
}

fn build_server(run: RunArgs) -> io::Result<Server> {
    let RunArgs {
        hub,
        config,
        tls,
        plain,
    } = run;
    let cfg = shared_cfg(&config);
    let limits = config.limits.clone();
    let mut builder = ntex_server::net::build()
        .name("ironroot-broker")
        .workers(config.workers.max(1))
        .backlog(4096)
        .maxconn(limits.max_connections_per_worker)
        .disable_signals()
        .shutdown_timeout(Seconds(1));
    if let Some((tls, listener)) = tls {
        let hub = hub.clone();
        let max_handshakes = limits.max_concurrent_handshakes;
        builder = builder.listen("mqtts", listener, cfg.clone(), async move |_| {
            // Per worker thread: how many TLS handshakes may run at once.
            ntex_tls::max_concurrent_ssl_accept(max_handshakes);
            ntex_service::service(TlsGate::new(hub.clone(), tls.clone()))
                .and_then(mqtt_service(hub.clone(), false))
        })?;
    }
    if let Some(listener) = plain {
        builder = builder.listen("mqtt-danger-plaintext", listener, cfg, async move |_| {
            ntex_service::service(PlainGate::new(hub.clone()))
                .and_then(mqtt_service(hub.clone(), true))
        })?;
    }
    Ok(builder.run())
}

/// Which sessions a policy change concerns.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum PolicyScope<'a> {
    /// Every session (a policy attached to a group, a default policy, a wholesale reload).
    All,
    /// The sessions of these device ids.
    Devices(&'a [&'a str]),
}

struct Running {
    server: Server,
    thread: JoinHandle<()>,
    stop_housekeeping: mpsc::Sender<()>,
    housekeeping: JoinHandle<()>,
}

struct Inner {
    hub: Arc<Hub>,
    local_addr: Option<SocketAddr>,
    plaintext_addr: Option<SocketAddr>,
    running: Mutex<Option<Running>>,
}

impl Inner {
    fn stop(&self) {
        let Some(r) = self.running.lock().take() else {
            return;
        };
        self.hub.kick_all(KickReason::Shutdown);
        // The stop command is queued synchronously; the returned future only reports completion.
        drop(r.server.stop(false));
        let _ = r.thread.join();
        let _ = r.stop_housekeeping.send(());
        let _ = r.housekeeping.join();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running broker. Cheap to clone; every clone controls the same broker. The live
/// enforcement operations take effect on connected clients immediately (a few milliseconds;
/// see `docs/benchmarks.md`) and are safe to call from any thread.
#[derive(Clone)]
pub struct BrokerHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BrokerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerHandle")
            .field("local_addr", &self.inner.local_addr)
            .field("plaintext_addr", &self.inner.plaintext_addr)
            .finish()
    }
}

impl BrokerHandle {
    /// Address of the mutual-TLS listener (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr
    }

    /// Address of the `danger` plaintext listener, if enabled.
    pub fn plaintext_addr(&self) -> Option<SocketAddr> {
        self.inner.plaintext_addr
    }

    fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// Closes the live connection of `device_id`. Its last will is not published. Returns
    /// whether a connection was found.
    pub fn kick(&self, device_id: &str, reason: KickReason) -> bool {
        self.hub().kick(device_id, reason)
    }

    /// Closes every live connection that authenticated with certificate `serial`, and refuses
    /// the serial at CONNECT from now on (covering handshakes that completed just before the
    /// caller's revoked set changed). Call it after updating the TLS verifier's revoked set.
    /// Returns the number of connections closed.
    pub fn revoke_serial(&self, serial: &Serial) -> usize {
        self.hub().revoke_serial(serial)
    }

    /// [`BrokerHandle::revoke_serial`] for many serials at once, in one pass over the sessions.
    pub fn revoke_serials(&self, serials: &[Serial]) -> usize {
        self.hub().revoke_serials(serials)
    }

    /// [`BrokerHandle::kick`] for many devices at once, in one pass over the sessions; returns
    /// the number of connections closed.
    pub fn kick_devices(
        &self,
        device_ids: &std::collections::HashSet<&str>,
        reason: KickReason,
    ) -> usize {
        self.hub().kick_devices(device_ids, reason)
    }

    /// Quarantines (`true`) or releases (`false`) a device: its session gets the quarantine
    /// policy from the [`PolicyProvider`] at once, and at every later CONNECT.
    pub fn set_quarantine(&self, device_id: &str, quarantined: bool) -> EnforcementReport {
        self.hub().set_quarantine(device_id, quarantined)
    }

    /// Policies changed: rebuild the session policies in `scope` from the provider and enforce
    /// them on live sessions (remove denied subscriptions, close connections no longer allowed,
    /// decide queued deliveries again).
    pub fn policy_changed(&self, scope: PolicyScope<'_>) -> EnforcementReport {
        match scope {
            PolicyScope::All => self.hub().policy_changed(None),
            PolicyScope::Devices(ids) => self.hub().policy_changed(Some(ids)),
        }
    }

    /// Whether `id` has a live connection: a device id (under any client id it holds) or a
    /// client id.
    pub fn is_connected(&self, id: &str) -> bool {
        self.hub().is_connected(id)
    }

    /// Counters of one device.
    pub fn device_stats(&self, device_id: &str) -> Option<DeviceStats> {
        self.hub().counters.stats(device_id)
    }

    /// Counters of every device seen since start, sorted by id.
    pub fn all_device_stats(&self) -> Vec<DeviceStats> {
        self.hub().counters.all()
    }

    /// Broker-wide statistics.
    pub fn stats(&self) -> BrokerStats {
        self.hub().stats()
    }

    /// Appends the broker's metrics in the Prometheus text exposition format (0.0.4) to `out`:
    /// connections, connects, refusals by reason, messages in/out by QoS, drops by reason,
    /// queue depths, backpressure, configured rates, a TLS handshake latency histogram. No
    /// device id appears in a label.
    pub fn render_metrics(&self, out: &mut String) {
        self.hub().render_metrics(out);
    }

    /// A handle that renders the metrics while the broker runs and nothing once it is gone:
    /// unlike a [`BrokerHandle`] it does not keep the broker's state (and the callbacks it
    /// holds) alive, so a metrics endpoint cannot delay a shutdown.
    pub fn metrics_handle(&self) -> MetricsHandle {
        MetricsHandle(Arc::downgrade(&self.inner.hub))
    }

    /// Publishes `payload` on `topic` as the broker itself (no client session; each
    /// subscriber's `iot:Receive` decides), bounded and counted: see [`crate::SystemPublisher`].
    pub fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: crate::SystemQos,
    ) -> Result<crate::Published, crate::PublishError> {
        self.system_publisher().publish(topic, payload, qos)
    }

    /// A handle for [`BrokerHandle::publish`] and [`BrokerHandle::is_connected`] that does not
    /// keep the broker alive (the server holds one to send commands to devices).
    pub fn system_publisher(&self) -> crate::SystemPublisher {
        crate::SystemPublisher::new(&self.inner.hub)
    }

    /// Stops the broker: closes every connection (v5 clients get DISCONNECT `0x8B`), stops the
    /// listeners and joins the threads. Dropping the last handle does the same.
    pub fn shutdown(self) {
        self.inner.stop();
    }
}

/// Renders a broker's metrics without keeping it alive (see [`BrokerHandle::metrics_handle`]).
#[derive(Debug, Clone)]
pub struct MetricsHandle(std::sync::Weak<Hub>);

impl MetricsHandle {
    /// Appends the metrics (Prometheus text format) to `out`; nothing once the broker stopped.
    pub fn render(&self, out: &mut String) {
        if let Some(hub) = self.0.upgrade() {
            hub.render_metrics(out);
        }
    }
}
