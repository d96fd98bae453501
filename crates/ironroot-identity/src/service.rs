//! [`IdentityService`]: issuance and revocation, each one unit with the registry and the audit
//! log. The type, its settings and its request/result types live here; the operations are
//! split by responsibility: `issue` (CSR → certificate), `batch` (many CSRs, one unlock),
//! `revoke` (certificates and devices out of service, the change-feed follower), `crl`
//! (CRL publication) and `ocsp` (OCSP answers and the delegated responder certificates).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ironroot_audit::{Audit, Event, EventKind, Outcome};
use ironroot_pki::{
    DeviceId, Fingerprint, IssuancePolicy, IssuedCertificate, OnlineCa, RevocationSet, Serial,
};
use ironroot_store::{ChangeCursor, DeviceState, GroupCommitter, Store};
use time::{Duration, OffsetDateTime};

use crate::error::IdentityError;

mod batch;
mod crl;
mod issue;
mod ocsp;
mod revoke;

pub use batch::BATCH_CONCURRENCY;
pub use crl::{CRL_FILE, crl_path};
pub use ocsp::{OCSP_RENEW_BEFORE, OCSP_RESPONDER_LIFETIME, OCSP_RESPONSE_VALIDITY};

/// Actor name the service uses for events it records on its own behalf (CRL publication).
pub const SERVICE_ACTOR: &str = "service:identity";

/// Settings of the identity service.
#[derive(Debug, Clone)]
pub struct IdentityOptions {
    /// What CSRs are accepted and how long certificates last (operational:
    /// `device_validity`; factory credentials: `factory_validity`, capped at the factory CA).
    pub issuance: IssuancePolicy,
    /// Largest number of issuances committed in one registry transaction (group commit).
    pub max_batch: usize,
    /// The data directory: the CRL is written to `<data_dir>/pki/crl.pem`, next to the CA files.
    pub data_dir: PathBuf,
    /// How long a published CRL stays valid (its nextUpdate); short, so relying parties refetch.
    pub crl_lifetime: Duration,
}

impl IdentityOptions {
    /// Defaults (P-256 CSRs up to 16 KiB, 90-day certificates, 10-year factory credentials,
    /// batches of 512, CRLs valid 24 hours) for the data directory `data_dir`.
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
    /// A factory (bootstrap) credential from the factory CA (`ironroot ca issue --factory`):
    /// SAN `urn:ironroot:bootstrap:<id>`, accepted only for enrollment (never by the MQTT
    /// broker), recorded as [`ironroot_store::CertificateKind::Factory`] so it can be revoked.
    /// Only for a device still `manufactured`; its state does not change.
    Factory,
}

impl IssuePurpose {
    /// Lowercase name used in audit details.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuePurpose::Enroll => "enroll",
            IssuePurpose::Reenroll => "reenroll",
            IssuePurpose::Manual => "manual",
            IssuePurpose::Factory => "factory",
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
    /// The issuing CA then the root, PEM (what the device needs to build its chain): the
    /// intermediate for operational certificates, the factory CA for factory credentials.
    pub chain_pem: String,
    /// The device's state after the issuance (provisioned after the first operational
    /// certificate; a factory credential leaves it manufactured).
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
    /// The factory CA then the root, PEM.
    factory_chain_pem: String,
    /// The delegated OCSP responders (none until `start_ocsp_responder`).
    ocsp: ocsp::OcspState,
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
        let factory_chain_pem = format!("{}{}", ca.factory().certificate().pem(), ca.root().pem());
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
                factory_chain_pem,
                ocsp: ocsp::OcspState::default(),
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

    /// The factory CA then the root, PEM: the chain a factory credential verifies against.
    pub fn factory_chain_pem(&self) -> &str {
        &self.inner.factory_chain_pem
    }

    /// The live revoked-serial set: give it to `RevocationCheckingVerifier::new`.
    pub fn revocations(&self) -> Arc<RevocationSet> {
        Arc::clone(&self.inner.revocations)
    }

    /// Where [`IdentityService::write_crl`] writes: `<data_dir>/pki/crl.pem`.
    pub fn crl_path(&self) -> PathBuf {
        crl_path(&self.inner.options.data_dir)
    }

    /// The issuer name recorded with every operational certificate (the intermediate's
    /// common name).
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
}
