//! The registry's records: devices, their lifecycle, and certificates.
//!
//! Times are seconds since the Unix epoch (UTC), the same in both backends.

use std::collections::BTreeMap;

use ironroot_pki::Serial;

/// Defines a text-backed enum: `as_str`, `parse` (for rows) and `Display`.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $table:literal, $column:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name stored in the database and shown to users.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the stored name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($text => Some($name::$variant),)+ _ => None }
            }

            #[allow(dead_code)] // not every enum is read back through this path
            pub(crate) fn from_row(value: String) -> Result<Self, crate::StoreError> {
                Self::from_name(&value).ok_or(crate::StoreError::CorruptRow {
                    table: $table,
                    column: $column,
                    value,
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Where a device is in its life. Legal moves are listed by [`DeviceState::can_become`]:
    ///
    /// | from \ to      | provisioned | active | quarantined | in_repair | revoked | decommissioned |
    /// |----------------|:-----------:|:------:|:-----------:|:---------:|:-------:|:--------------:|
    /// | manufactured   | yes         |        |             |           | yes     |                |
    /// | provisioned    |             | yes    | yes         | yes       | yes     |                |
    /// | active         |             |        | yes         | yes       | yes     |                |
    /// | quarantined    |             | yes    |             | yes       | yes     |                |
    /// | in_repair      |             |        |             |           | yes     |                |
    /// | revoked        |             |        |             |           |         | yes            |
    /// | decommissioned |             |        |             |           |         |                |
    ///
    /// A device is decommissioned only after it was revoked, so a retired device never keeps a
    /// valid certificate; decommissioned is terminal. Staying in the same state is not a move.
    /// Back to `manufactured` is not a move of this table but a rebind (`Transaction::
    /// rebind_device`): an ownership transfer, or a re-commission of a device that came back
    /// from repair, was revoked or was decommissioned.
    DeviceState, "devices", "state" {
        /// Registered (factory credential only), not yet holding an operational certificate.
        Manufactured = "manufactured",
        /// Holds an operational certificate but has not connected yet.
        Provisioned = "provisioned",
        /// In service.
        Active = "active",
        /// Cut down to the quarantine policy; can be released back to active.
        Quarantined = "quarantined",
        /// Returned for repair: its certificates are revoked and it may not connect or enroll
        /// until it is re-commissioned (then it enrolls a fresh key).
        InRepair = "in_repair",
        /// Its certificates are revoked; it may no longer connect or enrol.
        Revoked = "revoked",
        /// Retired for good.
        Decommissioned = "decommissioned",
    }
}

impl DeviceState {
    /// Whether the lifecycle allows moving from `self` to `to` (the table above).
    pub fn can_become(self, to: DeviceState) -> bool {
        use DeviceState::*;
        matches!(
            (self, to),
            (Manufactured, Provisioned)
                | (Manufactured, Revoked)
                | (Provisioned, Active)
                | (Provisioned, Quarantined)
                | (Provisioned, Revoked)
                | (Active, Quarantined)
                | (Active, Revoked)
                | (Quarantined, Active)
                | (Quarantined, Revoked)
                | (Provisioned, InRepair)
                | (Active, InRepair)
                | (Quarantined, InRepair)
                | (InRepair, Revoked)
                | (Revoked, Decommissioned)
        )
    }

    /// Whether incident containment may move a device from this state to `to`: a lifecycle
    /// move, or a quarantined device staying quarantined (its sessions are cut again).
    pub fn can_be_contained_as(self, to: DeviceState) -> bool {
        (self == to && to == DeviceState::Quarantined) || self.can_become(to)
    }

    /// Whether certificates may still be recorded for a device in this state.
    pub fn may_receive_certificates(self) -> bool {
        !matches!(
            self,
            DeviceState::InRepair | DeviceState::Revoked | DeviceState::Decommissioned
        )
    }
}

/// A device in the registry, with its groups and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The device id (also the certificate CN and MQTT client id).
    pub id: String,
    /// Lifecycle state.
    pub state: DeviceState,
    /// Who the device belongs to (a team, customer or operator), if recorded.
    pub owner: Option<String>,
    /// Groups the device is a member of, sorted.
    pub groups: Vec<String>,
    /// Key/value attributes (policy variables can read them).
    pub attributes: BTreeMap<String, String>,
    /// When the device was registered.
    pub created_at: i64,
    /// When the device row last changed.
    pub updated_at: i64,
}

/// What [`crate::Transaction::add_device`] needs to register a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// The device id; see [`crate::validate::device_id`].
    pub id: String,
    /// Initial state (normally [`DeviceState::Manufactured`]).
    pub state: DeviceState,
    /// Optional owner.
    pub owner: Option<String>,
    /// Groups to join (created when missing).
    pub groups: Vec<String>,
    /// Initial attributes.
    pub attributes: BTreeMap<String, String>,
}

impl NewDevice {
    /// A manufactured device with no owner, groups or attributes.
    pub fn new(id: impl Into<String>) -> Self {
        NewDevice {
            id: id.into(),
            state: DeviceState::Manufactured,
            owner: None,
            groups: Vec::new(),
            attributes: BTreeMap::new(),
        }
    }
}

/// Which devices [`crate::Store::list_devices`] returns: all filters combine with AND.
///
/// Listing is keyset-paginated by id: pass the last id of a page as `after` for the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Only members of this group.
    pub group: Option<String>,
    /// Only devices in this state.
    pub state: Option<DeviceState>,
    /// Only devices of this owner.
    pub owner: Option<String>,
    /// Only ids greater than this one.
    pub after: Option<String>,
    /// At most this many devices (default and maximum: 1000).
    pub limit: Option<u32>,
}

text_enum! {
    /// What a certificate is for.
    CertificateKind, "certificates", "kind" {
        /// A device's operational identity (MQTT, re-enrolment).
        Operational = "operational",
        /// A device's manufacturing credential, used once to bootstrap.
        Factory = "factory",
        /// A TLS server certificate of ironroot itself.
        Server = "server",
        /// An operator's client certificate for the admin API.
        Operator = "operator",
    }
}

impl CertificateKind {
    /// Whether certificates of this kind must name a device.
    pub fn needs_device(self) -> bool {
        matches!(
            self,
            CertificateKind::Operational | CertificateKind::Factory
        )
    }
}

text_enum! {
    /// A certificate's standing in the registry.
    CertificateStatus, "certificates", "status" {
        /// Valid and current.
        Active = "active",
        /// Replaced by a newer certificate (rotation) but not revoked: still valid until it is
        /// revoked or expires.
        Superseded = "superseded",
        /// Revoked: in the revoked set and on the CRL.
        Revoked = "revoked",
    }
}

text_enum! {
    /// Why a certificate was revoked: the RFC 5280 §5.3.1 CRLReason values that apply.
    RevocationReason, "certificates", "revocation_reason" {
        /// No reason given.
        Unspecified = "unspecified",
        /// The subject's private key is known or suspected to be compromised.
        KeyCompromise = "key_compromise",
        /// The issuing CA's key is compromised.
        CaCompromise = "ca_compromise",
        /// The subject's name or other information changed.
        AffiliationChanged = "affiliation_changed",
        /// Replaced by a newer certificate (rotation).
        Superseded = "superseded",
        /// The device or service was retired.
        CessationOfOperation = "cessation_of_operation",
        /// The subject lost the privileges the certificate granted.
        PrivilegeWithdrawn = "privilege_withdrawn",
    }
}

/// A certificate recorded in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Serial number (stored in its canonical text form, see [`Serial`]).
    pub serial: Serial,
    /// SHA-256 of the DER encoding, computed by the store.
    pub fingerprint: [u8; 32],
    /// The device it belongs to (always set for operational and factory certificates).
    pub device_id: Option<String>,
    /// What the certificate is for.
    pub kind: CertificateKind,
    /// Identifier of the issuing CA (e.g. "intermediate-2026").
    pub issuer: String,
    /// Subject distinguished name as text.
    pub subject: String,
    /// Start of validity.
    pub not_before: i64,
    /// End of validity.
    pub not_after: i64,
    /// Current status.
    pub status: CertificateStatus,
    /// When it was recorded.
    pub issued_at: i64,
    /// When it was revoked, and why.
    pub revocation: Option<(i64, RevocationReason)>,
    /// The certificate itself, DER.
    pub der: Vec<u8>,
}

impl Certificate {
    /// The fingerprint as lowercase hex.
    pub fn fingerprint_hex(&self) -> String {
        hex(&self.fingerprint)
    }
}

/// A certificate to record, built in memory by the CA and not yet handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCertificate {
    /// Serial number.
    pub serial: Serial,
    /// The certificate, DER. The store computes the fingerprint from it.
    pub der: Vec<u8>,
    /// The device it belongs to; required for operational and factory certificates.
    pub device_id: Option<String>,
    /// What the certificate is for.
    pub kind: CertificateKind,
    /// Identifier of the issuing CA.
    pub issuer: String,
    /// Subject distinguished name as text.
    pub subject: String,
    /// Start of validity.
    pub not_before: i64,
    /// End of validity.
    pub not_after: i64,
}

/// One entry of the revoked set: what the in-memory set and the CRL need.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RevokedCertificate {
    /// Serial.
    pub serial: Serial,
    /// Issuing CA (a CRL lists only its own issuer's certificates).
    pub issuer: String,
    /// When it was revoked.
    pub revoked_at: i64,
    /// Why.
    pub reason: RevocationReason,
}

/// Lowercase hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Parses 64 lowercase hex digits into a fingerprint.
pub(crate) fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_table_matches_the_documented_moves() {
        use DeviceState::*;
        let legal: Vec<(DeviceState, DeviceState)> = DeviceState::ALL
            .iter()
            .flat_map(|&from| DeviceState::ALL.iter().map(move |&to| (from, to)))
            .filter(|&(from, to)| from.can_become(to))
            .collect();
        assert_eq!(
            legal,
            vec![
                (Manufactured, Provisioned),
                (Manufactured, Revoked),
                (Provisioned, Active),
                (Provisioned, Quarantined),
                (Provisioned, InRepair),
                (Provisioned, Revoked),
                (Active, Quarantined),
                (Active, InRepair),
                (Active, Revoked),
                (Quarantined, Active),
                (Quarantined, InRepair),
                (Quarantined, Revoked),
                (InRepair, Revoked),
                (Revoked, Decommissioned),
            ]
        );
        assert!(DeviceState::ALL.iter().all(|&s| !s.can_become(s)));
        assert!(
            DeviceState::ALL
                .iter()
                .all(|&s| !Decommissioned.can_become(s))
        );
    }

    #[test]
    fn enum_names_round_trip() {
        for s in DeviceState::ALL {
            assert_eq!(DeviceState::from_name(s.as_str()), Some(*s));
        }
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_name(r.as_str()), Some(*r));
        }
        assert!(matches!(
            DeviceState::from_row("gone".into()),
            Err(crate::StoreError::CorruptRow {
                column: "state",
                ..
            })
        ));
    }

    #[test]
    fn fingerprints_round_trip_through_hex() {
        let fp: [u8; 32] = std::array::from_fn(|i| (i * 7) as u8);
        assert_eq!(parse_fingerprint(&hex(&fp)), Some(fp));
        assert_eq!(parse_fingerprint("zz"), None);
    }
}
