//! The ironroot device side: the chain of trust after secure boot.
//!
//! A device's key is made inside its secure element ([`ironroot_element`]) and never leaves
//! it: the CSR ([`csr`]) and every TLS handshake signature ([`DeviceTls`]) are signed there. The
//! device asks the ironroot server for its operational certificate over EST (RFC 7030) with a
//! one-time claim token or its factory certificate, then talks MQTT 5 over mutual TLS. When and
//! why it enrolls, renews, re-enrolls, reconnects or destroys its keys is decided by the
//! transport-free [`core`], shared by the simulator, a Linux gateway and a future MCU port.
//!
//! ```text
//!  SecureElement::generate ──csr()──▶ EstClient::enroll_with_claim ──▶ operational certificate
//!                                                                          │
//!                     DeviceTls (chain root + cert + element key) ◀────────┘
//!                                   │
//!                     MqttDevice::connect ──▶ publish / subscribe, answers carry reason codes
//! ```
//!
//! The device trusts exactly the ironroot root certificate it was given (`ironroot ca chain`);
//! nothing from the operating system's trust store. EST runs over ironroot's one HTTPS client
//! (`ironroot-https-client`, shared with the operator CLI): an answer larger than 256 KiB or
//! slower than 30 s is refused with a typed error ([`DeviceError::Https`]).
#![forbid(unsafe_code)]

mod agent;
pub mod command;
pub mod core;
mod csr;
mod error;
mod est;
pub mod firmware;
mod mqtt;
mod tls;

pub use agent::{Agent, AgentConfig, AgentObserver, Bootstrap, Quiet, Resume, certificate_times};
pub use csr::csr;
pub use error::DeviceError;
pub use est::{EstClient, Issued, parse_certs_only};
pub use firmware::{BootReport, Firmware, RefusedImage};
pub use mqtt::{Answer, MqttDevice, MqttTarget};
pub use tls::{DeviceTls, TrustAnchor, certificates_pem};
