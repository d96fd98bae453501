//! Starting and stopping the server: CA, registry, audit log, identity service, TLS listener
//! and the accept loop.
//!
//! ```text
//!   accept ──(permit from max_connections)──► TLS handshake (≤ handshake_timeout)
//!        │                                      client cert? → RevocationCheckingVerifier
//!        ▼
//!   hyper HTTP/1.1 (head ≤ request_timeout; connection ≤ connection_lifetime)
//!        ▼
//!   axum router: guard (per-source rate limit, rotation first-use) → EST / JSON / operator
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper_util::rt::{TokioIo, TokioTimer};
use ironroot_audit::{Audit, Event, EventKind};
use ironroot_pki::{CaDirectory, ClientIdentity, OnlineSecrets, Passphrase};
use ironroot_store::Store;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;
use zeroize::Zeroizing;

use crate::app::{AppState, Shared, router};
use crate::auth::{AdminToken, Conn, PeerCert};
use crate::config::ServerConfig;
use crate::error::StartError;
use crate::identity::IdentityService;
use crate::limits::RateLimiter;
use crate::rotation::Rotations;
use crate::tls::ServerIdentity;

/// File in the data directory holding the operator token (mode 0600).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// File in the data directory holding the URL of the running server (for the CLI).
pub const SERVER_URL_FILE: &str = "server.url";

/// The server entry point.
#[derive(Debug)]
pub struct Server;

/// A running server. Dropping it does not stop it: call [`ServerHandle::shutdown`].
pub struct ServerHandle {
    addr: SocketAddr,
    url: String,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    identity: IdentityService,
    tls: ServerIdentity,
    state: Shared,
    /// `None` when the caller follows the change feed ([`Server::start_followed_externally`]).
    follower: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://host:port` (the name is one the server certificate holds).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The identity service (issuance, revocation, the live revoked set): the MQTT broker
    /// wiring takes `identity().revocations()` for its verifier and `follow_changes` to kick.
    pub fn identity(&self) -> &IdentityService {
        &self.identity
    }

    /// The registry.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// The audit log.
    pub fn audit(&self) -> &Arc<Audit> {
        &self.state.audit
    }

    /// The server certificate chain and key (in memory), for the node's MQTT listener.
    pub fn tls_identity(&self) -> &ServerIdentity {
        &self.tls
    }

    /// Whether this server runs its own change-feed follower (see
    /// [`Server::start_followed_externally`]).
    pub fn follows_changes(&self) -> bool {
        self.follower.is_some()
    }

    /// Tells the server a device connected with the certificate `serial` elsewhere (the MQTT
    /// broker): the first use of a rotated-to certificate retires the previous one.
    pub async fn certificate_used(&self, serial: &ironroot_pki::Serial) {
        self.state.rotations.note_used(&self.state, serial).await;
    }

    /// A cloneable handle for [`ServerHandle::certificate_used`], for a task of its own (a
    /// node forwards the broker's connects to it).
    pub fn certificate_use(&self) -> CertificateUse {
        CertificateUse(self.state.clone())
    }

    /// Attaches what `/metrics` exposes besides the server's own line (a node's MQTT broker).
    /// Only the first call takes effect; `false` when a source was attached already.
    pub fn set_metrics_source(&self, source: Arc<dyn crate::MetricsSource>) -> bool {
        self.state.metrics.set(source).is_ok()
    }

    /// Attaches where signed commands to devices go (a node's MQTT broker). Without one, a
    /// decommission still revokes and retires, and says the keys were not destroyed remotely.
    /// Only the first call takes effect; `false` when a channel was attached already.
    pub fn set_command_channel(&self, channel: Arc<dyn crate::CommandChannel>) -> bool {
        self.state.commands.set(channel).is_ok()
    }

    /// Stops accepting, lets open requests finish (up to 5 s), and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        if let Some(follower) = self.follower {
            follower.abort();
        }
        let _ = self
            .state
            .audit
            .record(
                Event::new(EventKind::ServerStopped, "service:server")
                    .detail("addr", self.addr.to_string()),
            )
            .await;
        let _ = std::fs::remove_file(self.state.config.data_dir.join(SERVER_URL_FILE));
    }
}

/// See [`ServerHandle::certificate_use`].
#[derive(Clone)]
pub struct CertificateUse(Shared);

impl std::fmt::Debug for CertificateUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateUse").finish_non_exhaustive()
    }
}

impl CertificateUse {
    /// A device connected elsewhere with the certificate `serial`: the first use of a
    /// rotated-to certificate retires the previous one.
    pub async fn used(&self, serial: &ironroot_pki::Serial) {
        self.0.rotations.note_used(&self.0, serial).await;
    }
}

/// Starts the server and serves until SIGINT or SIGTERM, then shuts down cleanly.
pub async fn run(config: ServerConfig) -> Result<(), StartError> {
    let handle = Server::start(config).await?;
    wait_for_signal().await;
    handle.shutdown().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn online_secrets(config: &ServerConfig) -> Result<OnlineSecrets, StartError> {
    let bytes = match &config.ca_passphrase {
        Some(p) => Some(Zeroizing::new(p.to_vec())),
        None => {
            let path = config.data_dir.join("pki").join("online-passphrase");
            std::fs::read(&path).ok().map(Zeroizing::new)
        }
    };
    // Online keys in a PKCS#11 token need the PIN and no passphrase; with neither, the CA
    // directory names the one its keys need (passphrase or PIN).
    let passphrase = match bytes {
        Some(bytes) => {
            let trimmed = String::from_utf8_lossy(&bytes)
                .trim_end_matches(['\n', '\r'])
                .as_bytes()
                .to_vec();
            Some(
                Passphrase::new(trimmed)
                    .map_err(|e| StartError::Config(format!("online passphrase: {e}")))?,
            )
        }
        None => None,
    };
    Ok(OnlineSecrets {
        passphrase,
        pkcs11_pin: config.pkcs11_pin.clone(),
    })
}

/// Reads `<data_dir>/admin.token`, creating it (32 random bytes, URL-safe base64, mode 0600)
/// when missing. Returns the token text.
pub fn load_or_create_admin_token(data_dir: &Path) -> Result<Zeroizing<String>, StartError> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(Zeroizing::new(text.trim().to_owned()));
    }
    let mut raw = Zeroizing::new([0u8; 32]);
    getrandom::fill(raw.as_mut())
        .map_err(|_| StartError::Config("the operating system random generator failed".into()))?;
    let token = Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_ref()));
    let line = Zeroizing::new(format!("{}\n", token.as_str()));
    ironroot_fs::write_secret_atomically(&path, line.as_bytes())?;
    Ok(token)
}

impl Server {
    /// Opens everything and starts serving in the background (on the current tokio runtime).
    /// The CA must exist (`ironroot ca init`, or `ironroot up`, which creates it).
    pub async fn start(config: ServerConfig) -> Result<ServerHandle, StartError> {
        Self::launch(config, true).await
    }

    /// Like [`Server::start`], but runs no change-feed follower: the caller (ironroot-node)
    /// runs the process's one follower and keeps `identity().revocations()` in step with the
    /// registry itself.
    pub async fn start_followed_externally(
        config: ServerConfig,
    ) -> Result<ServerHandle, StartError> {
        Self::launch(config, false).await
    }

    async fn launch(config: ServerConfig, follow: bool) -> Result<ServerHandle, StartError> {
        let dir = CaDirectory::new(&config.data_dir);
        if !dir.is_initialized() {
            return Err(StartError::Config(format!(
                "no CA in {}: run `ironroot ca init` (or `ironroot up`, which creates one)",
                dir.path().display()
            )));
        }
        let now = time::OffsetDateTime::now_utc();
        let ca = dir.open_online(&online_secrets(&config)?, now)?;
        let mut ca_certs: Vec<Vec<u8>> = ca
            .intermediates()
            .map(|(c, _)| c.certificate().der().to_vec())
            .collect();
        ca_certs.push(ca.root().der().to_vec());
        let server_id =
            crate::tls::issue_server_identity(&ca, &config.hostnames, &config.data_dir)?;

        let store = match &config.database_url {
            Some(url) => Store::open(url).await?,
            None => Store::open_data_dir(&config.data_dir).await?,
        };
        let audit = Arc::new(Audit::open_store(&store, &config.data_dir).await?);
        let validity = config.enrollment.device_validity;
        if validity < std::time::Duration::from_secs(60) {
            return Err(StartError::Identity(format!(
                "api.enrollment.device_validity is {}; it must be at least 1 minute",
                humantime_serde::re::humantime::format_duration(validity)
            )));
        }
        let mut options = crate::identity::IdentityOptions::new(&config.data_dir);
        options.issuance.device_validity =
            time::Duration::seconds(i64::try_from(validity.as_secs()).unwrap_or(i64::MAX));
        let identity = IdentityService::open(ca, store.clone(), audit.clone(), options)
            .await
            .map_err(|e| StartError::Identity(e.to_string()))?;
        // Delegated OCSP responders: keys in memory only, re-issued by the service before expiry.
        identity
            .start_ocsp_responder()
            .await
            .map_err(|e| StartError::Identity(format!("OCSP responder: {e}")))?;
        let tls = crate::tls::server_config(
            &server_id,
            identity.ca(),
            identity.revocations(),
            audit.clone(),
        )?;
        let admin = AdminToken::new(&load_or_create_admin_token(&config.data_dir)?);
        let rotations = Rotations::load(&store).await?;

        let listener = TcpListener::bind(config.api_addr)
            .await
            .map_err(StartError::io(
                "listen on",
                PathBuf::from(config.api_addr.to_string()),
            ))?;
        let addr = listener.local_addr().map_err(StartError::io(
            "listen on",
            PathBuf::from(config.api_addr.to_string()),
        ))?;
        let host = if config.hostnames.iter().any(|h| h == &addr.ip().to_string()) {
            addr.ip().to_string()
        } else {
            config
                .hostnames
                .first()
                .cloned()
                .unwrap_or_else(|| "localhost".into())
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let url = format!("https://{host}:{}", addr.port());
        ironroot_fs::write_atomically(
            &config.data_dir.join(SERVER_URL_FILE),
            format!("{url}\n").as_bytes(),
        )?;

        let limits = config.limits.clone();
        let claims_committer = store.group_committer(512);
        let state: Shared = Arc::new(AppState {
            identity: identity.clone(),
            store,
            audit: audit.clone(),
            per_source: RateLimiter::new(
                limits.per_source_rate,
                limits.per_source_burst,
                1_000_000,
            ),
            per_device: RateLimiter::new(
                limits.per_device_per_minute / 60.0,
                limits.per_device_per_minute,
                1_000_000,
            ),
            config,
            admin,
            ca_certs,
            rotations,
            claims: claims_committer,
            metrics: std::sync::OnceLock::new(),
            commands: std::sync::OnceLock::new(),
        });
        let _ = audit
            .record(
                Event::new(EventKind::ServerStarted, "service:server")
                    .detail("addr", addr.to_string()),
            )
            .await;
        let (shutdown, rx) = watch::channel(false);
        // Revocations made by any process (the CLI offline, another replica) reach the live set.
        let follower = follow.then(|| identity.follow_changes(|_| {}));
        let task = tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(tls),
            state.clone(),
            rx,
        ));
        Ok(ServerHandle {
            addr,
            url,
            shutdown,
            task,
            identity,
            tls: server_id,
            state,
            follower,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Shared,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = state.config.limits.clone();
    let max = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let app = router(state.clone());
    // Periodic housekeeping: due rotations, idle rate-limit buckets, expired claim tokens.
    let sweeper = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.config.enrollment.sweep_interval);
            loop {
                tick.tick().await;
                let _ = state.rotations.sweep(&state).await;
                let now = std::time::Instant::now();
                state.per_source.sweep(now);
                state.per_device.sweep(now);
                let day_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 86_400;
                let _ = crate::claims::purge_expired(&state.store, day_ago).await;
            }
        })
    };
    loop {
        let permit = tokio::select! {
            _ = shutdown.changed() => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let limits = limits.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tls =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    _ => return,
                };
            let client = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|der| ClientIdentity::from_certificate(der).ok())
                .map(|identity| Arc::new(PeerCert { identity }));
            let conn = Conn { peer, client };
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(conn.clone());
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.request_timeout)
                .keep_alive(true)
                .max_buf_size(64 * 1024);
            let served = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(served);
            tokio::select! {
                _ = served.as_mut() => {}
                _ = tokio::time::sleep(limits.connection_lifetime) => {}
                _ = stop.changed() => {
                    served.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), served).await;
                }
            }
        });
    }
    drop(listener);
    // Wait for open connections to finish (they were told to close), at most 6 s.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(6),
        permits.acquire_many(max as u32),
    )
    .await;
    sweeper.abort();
}
