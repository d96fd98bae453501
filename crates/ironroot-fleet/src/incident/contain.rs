//! [`Fleet::contain`]: quarantine or revoke a set of devices as one incident.

use std::time::Instant;

use ironroot_audit::{Event, EventKind, Outcome};
use ironroot_store::{Device, DeviceState, RevocationReason};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::IncidentError;
use super::query::{self, DeviceQuery};
use crate::{Fleet, Origin};

/// Audit appends in flight at once: enough to fill the log's group commits.
const AUDIT_CONCURRENCY: usize = 4096;

/// Which devices to contain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Targets {
    /// These devices (`--device ID`, repeatable).
    Devices(Vec<String>),
    /// Every member of a group (`--group G`).
    Group(String),
    /// Every device matching a query (`--query Q`).
    Query(DeviceQuery),
}

impl Targets {
    /// How the audit log and the report name the selection.
    fn describe(&self, query_text: &str) -> String {
        match self {
            Targets::Devices(ids) if ids.len() == 1 => format!("device={}", ids[0]),
            Targets::Devices(ids) => format!("devices={}", ids.len()),
            Targets::Group(g) => format!("group={g}"),
            Targets::Query(_) => format!("query={query_text}"),
        }
    }
}

/// What containment does to each device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ContainAction {
    /// State `quarantined`: the broker gives it the quarantine policy (its own status topic).
    Quarantine,
    /// State `revoked`: every certificate revoked (reason keyCompromise), refused everywhere.
    Revoke,
}

impl ContainAction {
    /// The name used in the audit log and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainAction::Quarantine => "quarantine",
            ContainAction::Revoke => "revoke",
        }
    }

    fn target_state(self) -> DeviceState {
        match self {
            ContainAction::Quarantine => DeviceState::Quarantined,
            ContainAction::Revoke => DeviceState::Revoked,
        }
    }
}

/// One containment request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ContainRequest {
    /// Which devices.
    pub targets: Targets,
    /// The query as the operator wrote it (for the record), when `targets` is a query.
    pub query_text: String,
    /// Quarantine or revoke.
    pub action: ContainAction,
    /// Why (free text for humans; kept in the audit log, so never a secret).
    pub reason: String,
    /// Evidence references (alarm ids, ticket URLs, file hashes), kept with the incident.
    pub evidence: Vec<String>,
}

impl ContainRequest {
    /// A request to apply `action` to `targets`.
    pub fn new(targets: Targets, action: ContainAction) -> Self {
        Self {
            targets,
            query_text: String::new(),
            action,
            reason: String::new(),
            evidence: Vec::new(),
        }
    }
}

/// A device the incident contained.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainedDevice {
    /// Its id.
    pub device: String,
    /// State before.
    pub from: String,
    /// State now.
    pub to: String,
    /// Serials revoked now.
    pub revoked: Vec<String>,
}

/// A target the incident could not contain, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkippedDevice {
    /// Its id.
    pub device: String,
    /// `unknown_device`, or `invalid_transition` (already revoked or decommissioned, or not
    /// yet provisioned for quarantine).
    pub reason: String,
    /// Its state, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// The result of [`Fleet::contain`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Containment {
    /// The incident id (`inc-` + 16 hex digits); `ironroot incident report` takes it.
    pub incident: String,
    /// What was done.
    pub action: ContainAction,
    /// The selection, as recorded.
    pub target: String,
    /// Devices contained (their live sessions are cut by every broker within a second).
    pub contained: Vec<ContainedDevice>,
    /// Targets left as they were.
    pub skipped: Vec<SkippedDevice>,
    /// Milliseconds from the request to the committed, audited containment.
    pub elapsed_ms: u64,
}

impl Fleet {
    /// Contains the target devices as one incident (see the module docs): write-ahead audit
    /// entries, one registry transaction, sessions cut through the change feed. Devices that
    /// cannot move (already revoked, unknown) are reported as skipped, not as failures; when
    /// none can, the refusal is audited and nothing changes.
    pub async fn contain(
        &self,
        origin: &Origin,
        request: &ContainRequest,
    ) -> Result<Containment, IncidentError> {
        let started = Instant::now();
        let incident = new_incident_id()?;
        let target = request.targets.describe(&request.query_text);
        let to = request.action.target_state();
        let (devices, unknown) = match &request.targets {
            Targets::Devices(ids) => query::named(&self.store, ids).await?,
            Targets::Group(group) => {
                let q = DeviceQuery {
                    group: Some(group.clone()),
                    ..DeviceQuery::default()
                };
                (q.resolve(&self.store).await?, Vec::new())
            }
            Targets::Query(q) => (q.resolve(&self.store).await?, Vec::new()),
        };
        let mut skipped: Vec<SkippedDevice> = unknown
            .into_iter()
            .map(|device| SkippedDevice {
                device,
                reason: "unknown_device".into(),
                state: None,
            })
            .collect();
        let mut movable: Vec<Device> = Vec::with_capacity(devices.len());
        for d in devices {
            if d.state.can_be_contained_as(to) {
                movable.push(d);
            } else {
                skipped.push(skip(&d.id, d.state));
            }
        }
        let mut opened = Event::new(EventKind::IncidentOpened, origin.actor.clone())
            .subject("incident", incident.clone())
            .source(origin.source.clone())
            .detail("action", request.action.as_str())
            .detail("target", target.clone())
            .detail("devices", movable.len().to_string())
            .detail("reason", request.reason.clone());
        for (n, e) in request.evidence.iter().enumerate() {
            opened = opened.detail(format!("evidence.{n}"), e.clone());
        }
        if movable.is_empty() {
            let _ = self
                .audit
                .record(
                    opened
                        .outcome(Outcome::Denied)
                        .detail("refused", "no_targets"),
                )
                .await;
            return Err(IncidentError::NoTargets(target));
        }
        self.audit
            .record(opened)
            .await
            .map_err(IncidentError::Audit)?;
        let ahead: Vec<Event> = movable
            .iter()
            .map(|d| {
                Event::new(EventKind::DeviceStateChanged, origin.actor.clone())
                    .subject("device", d.id.clone())
                    .source(origin.source.clone())
                    .detail("to", to.as_str())
                    .detail("incident", incident.clone())
            })
            .collect();
        self.record_all(ahead).await?;

        let reason = match request.action {
            ContainAction::Quarantine => None,
            ContainAction::Revoke => Some(RevocationReason::KeyCompromise),
        };
        let committed = async {
            let mut tx = self.store.begin().await?;
            let mut done = Vec::with_capacity(movable.len());
            let mut raced = Vec::new();
            for d in &movable {
                match tx.contain_device(&d.id, reason).await {
                    Ok(c) => done.push(ContainedDevice {
                        device: d.id.clone(),
                        from: c.from.as_str().into(),
                        to: c.to.as_str().into(),
                        revoked: c.revoked.iter().map(|c| c.serial.to_string()).collect(),
                    }),
                    // Changed since it was read (another operator): left as it is now.
                    Err(ironroot_store::StoreError::InvalidTransition { from, .. }) => {
                        raced.push(skip(&d.id, from))
                    }
                    Err(ironroot_store::StoreError::UnknownDevice(_)) => {
                        raced.push(SkippedDevice {
                            device: d.id.clone(),
                            reason: "unknown_device".into(),
                            state: None,
                        })
                    }
                    Err(e) => return Err(e),
                }
            }
            tx.commit().await?;
            Ok((done, raced))
        }
        .await;
        let closing = Event::new(EventKind::IncidentContained, origin.actor.clone())
            .subject("incident", incident.clone())
            .source(origin.source.clone())
            .detail("action", request.action.as_str());
        let (contained, raced) = match committed {
            Ok(r) => r,
            Err(e) => {
                let _ = self
                    .audit
                    .record(
                        closing
                            .outcome(Outcome::Failure)
                            .detail("stage", "registry")
                            .detail("reason", crate::reason(&e)),
                    )
                    .await;
                return Err(IncidentError::Store(e));
            }
        };
        skipped.extend(raced);
        let serials: usize = contained.iter().map(|c| c.revoked.len()).sum();
        let after: Vec<Event> = contained
            .iter()
            .flat_map(|c| {
                c.revoked.iter().map(|serial| {
                    Event::new(EventKind::CertRevoked, origin.actor.clone())
                        .subject("certificate", serial.clone())
                        .source(origin.source.clone())
                        .detail("device", c.device.clone())
                        .detail("reason", "key_compromise")
                        .detail("incident", incident.clone())
                })
            })
            .collect();
        // The revocations took effect with the commit; a failure here cannot undo them.
        let _ = self.record_all(after).await;
        let _ = self
            .audit
            .record(
                closing
                    .detail("contained", contained.len().to_string())
                    .detail("skipped", skipped.len().to_string())
                    .detail("revoked_certificates", serials.to_string()),
            )
            .await;
        Ok(Containment {
            incident,
            action: request.action,
            target,
            contained,
            skipped,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Records every event, [`AUDIT_CONCURRENCY`] at a time so group commits fill up; the
    /// first failure is returned (the others are still awaited).
    async fn record_all(&self, events: Vec<Event>) -> Result<(), IncidentError> {
        let mut set = JoinSet::new();
        let mut first_error = None;
        let mut keep = |r: Result<Result<_, _>, tokio::task::JoinError>| {
            if let Ok(Err(e)) = r
                && first_error.is_none()
            {
                first_error = Some(e);
            }
        };
        for event in events {
            if set.len() >= AUDIT_CONCURRENCY
                && let Some(r) = set.join_next().await
            {
                keep(r);
            }
            let audit = self.audit.clone();
            set.spawn(async move { audit.record(event).await });
        }
        while let Some(r) = set.join_next().await {
            keep(r);
        }
        match first_error {
            Some(e) => Err(IncidentError::Audit(e)),
            None => Ok(()),
        }
    }
}

fn skip(device: &str, state: DeviceState) -> SkippedDevice {
    SkippedDevice {
        device: device.to_owned(),
        reason: "invalid_transition".into(),
        state: Some(state.as_str().into()),
    }
}

/// A fresh incident id: `inc-` and 64 random bits in hex.
fn new_incident_id() -> Result<String, IncidentError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| IncidentError::Entropy(e.to_string()))?;
    let mut id = String::from("inc-");
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    Ok(id)
}
