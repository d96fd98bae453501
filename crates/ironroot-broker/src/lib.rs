//! ironroot's embedded MQTT broker: mutual-TLS device identity, a policy decision on every
//! action, and revocation, quarantine and policy changes that reach live sessions at once.
//!
//! The principal type is [`BrokerHandle`], returned by [`BrokerBuilder::start`]. The broker
//! takes the caller's rustls [`ServerConfig`](rustls::ServerConfig) (the ironroot-pki verifier
//! checks the chain and the live revoked set in the handshake), asks a [`PolicyProvider`] for
//! the [`SessionPolicy`] of each verified identity, and reports what happens through an
//! [`EventSink`].
//!
//! ```text
//!  device ──TCP──▶ per-IP rate ──TLS (caller's ServerConfig)──▶ CONNECT: identity = cert CN
//!                                                                  │ PolicyProvider → SessionPolicy
//!                                                                  ▼ iot:Connect(client id), will
//!   PUBLISH ─iot:Publish/RetainPublish─▶ route (topic trie) ─iot:Receive per subscriber─▶ queue
//!                                        (+ one member per $share group)
//!   SUBSCRIBE ─iot:Subscribe(filter)─▶ trie + retained (iot:Receive)       │ delivery task
//!                                                                          ▼ (owning worker)
//!   BrokerHandle: kick · revoke_serial · set_quarantine · policy_changed ──▶ live sessions
//!   BrokerHandle::publish (system origin, bounded, counted) ──▶ route ──▶ subscribers
//!   events ──▶ EventSink (audit log, defender)      counters ──▶ device_stats()
//! ```
//!
//! MQTT framing, keep-alive and per-connection QoS handshakes come from `ntex-mqtt`; sessions,
//! routing, retained messages, wills, persistence and every authorization decision are this
//! crate's (see `docs/architecture.md`, Broker, for why ntex-mqtt and not rmqtt).
//!
//! # Getting started
//!
//! ```no_run
//! use std::sync::Arc;
//! use ironroot_broker::{BrokerBuilder, BrokerConfig, IronrootPolicies, KickReason, PolicySnapshot, event_channel};
//! # fn demo(tls: rustls::ServerConfig) -> Result<(), Box<dyn std::error::Error>> {
//! let (events, mut rx) = event_channel(10_000);
//! let broker = BrokerBuilder::new(BrokerConfig::new("0.0.0.0:8883".parse()?))
//!     .tls(Arc::new(tls))
//!     .policy(Arc::new(IronrootPolicies::new(PolicySnapshot::with_default_device_policy())))
//!     .events(Arc::new(events))
//!     .start()?;
//! // later: an operator cuts a device off
//! broker.kick("sensor-0001", KickReason::Administrative);
//! while let Ok(record) = rx.try_recv() {
//!     println!("{:?}", record.event);
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod authz;
mod broker;
mod budget;
mod config;
mod conn;
mod counters;
mod enforcement;
mod events;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod hub;
mod identity;
mod limits;
mod message;
mod metrics;
pub mod policy;
mod registry;
mod retain;
mod session;
mod system;
pub mod tls;
pub mod topic;
mod trie;

pub use authz::{Action, Denied, DenyAll, PolicyProvider, SessionPolicy};
pub use broker::{BrokerBuilder, BrokerHandle, MetricsHandle, PolicyScope, StartError};
pub use config::{
    BrokerConfig, DEFAULT_MAX_CONNECTIONS_PER_IDENTITY, IdentityLimits, IdentitySelector,
    LimitOverride, Limits, RateLimit, danger,
};
pub use counters::{BrokerStats, DeviceStats};
pub use enforcement::EnforcementReport;
pub use events::{
    BrokerEvent, ChannelSink, DeniedAction, DiscardEvents, DisconnectCause, EventReceiver,
    EventRecord, EventSink, KickReason, Protocol, RefusalReason, event_channel,
};
pub use identity::{
    ClientIdError, DeviceIdentity, IdentityError, MAX_CLIENT_ID_BYTES, validate_client_id,
};
pub use policy::{DeviceFacts, IronrootPolicies, PolicySnapshot};
pub use system::{PublishError, Published, SystemPublisher, SystemQos};
