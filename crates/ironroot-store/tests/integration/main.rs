//! ironroot-store integration tests: every test in the shared modules runs against SQLite and
//! PostgreSQL (see `harness`); `crash` is SQLite-only (kill -9 of a writer process).

mod harness;

mod certificates;
mod changes;
mod crash;
mod devices;
mod group_commit;
mod migrations;
mod policies;
mod rebind;
mod transactions;
mod upgrade;

/// Helpers shared by the test modules.
mod fixtures {
    use ironroot_pki::Serial;
    use ironroot_store::{CertificateKind, NewCertificate};

    /// A serial from hex in any accepted spelling.
    pub fn sn(hex: &str) -> Serial {
        Serial::from_hex(hex).unwrap()
    }

    /// A certificate record with distinct bytes per serial (the store does not parse DER).
    pub fn cert(serial: &str, device: Option<&str>, not_after: i64) -> NewCertificate {
        NewCertificate {
            serial: sn(serial),
            der: format!("fake DER for serial {serial}").into_bytes(),
            device_id: device.map(str::to_owned),
            kind: if device.is_some() {
                CertificateKind::Operational
            } else {
                CertificateKind::Server
            },
            issuer: "intermediate-1".to_owned(),
            subject: format!("CN={}", device.unwrap_or("server")),
            not_before: 1_700_000_000,
            not_after,
        }
    }
}
