//! One ironroot node from one configuration: the HTTPS server (provisioning, EST, operator
//! API) and the mutual-TLS MQTT broker in one process, sharing what must exist once.
//!
//! The principal type is [`Node`], started with [`Node::start`] from a [`NodeConfig`] (a TOML
//! file, [`NodeConfig::load`], with flag/environment [`Overrides`]) and [`NodeSecrets`].
//!
//! ```text
//!   NodeConfig ──► ironroot-server: Server::start_followed_externally
//!                    CA ─► IdentityService ─► RevocationSet ◄────────────┐ (one set)
//!                    server certificate (memory) ─► HTTPS verifier ─────┤
//!                  ironroot-control: MqttPlane::start                   │
//!                    same certificate (values, no files) ─► broker TLS ─┤
//!                    Follower (the process's ONE change-feed follower) ─┘ revocations,
//!                                                     device states, policies
//!                    on_connect ─► CertificateUse::used (rotation first use)
//!                    SystemPublisher ─► CommandChannel (signed commands to devices)
//! ```
//!
//! Both listeners build their rustls configuration with
//! [`ironroot_pki::hardened_server_config`] (TLS 1.3 / TLS 1.2 ECDHE-AEAD, no resumption).
//!
//! # Getting started
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use ironroot_node::{Node, NodeConfig, NodeSecrets, Overrides};
//! let config = NodeConfig::resolve(Some("node.toml".as_ref()), &Overrides::default())?;
//! let secrets = NodeSecrets::resolve(
//!     &config,
//!     std::env::var_os("IRONROOT_CA_PASSPHRASE"),
//!     std::env::var("IRONROOT_PKCS11_PIN").ok(),
//! )?;
//! let node = Node::start(&config, secrets).await?;
//! println!("{} and mqtts://{}", node.server().url(), node.mqtt_addr());
//! node.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod config;
mod error;
mod mqtt_limits;
mod node;

pub use config::{ApiSection, MqttLimitOverride, MqttLimits, MqttSection, NodeConfig, Overrides};
pub use error::{ConfigError, NodeError};
pub use node::{MQTT_ADDR_FILE, Node, NodeSecrets};
