//! Taking one device out of service inside a caller's transaction, with its live sessions cut
//! through the change feed: containment (quarantine or revocation, `ironroot incident
//! contain`) and repair (`ironroot device repair`).
//!
//! Many devices go through one [`Transaction`] so an incident over 10,000 devices is a single
//! commit: either every device is contained or none is.

use crate::changes::ChangeKind;
use crate::devices::{lock_state, write_state};
use crate::error::{Result, StoreError};
use crate::model::{Certificate, DeviceState, RevocationReason};
use crate::store::now;
use crate::tx::Transaction;

/// What taking one device out of service (containment, repair) changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Contained {
    /// Its state before.
    pub from: DeviceState,
    /// Its state now.
    pub to: DeviceState,
    /// Certificates revoked now (empty for quarantine).
    pub revoked: Vec<Certificate>,
}

impl Transaction {
    /// Contains one device: `revoke = None` quarantines it (a device already quarantined stays
    /// so), `Some(reason)` revokes it and every certificate it holds. Either way a
    /// [`ChangeKind::SessionCut`] entry tells every broker to close its live sessions, so it
    /// reconnects (if it still can) under the quarantine policy. Refuses a device whose state
    /// cannot move there (revoked, decommissioned, or not yet provisioned for quarantine) with
    /// [`StoreError::InvalidTransition`].
    pub async fn contain_device(
        &mut self,
        id: &str,
        revoke: Option<RevocationReason>,
    ) -> Result<Contained> {
        let to = match revoke {
            Some(_) => DeviceState::Revoked,
            None => DeviceState::Quarantined,
        };
        self.take_out_of_service(id, to, revoke, |from| from.can_be_contained_as(to))
            .await
    }

    /// Sends a device for repair: state `in_repair`, every certificate it holds revoked
    /// (cessation of operation) and a [`ChangeKind::SessionCut`] entry, so it can neither stay
    /// connected nor connect or enroll again until it is re-commissioned
    /// ([`Transaction::rebind_device`]), which makes it enroll a fresh key. Refuses a state the
    /// lifecycle does not allow (manufactured, revoked, decommissioned, already in repair)
    /// with [`StoreError::InvalidTransition`].
    pub async fn send_for_repair(&mut self, id: &str) -> Result<Contained> {
        let to = DeviceState::InRepair;
        let reason = Some(RevocationReason::CessationOfOperation);
        self.take_out_of_service(id, to, reason, |from| from.can_become(to))
            .await
    }

    /// The step containment and repair share: lock the row, refuse unless `allowed(from)`,
    /// move to `to` (a device already there stays), revoke every certificate when `revoke`
    /// names a reason, and tell every broker to cut the device's sessions.
    async fn take_out_of_service(
        &mut self,
        id: &str,
        to: DeviceState,
        revoke: Option<RevocationReason>,
        allowed: impl Fn(DeviceState) -> bool,
    ) -> Result<Contained> {
        let at = now();
        let mut conn = self.connection();
        let from = lock_state(&mut conn, id, true)
            .await?
            .ok_or_else(|| StoreError::UnknownDevice(id.to_owned()))?;
        if !allowed(from) {
            return Err(StoreError::InvalidTransition {
                device: id.to_owned(),
                from,
                to,
            });
        }
        let stays = from == to;
        if !stays {
            write_state(&mut conn, id, to, at).await?;
        }
        let revoked = match revoke {
            Some(reason) => {
                self.revoke_locked_device_certificates(id, reason, at)
                    .await?
            }
            None => Vec::new(),
        };
        if !stays {
            self.push_change(ChangeKind::Device, id, at);
        }
        self.push_change(ChangeKind::SessionCut, id, at);
        Ok(Contained { from, to, revoked })
    }
}
