//! The adapter to `ironroot-policy`: AWS IoT-style policy documents decide every action.
//!
//! [`IronrootPolicies`] holds a [`PolicySnapshot`] — which policy versions apply to every
//! device, to each device and to each group, and what the registry knows about each device —
//! and compiles an [`ironroot_policy::Authorizer`] per connection from it. The server keeps the
//! snapshot in step with the store (change feed) and, after [`IronrootPolicies::replace`],
//! calls [`crate::BrokerHandle::policy_changed`] so live sessions follow.
//!
//! ```text
//!  store change ──▶ PolicySnapshot ──replace()──▶ IronrootPolicies ──session_policy()──▶ Authorizer
//!                                                   (quarantined: builtin::quarantined alone)
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use ironroot_policy::{AttachedPolicy, Authorizer, ConnectionContext, builtin};
use parking_lot::RwLock;

use crate::authz::{Action, Denied, PolicyProvider, SessionPolicy};
use crate::identity::DeviceIdentity;

impl SessionPolicy for Authorizer {
    fn authorize(&self, action: Action<'_>) -> Result<(), Denied> {
        use ironroot_policy::Action as P;
        let decision = match action {
            Action::Connect => self.connect(),
            Action::Publish { topic } => Authorizer::authorize(self, P::Publish, topic),
            Action::RetainPublish { topic } => Authorizer::authorize(self, P::RetainPublish, topic),
            Action::Subscribe { filter } => self.subscribe(filter),
            Action::Receive { topic } => self.receive(topic),
        };
        decision.map(|_| ()).map_err(|d| Denied::new(d.to_string()))
    }
}

/// What the registry knows about a device: the thing name policies see as
/// `${iot:Connection.Thing.ThingName}`, its attributes, and the groups it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    /// Attributes (`${iot:Connection.Thing.Attributes[name]}`).
    pub attributes: Vec<(String, String)>,
    /// Group memberships; policies attached to these groups apply.
    pub groups: Vec<String>,
}

/// The policies in force, as the store has them.
#[derive(Debug, Clone, Default)]
pub struct PolicySnapshot {
    /// Policies applied to every device (typically [`builtin::default_device_policy`]).
    pub defaults: Vec<AttachedPolicy>,
    /// Policies attached to one device, by device id.
    pub devices: HashMap<String, Vec<AttachedPolicy>>,
    /// Policies attached to a group, by group name (their `attachment` names the group).
    pub groups: HashMap<String, Vec<AttachedPolicy>>,
    /// Registry facts by device id. A device with a valid certificate but no entry is its own
    /// thing without attributes or groups (the certificate was issued for that device id).
    pub facts: HashMap<String, DeviceFacts>,
}

impl PolicySnapshot {
    /// Only the built-in default device policy.
    pub fn with_default_device_policy() -> Self {
        PolicySnapshot {
            defaults: vec![builtin::default_device_policy()],
            ..PolicySnapshot::default()
        }
    }
}

/// A [`PolicyProvider`] backed by `ironroot-policy` (see the module documentation).
#[derive(Debug, Default)]
pub struct IronrootPolicies {
    snapshot: RwLock<Arc<PolicySnapshot>>,
}

impl IronrootPolicies {
    /// A provider answering from `snapshot`.
    pub fn new(snapshot: PolicySnapshot) -> Self {
        IronrootPolicies {
            snapshot: RwLock::new(Arc::new(snapshot)),
        }
    }

    /// Replaces the snapshot; follow with [`crate::BrokerHandle::policy_changed`].
    pub fn replace(&self, snapshot: PolicySnapshot) {
        *self.snapshot.write() = Arc::new(snapshot);
    }

    /// Edits a copy of the current snapshot and installs it.
    pub fn update(&self, f: impl FnOnce(&mut PolicySnapshot)) {
        let mut next = (**self.snapshot.read()).clone();
        f(&mut next);
        self.replace(next);
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        self.snapshot.read().clone()
    }

    /// Compiles the authorizer of one identity from the current snapshot.
    pub fn authorizer(&self, identity: &DeviceIdentity, quarantined: bool) -> Authorizer {
        let snap = self.snapshot();
        let id = identity.device_id();
        let facts = snap.facts.get(id);
        let attributes = facts.map(|f| f.attributes.clone()).unwrap_or_default();
        // `${iot:ClientId}` is the MQTT client id (the device id unless a policy widened it).
        let ctx = ConnectionContext::new(identity.client_id())
            .with_thing(id, attributes)
            .with_certificate_common_name(id);
        if quarantined {
            return builtin::quarantined(&ctx);
        }
        let mut policies: Vec<&AttachedPolicy> = snap.defaults.iter().collect();
        policies.extend(snap.devices.get(id).into_iter().flatten());
        for group in facts.into_iter().flat_map(|f| &f.groups) {
            policies.extend(snap.groups.get(group).into_iter().flatten());
        }
        Authorizer::compile(policies, &ctx)
    }
}

impl PolicyProvider for IronrootPolicies {
    fn session_policy(
        &self,
        identity: &DeviceIdentity,
        quarantined: bool,
    ) -> Arc<dyn SessionPolicy> {
        Arc::new(self.authorizer(identity, quarantined))
    }

    fn groups(&self, identity: &DeviceIdentity) -> Vec<String> {
        self.snapshot()
            .facts
            .get(identity.device_id())
            .map(|f| f.groups.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironroot_policy::{Attachment, PolicyDocument, PolicyName};

    fn identity(id: &str) -> DeviceIdentity {
        DeviceIdentity::new(id, None, "127.0.0.1:1".parse().unwrap())
    }

    fn attached(name: &str, attachment: Attachment, json: &str) -> AttachedPolicy {
        AttachedPolicy {
            name: PolicyName::new(name).unwrap(),
            version: 1,
            document: Arc::new(PolicyDocument::parse(json).unwrap()),
            attachment,
        }
    }

    #[test]
    fn default_device_policy_through_the_adapter() {
        let p = IronrootPolicies::new(PolicySnapshot::with_default_device_policy());
        let a = p.session_policy(&identity("dev-1"), false);
        assert!(a.authorize(Action::Connect).is_ok());
        assert!(
            a.authorize(Action::Publish {
                topic: "devices/dev-1/telemetry"
            })
            .is_ok()
        );
        assert!(
            a.authorize(Action::Publish {
                topic: "devices/dev-2/telemetry"
            })
            .is_err()
        );
        assert!(
            a.authorize(Action::Subscribe {
                filter: "devices/dev-1/commands"
            })
            .is_ok()
        );
        assert!(
            a.authorize(Action::Subscribe {
                filter: "devices/+/commands"
            })
            .is_err()
        );
        assert!(
            a.authorize(Action::Receive {
                topic: "devices/dev-1/commands"
            })
            .is_ok()
        );
        let denied = a
            .authorize(Action::RetainPublish {
                topic: "devices/dev-1/telemetry",
            })
            .unwrap_err();
        assert!(denied.reason().contains("RetainPublish"), "{denied}");
    }

    #[test]
    fn quarantine_replaces_every_policy() {
        let p = IronrootPolicies::new(PolicySnapshot::with_default_device_policy());
        let q = p.session_policy(&identity("dev-1"), true);
        assert!(q.authorize(Action::Connect).is_ok());
        assert!(
            q.authorize(Action::Publish {
                topic: "devices/dev-1/status"
            })
            .is_ok()
        );
        assert!(
            q.authorize(Action::Publish {
                topic: "devices/dev-1/telemetry"
            })
            .is_err()
        );
        assert!(
            q.authorize(Action::Subscribe {
                filter: "devices/dev-1/commands"
            })
            .is_err()
        );
    }

    #[test]
    fn device_and_group_attachments_apply() {
        let mut snap = PolicySnapshot::default();
        snap.devices.insert(
            "backend".into(),
            vec![attached(
                "backend",
                Attachment::Device,
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/devices/+/telemetry"}]}"#,
            )],
        );
        snap.groups.insert(
            "lab".into(),
            vec![attached(
                "lab",
                Attachment::Group("lab".into()),
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"client/*"}]}"#,
            )],
        );
        snap.facts.insert(
            "backend".into(),
            DeviceFacts {
                groups: vec!["lab".into()],
                ..DeviceFacts::default()
            },
        );
        let p = IronrootPolicies::new(snap);
        let b = p.session_policy(&identity("backend"), false);
        assert!(b.authorize(Action::Connect).is_ok(), "group policy");
        assert_eq!(p.groups(&identity("backend")), vec!["lab".to_string()]);
        assert!(p.groups(&identity("dev-1")).is_empty());
        assert!(
            b.authorize(Action::Subscribe {
                filter: "devices/+/telemetry"
            })
            .is_ok(),
            "device policy"
        );
        let other = p.session_policy(&identity("dev-1"), false);
        assert!(
            other.authorize(Action::Connect).is_err(),
            "not in the group, no defaults"
        );
        p.update(|s| s.devices.clear());
        let b = p.session_policy(&identity("backend"), false);
        assert!(
            b.authorize(Action::Subscribe {
                filter: "devices/+/telemetry"
            })
            .is_err(),
            "after replace"
        );
    }
}
