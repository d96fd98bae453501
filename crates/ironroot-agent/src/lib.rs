//! The ironroot device agent: the device side of the chain of trust after secure boot.
//!
//! A device makes its own P-256 key (it never leaves the device), asks the ironroot server for
//! its operational certificate over EST (RFC 7030) with a one-time claim token or its factory
//! certificate, and then talks MQTT 5 over mutual TLS with that certificate.
//!
//! ```text
//!  DeviceKey::generate ──csr()──▶ EstClient::enroll_with_claim ──▶ operational certificate
//!                                                                        │
//!                     DeviceTls (chain root + cert + key) ◀──────────────┘
//!                                   │
//!                     MqttDevice::connect ──▶ publish / subscribe, answers carry reason codes
//! ```
//!
//! The agent trusts exactly the ironroot root certificate it was given (`ironroot ca chain`);
//! nothing from the operating system's trust store. EST runs over ironroot's one HTTPS client
//! (`ironroot-https-client`, shared with the operator CLI): an answer larger than 256 KiB or
//! slower than 30 s is refused with a typed error ([`AgentError::Https`]).
#![forbid(unsafe_code)]

mod error;
mod est;
mod key;
mod mqtt;
mod tls;

pub use error::AgentError;
pub use est::{EstClient, parse_certs_only};
pub use key::DeviceKey;
pub use mqtt::{Answer, MqttDevice, MqttTarget};
pub use tls::{DeviceTls, TrustAnchor};
