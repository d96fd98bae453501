//! [`MqttPlane`]: the broker of one node, driven by the registry.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ironroot_audit::Audit;
use ironroot_broker::{
    BrokerBuilder, BrokerConfig, BrokerHandle, KickReason, Limits, PolicyScope, danger,
    event_channel,
};
use ironroot_pki::{RevocationSet, Serial};
use ironroot_store::{Change, ChangeKind, Device, DeviceState, Store};
use tokio::task::JoinHandle;

use crate::error::ControlError;
use crate::registry::{RegistryPolicies, is_barred, load_devices, load_policies};
use crate::tls::TlsIdentity;

/// Undelivered broker events held for the audit log before new ones are dropped (and counted
/// in `BrokerStats::events_dropped`).
const EVENT_QUEUE: usize = 65_536;

/// How long the follower waits before re-subscribing after a registry error.
const RETRY: Duration = Duration::from_millis(500);

/// What [`MqttPlane::start`] needs.
#[non_exhaustive]
pub struct MqttPlaneOptions {
    /// The registry (SQLite or PostgreSQL): policies, devices, revoked certificates, change feed.
    pub store: Store,
    /// The audit log broker events are recorded in.
    pub audit: Arc<Audit>,
    /// The broker's server certificate and the CA device certificates must chain to.
    pub tls: TlsIdentity,
    /// Address of the mutual-TLS MQTT listener (8883; port 0 picks a free one).
    pub mqtt_addr: SocketAddr,
    /// Broker limits (packet size, rates, subscriptions ...).
    pub limits: Limits,
    /// Broker worker threads.
    pub workers: usize,
    /// Also listen in plaintext on 127.0.0.1 (ephemeral port) **without authentication**.
    /// For local tests only; see [`ironroot_broker::danger::PlaintextListener`].
    pub danger_plaintext_for_tests: bool,
    /// Called with the device id and certificate serial (big-endian bytes) of every session
    /// that connected with a certificate; `ironroot up` uses it so the first connection with
    /// a rotated-to certificate retires the previous one. Must not block.
    pub on_connect: Option<ConnectHook>,
    /// The live revoked set to check handshakes against and keep in step with the registry.
    /// A node passes the identity service's set so the HTTPS verifier and the broker share
    /// one set kept by this plane's one follower; `None`: a set of the plane's own.
    pub revocations: Option<Arc<RevocationSet>>,
}

impl std::fmt::Debug for MqttPlaneOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttPlaneOptions")
            .field("mqtt_addr", &self.mqtt_addr)
            .field("workers", &self.workers)
            .field(
                "danger_plaintext_for_tests",
                &self.danger_plaintext_for_tests,
            )
            .field("on_connect", &self.on_connect.is_some())
            .field("shared_revocations", &self.revocations.is_some())
            .finish_non_exhaustive()
    }
}

/// See [`MqttPlaneOptions::on_connect`].
pub type ConnectHook = Arc<dyn Fn(&str, &[u8]) + Send + Sync>;

impl MqttPlaneOptions {
    /// Options with the default limits, two workers and no plaintext listener.
    pub fn new(store: Store, audit: Arc<Audit>, tls: TlsIdentity, mqtt_addr: SocketAddr) -> Self {
        MqttPlaneOptions {
            store,
            audit,
            tls,
            mqtt_addr,
            limits: Limits::default(),
            workers: 2,
            danger_plaintext_for_tests: false,
            on_connect: None,
            revocations: None,
        }
    }
}

/// A running MQTT plane: the broker plus the tasks that keep it in step with the registry
/// and feed its events into the audit log. Stop it with [`MqttPlane::shutdown`].
#[derive(Debug)]
pub struct MqttPlane {
    broker: BrokerHandle,
    revocations: Arc<RevocationSet>,
    policies: Arc<RegistryPolicies>,
    applied: Arc<AtomicI64>,
    follower: JoinHandle<()>,
    auditor: JoinHandle<()>,
}

impl MqttPlane {
    /// Loads the registry (revoked certificates, policies, devices), starts the broker with
    /// the CA's revocation-checking verifier, and starts following the change feed. Must run
    /// inside a tokio runtime (the follower and the audit task are spawned on it).
    pub async fn start(opts: MqttPlaneOptions) -> Result<MqttPlane, ControlError> {
        let store = opts.store;
        // Take the feed position before loading, so nothing committed meanwhile is missed.
        let cursor = store.change_cursor_now().await?;
        // A shared set was loaded by its owner at an earlier cursor; loading again (idempotent)
        // covers what was committed between that load and `cursor`.
        let revocations = opts
            .revocations
            .unwrap_or_else(|| Arc::new(RevocationSet::new()));
        load_revoked(&store, &revocations).await?;
        let devices = load_devices(&store).await?;
        let (device_policies, group_policies) = load_policies(&store).await?;
        let policies = Arc::new(RegistryPolicies::new());
        policies.install(&devices, device_policies, group_policies);

        let verifier = opts.tls.verifier(revocations.clone())?;
        let (sink, rx) = event_channel(EVENT_QUEUE);
        let mut config = BrokerConfig::new(opts.mqtt_addr);
        config.limits = opts.limits;
        config.workers = opts.workers.max(1);
        let mut builder = BrokerBuilder::new(config)
            .tls_parts(ironroot_broker::tls::TlsParts {
                chain: opts.tls.chain,
                key: opts.tls.key,
                verifier,
            })
            .policy(policies.clone())
            .events(Arc::new(sink));
        if opts.danger_plaintext_for_tests {
            builder = builder.danger_plaintext_listener(danger::PlaintextListener {
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            });
        }
        let broker = builder.start()?;
        for id in policies.quarantined() {
            broker.set_quarantine(&id, true);
        }
        let applied = Arc::new(AtomicI64::new(cursor.0));
        let auditor = tokio::spawn(crate::audit_sink::run(opts.audit, rx, opts.on_connect));
        let follower = tokio::spawn(
            Follower {
                store,
                broker: broker.clone(),
                revocations: revocations.clone(),
                policies: policies.clone(),
                applied: applied.clone(),
            }
            .run(cursor),
        );
        Ok(MqttPlane {
            broker,
            revocations,
            policies,
            applied,
            follower,
            auditor,
        })
    }

    /// Address of the mutual-TLS listener.
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.broker
            .local_addr()
            .expect("the plane always starts the TLS listener")
    }

    /// Address of the `danger` plaintext listener, when enabled.
    pub fn plaintext_addr(&self) -> Option<SocketAddr> {
        self.broker.plaintext_addr()
    }

    /// The broker (counters, manual kicks).
    pub fn broker(&self) -> &BrokerHandle {
        &self.broker
    }

    /// The live revoked set the TLS verifier consults.
    pub fn revocations(&self) -> &Arc<RevocationSet> {
        &self.revocations
    }

    /// The policy provider (registry view of device states).
    pub fn policies(&self) -> &Arc<RegistryPolicies> {
        &self.policies
    }

    /// The change-feed position whose changes are enforced on the broker: every change up
    /// to it has reached the revoked set and the live sessions.
    pub fn applied_cursor(&self) -> ironroot_store::ChangeCursor {
        ironroot_store::ChangeCursor(self.applied.load(Ordering::Acquire))
    }

    /// Stops following the registry, closes every connection, stops the broker, and records
    /// the remaining broker events in the audit log.
    pub async fn shutdown(self) {
        self.follower.abort();
        let _ = self.follower.await;
        let broker = self.broker;
        let _ = tokio::task::spawn_blocking(move || broker.shutdown()).await;
        // The broker's event sink is dropped with the broker: the audit task drains and ends.
        let _ = tokio::time::timeout(Duration::from_secs(10), self.auditor).await;
    }
}

async fn load_revoked(store: &Store, set: &RevocationSet) -> Result<(), ControlError> {
    // The store reads serials into `Serial` values; an unreadable row is a typed error there.
    let serials = store
        .revoked_certificates()
        .await?
        .into_iter()
        .map(|r| r.serial);
    set.revoke_many(serials);
    Ok(())
}

/// Follows the change feed and applies each change to the broker.
struct Follower {
    store: Store,
    broker: BrokerHandle,
    revocations: Arc<RevocationSet>,
    policies: Arc<RegistryPolicies>,
    applied: Arc<AtomicI64>,
}

impl Follower {
    async fn run(self, mut cursor: ironroot_store::ChangeCursor) {
        loop {
            match self.follow(&mut cursor).await {
                Ok(()) => return,
                Err(e) => {
                    log::error!("MQTT plane: following the registry failed, retrying: {e}");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    async fn follow(&self, cursor: &mut ironroot_store::ChangeCursor) -> Result<(), ControlError> {
        let mut sub = self.store.subscribe_changes(*cursor).await?;
        loop {
            let first = sub.next().await?;
            // Coalesce a burst: take what is already buffered or immediately readable.
            let mut batch = vec![first];
            while batch.len() < 1024 {
                match tokio::time::timeout(Duration::ZERO, sub.next()).await {
                    Ok(change) => batch.push(change?),
                    Err(_) => break,
                }
            }
            self.apply(&batch).await?;
            *cursor = sub.cursor();
            self.applied.store(cursor.0, Ordering::Release);
        }
    }

    /// Applies a batch of changes: revocations first (they matter most), then device
    /// updates, then session cuts, then at most one policy reload.
    async fn apply(&self, batch: &[Change]) -> Result<(), ControlError> {
        let mut devices = HashSet::new();
        let mut serials = Vec::new();
        let mut cuts = HashSet::new();
        let mut reload_policies = false;
        for change in batch {
            match change.kind {
                ChangeKind::CertificateRevoked => match Serial::from_hex(&change.item) {
                    Ok(s) => serials.push(s),
                    Err(e) => log::error!(
                        "change feed names an unreadable serial {:?}: {e}",
                        change.item
                    ),
                },
                ChangeKind::Device => {
                    devices.insert(change.item.as_str());
                }
                ChangeKind::SessionCut => {
                    cuts.insert(change.item.as_str());
                }
                ChangeKind::Policy | ChangeKind::Group => reload_policies = true,
                _ => {}
            }
        }
        if !serials.is_empty() {
            // The live set first (no new handshake), then cut the open sessions: one pass
            // over the sessions for the whole batch.
            self.revocations.revoke_many(serials.iter().cloned());
            let cut = self.broker.revoke_serials(&serials);
            log::info!(
                "{} certificate(s) revoked: {cut} live connection(s) closed",
                serials.len()
            );
        }
        // One read for the whole batch (an incident changes thousands of devices at once).
        let ids: Vec<String> = devices.iter().map(|d| (*d).to_owned()).collect();
        let mut read: HashMap<String, Device> = self
            .store
            .devices(&ids)
            .await?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        let order: Vec<&str> = devices.into_iter().collect();
        let now: Vec<(String, Option<Device>)> = order
            .iter()
            .map(|id| ((*id).to_owned(), read.remove(*id)))
            .collect();
        let states: Vec<Option<DeviceState>> = now
            .iter()
            .map(|(_, d)| d.as_ref().map(|d| d.state))
            .collect();
        let previous = self.policies.set_devices(now);
        let mut changed_facts = Vec::new();
        let mut barred = HashSet::new();
        for ((id, state), previous) in order.into_iter().zip(states).zip(previous) {
            if self.enforce_state(id, state, previous) {
                changed_facts.push(id);
            } else {
                barred.insert(id);
            }
        }
        self.broker.kick_devices(&barred, KickReason::Revoked);
        // After the device updates: a quarantined device's reconnect meets its new state.
        self.broker.kick_devices(&cuts, KickReason::Administrative);
        if reload_policies {
            let (d, g) = load_policies(&self.store).await?;
            self.policies.set_policies(d, g);
            self.broker.policy_changed(PolicyScope::All);
        } else if !changed_facts.is_empty() {
            self.broker
                .policy_changed(PolicyScope::Devices(&changed_facts));
        }
        Ok(())
    }

    /// Enforces one device's state as just read (`None`: no longer registered; `previous`:
    /// the state the plane knew before); returns
    /// whether it is still allowed on the broker (so its policies are re-evaluated), `false`
    /// when it must be kicked.
    fn enforce_state(
        &self,
        id: &str,
        state: Option<DeviceState>,
        previous: Option<DeviceState>,
    ) -> bool {
        match state {
            Some(s) if is_barred(s) => {
                // The caller kicks it (all barred devices of a batch in one pass).
                if previous == Some(DeviceState::Quarantined) {
                    self.broker.set_quarantine(id, false);
                }
                false
            }
            Some(DeviceState::Quarantined) => {
                if previous != Some(DeviceState::Quarantined) {
                    self.broker.set_quarantine(id, true);
                }
                true
            }
            _ => {
                if previous == Some(DeviceState::Quarantined) {
                    self.broker.set_quarantine(id, false);
                }
                true
            }
        }
    }
}
