//! The ironroot server: HTTPS provisioning (zero-touch bootstrap, EST, rotation, re-enrollment)
//! and the operator API, on axum over tokio-rustls.
//!
//! The principal type is [`Server`]: [`Server::start`] opens the CA, registry, audit log and
//! identity service from a [`ServerConfig`] and returns a [`ServerHandle`]; [`run`] does the
//! same and serves until SIGINT/SIGTERM. A node (ironroot-node) starts the MQTT broker beside
//! it with [`Server::start_followed_externally`] and the handle's `identity()` (one revocation
//! set), `tls_identity()` (the certificate, in memory) and `certificate_used()`.
//!
//! ```text
//!  device ──TLS (factory cert | op cert | none)──► /.well-known/est/{cacerts,simpleenroll,simplereenroll,csrattrs}
//!                                                   /api/v1/{enroll,reenroll}         (JSON, same core)
//!  operator ──Bearer admin.token | operator cert──► /api/v1/devices[/import|/{id}[/claim|/revoke|/decommission]]
//!                                                   /api/v1/groups/{name}/claim
//!  anyone ──OCSP request──► /ocsp (POST), /ocsp/{request} (GET) ──► identity service (registry + live revoked set)
//!                               every step ──► audit log;  certificates ──► identity service ──► registry
//!  decommission ──signed command (commands)──► CommandChannel (the node's broker) ──► devices/{id}/commands
//! ```
#![forbid(unsafe_code)]

mod app;
pub mod auth;
pub mod claims;
pub mod client;
pub mod commands;
pub mod config;
mod error;
mod est;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod identity;
pub mod limits;
mod metrics;
mod ocsp;
pub mod operator;
pub mod pkcs7;
mod reports;
mod rotation;
mod routes;
mod server;
pub mod tls;

pub use commands::{ChannelError, CommandChannel};
pub use config::{EnrollmentRules, Limits, ServerConfig};
pub use error::{ApiError, OperatorError, StartError};
pub use metrics::MetricsSource;
pub use server::{
    ADMIN_TOKEN_FILE, CertificateUse, SERVER_URL_FILE, Server, ServerHandle,
    load_or_create_admin_token, run, wait_for_signal,
};
