//! Authorization hooks: every MQTT action a client takes is decided here.
//!
//! The broker does not contain a policy language. At CONNECT it asks the [`PolicyProvider`] for
//! the [`SessionPolicy`] of the verified identity (the quarantine policy when the device is
//! quarantined) and then asks that policy about every action of the connection:
//!
//! | MQTT event | [`Action`] | refused with (v5 / v3.1.1) |
//! |---|---|---|
//! | CONNECT | `Connect` | CONNACK `0x87` / return code 5 |
//! | last will in CONNECT | `Publish` (+ `RetainPublish` if retained) | CONNACK `0x87` / 5 |
//! | PUBLISH | `Publish` | PUBACK/PUBREC `0x87` (QoS 0: dropped, counted) / connection closed |
//! | PUBLISH with retain | `RetainPublish` | as `Publish` |
//! | SUBSCRIBE, per filter | `Subscribe` (the filter string itself) | SUBACK `0x87` / `0x80` |
//! | each delivery, also retained | `Receive` (the concrete topic) | message not delivered |
//!
//! [`crate::policy::IronrootPolicies`] implements these traits with `ironroot-policy`'s
//! compiled `Authorizer`.
//! Decisions run on the broker's worker threads for every message: they must be fast (the
//! target is ≤ 1 µs) and must never block (no I/O, no locks held across I/O).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::identity::DeviceIdentity;

/// One thing a connected client wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action<'a> {
    /// Open an MQTT session with the client id of the identity.
    Connect,
    /// Publish to a concrete topic name (also asked for the last-will topic at CONNECT).
    Publish {
        /// The topic name.
        topic: &'a str,
    },
    /// Publish a retained message (asked in addition to `Publish`).
    RetainPublish {
        /// The topic name.
        topic: &'a str,
    },
    /// Subscribe with a topic filter; decided on the filter string itself (`+`/`#` literal).
    Subscribe {
        /// The topic filter as sent by the client.
        filter: &'a str,
    },
    /// Receive a message on a concrete topic; asked on every delivery, retained ones included.
    Receive {
        /// The concrete topic name of the message.
        topic: &'a str,
    },
}

impl Action<'_> {
    /// Short action name as in AWS IoT policies (`iot:Publish` ...), for events and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Connect => "iot:Connect",
            Action::Publish { .. } => "iot:Publish",
            Action::RetainPublish { .. } => "iot:RetainPublish",
            Action::Subscribe { .. } => "iot:Subscribe",
            Action::Receive { .. } => "iot:Receive",
        }
    }
}

/// A refusal, with a short explanation for the audit trail (which statement denied, or "no
/// statement allows"). It must not contain secrets: it is recorded verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    reason: Cow<'static, str>,
}

impl Denied {
    /// A refusal with an explanation.
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Denied {
            reason: reason.into(),
        }
    }

    /// The explanation.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// The compiled policy of one connection: answers [`Action`]s for one identity.
///
/// Implementations are shared across the broker's worker threads (`Send + Sync`) and are
/// replaced wholesale when policies change ([`crate::BrokerHandle::policy_changed`]); they
/// should be immutable snapshots.
pub trait SessionPolicy: Send + Sync + fmt::Debug {
    /// Decides one action. `Ok(())` allows it.
    fn authorize(&self, action: Action<'_>) -> Result<(), Denied>;
}

/// Builds the [`SessionPolicy`] of an identity. Called at CONNECT, when a device is put into or
/// released from quarantine, and when policies change.
///
/// Called on a broker worker thread: it must answer from memory (a cache that follows the
/// store), never wait for a database.
pub trait PolicyProvider: Send + Sync + fmt::Debug {
    /// The policy for `identity`; `quarantined` asks for the quarantine policy (deny all but the
    /// device's own status topic, or whatever the operator configured).
    fn session_policy(
        &self,
        identity: &DeviceIdentity,
        quarantined: bool,
    ) -> Arc<dyn SessionPolicy>;

    /// The registry groups `identity` belongs to now, for the per-group limit overrides
    /// ([`crate::Limits::overrides`]); asked at every CONNECT, so a membership change applies
    /// from the device's next connection. Answers from memory like
    /// [`PolicyProvider::session_policy`]. Required (no default): a wrapper that forgot to
    /// pass it on would silently drop every group override.
    fn groups(&self, identity: &DeviceIdentity) -> Vec<String>;
}

/// A policy that refuses everything (used when a provider is not configured, and as the
/// safe default for a device whose policy cannot be built).
#[derive(Debug, Clone, Copy, Default)]
pub struct DenyAll;

impl SessionPolicy for DenyAll {
    fn authorize(&self, _: Action<'_>) -> Result<(), Denied> {
        Err(Denied::new("no policy grants anything (deny-all)"))
    }
}

impl PolicyProvider for DenyAll {
    fn session_policy(&self, _: &DeviceIdentity, _: bool) -> Arc<dyn SessionPolicy> {
        Arc::new(DenyAll)
    }

    fn groups(&self, _: &DeviceIdentity) -> Vec<String> {
        Vec::new()
    }
}
