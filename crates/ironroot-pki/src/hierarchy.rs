//! Building the CA hierarchy: root, intermediate (per generation), factory CA.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::ca::{CaCertificate, CaRole, IssuingCa, ca_params};
use crate::error::IssueError;
use crate::serial::Serial;
use crate::signer::{CaSigner, RcgenSigner};

/// Names and lifetimes of the CA certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HierarchyPolicy {
    /// Organization (O=) in every CA subject.
    pub organization: String,
    /// Root lifetime (default 20 years).
    pub root_validity: Duration,
    /// Intermediate lifetime (default 5 years).
    pub intermediate_validity: Duration,
    /// Factory CA lifetime (default 5 years).
    pub factory_validity: Duration,
}

impl Default for HierarchyPolicy {
    fn default() -> Self {
        Self {
            organization: "ironroot".to_owned(),
            root_validity: Duration::days(20 * 365),
            intermediate_validity: Duration::days(5 * 365),
            factory_validity: Duration::days(5 * 365),
        }
    }
}

/// Common name of the root CA.
pub fn root_common_name() -> &'static str {
    "ironroot Root CA"
}

/// Common name of intermediate generation `generation` (distinct per generation, so old and
/// new intermediates never share a subject during an overlap).
pub fn intermediate_common_name(generation: u32) -> String {
    format!("ironroot Intermediate CA G{generation}")
}

/// Common name of the factory CA.
pub fn factory_common_name() -> &'static str {
    "ironroot Factory CA"
}

/// Creates the self-signed root (pathLen 1: one CA level below it, keyCertSign + cRLSign).
pub fn create_root(
    signer: Arc<dyn CaSigner>,
    policy: &HierarchyPolicy,
    now: OffsetDateTime,
) -> Result<IssuingCa, IssueError> {
    let serial = Serial::random()?;
    let params = ca_params(
        root_common_name(),
        &policy.organization,
        Some(1),
        &serial,
        now,
        policy.root_validity,
    );
    let key = RcgenSigner::new(signer.clone());
    let cert = params.self_signed(&key).map_err(|e| map_rcgen(e, &key))?;
    let cert = CaCertificate::from_der(cert.der().clone())?;
    IssuingCa::new(cert, CaRole::Root, signer)
}

/// Has the root sign a subordinate CA (intermediate or factory) for `subject_key`:
/// basicConstraints CA:TRUE pathLen 0 (critical), keyUsage keyCertSign + cRLSign (critical),
/// subject and authority key identifiers. Validity is capped at the root's.
pub fn sign_subordinate(
    root: &IssuingCa,
    role: CaRole,
    common_name: &str,
    subject_key: &dyn CaSigner,
    organization: &str,
    validity: Duration,
    now: OffsetDateTime,
) -> Result<CaCertificate, IssueError> {
    root.check_can_issue(CaRole::Root, now)?;
    if role == CaRole::Root {
        return Err(IssueError::WrongCaRole {
            have: CaRole::Root,
            need: CaRole::Intermediate,
        });
    }
    let serial = Serial::random()?;
    let validity = validity.min(root.certificate().not_after() - now);
    let mut params = ca_params(common_name, organization, Some(0), &serial, now, validity);
    params.use_authority_key_identifier_extension = true;
    let public = PublicOnly(subject_key.public_key());
    let cert = params
        .signed_by(&public, root.issuer())
        .map_err(|e| root.rcgen_error(e))?;
    CaCertificate::from_der(cert.der().clone())
}

struct PublicOnly<'a>(&'a [u8]);

impl rcgen::PublicKeyData for PublicOnly<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

fn map_rcgen(err: rcgen::Error, key: &RcgenSigner) -> IssueError {
    match (err, key.take_error()) {
        (rcgen::Error::RemoteKeyError, Some(e)) => IssueError::Signer(e),
        (other, _) => IssueError::Encoding(other.to_string()),
    }
}
