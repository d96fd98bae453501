//! The end of a device's first life: ownership transfer, repair and re-commissioning.
//!
//! Transfer and re-commission rebind the device in one registry transaction
//! ([`Transaction::rebind_device`]): its
//! certificates are revoked and its live sessions cut, the previous owner's groups,
//! attributes, device policies, claim tokens and pending rotations are removed, and it is
//! `manufactured` again under the new owner — so it can only come back by enrolling a fresh
//! key with a claim token the new owner mints. Repair ([`Fleet::send_for_repair`]) takes a
//! device out of service until it is re-commissioned. The write-ahead audit entry names both
//! owners and everything removed; one `cert.revoked` entry per certificate follows the commit.
//!
//! [`Transaction::rebind_device`]: ironroot_store::Transaction::rebind_device

use ironroot_audit::EventKind;
use ironroot_store::{Certificate, DeviceState, Rebind, RebindKind, Rebound, RevocationReason};

use crate::{Change, Done, Fleet, FleetError, Origin, event};

impl Fleet {
    /// Rebinds device `id` as `rebind` says: [`RebindKind::Transfer`] (audited as
    /// `device.transferred`, details `from_owner`, `to_owner`) or [`RebindKind::Recommission`]
    /// (audited as `device.state_changed`, `to` = `manufactured`, `op` = `recommission`).
    /// Refused (and audited `denied`) for an unknown device or a state the kind does not
    /// allow: only a device that is not retired can be transferred, only one in repair,
    /// revoked or decommissioned re-commissioned.
    pub async fn rebind_device(
        &self,
        origin: &Origin,
        id: &str,
        rebind: &Rebind,
    ) -> Result<Rebound, FleetError> {
        let to_owner = rebind.owner.clone().unwrap_or_default();
        let base = match rebind.kind {
            RebindKind::Transfer => event(EventKind::DeviceTransferred, origin),
            _ => event(EventKind::DeviceStateChanged, origin)
                .detail("to", "manufactured")
                .detail("op", rebind.kind.as_str()),
        }
        .subject("device", id)
        .detail("to_owner", to_owner);
        let details = |done: &Done| match done {
            Done::Rebound(r) => vec![
                ("from_owner", r.previous_owner.clone().unwrap_or_default()),
                ("from_state", r.from.as_str().to_owned()),
                ("revoked_certificates", r.revoked.len().to_string()),
                ("groups_removed", r.removed_groups.join(",")),
                ("attributes_removed", r.removed_attributes.join(",")),
                ("policies_detached", r.detached_policies.join(",")),
                ("claims_voided", r.voided_claims.to_string()),
            ],
            _ => Vec::new(),
        };
        let rebound = match self
            .execute(base, Change::Rebind { id, rebind }, details)
            .await?
        {
            Done::Rebound(r) => r,
            _ => unreachable!("Rebind yields what it removed"),
        };
        self.record_revoked(
            origin,
            id,
            &rebound.revoked,
            rebind.kind.revocation_reason(),
        )
        .await;
        Ok(rebound)
    }

    /// Sends device `id` for repair ([`Transaction::send_for_repair`]): `in_repair`, every
    /// certificate revoked and its sessions cut; it comes back only by re-commissioning
    /// (`rebind_device` with [`RebindKind::Recommission`]) and enrolling a fresh key. Audited
    /// as `device.state_changed` (`to` = `in_repair`) before the commit; returns the
    /// certificates revoked now.
    ///
    /// [`Transaction::send_for_repair`]: ironroot_store::Transaction::send_for_repair
    pub async fn send_for_repair(
        &self,
        origin: &Origin,
        id: &str,
    ) -> Result<Vec<Certificate>, FleetError> {
        let base = event(EventKind::DeviceStateChanged, origin)
            .subject("device", id)
            .detail("to", DeviceState::InRepair.as_str());
        let details = |done: &Done| match done {
            Done::OutOfService(c) => vec![
                ("from_state", c.from.as_str().to_owned()),
                ("revoked_certificates", c.revoked.len().to_string()),
            ],
            _ => Vec::new(),
        };
        let done = match self.execute(base, Change::Repair(id), details).await? {
            Done::OutOfService(c) => c,
            _ => unreachable!("Repair yields what it revoked"),
        };
        self.record_revoked(
            origin,
            id,
            &done.revoked,
            RevocationReason::CessationOfOperation,
        )
        .await;
        Ok(done.revoked)
    }

    /// One `cert.revoked` entry per serial, after the commit. The write-ahead entry already
    /// covers them; these name each serial. A failure here does not undo a revocation that
    /// took effect.
    async fn record_revoked(
        &self,
        origin: &Origin,
        id: &str,
        certs: &[Certificate],
        reason: RevocationReason,
    ) {
        for cert in certs {
            let _ = self
                .audit
                .record(
                    event(EventKind::CertRevoked, origin)
                        .subject("certificate", cert.serial.to_string())
                        .detail("device", id)
                        .detail("reason", reason.as_str()),
                )
                .await;
        }
    }
}
