//! The registry as the broker sees it: policies in force, device facts and lifecycle states,
//! loaded from the store and answered from memory at every CONNECT.

use std::collections::HashMap;
use std::sync::Arc;

use ironroot_broker::{
    Action, Denied, DeviceFacts, DeviceIdentity, IronrootPolicies, PolicyProvider, PolicySnapshot,
    SessionPolicy,
};
use ironroot_policy::{AttachedPolicy, Attachment, PolicyName, builtin};
use ironroot_store::{Device, DeviceFilter, DeviceState, MAX_PAGE, PolicyTarget, Store};
use parking_lot::RwLock;

use crate::error::ControlError;

/// Everything about devices the plane needs, by device id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Devices {
    pub(crate) facts: HashMap<String, DeviceFacts>,
    pub(crate) states: HashMap<String, DeviceState>,
}

impl Devices {
    pub(crate) fn insert(&mut self, d: Device) {
        self.facts.insert(
            d.id.clone(),
            DeviceFacts {
                attributes: d.attributes.into_iter().collect(),
                groups: d.groups,
            },
        );
        self.states.insert(d.id, d.state);
    }
}

/// Reads every device (paged by id).
pub(crate) async fn load_devices(store: &Store) -> Result<Devices, ControlError> {
    let mut out = Devices::default();
    let mut after = None;
    loop {
        let page = store
            .list_devices(&DeviceFilter {
                after: after.clone(),
                limit: Some(MAX_PAGE),
                ..DeviceFilter::default()
            })
            .await?;
        let full = page.len() as u32 == MAX_PAGE;
        after = page.last().map(|d| d.id.clone());
        for d in page {
            out.insert(d);
        }
        if !full {
            return Ok(out);
        }
    }
}

/// Policies attached to devices and groups (latest versions), plus the built-in default
/// device policy for everyone.
pub(crate) async fn load_policies(
    store: &Store,
) -> Result<
    (
        HashMap<String, Vec<AttachedPolicy>>,
        HashMap<String, Vec<AttachedPolicy>>,
    ),
    ControlError,
> {
    let mut devices: HashMap<String, Vec<AttachedPolicy>> = HashMap::new();
    let mut groups: HashMap<String, Vec<AttachedPolicy>> = HashMap::new();
    let mut parsed: HashMap<(String, u32), Arc<ironroot_policy::PolicyDocument>> = HashMap::new();
    for a in store.policy_attachments().await? {
        let key = (a.policy.name.clone(), a.policy.version);
        let document = match parsed.get(&key) {
            Some(d) => d.clone(),
            None => {
                let d = Arc::new(a.policy.parse().map_err(|e| ControlError::StoredPolicy {
                    name: a.policy.name.clone(),
                    reason: e.to_string(),
                })?);
                parsed.insert(key, d.clone());
                d
            }
        };
        let name = PolicyName::new(&a.policy.name).map_err(|e| ControlError::StoredPolicy {
            name: a.policy.name.clone(),
            reason: e.to_string(),
        })?;
        match a.target {
            PolicyTarget::Device(id) => devices.entry(id).or_default().push(AttachedPolicy {
                name,
                version: a.policy.version,
                document,
                attachment: Attachment::Device,
            }),
            PolicyTarget::Group(g) => groups.entry(g.clone()).or_default().push(AttachedPolicy {
                name,
                version: a.policy.version,
                document,
                attachment: Attachment::Group(g),
            }),
            _ => {}
        }
    }
    Ok((devices, groups))
}

/// The [`PolicyProvider`] of the plane: `ironroot-policy` decisions from the registry's
/// policies, the quarantine policy for devices the registry lists as quarantined, and nothing
/// at all for revoked or decommissioned devices.
#[derive(Debug)]
pub struct RegistryPolicies {
    policies: IronrootPolicies,
    states: RwLock<Arc<HashMap<String, DeviceState>>>,
}

impl RegistryPolicies {
    pub(crate) fn new() -> Self {
        RegistryPolicies {
            policies: IronrootPolicies::new(PolicySnapshot::with_default_device_policy()),
            states: RwLock::new(Arc::new(HashMap::new())),
        }
    }

    /// Installs a complete state (start-up and full reloads).
    pub(crate) fn install(
        &self,
        devices: &Devices,
        device_policies: HashMap<String, Vec<AttachedPolicy>>,
        group_policies: HashMap<String, Vec<AttachedPolicy>>,
    ) {
        self.policies.replace(PolicySnapshot {
            defaults: vec![builtin::default_device_policy()],
            devices: device_policies,
            groups: group_policies,
            facts: devices.facts.clone(),
        });
        *self.states.write() = Arc::new(devices.states.clone());
    }

    /// Replaces the policies, keeping device facts.
    pub(crate) fn set_policies(
        &self,
        device_policies: HashMap<String, Vec<AttachedPolicy>>,
        group_policies: HashMap<String, Vec<AttachedPolicy>>,
    ) {
        self.policies.update(|s| {
            s.devices = device_policies;
            s.groups = group_policies;
        });
    }

    /// Updates (or removes, `None`) devices' facts and states; the policy snapshot and the
    /// state map are copied once per batch, not once per device (an incident changes thousands
    /// at once). Returns the previous states, in order.
    pub(crate) fn set_devices(
        &self,
        batch: Vec<(String, Option<Device>)>,
    ) -> Vec<Option<DeviceState>> {
        let mut facts = Vec::with_capacity(batch.len());
        let mut states_now = Vec::with_capacity(batch.len());
        for (id, device) in batch {
            match device {
                Some(d) => {
                    states_now.push((id.clone(), Some(d.state)));
                    facts.push((
                        id,
                        Some(DeviceFacts {
                            attributes: d.attributes.into_iter().collect(),
                            groups: d.groups,
                        }),
                    ));
                }
                None => {
                    states_now.push((id.clone(), None));
                    facts.push((id, None));
                }
            }
        }
        self.policies.update(|s| {
            for (id, f) in facts {
                match f {
                    Some(f) => {
                        s.facts.insert(id, f);
                    }
                    None => {
                        s.facts.remove(&id);
                    }
                }
            }
        });
        let mut states = (**self.states.read()).clone();
        let previous = states_now
            .into_iter()
            .map(|(id, st)| match st {
                Some(st) => states.insert(id, st),
                None => states.remove(&id),
            })
            .collect();
        *self.states.write() = Arc::new(states);
        previous
    }

    /// The registry state of a device, if registered.
    pub fn state(&self, id: &str) -> Option<DeviceState> {
        self.states.read().get(id).copied()
    }

    /// Quarantined devices according to the registry.
    pub(crate) fn quarantined(&self) -> Vec<String> {
        self.states
            .read()
            .iter()
            .filter(|(_, s)| **s == DeviceState::Quarantined)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Denies everything: the session policy of a revoked or decommissioned device.
#[derive(Debug)]
struct Barred(DeviceState);

impl SessionPolicy for Barred {
    fn authorize(&self, _: Action<'_>) -> Result<(), Denied> {
        Err(Denied::new(format!(
            "the device is {} in the registry",
            self.0
        )))
    }
}

/// Whether a device in this state may not connect at all.
pub(crate) fn is_barred(state: DeviceState) -> bool {
    matches!(
        state,
        DeviceState::InRepair | DeviceState::Revoked | DeviceState::Decommissioned
    )
}

impl PolicyProvider for RegistryPolicies {
    fn session_policy(
        &self,
        identity: &DeviceIdentity,
        quarantined: bool,
    ) -> Arc<dyn SessionPolicy> {
        let state = self.state(identity.device_id());
        if let Some(s) = state.filter(|s| is_barred(*s)) {
            return Arc::new(Barred(s));
        }
        let quarantined = quarantined || state == Some(DeviceState::Quarantined);
        self.policies.session_policy(identity, quarantined)
    }

    /// The device's registry groups, as the change feed last reported them.
    fn groups(&self, identity: &DeviceIdentity) -> Vec<String> {
        self.policies.groups(identity)
    }
}
