//! [`IdentityService`]: issuance and revocation, each one unit with the registry and the audit
//! log.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironroot_audit::{Audit, Event, EventKind, Outcome};
use ironroot_pki::{
    CaDirectory, DeviceId, Fingerprint, IssuancePolicy, IssuedCertificate, OnlineCa, RevocationSet,
    Serial, verify_csr,
};
use ironroot_store::{
    Certificate, CertificateKind, CertificateStatus, ChangeCursor, ChangeKind, DeviceState,
    GroupCommitter, NewCertificate, RevocationReason, Store, StoreError, Transaction,
};
use time::{Duration, OffsetDateTime};

use crate::error::IdentityError;

/// Actor name the service uses for events it records on its own behalf (CRL publication).
pub const SERVICE_ACTOR: &str = "service:identity";

/// File under `<data_dir>/pki/` holding the latest published CRLs (every trusted intermediate's
/// CRL of revoked device certificates, then the root's CRL of revoked CAs), PEM.
pub const CRL_FILE: &str = "crl.pem";

/// Settings of the identity service.
#[derive(Debug, Clone)]
pub struct IdentityOptions {
    /// What CSRs are accepted and how long certificates last.
    pub issuance: IssuancePolicy,
    /// Largest number of issuances committed in one registry transaction (group commit).
    pub max_batch: usize,
    /// The data directory: the CRL is written to `<data_dir>/pki/crl.pem`, next to the CA files.
    pub data_dir: PathBuf,
    /// How long a published CRL stays valid (its nextUpdate); short, so relying parties refetch.
    pub crl_lifetime: Duration,
}

impl IdentityOptions {
    /// Defaults (P-256 CSRs up to 16 KiB, 90-day certificates, batches of 512, CRLs valid
    /// 24 hours) for the data directory `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            issuance: IssuancePolicy::default(),
            max_batch: 512,
            data_dir: data_dir.into(),
            crl_lifetime: Duration::hours(24),
        }
    }
}

/// Why a certificate is issued; recorded in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssuePurpose {
    /// First operational certificate of a device (provisioning, EST simpleenroll).
    Enroll,
    /// Renewal with a new key (EST simplereenroll, agent rotation).
    Reenroll,
    /// Issued by an operator by hand (`ironroot ca issue`).
    Manual,
}

impl IssuePurpose {
    /// Lowercase name used in audit details.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuePurpose::Enroll => "enroll",
            IssuePurpose::Reenroll => "reenroll",
            IssuePurpose::Manual => "manual",
        }
    }
}

/// A request for a device certificate.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// The device the certificate is for; it must be registered.
    pub device: DeviceId,
    /// The PKCS#10 request as received, PEM or DER. Only its public key is used.
    pub csr: Vec<u8>,
    /// Who asks: `operator:<name>`, `device:<id>`, `service:<name>`.
    pub actor: String,
    /// The peer address, if the request came over the network.
    pub source: Option<IpAddr>,
    /// Why.
    pub purpose: IssuePurpose,
}

/// A certificate that is recorded in the registry and the audit log: safe to hand out.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate as signed.
    pub certificate: IssuedCertificate,
    /// The issuing intermediate then the root, PEM (what the device needs to build its chain).
    pub chain_pem: String,
    /// The device's state after the issuance (provisioned after the first one).
    pub device_state: DeviceState,
}

impl Issued {
    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        self.certificate.der()
    }

    /// The certificate, PEM.
    pub fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// Its serial.
    pub fn serial(&self) -> &Serial {
        self.certificate.serial()
    }

    /// SHA-256 fingerprint of the DER.
    pub fn fingerprint(&self) -> Fingerprint {
        self.certificate.fingerprint()
    }

    /// End of validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.certificate.not_after()
    }
}

struct Inner {
    ca: OnlineCa,
    store: Store,
    audit: Arc<Audit>,
    options: IdentityOptions,
    committer: GroupCommitter,
    revocations: Arc<RevocationSet>,
    /// Feed position taken before the revoked set was loaded: followers start here.
    loaded_at: ChangeCursor,
    chain_pem: String,
}

/// The one place where device certificates are issued and revoked, each together with its
/// registry change and its audit entry. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct IdentityService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService")
            .field("issuer", &self.issuer_name())
            .field("backend", &self.inner.store.backend())
            .field("revoked", &self.inner.revocations.len())
            .finish_non_exhaustive()
    }
}

fn pki_reason(reason: RevocationReason) -> ironroot_pki::RevocationReason {
    use ironroot_pki::RevocationReason as P;
    match reason {
        RevocationReason::KeyCompromise => P::KeyCompromise,
        RevocationReason::CaCompromise => P::CaCompromise,
        RevocationReason::AffiliationChanged => P::AffiliationChanged,
        RevocationReason::Superseded => P::Superseded,
        RevocationReason::CessationOfOperation => P::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn => P::PrivilegeWithdrawn,
        _ => P::Unspecified,
    }
}

fn event(kind: EventKind, actor: &str, source: Option<IpAddr>) -> Event {
    let e = Event::new(kind, actor);
    match source {
        Some(ip) => e.source(ip.to_string()),
        None => e,
    }
}

impl IdentityService {
    /// Starts the service: loads the revoked set from the registry (plus revoked CA
    /// certificates) and starts the group committer on the current tokio runtime.
    pub async fn open(
        ca: OnlineCa,
        store: Store,
        audit: Arc<Audit>,
        options: IdentityOptions,
    ) -> Result<Self, IdentityError> {
        // Cursor first, then the load: nothing revoked after the load can be missed.
        let loaded_at = store.change_cursor_now().await?;
        let mut serials: Vec<Serial> = ca.revoked_cas().iter().map(|e| e.serial.clone()).collect();
        serials.extend(
            store
                .revoked_certificates()
                .await?
                .into_iter()
                .map(|r| r.serial),
        );
        let revocations = Arc::new(RevocationSet::from_serials(serials));
        let chain_pem = format!("{}{}", ca.issuing().certificate().pem(), ca.root().pem());
        let committer = store.group_committer(options.max_batch);
        Ok(Self {
            inner: Arc::new(Inner {
                ca,
                store,
                audit,
                options,
                committer,
                revocations,
                loaded_at,
                chain_pem,
            }),
        })
    }

    /// The registry.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The audit log.
    pub fn audit(&self) -> &Arc<Audit> {
        &self.inner.audit
    }

    /// The online CAs (for building verifiers: `device_issuers()`, `root()`).
    pub fn ca(&self) -> &OnlineCa {
        &self.inner.ca
    }

    /// The issuing intermediate then the root, PEM.
    pub fn chain_pem(&self) -> &str {
        &self.inner.chain_pem
    }

    /// The live revoked-serial set: give it to `RevocationCheckingVerifier::new`.
    pub fn revocations(&self) -> Arc<RevocationSet> {
        Arc::clone(&self.inner.revocations)
    }

    /// Where [`IdentityService::write_crl`] writes: `<data_dir>/pki/crl.pem`.
    pub fn crl_path(&self) -> PathBuf {
        crl_path(&self.inner.options.data_dir)
    }

    /// The issuer name recorded with every certificate (the intermediate's common name).
    fn issuer_name(&self) -> &str {
        self.inner.ca.issuing().certificate().common_name()
    }

    /// Records a refused or failed request; the refusal stands even if this fails.
    async fn record_refusal(&self, e: Event, err: &IdentityError) {
        let outcome = if err.is_refusal() {
            Outcome::Denied
        } else {
            Outcome::Failure
        };
        let _ = self
            .inner
            .audit
            .record(e.outcome(outcome).detail("reason", err.kind()))
            .await;
    }

    /// Issues a device certificate from a CSR and returns it once it is recorded.
    ///
    /// Order: verify the CSR (only its public key is used; a CN, if present, must equal the
    /// device id) → check the device is registered and may receive certificates → sign in
    /// memory → audit entry (durable, write-ahead) → registry transaction (certificate row, and
    /// manufactured → provisioned on the first certificate), batched with concurrent
    /// issuances → return. A crash before the commit leaves no certificate anywhere (the signed
    /// bytes lived only in memory); the audit entry then names a serial the registry never saw.
    /// Refusals are recorded in the audit log with outcome `denied` and nothing is signed.
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
        let new = NewCertificate {
            serial: cert.serial().clone(),
            der: cert.der().to_vec(),
            device_id: Some(req.device.as_str().to_owned()),
            kind: CertificateKind::Operational,
            issuer: self.issuer_name().to_owned(),
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
                    if state != DeviceState::Manufactured {
                        return Ok(state);
                    }
                    provision(tx, &device).await
                })
            })
            .await;
        match committed {
            Ok(device_state) => Ok(Issued {
                certificate: cert,
                chain_pem: self.inner.chain_pem.clone(),
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
        let cert = self.inner.ca.issuing().issue_device(
            &csr,
            &req.device,
            policy,
            OffsetDateTime::now_utc(),
        )?;
        Ok((cert, state))
    }

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

    /// Signs a CRL per trusted intermediate listing every certificate it issued that the
    /// registry holds as revoked, and writes them (then the root's CRL of revoked CAs) to
    /// [`IdentityService::crl_path`] atomically. Returns the current intermediate's CRL.
    pub async fn write_crl(&self) -> Result<ironroot_pki::Crl, IdentityError> {
        let revoked = self.inner.store.revoked_certificates().await?;
        let now = OffsetDateTime::now_utc();
        let mut text = String::new();
        let mut current = None;
        let mut listed = 0usize;
        for (ca, _) in self.inner.ca.intermediates() {
            let name = ca.certificate().common_name();
            let entries: Vec<ironroot_pki::RevokedEntry> = revoked
                .iter()
                .filter(|r| r.issuer == name)
                .filter_map(|r| {
                    Some(ironroot_pki::RevokedEntry {
                        serial: r.serial.clone(),
                        revoked_at: OffsetDateTime::from_unix_timestamp(r.revoked_at).ok()?,
                        reason: pki_reason(r.reason),
                    })
                })
                .collect();
            listed += entries.len();
            let crl = ca.sign_crl(&entries, now, self.inner.options.crl_lifetime)?;
            text.push_str(&crl.pem());
            current.get_or_insert(crl);
        }
        text.push_str(&CaDirectory::new(&self.inner.options.data_dir).root_crl_pem()?);
        let path = self.crl_path();
        // Readers see the old or the new CRL, never half of one, even with two writers.
        ironroot_fs::write_atomically(&path, text.as_bytes())?;
        let _ = self
            .inner
            .audit
            .record(
                Event::new(EventKind::CrlPublished, SERVICE_ACTOR)
                    .subject("ca", self.issuer_name())
                    .detail("entries", listed.to_string()),
            )
            .await;
        // `intermediates()` is never empty: `open_online` refuses a CA without one.
        current.ok_or_else(|| IdentityError::Io {
            path,
            source: std::io::Error::other("no trusted intermediate"),
        })
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

/// `<data_dir>/pki/crl.pem`.
pub fn crl_path(data_dir: &Path) -> PathBuf {
    data_dir.join("pki").join(CRL_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registry_reason_maps_to_its_crl_reason() {
        assert_eq!(
            pki_reason(RevocationReason::Superseded),
            ironroot_pki::RevocationReason::Superseded
        );
        assert_eq!(
            pki_reason(RevocationReason::PrivilegeWithdrawn),
            ironroot_pki::RevocationReason::PrivilegeWithdrawn
        );
        for r in RevocationReason::ALL {
            if *r != RevocationReason::Unspecified {
                assert_ne!(pki_reason(*r), ironroot_pki::RevocationReason::Unspecified);
            }
        }
    }
}
