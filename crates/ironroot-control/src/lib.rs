//! The MQTT plane of one ironroot node: the embedded broker, run from the registry.
//!
//! The principal type is [`MqttPlane`], started with [`MqttPlane::start`] from
//! [`MqttPlaneOptions`] (store, audit log, TLS identity, address, limits). It
//!
//! - loads the revoked certificates into a live [`ironroot_pki::RevocationSet`] checked in every
//!   TLS handshake (ironroot-pki's `RevocationCheckingVerifier`),
//! - builds the broker's policy view from the registry: policies attached to devices and
//!   groups (latest versions), device groups and attributes, and lifecycle states
//!   (quarantined devices get the quarantine policy; revoked and decommissioned ones nothing),
//! - follows the store's change feed (PostgreSQL LISTEN/NOTIFY, SQLite polling every 100 ms)
//!   so that a change made by any process — another replica, the offline CLI — reaches live
//!   sessions within a second,
//! - records broker events (connects, refusals, denials, kicks, takeovers) in the audit log
//!   in batches, without ever blocking the broker.
//!
//! ```text
//!   any process ── store write + change row ──► change feed ──► Follower
//!                                                   CertificateRevoked ─► RevocationSet + broker.revoke_serial
//!                                                   Device (state)     ─► set_quarantine / kick
//!                                                   Policy / Group     ─► reload policies ─► policy_changed
//!   broker events ─► bounded channel ─► batch ─► Audit::record (mqtt.*)
//! ```
#![forbid(unsafe_code)]

mod audit_sink;
mod error;
mod plane;
mod registry;
mod tls;

pub use error::ControlError;
pub use plane::{ConnectHook, MqttPlane, MqttPlaneOptions};
pub use registry::RegistryPolicies;
pub use tls::TlsIdentity;
