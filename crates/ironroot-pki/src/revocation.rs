//! Revocation: the live revoked-serial set checked in every handshake, and signed CRLs for
//! other relying parties.
//!
//! The set is an immutable `HashSet` behind an [`ArcSwap`]: a lookup is one atomic load plus
//! one hash probe, independent of the number of revoked serials, and never takes a lock. A
//! revocation copies the set, inserts, and swaps the pointer, so concurrent handshakes see
//! either the old or the new set, never a torn one. Copying is O(n) per change (a few ms at
//! 100k entries), which is the right trade: handshakes outnumber revocations by many orders
//! of magnitude. Use [`RevocationSet::revoke_many`] for bulk changes.
//!
//! Callers apply a revocation here only after the registry transaction that records it has
//! committed; on start-up they load the set from the registry with
//! [`RevocationSet::replace`].

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams};
use rustls::pki_types::CertificateRevocationListDer;
use time::{Duration, OffsetDateTime};

use crate::ca::{IssuingCa, truncate};
use crate::error::IssueError;
use crate::serial::Serial;

/// The live set of revoked certificate serials (devices, operators, and CA certificates).
#[derive(Debug, Default)]
pub struct RevocationSet {
    serials: ArcSwap<HashSet<Serial>>,
}

impl RevocationSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set holding `serials`.
    pub fn from_serials(serials: impl IntoIterator<Item = Serial>) -> Self {
        Self {
            serials: ArcSwap::from_pointee(serials.into_iter().collect()),
        }
    }

    /// Whether `serial` is revoked. O(1), lock-free.
    pub fn is_revoked(&self, serial: &Serial) -> bool {
        self.serials.load().contains(serial)
    }

    /// Adds one serial. Call after the registry change has committed.
    pub fn revoke(&self, serial: Serial) {
        self.revoke_many(std::iter::once(serial));
    }

    /// Adds many serials with one copy of the set.
    pub fn revoke_many(&self, serials: impl IntoIterator<Item = Serial>) {
        let add: Vec<Serial> = serials.into_iter().collect();
        self.serials.rcu(|current| {
            let mut next = HashSet::clone(current);
            next.extend(add.iter().cloned());
            next
        });
    }

    /// Replaces the whole set (start-up, or resynchronising with the registry).
    pub fn replace(&self, serials: impl IntoIterator<Item = Serial>) {
        self.serials.store(Arc::new(serials.into_iter().collect()));
    }

    /// Number of revoked serials.
    pub fn len(&self) -> usize {
        self.serials.load().len()
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a certificate was revoked (the RFC 5280 reason codes ironroot uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RevocationReason {
    /// No reason given.
    Unspecified,
    /// The subject's private key is (suspected) compromised.
    KeyCompromise,
    /// A CA's key is compromised.
    CaCompromise,
    /// The certificate was replaced.
    Superseded,
    /// The device was taken out of service.
    CessationOfOperation,
    /// The subject's name or other information changed.
    AffiliationChanged,
    /// The subject lost the privileges the certificate granted.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    fn rcgen(self) -> rcgen::RevocationReason {
        match self {
            Self::Unspecified => rcgen::RevocationReason::Unspecified,
            Self::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            Self::CaCompromise => rcgen::RevocationReason::CaCompromise,
            Self::Superseded => rcgen::RevocationReason::Superseded,
            Self::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
            Self::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            Self::PrivilegeWithdrawn => rcgen::RevocationReason::PrivilegeWithdrawn,
        }
    }
}

/// One entry of a CRL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevokedEntry {
    /// Serial of the revoked certificate.
    #[serde(with = "serial_hex")]
    pub serial: Serial,
    /// When it was revoked.
    #[serde(with = "time::serde::rfc3339")]
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: RevocationReason,
}

/// A signed CRL.
#[derive(Debug, Clone)]
pub struct Crl {
    der: CertificateRevocationListDer<'static>,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
}

impl Crl {
    /// DER encoding (what HTTP distribution serves as `application/pkix-crl`).
    pub fn der(&self) -> &CertificateRevocationListDer<'static> {
        &self.der
    }

    /// PEM text (`-----BEGIN X509 CRL-----`), as `openssl verify -CRLfile` reads it.
    pub fn pem(&self) -> String {
        pem::encode(&pem::Pem::new("X509 CRL", self.der.to_vec()))
    }

    /// When it was signed.
    pub fn this_update(&self) -> OffsetDateTime {
        self.this_update
    }

    /// When relying parties must fetch a new one.
    pub fn next_update(&self) -> OffsetDateTime {
        self.next_update
    }
}

impl IssuingCa {
    /// Signs a CRL listing `revoked`, valid from `now` for `lifetime`.
    ///
    /// The CRL number is the signing time in microseconds since the Unix epoch: strictly
    /// increasing across restarts and replicas without shared state (as long as clocks move
    /// forward), which is all RFC 5280 asks of it.
    pub fn sign_crl(
        &self,
        revoked: &[RevokedEntry],
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Crl, IssueError> {
        let this_update = truncate(now);
        let next_update = truncate(now + lifetime);
        let micros = (now.unix_timestamp_nanos() / 1_000).max(1) as u128;
        let number = micros.to_be_bytes();
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: rcgen::SerialNumber::from_slice(&number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|e| RevokedCertParams {
                    serial_number: e.serial.to_rcgen(),
                    revocation_time: truncate(e.revoked_at),
                    reason_code: Some(e.reason.rcgen()),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: match self.certificate().key_id() {
                Some(id) => KeyIdMethod::PreSpecified(id.to_vec()),
                None => KeyIdMethod::Sha256,
            },
        };
        let crl = params
            .signed_by(self.issuer())
            .map_err(|e| self.rcgen_error(e))?;
        Ok(Crl {
            der: crl.der().clone(),
            this_update,
            next_update,
        })
    }
}

mod serial_hex {
    use crate::serial::Serial;

    pub(super) fn serialize<S: serde::Serializer>(s: &Serial, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&s.to_string())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Serial, D::Error> {
        let text: String = serde::Deserialize::deserialize(de)?;
        Serial::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoke_is_visible_and_lookup_matches_membership() {
        let set = RevocationSet::new();
        let a = Serial::random().unwrap();
        let b = Serial::random().unwrap();
        assert!(!set.is_revoked(&a));
        set.revoke(a.clone());
        assert!(set.is_revoked(&a) && !set.is_revoked(&b));
        set.revoke_many([b.clone(), a.clone()]);
        assert_eq!(set.len(), 2);
        set.replace([b.clone()]);
        assert!(!set.is_revoked(&a) && set.is_revoked(&b));
    }

    #[test]
    fn concurrent_readers_see_whole_sets() {
        let set = Arc::new(RevocationSet::new());
        let serials: Vec<Serial> = (0..200).map(|_| Serial::random().unwrap()).collect();
        let reader = {
            let set = set.clone();
            let serials = serials.clone();
            std::thread::spawn(move || {
                // Serials are added in order in batches of 20: a reader that sees serial i
                // must see every serial of earlier batches.
                for _ in 0..2000 {
                    let seen = serials.iter().take_while(|s| set.is_revoked(s)).count();
                    assert_eq!(seen % 20, 0, "torn update: saw {seen} serials");
                }
            })
        };
        for chunk in serials.chunks(20) {
            set.revoke_many(chunk.iter().cloned());
        }
        reader.join().unwrap();
        assert_eq!(set.len(), 200);
    }
}
