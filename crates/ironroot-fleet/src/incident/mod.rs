//! Incident response: contain devices in one command, then report what was done with proofs.
//!
//! [`Fleet::contain`] quarantines or revokes every target device in **one** registry
//! transaction, cuts their live sessions on every broker (change feed `session_cut`), and
//! records one incident in the audit log:
//!
//! ```text
//!   resolve targets (names | group | query) ──none──► audit incident.opened `denied` ──► Err(NoTargets)
//!        ▼
//!   audit incident.opened + one device.state_changed per device (incident=<id>)   write-ahead, durable
//!        ▼
//!   one transaction: per device state → quarantined|revoked, certificates revoked,
//!   change feed device + certificate_revoked + session_cut ──► COMMIT
//!        ▼                                                      every node's follower: revoked set,
//!   audit cert.revoked per serial, incident.contained            kick the sessions (≤ 1 s)
//! ```
//!
//! [`Fleet::incident_report`] reads the incident back from the audit log alone (the log is the
//! incident record: nothing else can be edited afterwards) and attaches an inclusion proof for
//! every entry, each checked against the log's key before it is handed out.

mod contain;
mod query;
mod report;

pub use contain::{
    ContainAction, ContainRequest, ContainedDevice, Containment, SkippedDevice, Targets,
};
pub use query::{DeviceQuery, MAX_TARGETS};
pub use report::{IncidentReport, ReportEntry};

use ironroot_audit::{BundleError, ProveError, RecordError, StorageError};
use ironroot_store::StoreError;

/// Why an incident could not be contained or reported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IncidentError {
    /// The device query does not parse.
    #[error("invalid device query: {0}")]
    BadQuery(String),
    /// Nothing to contain: no device matched (the refusal is audited).
    #[error("no device matches {0}; nothing was changed")]
    NoTargets(String),
    /// The targets are more than one incident may hold.
    #[error("more than {0} devices match; narrow the query (nothing was changed)")]
    TooManyTargets(usize),
    /// The incident id is not of the form `inc-` + 16 hex digits.
    #[error("{0:?} is not an incident id (inc- followed by 16 hex digits)")]
    BadIncidentId(String),
    /// No incident with this id in the audit log.
    #[error("no incident {0} in the audit log")]
    UnknownIncident(String),
    /// The write-ahead audit entries could not be made durable, so nothing was changed.
    #[error("cannot record the incident in the audit log, so nothing was changed: {0}")]
    Audit(#[source] RecordError),
    /// The registry failed; the containment did not take effect.
    #[error("registry error, the containment did not take effect: {0}")]
    Store(#[source] StoreError),
    /// The operating system's random source failed (no incident id could be drawn).
    #[error("cannot draw an incident id from the OS random source: {0}")]
    Entropy(String),
    /// Reading the audit log failed.
    #[error("cannot read the audit log: {0}")]
    Log(#[source] StorageError),
    /// A proof could not be built, or did not verify (the log is damaged: run `ironroot audit verify`).
    #[error("audit entry {index} cannot be proven: {reason}")]
    Proof {
        /// The entry.
        index: u64,
        /// What went wrong.
        reason: String,
    },
}

impl IncidentError {
    fn unproven(index: u64, e: &ProveError) -> Self {
        IncidentError::Proof {
            index,
            reason: e.to_string(),
        }
    }

    fn proof(index: u64, e: &BundleError) -> Self {
        IncidentError::Proof {
            index,
            reason: e.to_string(),
        }
    }
}

/// Checks the shape of an incident id: `inc-` and 16 lower-case hex digits.
pub fn parse_incident_id(text: &str) -> Result<&str, IncidentError> {
    let ok = text.strip_prefix("inc-").is_some_and(|h| {
        h.len() == 16 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    if ok {
        Ok(text)
    } else {
        Err(IncidentError::BadIncidentId(
            text.chars().take(64).collect(),
        ))
    }
}
