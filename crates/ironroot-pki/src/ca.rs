//! A CA certificate paired with its signing key: the object that issues certificates and CRLs.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::IssueError;
use crate::serial::{Fingerprint, Serial};
use crate::signer::{CaSigner, RcgenSigner};

/// What a CA in the ironroot hierarchy is for. Issuance methods check the role, so a factory
/// key can never mint operational device certificates and vice versa.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CaRole {
    /// The offline root: signs intermediate and factory CA certificates and the root CRL.
    Root,
    /// The online intermediate: signs device, operator and server certificates, and device CRLs.
    Intermediate,
    /// The manufacturing CA: signs bootstrap (birth) credentials on the production line.
    Factory,
}

/// A parsed CA certificate with the fields the CA logic needs.
#[derive(Debug, Clone)]
pub struct CaCertificate {
    der: CertificateDer<'static>,
    serial: Serial,
    subject_raw: Vec<u8>,
    common_name: String,
    key_id: Option<Vec<u8>>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl CaCertificate {
    /// Parses a CA certificate from DER. It must be a CA (basicConstraints cA=TRUE).
    pub fn from_der(der: CertificateDer<'static>) -> Result<Self, IssueError> {
        let (rest, cert) = X509Certificate::from_der(&der)
            .map_err(|e| IssueError::BadCaCertificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(IssueError::BadCaCertificate("trailing bytes".into()));
        }
        if !cert.is_ca() {
            return Err(IssueError::BadCaCertificate(
                "not a CA certificate (cA is false)".into(),
            ));
        }
        let serial = Serial::from_be_bytes(cert.raw_serial())
            .map_err(|e| IssueError::BadCaCertificate(e.to_string()))?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        let key_id = cert
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(id.0.to_vec())
                }
                _ => None,
            });
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        let subject_raw = cert.subject().as_raw().to_vec();
        Ok(Self {
            serial,
            subject_raw,
            common_name,
            key_id,
            not_before,
            not_after,
            der,
        })
    }

    /// Parses the first `CERTIFICATE` block of a PEM text.
    pub fn from_pem(text: &[u8]) -> Result<Self, IssueError> {
        let block = pem::parse(text).map_err(|_| IssueError::BadCaCertificate("not PEM".into()))?;
        if block.tag() != "CERTIFICATE" {
            return Err(IssueError::BadCaCertificate(
                "PEM block is not a CERTIFICATE".into(),
            ));
        }
        Self::from_der(CertificateDer::from(block.into_contents()))
    }

    /// The DER encoding.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// PEM text.
    pub fn pem(&self) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", self.der.to_vec()))
    }

    /// Serial number.
    pub fn serial(&self) -> &Serial {
        &self.serial
    }

    /// Subject common name, e.g. `ironroot Intermediate CA G2`.
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// The DER subject name (what issued certificates carry as issuer).
    pub fn subject_raw(&self) -> &[u8] {
        &self.subject_raw
    }

    /// The subject key identifier, when present (ironroot CAs always have one).
    pub fn key_id(&self) -> Option<&[u8]> {
        self.key_id.as_deref()
    }

    /// Start of validity.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// SHA-256 fingerprint of the DER.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.der)
    }
}

/// A certificate that was signed but not yet recorded or handed out.
///
/// Issuance is a pure step: nothing is written anywhere. The caller records serial,
/// fingerprint and `not_after` in the registry inside a transaction and hands the certificate
/// out only after that transaction commits.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    der: CertificateDer<'static>,
    serial: Serial,
    fingerprint: Fingerprint,
    subject: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl IssuedCertificate {
    /// DER encoding.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// PEM text (`-----BEGIN CERTIFICATE-----`).
    pub fn pem(&self) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", self.der.to_vec()))
    }

    /// The random 128-bit serial.
    pub fn serial(&self) -> &Serial {
        &self.serial
    }

    /// SHA-256 fingerprint of the DER.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Subject common name (the device id for device certificates).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Start of validity (backdated by the policy's clock-skew allowance).
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
}

/// The leaf profiles a CA can issue; each fixes the extensions completely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeafProfile {
    /// clientAuth, SAN URI `urn:ironroot:device:<id>` (intermediate).
    Device,
    /// clientAuth, SAN URI `urn:ironroot:bootstrap:<id>` (factory CA).
    Bootstrap,
    /// clientAuth, SAN URI `urn:ironroot:operator:<name>` (intermediate).
    Operator,
    /// serverAuth, DNS / IP SANs (intermediate).
    Server,
    /// codeSigning, SAN URI `urn:ironroot:command-signer` (intermediate): signs commands to
    /// devices, never accepted as a TLS peer.
    CommandSigner,
    /// OCSPSigning plus id-pkix-ocsp-nocheck (intermediate or factory CA): the delegated OCSP
    /// responder of the CA that signs it (RFC 6960 §4.2.2.2), never accepted as a TLS peer.
    OcspResponder,
}

impl LeafProfile {
    /// The role a CA of role `ca` needs to sign this profile: a delegated OCSP responder comes
    /// from whichever online CA it answers for; the root (offline) never signs one.
    fn role(self, ca: CaRole) -> CaRole {
        match self {
            Self::Bootstrap => CaRole::Factory,
            Self::OcspResponder if ca != CaRole::Root => ca,
            Self::Device
            | Self::Operator
            | Self::Server
            | Self::CommandSigner
            | Self::OcspResponder => CaRole::Intermediate,
        }
    }
}

/// A CA certificate and the key that signs for it.
pub struct IssuingCa {
    cert: CaCertificate,
    role: CaRole,
    issuer: Issuer<'static, RcgenSigner>,
}

impl std::fmt::Debug for IssuingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuingCa")
            .field("common_name", &self.cert.common_name)
            .field("role", &self.role)
            .field("key", &self.issuer.key().signer().describe())
            .finish()
    }
}

impl IssuingCa {
    /// Pairs a CA certificate with its key. Fails when the key's public half does not match
    /// the certificate (wrong key file, wrong token object).
    pub fn new(
        cert: CaCertificate,
        role: CaRole,
        signer: Arc<dyn CaSigner>,
    ) -> Result<Self, IssueError> {
        let (_, parsed) = X509Certificate::from_der(cert.der())
            .map_err(|e| IssueError::BadCaCertificate(e.to_string()))?;
        if parsed.public_key().subject_public_key.data.as_ref() != signer.public_key() {
            return Err(IssueError::KeyMismatch {
                ca: cert.common_name.clone(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(cert.der(), RcgenSigner::new(signer))
            .map_err(|e| IssueError::BadCaCertificate(e.to_string()))?;
        Ok(Self { cert, role, issuer })
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &CaCertificate {
        &self.cert
    }

    /// The CA's role.
    pub fn role(&self) -> CaRole {
        self.role
    }

    /// The signing backend.
    pub fn signer(&self) -> &Arc<dyn CaSigner> {
        self.issuer.key().signer()
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, RcgenSigner> {
        &self.issuer
    }

    /// Maps an rcgen failure to our error, recovering the signer's typed error if that was
    /// the cause.
    pub(crate) fn rcgen_error(&self, err: rcgen::Error) -> IssueError {
        match (err, self.issuer.key().take_error()) {
            (rcgen::Error::RemoteKeyError, Some(signer)) => IssueError::Signer(signer),
            (other, _) => IssueError::Encoding(other.to_string()),
        }
    }

    pub(crate) fn check_can_issue(
        &self,
        role: CaRole,
        now: OffsetDateTime,
    ) -> Result<(), IssueError> {
        if self.role != role {
            return Err(IssueError::WrongCaRole {
                have: self.role,
                need: role,
            });
        }
        if now >= self.cert.not_after {
            return Err(IssueError::CaExpired {
                ca: self.cert.common_name.clone(),
            });
        }
        Ok(())
    }

    /// Signs a leaf certificate for `key` with `profile`. Validity starts `backdate` before
    /// `now` (clock skew on devices) and is capped at the CA's own `not_after`.
    pub(crate) fn sign_leaf(
        &self,
        key: &impl rcgen::PublicKeyData,
        profile: LeafProfile,
        common_name: &str,
        sans: Vec<rcgen::SanType>,
        lifetime: Lifetime,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        let Lifetime { validity, backdate } = lifetime;
        self.check_can_issue(profile.role(self.role), now)?;
        let serial = Serial::random()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.serial_number = Some(serial.to_rcgen());
        params.not_before = truncate(now - backdate);
        params.not_after = truncate((now + validity).min(self.cert.not_after));
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match profile {
            LeafProfile::Server => ExtendedKeyUsagePurpose::ServerAuth,
            LeafProfile::CommandSigner => ExtendedKeyUsagePurpose::CodeSigning,
            LeafProfile::OcspResponder => ExtendedKeyUsagePurpose::OcspSigning,
            _ => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        if profile == LeafProfile::OcspResponder {
            // id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1), value NULL: clients do not ask for the
            // responder certificate's own status; its short lifetime is the control instead.
            params
                .custom_extensions
                .push(rcgen::CustomExtension::from_oid_content(
                    crate::ocsp::OCSP_NOCHECK_OID,
                    vec![0x05, 0x00],
                ));
        }
        let cert = params
            .signed_by(key, &self.issuer)
            .map_err(|e| self.rcgen_error(e))?;
        let der = cert.der().clone();
        Ok(IssuedCertificate {
            fingerprint: Fingerprint::of(&der),
            der,
            serial,
            subject: common_name.to_owned(),
            not_before: params.not_before,
            not_after: params.not_after,
        })
    }
}

/// Validity of a leaf: how long, and how far back `not_before` is set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lifetime {
    pub(crate) validity: Duration,
    pub(crate) backdate: Duration,
}

/// X.509 time has whole seconds; keep the reported times equal to the encoded ones.
pub(crate) fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Parameters for a CA certificate (root, intermediate, factory).
pub(crate) fn ca_params(
    common_name: &str,
    organization: &str,
    path_len: Option<u8>,
    serial: &Serial,
    now: OffsetDateTime,
    validity: Duration,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, organization);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.serial_number = Some(serial.to_rcgen());
    params.not_before = truncate(now - Duration::minutes(5));
    params.not_after = truncate(now + validity);
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}
