//! Issuance: CSR check, signing, write-ahead audit entry, group-committed registry record;
//! operational certificates from the intermediate, factory credentials from the factory CA.

use ironroot_audit::EventKind;
use ironroot_pki::{IssuedCertificate, verify_csr};
use ironroot_store::{
    CertificateKind, ChangeKind, DeviceState, NewCertificate, Store, StoreError, Transaction,
};
use time::OffsetDateTime;

use super::{IdentityService, IssuePurpose, IssueRequest, Issued, event};
use crate::error::IdentityError;

impl IdentityService {
    /// Issues a device certificate from a CSR and returns it once it is recorded.
    ///
    /// Order: verify the CSR (only its public key is used; a CN, if present, must equal the
    /// device id) → check the device is registered and may receive certificates → sign in
    /// memory → audit entry (durable, write-ahead) → registry transaction (certificate row, and
    /// manufactured → provisioned on the first certificate), batched with concurrent
    /// issuances → return. A crash before the commit leaves no certificate anywhere (the signed
    /// bytes lived only in memory); the audit entry then names a serial the registry never saw.
    /// Refusals are recorded in the audit log with outcome `denied` and nothing is signed.
    ///
    /// [`IssuePurpose::Factory`] takes the same path with three differences: the factory CA
    /// signs (a bootstrap credential, `IssuancePolicy::factory_validity`), the device must
    /// still be manufactured, and the device state is left as it is.
    pub async fn issue(&self, req: IssueRequest) -> Result<Issued, IdentityError> {
        let base = event(EventKind::CertIssued, &req.actor, req.source)
            .subject("device", req.device.as_str())
            .detail("purpose", req.purpose.as_str());
        let (cert, state) = match self.prepare(&req).await {
            Ok(ready) => ready,
            Err(err) => {
                self.record_refusal(base, &err).await;
                return Err(err);
            }
        };
        let base = base
            .detail("serial", cert.serial().to_string())
            .detail("fingerprint", cert.fingerprint().to_string());
        // Write-ahead: the log knows of the certificate before it can exist anywhere else.
        self.inner
            .audit
            .record(
                base.clone()
                    .detail("not_after", cert.not_after().unix_timestamp().to_string()),
            )
            .await?;
        let factory = req.purpose == IssuePurpose::Factory;
        let (kind, issuer, chain_pem) = if factory {
            (
                CertificateKind::Factory,
                self.inner.ca.factory().certificate().common_name(),
                &self.inner.factory_chain_pem,
            )
        } else {
            (
                CertificateKind::Operational,
                self.issuer_name(),
                &self.inner.chain_pem,
            )
        };
        let new = NewCertificate {
            serial: cert.serial().clone(),
            der: cert.der().to_vec(),
            device_id: Some(req.device.as_str().to_owned()),
            kind,
            issuer: issuer.to_owned(),
            subject: format!("CN={}", cert.subject()),
            not_before: cert.not_before().unix_timestamp(),
            not_after: cert.not_after().unix_timestamp(),
        };
        let device = req.device.as_str().to_owned();
        let committed = self
            .inner
            .committer
            .run(move |tx| {
                Box::pin(async move {
                    tx.record_issued_certificate(&new).await?;
                    // A factory credential is made before the device's first enrollment and
                    // does not count as one: the device stays manufactured.
                    if factory || state != DeviceState::Manufactured {
                        return Ok(state);
                    }
                    provision(tx, &device).await
                })
            })
            .await;
        match committed {
            Ok(device_state) => Ok(Issued {
                certificate: cert,
                chain_pem: chain_pem.clone(),
                device_state,
            }),
            Err(err) => {
                let err = IdentityError::from(err);
                // The write-ahead entry said "issued"; this one says it did not take effect.
                self.record_refusal(base.detail("stage", "registry"), &err)
                    .await;
                Err(err)
            }
        }
    }

    /// Checks the request and signs; writes nothing.
    async fn prepare(
        &self,
        req: &IssueRequest,
    ) -> Result<(IssuedCertificate, DeviceState), IdentityError> {
        let policy = &self.inner.options.issuance;
        let csr = verify_csr(&req.csr, &policy.csr)?;
        if let Some(cn) = csr.common_name()
            && cn != &req.device
        {
            return Err(IdentityError::CommonNameMismatch {
                requested: cn.to_string(),
                device: req.device.to_string(),
            });
        }
        let state = device_state(&self.inner.store, req.device.as_str()).await?;
        if !state.may_receive_certificates() {
            return Err(IdentityError::WrongState {
                device: req.device.to_string(),
                state,
                op: "issue a certificate",
            });
        }
        let factory = req.purpose == IssuePurpose::Factory;
        // A factory credential bootstraps the first enrollment; a device that already has an
        // operational identity (or is in any later state) gets none.
        if factory && state != DeviceState::Manufactured {
            return Err(IdentityError::WrongState {
                device: req.device.to_string(),
                state,
                op: "issue a factory certificate",
            });
        }
        // Signing blocks for the key backend's latency (an HSM round trip): on a blocking
        // thread, so the runtime keeps serving while the token works.
        let service = self.clone();
        let device = req.device.clone();
        let cert = tokio::task::spawn_blocking(move || {
            let inner = &service.inner;
            let (policy, now) = (&inner.options.issuance, OffsetDateTime::now_utc());
            if factory {
                inner
                    .ca
                    .factory()
                    .issue_bootstrap(&csr, &device, policy, now)
            } else {
                inner.ca.issuing().issue_device(&csr, &device, policy, now)
            }
        })
        .await
        .map_err(|_| IdentityError::SignerStopped)??;
        Ok((cert, state))
    }
}

/// The device's lifecycle state in one query (the full `Store::device` also reads groups and
/// attributes, three queries on the hot path of every issuance).
async fn device_state(store: &Store, id: &str) -> Result<DeviceState, IdentityError> {
    let mut pooled = store.acquire().await?;
    let mut conn = pooled.connection();
    let row: Option<String> = ironroot_store::on_backend!(&mut conn, c => {
        ironroot_store::sqlx::query_scalar("SELECT state FROM devices WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **c)
            .await
    })
    .map_err(|source| StoreError::Database {
        op: "read device state",
        source,
    })?;
    let text = row.ok_or_else(|| IdentityError::UnknownDevice(id.to_owned()))?;
    DeviceState::from_name(&text).ok_or_else(|| {
        IdentityError::Store(StoreError::CorruptRow {
            table: "devices",
            column: "state",
            value: text,
        })
    })
}

/// Manufactured → provisioned on the first certificate, in one conditional UPDATE (a legal
/// move of the lifecycle table) plus the change-feed entry; if a concurrent issuance already
/// moved the device, its current state is returned.
async fn provision(tx: &mut Transaction, id: &str) -> Result<DeviceState, StoreError> {
    let at = OffsetDateTime::now_utc().unix_timestamp();
    let mut conn = tx.connection();
    let moved = ironroot_store::on_backend!(&mut conn, c => {
        ironroot_store::sqlx::query(
            "UPDATE devices SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4",
        )
        .bind(DeviceState::Provisioned.as_str())
        .bind(at)
        .bind(id)
        .bind(DeviceState::Manufactured.as_str())
        .execute(&mut **c)
        .await
        .map(|r| r.rows_affected())
    })
    .map_err(|source| StoreError::Database {
        op: "provision device",
        source,
    })?;
    if moved == 1 {
        tx.record_change(ChangeKind::Device, id)?;
        Ok(DeviceState::Provisioned)
    } else {
        Ok(tx.device(id).await?.state)
    }
}
