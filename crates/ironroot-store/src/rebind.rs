//! Rebinding a device to a new owner: ownership transfer and re-commissioning.
//!
//! Both reset the device to `manufactured` in one transaction: every certificate it holds is
//! revoked (so it must enroll again with a fresh key), and everything the previous owner bound
//! to it goes — groups, attributes, policies attached to the device itself, unused claim
//! tokens and pending rotations. Live sessions are cut through the change feed.

use std::collections::BTreeMap;

use crate::changes::ChangeKind;
use crate::devices::{ensure_membership, get, lock_state, upsert_attribute};
use crate::error::{Result, StoreError};
use crate::model::{Certificate, DeviceState, RevocationReason};
use crate::on_backend;
use crate::policies::PolicyTarget;
use crate::store::now;
use crate::tx::Transaction;
use crate::validate;

/// Why a device is rebound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RebindKind {
    /// Ownership transfer of a device that is not retired (manufactured, provisioned, active
    /// or quarantined); its certificates are revoked as `affiliation_changed`.
    Transfer,
    /// Re-commissioning a device back from repair, revoked or decommissioned: the one
    /// explicit way to use a retired id again.
    Recommission,
}

impl RebindKind {
    /// The name used in audit entries and the API (`transfer`, `recommission`).
    pub fn as_str(self) -> &'static str {
        match self {
            RebindKind::Transfer => "transfer",
            RebindKind::Recommission => "recommission",
        }
    }

    /// Whether a device in `state` may be rebound this way.
    pub fn allowed_from(self, state: DeviceState) -> bool {
        use DeviceState::*;
        match self {
            RebindKind::Transfer => {
                matches!(state, Manufactured | Provisioned | Active | Quarantined)
            }
            RebindKind::Recommission => matches!(state, InRepair | Revoked | Decommissioned),
        }
    }

    /// The reason the device's certificates are revoked with.
    pub fn revocation_reason(self) -> RevocationReason {
        match self {
            RebindKind::Transfer => RevocationReason::AffiliationChanged,
            RebindKind::Recommission => RevocationReason::Superseded,
        }
    }
}

/// The binding a device gets: who owns it now and the groups and attributes that owner gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebind {
    /// Transfer or re-commission.
    pub kind: RebindKind,
    /// The new owner (`None`: unowned).
    pub owner: Option<String>,
    /// Groups to put the device in (created when missing).
    pub groups: Vec<String>,
    /// Attributes to set.
    pub attributes: BTreeMap<String, String>,
}

/// What rebinding a device removed and changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rebound {
    /// Its state before (it is `manufactured` now).
    pub from: DeviceState,
    /// The owner before.
    pub previous_owner: Option<String>,
    /// Certificates revoked now.
    pub revoked: Vec<Certificate>,
    /// Groups it left.
    pub removed_groups: Vec<String>,
    /// Attribute keys removed.
    pub removed_attributes: Vec<String>,
    /// Policies that were attached to the device itself, now detached.
    pub detached_policies: Vec<String>,
    /// Unused claim tokens minted for this device, now void.
    pub voided_claims: u64,
}

impl Transaction {
    /// Rebinds a device (see the module documentation); refuses a device whose state `kind`
    /// does not allow with [`StoreError::InvalidTransition`] (to `manufactured`).
    pub async fn rebind_device(&mut self, id: &str, rebind: &Rebind) -> Result<Rebound> {
        if let Some(owner) = &rebind.owner {
            validate::owner(owner)?;
        }
        for group in &rebind.groups {
            validate::group_name(group)?;
        }
        for (key, value) in &rebind.attributes {
            validate::attribute_key(key)?;
            validate::attribute_value(value)?;
        }
        let at = now();
        let mut conn = self.connection();
        let from = lock_state(&mut conn, id, true)
            .await?
            .ok_or_else(|| StoreError::UnknownDevice(id.to_owned()))?;
        if !rebind.kind.allowed_from(from) {
            return Err(StoreError::InvalidTransition {
                device: id.to_owned(),
                from,
                to: DeviceState::Manufactured,
            });
        }
        let before = get(&mut conn, id).await?;
        let detached: Vec<String> = on_backend!(&mut conn, c => {
            sqlx::query_scalar(
                "DELETE FROM policy_attachments WHERE target_kind = 'device' AND target = $1 \
                 RETURNING policy_name",
            )
            .bind(id)
            .fetch_all(&mut **c)
            .await
        })
        .map_err(StoreError::db("detach device policies"))?;
        for sql in [
            "DELETE FROM device_groups WHERE device_id = $1",
            "DELETE FROM device_attributes WHERE device_id = $1",
            "DELETE FROM provision_rotations WHERE device_id = $1",
        ] {
            on_backend!(&mut conn, c => {
                sqlx::query(sql).bind(id).execute(&mut **c).await.map(|r| r.rows_affected())
            })
            .map_err(StoreError::db("remove device bindings"))?;
        }
        let voided_claims = on_backend!(&mut conn, c => {
            // Spent tokens stay as history; only those that could still enroll go.
            sqlx::query("DELETE FROM provision_claims WHERE device_id = $1 AND used < quota")
                .bind(id)
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(StoreError::db("void claim tokens"))?;
        on_backend!(&mut conn, c => {
            sqlx::query(
                "UPDATE devices SET state = $1, owner = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(DeviceState::Manufactured.as_str())
            .bind(rebind.owner.as_deref())
            .bind(at)
            .bind(id)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(StoreError::db("rebind device"))?;
        for group in &rebind.groups {
            ensure_membership(&mut conn, id, group, at).await?;
        }
        for (key, value) in &rebind.attributes {
            upsert_attribute(&mut conn, id, key, value).await?;
        }
        let revoked = self
            .revoke_locked_device_certificates(id, rebind.kind.revocation_reason(), at)
            .await?;
        let device = PolicyTarget::Device(id.to_owned());
        for name in &detached {
            self.record_attachment_change(name, &device, at);
        }
        self.push_change(ChangeKind::Device, id, at);
        self.push_change(ChangeKind::SessionCut, id, at);
        Ok(Rebound {
            from,
            previous_owner: before.owner,
            revoked,
            removed_groups: before.groups,
            removed_attributes: before.attributes.into_keys().collect(),
            detached_policies: detached,
            voided_claims,
        })
    }
}
