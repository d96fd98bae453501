//! The fleet service: register devices, store policies, attach and detach them, take devices'
//! boot reports — every change
//! audited write-ahead, whichever front end (the `ironroot` CLI on a data directory, the
//! server's operator API) asks for it.
//!
//! The principal type is [`Fleet`], built from the registry [`Store`] and the [`Audit`] log;
//! every operation takes an [`Origin`] (who acts, from where). Each change runs the same three
//! steps:
//!
//! ```text
//!   rehearse: registry transaction, change, ROLLBACK ──refused──► audit `denied` (best effort) ──► Err(Refused)
//!        │ would succeed
//!        ▼
//!   audit.record(kind, success)  ── durable before any registry write ──failed──► Err(Audit), nothing changed
//!        ▼
//!   registry transaction, change, COMMIT ──failed──► audit `failure` stage=registry ──► Err(Store)
//! ```
//!
//! The rehearsal uses the registry's own checks (syntax, duplicates, unknown names) without a
//! second copy of them, and releases its transaction before the audit write: on SQLite the
//! audit log lives in the same database, whose single writer lock the audit writer needs. A
//! concurrent change between rehearsal and commit can still make the commit fail; the log then
//! holds the write-ahead entry followed by a `failure` entry for the same subject, as the
//! identity service does for certificates.
#![forbid(unsafe_code)]

pub mod incident;
mod lifecycle;
mod reports;

use std::sync::Arc;

use ironroot_audit::{Audit, Event, EventKind, Outcome, RecordError};
use ironroot_store::{
    Contained, Device, NewDevice, PolicyTarget, PolicyVersion, Rebind, Rebound, Store, StoreError,
    Transaction,
};

/// Who asks for a change and from where, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `operator:<name>` (or `service:<name>`).
    pub actor: String,
    /// A peer address (`203.0.113.7:51234`) or `cli`.
    pub source: String,
}

impl Origin {
    /// An origin of `actor` at `source`.
    pub fn new(actor: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            source: source.into(),
        }
    }
}

/// Why a fleet change did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The registry refused the change (bad input, duplicate device, unknown device or
    /// policy, invalid policy document); nothing was written and the refusal was audited.
    #[error("{0}")]
    Refused(#[source] StoreError),
    /// The write-ahead audit entry could not be made durable, so nothing was changed.
    #[error("cannot record the change in the audit log, so nothing was changed: {0}")]
    Audit(#[source] RecordError),
    /// The registry failed; the change did not take effect.
    #[error("registry error, the change did not take effect: {0}")]
    Store(#[source] StoreError),
    /// A device report did not hold together (its measured-boot log does not replay to the
    /// reported PCR or image); refused and audited.
    #[error("invalid report: {0}")]
    InvalidReport(String),
}

impl FleetError {
    /// The registry's error, when the registry refused or failed.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            FleetError::Refused(e) | FleetError::Store(e) => Some(e),
            FleetError::Audit(_) | FleetError::InvalidReport(_) => None,
        }
    }

    fn from_store(e: StoreError) -> Self {
        if is_refusal(&e) {
            FleetError::Refused(e)
        } else {
            FleetError::Store(e)
        }
    }
}

/// Errors that mean "the request is wrong", not "the registry is broken".
fn is_refusal(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::InvalidInput { .. }
            | StoreError::DuplicateDevice(_)
            | StoreError::DecommissionedDevice(_)
            | StoreError::UnknownDevice(_)
            | StoreError::InvalidPolicy { .. }
            | StoreError::UnknownPolicy(_)
            | StoreError::InvalidTransition { .. }
    )
}

/// Short reason class for the audit log (never the rejected value itself).
fn reason(e: &StoreError) -> &'static str {
    match e {
        StoreError::InvalidInput { .. } => "invalid_input",
        StoreError::DuplicateDevice(_) => "duplicate_device",
        StoreError::DecommissionedDevice(_) => "decommissioned_device",
        StoreError::UnknownDevice(_) => "unknown_device",
        StoreError::InvalidPolicy { .. } => "invalid_policy",
        StoreError::UnknownPolicy(_) => "unknown_policy",
        StoreError::InvalidTransition { .. } => "invalid_transition",
        _ => "store_error",
    }
}

/// One change, applied in a registry transaction (rehearsed, then for real).
enum Change<'a> {
    AddDevice(&'a NewDevice),
    PutPolicy {
        name: &'a str,
        document: &'a str,
    },
    Attach {
        name: &'a str,
        target: &'a PolicyTarget,
    },
    Detach {
        name: &'a str,
        target: &'a PolicyTarget,
    },
    Rebind {
        id: &'a str,
        rebind: &'a Rebind,
    },
    Repair(&'a str),
}

/// What a change produced.
enum Done {
    Device(Device),
    Policy(PolicyVersion),
    Changed(bool),
    Rebound(Rebound),
    OutOfService(Contained),
}

impl Change<'_> {
    async fn apply(&self, tx: &mut Transaction) -> Result<Done, StoreError> {
        Ok(match self {
            Change::AddDevice(new) => Done::Device(tx.add_device(new).await?),
            Change::PutPolicy { name, document } => {
                Done::Policy(tx.put_policy(name, document).await?)
            }
            Change::Attach { name, target } => Done::Changed(tx.attach_policy(name, target).await?),
            Change::Detach { name, target } => Done::Changed(tx.detach_policy(name, target).await?),
            Change::Rebind { id, rebind } => Done::Rebound(tx.rebind_device(id, rebind).await?),
            Change::Repair(id) => Done::OutOfService(tx.send_for_repair(id).await?),
        })
    }
}

/// The fleet service; cheap to clone (a store handle and a shared audit handle).
#[derive(Clone)]
pub struct Fleet {
    store: Store,
    audit: Arc<Audit>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").finish_non_exhaustive()
    }
}

impl Fleet {
    /// A fleet service on `store`, auditing into `audit`.
    pub fn new(store: Store, audit: Arc<Audit>) -> Self {
        Self { store, audit }
    }

    /// The registry this service changes.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Registers a device (state `manufactured`; groups are created on first use), audited as
    /// `device.added` before the registry commit.
    pub async fn add_device(&self, origin: &Origin, new: &NewDevice) -> Result<Device, FleetError> {
        let mut event = event(EventKind::DeviceAdded, origin)
            .subject("device", new.id.clone())
            .detail("state", new.state.as_str());
        if !new.groups.is_empty() {
            event = event.detail("groups", new.groups.join(","));
        }
        if let Some(owner) = &new.owner {
            event = event.detail("owner", owner.clone());
        }
        match self
            .execute(event, Change::AddDevice(new), |_| Vec::new())
            .await?
        {
            Done::Device(d) => Ok(d),
            _ => unreachable!("AddDevice yields a device"),
        }
    }

    /// Stores a policy document under `name` (a new version when the name exists), audited as
    /// `policy.create` (detail `version`) before the registry commit.
    pub async fn put_policy(
        &self,
        origin: &Origin,
        name: &str,
        document: &str,
    ) -> Result<PolicyVersion, FleetError> {
        let event = event(EventKind::PolicyCreate, origin).subject("policy", name);
        let change = Change::PutPolicy { name, document };
        let version = |done: &Done| match done {
            Done::Policy(v) => vec![("version", v.version.to_string())],
            _ => Vec::new(),
        };
        match self.execute(event, change, version).await? {
            Done::Policy(v) => Ok(v),
            _ => unreachable!("PutPolicy yields a version"),
        }
    }

    /// Attaches policy `name` to `target`; `Ok(false)` when it was already attached. Audited
    /// as `policy.attach` (details `target_kind`, `target`, `changed`) before the commit.
    pub async fn attach_policy(
        &self,
        origin: &Origin,
        name: &str,
        target: &PolicyTarget,
    ) -> Result<bool, FleetError> {
        let event = attachment_event(EventKind::PolicyAttach, origin, name, target);
        self.changed(event, Change::Attach { name, target }).await
    }

    /// Detaches policy `name` from `target`; `Ok(false)` when it was not attached. Audited as
    /// `policy.detach` before the commit.
    pub async fn detach_policy(
        &self,
        origin: &Origin,
        name: &str,
        target: &PolicyTarget,
    ) -> Result<bool, FleetError> {
        let event = attachment_event(EventKind::PolicyDetach, origin, name, target);
        self.changed(event, Change::Detach { name, target }).await
    }

    async fn changed(&self, event: Event, change: Change<'_>) -> Result<bool, FleetError> {
        let changed = |done: &Done| match done {
            Done::Changed(c) => vec![("changed", c.to_string())],
            _ => Vec::new(),
        };
        match self.execute(event, change, changed).await? {
            Done::Changed(c) => Ok(c),
            _ => unreachable!("attach/detach yield a flag"),
        }
    }

    /// Rehearse → write-ahead audit → commit (see the crate documentation).
    async fn execute(
        &self,
        base: Event,
        change: Change<'_>,
        detail: impl Fn(&Done) -> Vec<(&'static str, String)>,
    ) -> Result<Done, FleetError> {
        let mut tx = self.store.begin().await.map_err(FleetError::Store)?;
        let rehearsed = change.apply(&mut tx).await;
        // The rehearsal never commits: release the write lock before the audit write.
        let _ = tx.rollback().await;
        let rehearsed = match rehearsed {
            Ok(done) => done,
            Err(e) => {
                let outcome = if is_refusal(&e) {
                    Outcome::Denied
                } else {
                    Outcome::Failure
                };
                let mut refused = base.outcome(outcome).detail("reason", reason(&e));
                if let StoreError::InvalidPolicy { .. } = e {
                    // What is wrong with an operator's policy document (field and line), so the
                    // log says why; a policy holds no secret.
                    refused = refused.detail("error", e.to_string());
                }
                // Best effort: the refusal changes nothing, so a failed entry loses no change.
                let _ = self.audit.record(refused).await;
                return Err(FleetError::from_store(e));
            }
        };
        let mut ahead = base.clone();
        for (k, v) in detail(&rehearsed) {
            ahead = ahead.detail(k, v);
        }
        // Write-ahead: durable before the registry changes; if it fails, nothing changes.
        self.audit.record(ahead).await.map_err(FleetError::Audit)?;
        let applied = async {
            let mut tx = self.store.begin().await?;
            let done = change.apply(&mut tx).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(done)
        }
        .await;
        match applied {
            Ok(done) => Ok(done),
            Err(e) => {
                // The write-ahead entry said "done"; this one says it did not take effect.
                let _ = self
                    .audit
                    .record(
                        base.outcome(Outcome::Failure)
                            .detail("reason", reason(&e))
                            .detail("stage", "registry"),
                    )
                    .await;
                Err(FleetError::from_store(e))
            }
        }
    }
}

fn event(kind: EventKind, origin: &Origin) -> Event {
    Event::new(kind, origin.actor.clone()).source(origin.source.clone())
}

fn attachment_event(kind: EventKind, origin: &Origin, name: &str, target: &PolicyTarget) -> Event {
    let (target_kind, id) = match target {
        PolicyTarget::Device(d) => ("device", d.as_str()),
        PolicyTarget::Group(g) => ("group", g.as_str()),
        #[allow(unreachable_patterns)]
        _ => ("other", ""),
    };
    event(kind, origin)
        .subject("policy", name)
        .detail("target_kind", target_kind)
        .detail("target", id)
}
