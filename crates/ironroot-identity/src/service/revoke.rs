//! Revocation: single certificates, whole devices (revoked or decommissioned), and the
//! change-feed follower that applies revocations made by other processes to the live set.

use ironroot_audit::EventKind;
use ironroot_pki::{DeviceId, Serial};
use ironroot_store::{Certificate, CertificateStatus, ChangeKind, DeviceState, RevocationReason};

use super::{IdentityService, event};
use crate::error::IdentityError;

impl IdentityService {
    /// Revokes one certificate: audit entry (write-ahead), registry transaction with a change
    /// feed entry (every other process adds it to its revoked set), then the live set here.
    pub async fn revoke_serial(
        &self,
        serial: &Serial,
        reason: RevocationReason,
        actor: &str,
    ) -> Result<Certificate, IdentityError> {
        let base = event(EventKind::CertRevoked, actor, None)
            .subject("certificate", serial.to_string())
            .detail("reason", reason.as_str());
        let existing = match self.check_revocable(serial).await {
            Ok(c) => c,
            Err(err) => {
                self.record_refusal(base, &err).await;
                return Err(err);
            }
        };
        let base = match &existing.device_id {
            Some(d) => base.detail("device", d.clone()),
            None => base,
        };
        self.inner.audit.record(base.clone()).await?;
        let result = async {
            let mut tx = self.inner.store.begin().await?;
            let cert = tx.revoke_certificate(serial, reason).await?;
            tx.commit().await?;
            Ok::<_, ironroot_store::StoreError>(cert)
        }
        .await;
        match result {
            Ok(cert) => {
                self.inner.revocations.revoke(serial.clone());
                Ok(cert)
            }
            Err(err) => {
                let err = IdentityError::from(err);
                self.record_refusal(base.detail("stage", "registry"), &err)
                    .await;
                Err(err)
            }
        }
    }

    async fn check_revocable(&self, serial: &Serial) -> Result<Certificate, IdentityError> {
        let cert = self.inner.store.certificate(serial).await?;
        if cert.status == CertificateStatus::Revoked {
            return Err(IdentityError::CertificateStatus {
                serial: cert.serial,
                status: cert.status,
                op: "revoke",
            });
        }
        Ok(cert)
    }

    /// Retires a certificate after rotation: revoked with reason `superseded`.
    pub async fn retire(&self, serial: &Serial, actor: &str) -> Result<Certificate, IdentityError> {
        self.revoke_serial(serial, RevocationReason::Superseded, actor)
            .await
    }

    /// Revokes a device (state → revoked) and every certificate it holds, reason unspecified.
    pub async fn revoke_device(
        &self,
        device: &DeviceId,
        actor: &str,
    ) -> Result<Vec<Certificate>, IdentityError> {
        self.revoke_device_for(device, RevocationReason::Unspecified, actor)
            .await
    }

    /// Like [`IdentityService::revoke_device`], with the reason given to its certificates.
    pub async fn revoke_device_for(
        &self,
        device: &DeviceId,
        reason: RevocationReason,
        actor: &str,
    ) -> Result<Vec<Certificate>, IdentityError> {
        self.retire_device(device, reason, DeviceState::Revoked, actor)
            .await
    }

    /// Takes a device out of service for good: its certificates are revoked (cessation of
    /// operation) if they are not already, and it ends decommissioned (terminal).
    pub async fn decommission(
        &self,
        device: &DeviceId,
        actor: &str,
    ) -> Result<Vec<Certificate>, IdentityError> {
        self.retire_device(
            device,
            RevocationReason::CessationOfOperation,
            DeviceState::Decommissioned,
            actor,
        )
        .await
    }

    /// Moves a device to `target` (revoked or decommissioned), revoking its certificates, in
    /// one transaction; audit entry first, per-certificate entries after the commit.
    async fn retire_device(
        &self,
        device: &DeviceId,
        reason: RevocationReason,
        target: DeviceState,
        actor: &str,
    ) -> Result<Vec<Certificate>, IdentityError> {
        let id = device.as_str();
        let op = if target == DeviceState::Revoked {
            "revoke"
        } else {
            "decommission"
        };
        let base = event(EventKind::DeviceStateChanged, actor, None)
            .subject("device", id)
            .detail("to", target.as_str())
            .detail("reason", reason.as_str());
        let refusal = match self.inner.store.device(id).await {
            Err(err) => Some(IdentityError::from(err)),
            Ok(d) if d.state == target || d.state == DeviceState::Decommissioned => {
                Some(IdentityError::WrongState {
                    device: d.id,
                    state: d.state,
                    op,
                })
            }
            Ok(_) => None,
        };
        if let Some(err) = refusal {
            self.record_refusal(base, &err).await;
            return Err(err);
        }
        self.inner.audit.record(base.clone()).await?;
        let result = async {
            let mut tx = self.inner.store.begin().await?;
            let state = tx.device(id).await?.state;
            let revoked = tx.revoke_device_certificates(id, reason).await?;
            if state != DeviceState::Revoked {
                tx.set_device_state(id, DeviceState::Revoked).await?;
            }
            if target == DeviceState::Decommissioned {
                tx.set_device_state(id, DeviceState::Decommissioned).await?;
            }
            tx.commit().await?;
            Ok::<_, ironroot_store::StoreError>(revoked)
        }
        .await;
        let revoked = match result {
            Ok(r) => r,
            Err(err) => {
                let err = IdentityError::from(err);
                self.record_refusal(base.detail("stage", "registry"), &err)
                    .await;
                return Err(err);
            }
        };
        self.inner
            .revocations
            .revoke_many(revoked.iter().map(|c| c.serial.clone()));
        for cert in &revoked {
            // The device entry above already covers these (written ahead); these name each
            // serial. A failure here does not undo a revocation that took effect.
            let _ = self
                .inner
                .audit
                .record(
                    event(EventKind::CertRevoked, actor, None)
                        .subject("certificate", cert.serial.to_string())
                        .detail("device", id)
                        .detail("reason", reason.as_str()),
                )
                .await;
        }
        Ok(revoked)
    }

    /// Follows the registry's change feed (PostgreSQL LISTEN/NOTIFY, SQLite polling every
    /// 100 ms) and applies revocations made by any process — another replica, the offline
    /// CLI — to the live set, then calls `on_revoked` (the broker cuts that certificate's
    /// sessions). Called for revocations made through this service too. Runs until aborted;
    /// a database outage is retried every 200 ms from the last position.
    pub fn follow_changes(
        &self,
        on_revoked: impl Fn(&Serial) + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        tokio::spawn(async move {
            let mut cursor = service.inner.loaded_at;
            loop {
                let mut feed = match service.inner.store.subscribe_changes(cursor).await {
                    Ok(f) => f,
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        continue;
                    }
                };
                while let Ok(change) = feed.next().await {
                    cursor = change.cursor;
                    if change.kind != ChangeKind::CertificateRevoked {
                        continue;
                    }
                    let Ok(serial) = Serial::from_hex(&change.item) else {
                        continue;
                    };
                    if !service.inner.revocations.is_revoked(&serial) {
                        service.inner.revocations.revoke(serial.clone());
                    }
                    on_revoked(&serial);
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
    }
}
