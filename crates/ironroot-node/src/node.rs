//! [`Node`]: the HTTPS server and the MQTT plane of one process, wired once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ironroot_control::{MqttPlane, MqttPlaneOptions, TlsIdentity};
use ironroot_pki::{RevocationSet, Serial};
use ironroot_server::{Server, ServerHandle};
use ironroot_store::ChangeCursor;
use rustls::pki_types::PrivateKeyDer;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::config::NodeConfig;
use crate::error::{ConfigError, NodeError};

/// File in the data directory holding the MQTT listener's address while a node runs (the CLI
/// and `ironroot demo` read it).
pub const MQTT_ADDR_FILE: &str = "mqtt.addr";

/// The secrets a node starts with; never part of [`NodeConfig`] (nor of its printed form).
#[derive(Default)]
#[non_exhaustive]
pub struct NodeSecrets {
    /// Passphrase of the online CA keys; `None`: `<data_dir>/pki/online-passphrase`.
    pub ca_passphrase: Option<Zeroizing<Vec<u8>>>,
    /// User PIN of the PKCS#11 token holding the online CA keys; `None`: keys in files.
    pub pkcs11_pin: Option<ironroot_pki::Pin>,
}

impl std::fmt::Debug for NodeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSecrets")
            .field(
                "ca_passphrase",
                &self.ca_passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "pkcs11_pin",
                &self.pkcs11_pin.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl NodeSecrets {
    /// The CA passphrase from `config.ca_passphrase_file`, else from `env_passphrase` (the
    /// value of `IRONROOT_CA_PASSPHRASE`), else none; the PKCS#11 PIN from
    /// `config.pkcs11_pin_file`, else from `env_pin` (the value of `IRONROOT_PKCS11_PIN`).
    pub fn resolve(
        config: &NodeConfig,
        env_passphrase: Option<std::ffi::OsString>,
        env_pin: Option<String>,
    ) -> Result<Self, ConfigError> {
        let ca_passphrase = match (&config.ca_passphrase_file, env_passphrase) {
            (Some(path), _) => Some(Zeroizing::new(std::fs::read(path).map_err(|source| {
                ConfigError::SecretFile {
                    what: "the CA passphrase",
                    path: path.clone(),
                    source,
                }
            })?)),
            (None, Some(v)) => Some(Zeroizing::new(v.into_encoded_bytes())),
            (None, None) => None,
        };
        let pkcs11_pin = match (&config.pkcs11_pin_file, env_pin) {
            (Some(path), _) => Some(ironroot_pki::Pin::from_file(path).map_err(|source| {
                ConfigError::SecretFile {
                    what: "the PKCS#11 PIN",
                    path: path.clone(),
                    source,
                }
            })?),
            (None, Some(v)) => Some(ironroot_pki::Pin::new(v)),
            (None, None) => None,
        };
        Ok(NodeSecrets {
            ca_passphrase,
            pkcs11_pin,
        })
    }
}

/// A running node. Stop it with [`Node::shutdown`].
#[derive(Debug)]
pub struct Node {
    server: ServerHandle,
    plane: MqttPlane,
    first_use: JoinHandle<()>,
    mqtt_addr_file: PathBuf,
}

impl Node {
    /// Starts the server (without a follower of its own), then the MQTT plane on the server's
    /// registry, audit log, revocation set and TLS identity; the plane's follower is the
    /// process's only one. Must run inside a multi-threaded tokio runtime. The CA must exist.
    pub async fn start(config: &NodeConfig, secrets: NodeSecrets) -> Result<Node, NodeError> {
        let mut server_config = config.server_config();
        server_config.ca_passphrase = secrets.ca_passphrase;
        server_config.pkcs11_pin = secrets.pkcs11_pin;
        let server = Server::start_followed_externally(server_config).await?;
        let (plane, first_use, mqtt_addr_file) = match Self::start_plane(config, &server).await {
            Ok(parts) => parts,
            Err(e) => {
                server.shutdown().await;
                return Err(e);
            }
        };
        Ok(Node {
            server,
            plane,
            first_use,
            mqtt_addr_file,
        })
    }

    async fn start_plane(
        config: &NodeConfig,
        server: &ServerHandle,
    ) -> Result<(MqttPlane, JoinHandle<()>, PathBuf), NodeError> {
        let identity = server.identity();
        let cert = server.tls_identity();
        // The HTTPS certificate, handed over as values: the key never touches the disk.
        let tls = TlsIdentity::with_certificate(
            identity.ca(),
            cert.chain.clone(),
            PrivateKeyDer::Pkcs8(cert.key.clone_key()),
        );
        let (used_tx, mut used_rx) = tokio::sync::mpsc::unbounded_channel::<Serial>();
        let mut opts = MqttPlaneOptions::new(
            server.store().clone(),
            server.audit().clone(),
            tls,
            config.mqtt.addr,
        );
        opts.limits = config.mqtt.limits.to_broker();
        opts.workers = config.mqtt.workers;
        opts.revocations = Some(identity.revocations());
        opts.on_connect = Some(Arc::new(move |_device: &str, serial: &[u8]| {
            if let Ok(serial) = Serial::from_be_bytes(serial) {
                let _ = used_tx.send(serial);
            }
        }));
        let plane = MqttPlane::start(opts).await?;
        server.set_metrics_source(Arc::new(BrokerMetrics(plane.broker().metrics_handle())));
        // Signed commands (decommission) reach devices through this broker, as the broker.
        server.set_command_channel(Arc::new(BrokerCommands(plane.broker().system_publisher())));
        // First use of a rotated-to certificate on MQTT retires the previous one. Ends when the
        // plane (holding the sender) is gone.
        let hook = server.certificate_use();
        let first_use = tokio::spawn(async move {
            while let Some(serial) = used_rx.recv().await {
                hook.used(&serial).await;
            }
        });
        let path = config.data_dir.join(MQTT_ADDR_FILE);
        if let Err(source) = std::fs::write(&path, format!("{}\n", plane.mqtt_addr())) {
            first_use.abort();
            plane.shutdown().await;
            return Err(NodeError::Io { path, source });
        }
        Ok((plane, first_use, path))
    }

    /// The HTTPS server (URL, identity service, registry, audit log).
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// The MQTT plane (broker, counters, policies).
    pub fn plane(&self) -> &MqttPlane {
        &self.plane
    }

    /// Address of the mutual-TLS MQTT listener.
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.plane.mqtt_addr()
    }

    /// The one live revoked set, checked by both the HTTPS and the MQTT handshakes.
    pub fn revocations(&self) -> Arc<RevocationSet> {
        self.server.identity().revocations()
    }

    /// The change-feed position of the node's one follower: every change up to it reached the
    /// revoked set, the policies and the live sessions.
    pub fn applied_cursor(&self) -> ChangeCursor {
        self.plane.applied_cursor()
    }

    /// How many change-feed followers this node runs (always one: the plane's; the server's
    /// own is not started).
    pub fn followers(&self) -> usize {
        1 + usize::from(self.server.follows_changes())
    }

    /// Stops the broker (recording its last events), then the server.
    pub async fn shutdown(self) {
        self.plane.shutdown().await;
        let _ = self.first_use.await;
        let _ = std::fs::remove_file(&self.mqtt_addr_file);
        self.server.shutdown().await;
    }
}

/// The broker's metrics on the server's `/metrics`.
#[derive(Debug)]
struct BrokerMetrics(ironroot_broker::MetricsHandle);

impl ironroot_server::MetricsSource for BrokerMetrics {
    fn render(&self, out: &mut String) {
        self.0.render(out);
    }
}

/// The server's signed commands, published by the broker on `devices/<id>/commands`.
#[derive(Debug)]
struct BrokerCommands(ironroot_broker::SystemPublisher);

impl ironroot_server::CommandChannel for BrokerCommands {
    fn send(&self, device: &str, envelope: &[u8]) -> Result<bool, ironroot_server::ChannelError> {
        self.0
            .publish(
                &format!("devices/{device}/commands"),
                envelope,
                ironroot_broker::SystemQos::AtLeastOnce,
            )
            .map(|p| p.matched > 0)
            .map_err(|e| ironroot_server::ChannelError::Refused(e.to_string()))
    }

    fn is_connected(&self, device: &str) -> bool {
        self.0.is_connected(device)
    }
}
