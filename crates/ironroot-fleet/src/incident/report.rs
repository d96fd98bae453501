//! [`Fleet::incident_report`]: an incident read back from the audit log, every entry proven.

use std::collections::BTreeMap;
use std::sync::Arc;

use ironroot_audit::{Event, EventKind, LogReader, LogStorage, ProofBundle, SqlStorage};
use serde::{Deserialize, Serialize};

use super::{IncidentError, parse_incident_id};
use crate::Fleet;

/// Leaves read per page while scanning the log.
const PAGE: u64 = 1000;
/// Proofs built at once.
const PROOF_CONCURRENCY: usize = 16;

/// One audit entry of an incident, with its inclusion proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportEntry {
    /// Index in the audit log.
    pub index: u64,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// Event kind (`incident.opened`, `device.state_changed`, `cert.revoked`, …).
    pub kind: String,
    /// `success`, `denied` or `failure`.
    pub outcome: String,
    /// Who acted.
    pub actor: String,
    /// `kind:id` of what was acted upon.
    pub subject: String,
    /// The entry's details.
    pub details: BTreeMap<String, String>,
    /// Inclusion proof bundle (the text `ironroot audit check-proof` reads), verified
    /// against the log's key before the report was returned.
    pub proof: String,
}

/// Everything the audit log holds about one incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncidentReport {
    /// The incident id.
    pub incident: String,
    /// `quarantine` or `revoke`.
    pub action: String,
    /// The selection (`group=…`, `query=…`, `device=…`).
    pub target: String,
    /// Why, as the operator gave it.
    pub reason: String,
    /// Evidence references given when the incident was opened (alarm ids, tickets).
    pub evidence: Vec<String>,
    /// Who opened it.
    pub opened_by: String,
    /// When it was opened.
    pub opened_at: String,
    /// `contained`, `failed` (the registry refused; nothing changed), `refused` (nothing
    /// matched) or `open` (no closing entry yet: still running, or the process died before).
    pub status: String,
    /// Devices moved by the incident, with the state they were moved to.
    pub devices: BTreeMap<String, String>,
    /// Certificates revoked by the incident.
    pub revoked_certificates: Vec<String>,
    /// Every entry, in log order, each with its proof.
    pub timeline: Vec<ReportEntry>,
    /// The signed checkpoint every proof is for.
    pub checkpoint: String,
    /// The log's verifier key (`ironroot audit check-proof --key`).
    pub log_key: String,
}

impl Fleet {
    /// Reads incident `id` from the audit log and proves each of its entries under the latest
    /// checkpoint; every proof is verified with the log's key before the report is returned.
    pub async fn incident_report(&self, id: &str) -> Result<IncidentReport, IncidentError> {
        let id = parse_incident_id(id)?;
        let storage = Arc::new(SqlStorage::new(self.store.clone()));
        let checkpoint = storage
            .latest_checkpoint()
            .await
            .map_err(IncidentError::Log)?
            .ok_or_else(|| IncidentError::UnknownIncident(id.to_owned()))?;
        let mut found: Vec<(u64, Vec<u8>, Event)> = Vec::new();
        let mut next = 0;
        while next < checkpoint.size {
            let page = storage
                .read_leaves(next, checkpoint.size, PAGE as usize)
                .await
                .map_err(IncidentError::Log)?;
            let Some(last) = page.last() else { break };
            next = last.index + 1;
            for leaf in page {
                // An undecodable entry cannot belong to the incident; `audit verify` reports it.
                if let Ok(e) = Event::decode(&leaf.data)
                    && belongs(&e, id)
                {
                    found.push((leaf.index, leaf.data, e));
                }
            }
        }
        let Some(opened) = found
            .iter()
            .map(|(_, _, e)| e)
            .find(|e| e.event_type == EventKind::IncidentOpened)
            .cloned()
        else {
            return Err(IncidentError::UnknownIncident(id.to_owned()));
        };
        let proofs = self.prove_all(&storage, &found, &checkpoint).await?;
        let mut report = IncidentReport {
            incident: id.to_owned(),
            action: detail(&opened, "action"),
            target: detail(&opened, "target"),
            reason: detail(&opened, "reason"),
            evidence: opened
                .details
                .iter()
                .filter(|(k, _)| k.starts_with("evidence."))
                .map(|(_, v)| v.clone())
                .collect(),
            opened_by: opened.actor.clone(),
            opened_at: opened.time.to_string(),
            status: match opened.outcome.as_str() {
                "denied" => "refused".into(),
                _ => "open".into(),
            },
            devices: BTreeMap::new(),
            revoked_certificates: Vec::new(),
            timeline: Vec::with_capacity(found.len()),
            checkpoint: checkpoint.note.clone(),
            log_key: self.audit.verifier().to_string(),
        };
        for ((index, _, e), proof) in found.into_iter().zip(proofs) {
            match &e.event_type {
                EventKind::DeviceStateChanged => {
                    report
                        .devices
                        .insert(e.subject.id.clone(), detail(&e, "to"));
                }
                EventKind::CertRevoked => report.revoked_certificates.push(e.subject.id.clone()),
                EventKind::IncidentContained => {
                    report.status = match e.outcome.as_str() {
                        "success" => "contained".into(),
                        _ => "failed".into(),
                    };
                }
                _ => {}
            }
            report.timeline.push(ReportEntry {
                index,
                time: e.time.to_string(),
                kind: e.event_type.as_str().to_owned(),
                outcome: e.outcome.as_str().to_owned(),
                actor: e.actor.clone(),
                subject: format!("{}:{}", e.subject.kind, e.subject.id),
                details: e.details.clone(),
                proof,
            });
        }
        if report.status == "failed" {
            // The write-ahead device entries name devices the failed commit never changed.
            report.devices.clear();
        }
        Ok(report)
    }

    /// Inclusion proofs (bundle text) for every entry, each verified with the log's key.
    async fn prove_all(
        &self,
        storage: &Arc<SqlStorage>,
        entries: &[(u64, Vec<u8>, Event)],
        checkpoint: &ironroot_audit::CheckpointRow,
    ) -> Result<Vec<String>, IncidentError> {
        let verifier = self.audit.verifier().clone();
        let mut out = vec![String::new(); entries.len()];
        let mut set = tokio::task::JoinSet::new();
        let mut pending = entries.iter().enumerate();
        loop {
            while set.len() < PROOF_CONCURRENCY {
                let Some((slot, (index, leaf, _))) = pending.next() else {
                    break;
                };
                let reader = LogReader::new(Arc::clone(storage));
                let (verifier, note) = (verifier.clone(), checkpoint.note.clone());
                let (index, leaf, size) = (*index, leaf.clone(), checkpoint.size);
                set.spawn(async move {
                    let proof = reader
                        .inclusion_proof(index, size)
                        .await
                        .map_err(|e| IncidentError::unproven(index, &e))?;
                    let bundle = ProofBundle {
                        index,
                        leaf,
                        path: proof.path,
                        checkpoint_note: note,
                    };
                    bundle
                        .verify(&verifier)
                        .map_err(|e| IncidentError::proof(index, &e))?;
                    Ok::<_, IncidentError>((slot, bundle.to_text()))
                });
            }
            let Some(done) = set.join_next().await else {
                break;
            };
            let (slot, text) = done.map_err(|e| IncidentError::Proof {
                index: 0,
                reason: e.to_string(),
            })??;
            out[slot] = text;
        }
        Ok(out)
    }
}

/// Whether an entry is part of incident `id`.
fn belongs(e: &Event, id: &str) -> bool {
    (e.subject.kind == "incident" && e.subject.id == id)
        || e.details.get("incident").map(String::as_str) == Some(id)
}

fn detail(e: &Event, key: &str) -> String {
    e.details.get(key).cloned().unwrap_or_default()
}
