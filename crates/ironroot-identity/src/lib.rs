//! The ironroot identity service: the one place where device certificates are issued and
//! revoked, each together with its registry change and its audit entry.
//!
//! The principal type is [`IdentityService`], opened from the online CA
//! ([`ironroot_pki::CaDirectory::open_online`]), the registry ([`ironroot_store::Store`]) and
//! the audit log ([`ironroot_audit::Audit`]):
//!
//! ```text
//!  issue(IssueRequest)                                   revoke_serial / retire / revoke_device / decommission
//!   │ verify_csr (public key only; CN == device id)       │ check it exists and is not revoked yet
//!   │ device registered, state may receive certs          │ audit entry (write-ahead, durable)
//!   │ sign in memory (random 128-bit serial)              │ one transaction: certificate(s) revoked, device
//!   │ audit "cert.issued" (write-ahead, durable)          │   state, change feed rows (certificate_revoked)
//!   │ group commit: certificate row + manufactured        │ live RevocationSet updated here
//!   │   → provisioned, batched with concurrent issuances  ▼
//!   ▼ hand out (only now)                          other processes: follow_changes() ─► live set + callback
//!
//!  write_crl(): registry's revoked set ─► one CRL per trusted intermediate + root CRL ─► <D>/pki/crl.pem
//! ```
//!
//! Factory credentials (`IssuePurpose::Factory`, `ironroot ca issue --factory`) take the same
//! path: signed by the factory CA instead of the intermediate, recorded as factory
//! certificates, only for a device still manufactured, whose state they leave unchanged.
//!
//! A crash at any point leaves no certificate without its registry record (the certificate
//! leaves the process only after the commit) and no registry record without its audit entry
//! (the entry is durable before the transaction starts). Refused requests (bad CSR, unknown
//! device, wrong state) are recorded with outcome `denied`, and nothing is signed for them.
//!
//! # Getting started
//!
//! ```ignore
//! let ca = CaDirectory::new(data_dir).open_online(&secrets, OffsetDateTime::now_utc())?;
//! let store = Store::open_data_dir(data_dir).await?;
//! let audit = Arc::new(Audit::open_store(&store, data_dir).await?);
//! let identity = IdentityService::open(ca, store, audit, IdentityOptions::new(data_dir)).await?;
//! let _follower = identity.follow_changes(|serial| broker.revoke_serial(serial));
//! let issued = identity
//!     .issue(IssueRequest {
//!         device: DeviceId::parse("sensor-0001")?,
//!         csr,
//!         actor: "operator:alice".into(),
//!         source: None,
//!         purpose: IssuePurpose::Manual,
//!     })
//!     .await?;
//! ```
#![forbid(unsafe_code)]

mod error;
mod service;

pub use error::IdentityError;
pub use service::{
    BATCH_CONCURRENCY, CRL_FILE, IdentityOptions, IdentityService, IssuePurpose, IssueRequest,
    Issued, OCSP_RENEW_BEFORE, OCSP_RESPONDER_LIFETIME, OCSP_RESPONSE_VALIDITY, SERVICE_ACTOR,
    crl_path,
};
