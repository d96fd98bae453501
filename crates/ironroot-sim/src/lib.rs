//! The fleet simulator: N virtual devices in one process against a real ironroot server, each
//! with its own sealed software element, its own key (made in the element) and its own
//! certificate, enrolled over EST with a group claim token, connected over mutual-TLS MQTT and
//! streaming QoS 1 telemetry whose PUBACK latency is measured at the device.
//!
//! ```text
//!  operator API: import N devices ─▶ group claim (quota N)
//!        │
//!        ▼  (at most `enroll_concurrency` at once)
//!  device i: SoftwareElement::ephemeral ─▶ Agent (EST enroll ─▶ MQTT connect ─▶ telemetry × M)
//!        │
//!        ▼
//!  Report { provisioned, connected, messages, failures, p50_ms, p99_ms, ... }
//! ```
//!
//! Every device runs the same [`ironroot_device::Agent`] a Linux gateway runs; the simulator
//! only adds fleet bookkeeping. The server crates never depend on this crate.
#![forbid(unsafe_code)]

pub mod api_attacks;
pub mod attacks;
pub mod board;
mod error;
mod operator;
mod report;
mod run;

pub use error::SimError;
pub use operator::{Credentials, Operator};
pub use report::{AttackResult, Report};
pub use run::{Progress, Scenario, SimConfig, run};
