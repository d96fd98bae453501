//! Certificate records: issuance, lookups, supersession, revocation, expiry.

use std::process::Command;

use ironroot_pki::{Serial, SerialError};
use ironroot_store::{
    CertificateKind, CertificateStatus, Connection, DeviceState, NewDevice, RevocationReason,
    StoreError,
};

use crate::fixtures::{cert, sn};
use crate::harness::{TestDb, both_backends};

both_backends!(
    record_and_look_up_by_serial_and_fingerprint,
    duplicates_and_bad_records_are_refused,
    revoked_or_decommissioned_devices_get_no_certificate,
    revocation_is_recorded_once,
    revoking_a_device_revokes_all_its_certificates,
    supersede_marks_rotation,
    expiring_certificates_are_listed_soonest_first,
    every_serial_spelling_finds_the_same_row_and_old_rows_stay_readable,
);

/// SHA-256 as computed by openssl (an oracle we did not write).
fn openssl_sha256(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("der");
    std::fs::write(&path, bytes).unwrap();
    let out = ironroot_testkit::run_ok(
        Command::new(ironroot_testkit::tool("openssl"))
            .args(["dgst", "-sha256", "-r"])
            .arg(&path),
    );
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

async fn record_and_look_up_by_serial_and_fingerprint(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("dev-a")).await.unwrap();
    let new = cert("00AB:CD", Some("dev-a"), 1_800_000_000);
    let recorded = store.record_issued_certificate(&new).await.unwrap();
    assert_eq!(
        recorded.serial.to_string(),
        "abcd",
        "canonical lowercase hex without leading zeros"
    );
    assert_eq!(recorded.status, CertificateStatus::Active);
    assert_eq!(recorded.fingerprint_hex(), openssl_sha256(&new.der));

    for form in [
        "abcd",
        "ABCD",
        "0x00abcd",
        "ab:cd",
        "serial=ABCD",
        "00:AB:CD",
        "0X00AbCd",
    ] {
        assert_eq!(
            store.certificate(&sn(form)).await.unwrap(),
            recorded,
            "{form}"
        );
    }
    assert_eq!(
        store
            .certificate_by_fingerprint(&recorded.fingerprint)
            .await
            .unwrap(),
        recorded
    );
    assert!(matches!(
        store
            .certificate_by_fingerprint(&[0; 32])
            .await
            .unwrap_err(),
        StoreError::UnknownCertificate(_)
    ));
    assert!(matches!(
        store.certificate(&sn("ffff")).await.unwrap_err(),
        StoreError::UnknownCertificate(_)
    ));
    // Text that is no serial never reaches the store: parsing refuses it.
    assert_eq!(Serial::from_hex("not-hex"), Err(SerialError::BadHex));

    let server = store
        .record_issued_certificate(&cert("5e", None, 1_800_000_000))
        .await
        .unwrap();
    assert_eq!(server.kind, CertificateKind::Server);
    assert_eq!(server.device_id, None);
    let of_device = store.certificates_for_device("dev-a").await.unwrap();
    assert_eq!(of_device, vec![recorded]);
}

async fn duplicates_and_bad_records_are_refused(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("dev-b")).await.unwrap();
    let first = cert("01", Some("dev-b"), 1_800_000_000);
    store.record_issued_certificate(&first).await.unwrap();

    let mut same_serial = cert("0001", Some("dev-b"), 1_800_000_000);
    same_serial.der = b"other bytes".to_vec();
    let mut same_der = cert("02", Some("dev-b"), 1_800_000_000);
    same_der.der = first.der.clone();
    for dup in [same_serial, same_der] {
        let err = store.record_issued_certificate(&dup).await.unwrap_err();
        assert!(
            matches!(err, StoreError::DuplicateCertificate { .. }),
            "{err}"
        );
    }

    let err = store
        .record_issued_certificate(&cert("03", Some("dev-ghost"), 1_800_000_000))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownDevice(ref d) if d == "dev-ghost"),
        "{err}"
    );

    let mut no_device = cert("04", None, 1_800_000_000);
    no_device.kind = CertificateKind::Operational;
    assert!(matches!(
        store
            .record_issued_certificate(&no_device)
            .await
            .unwrap_err(),
        StoreError::MissingDevice {
            kind: CertificateKind::Operational
        }
    ));
    let backwards = cert("05", Some("dev-b"), 1_600_000_000);
    assert!(matches!(
        store
            .record_issued_certificate(&backwards)
            .await
            .unwrap_err(),
        StoreError::InvalidValidity { .. }
    ));
    let mut control = cert("06", Some("dev-b"), 1_800_000_000);
    control.subject = "CN=evil\nCN=admin".to_owned();
    assert!(matches!(
        store.record_issued_certificate(&control).await.unwrap_err(),
        StoreError::InvalidInput {
            what: "subject",
            ..
        }
    ));
    assert_eq!(
        store.certificates_for_device("dev-b").await.unwrap().len(),
        1
    );
}

async fn revoked_or_decommissioned_devices_get_no_certificate(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("dev-c")).await.unwrap();
    store
        .set_device_state("dev-c", DeviceState::Revoked)
        .await
        .unwrap();
    let err = store
        .record_issued_certificate(&cert("0c", Some("dev-c"), 1_800_000_000))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::DeviceNotIssuable {
                state: DeviceState::Revoked,
                ..
            }
        ),
        "{err}"
    );
    store
        .set_device_state("dev-c", DeviceState::Decommissioned)
        .await
        .unwrap();
    assert!(matches!(
        store
            .record_issued_certificate(&cert("0d", Some("dev-c"), 1_800_000_000))
            .await,
        Err(StoreError::DeviceNotIssuable {
            state: DeviceState::Decommissioned,
            ..
        })
    ));
    assert!(
        store
            .certificates_for_device("dev-c")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn revocation_is_recorded_once(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("dev-d")).await.unwrap();
    store
        .record_issued_certificate(&cert("d1", Some("dev-d"), 1_800_000_000))
        .await
        .unwrap();
    store
        .record_issued_certificate(&cert("d2", Some("dev-d"), 1_800_000_000))
        .await
        .unwrap();
    assert!(store.revoked_certificates().await.unwrap().is_empty());

    let revoked = store
        .revoke_certificate(&sn("D1"), RevocationReason::KeyCompromise)
        .await
        .unwrap();
    assert_eq!(revoked.status, CertificateStatus::Revoked);
    let (at, reason) = revoked.revocation.unwrap();
    assert_eq!(reason, RevocationReason::KeyCompromise);
    assert_eq!(store.certificate(&sn("d1")).await.unwrap(), revoked);

    let set = store.revoked_certificates().await.unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(
        (set[0].serial.to_string(), set[0].revoked_at, set[0].reason),
        ("d1".to_string(), at, reason)
    );
    assert_eq!(set[0].issuer, "intermediate-1");

    let again = store
        .revoke_certificate(&sn("d1"), RevocationReason::Unspecified)
        .await
        .unwrap_err();
    assert!(
        matches!(
            again,
            StoreError::CertificateStatus {
                status: CertificateStatus::Revoked,
                op: "revoke",
                ..
            }
        ),
        "{again}"
    );
    assert_eq!(
        store.certificate(&sn("d1")).await.unwrap().revocation,
        Some((at, RevocationReason::KeyCompromise)),
        "a second revocation must not overwrite the first"
    );
    assert!(matches!(
        store
            .revoke_certificate(&sn("99"), RevocationReason::Unspecified)
            .await
            .unwrap_err(),
        StoreError::UnknownCertificate(_)
    ));
    assert_eq!(
        store.certificate(&sn("d2")).await.unwrap().status,
        CertificateStatus::Active
    );
}

async fn revoking_a_device_revokes_all_its_certificates(db: TestDb) {
    let store = &db.store;
    for id in ["dev-e", "dev-f"] {
        store.add_device(&NewDevice::new(id)).await.unwrap();
    }
    for serial in ["e1", "e2", "e3"] {
        store
            .record_issued_certificate(&cert(serial, Some("dev-e"), 1_800_000_000))
            .await
            .unwrap();
    }
    store
        .record_issued_certificate(&cert("f1", Some("dev-f"), 1_800_000_000))
        .await
        .unwrap();
    store.supersede_certificate(&sn("e1")).await.unwrap();
    store
        .revoke_certificate(&sn("e2"), RevocationReason::KeyCompromise)
        .await
        .unwrap();

    let revoked = store
        .revoke_device_certificates("dev-e", RevocationReason::CessationOfOperation)
        .await
        .unwrap();
    let serials: Vec<_> = revoked.iter().map(|c| c.serial.to_string()).collect();
    assert_eq!(serials.len(), 2);
    assert!(
        serials.contains(&"e1".to_string()) && serials.contains(&"e3".to_string()),
        "{serials:?}"
    );
    let set: Vec<_> = store
        .revoked_certificates()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.serial.to_string())
        .collect();
    assert_eq!(set, ["e1", "e2", "e3"]);
    assert_eq!(
        store
            .certificate(&sn("e2"))
            .await
            .unwrap()
            .revocation
            .unwrap()
            .1,
        RevocationReason::KeyCompromise,
        "already revoked certificates keep their reason"
    );
    assert_eq!(
        store.certificate(&sn("f1")).await.unwrap().status,
        CertificateStatus::Active
    );
    assert!(
        store
            .revoke_device_certificates("dev-e", RevocationReason::Unspecified)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store
            .revoke_device_certificates("ghost", RevocationReason::Unspecified)
            .await,
        Err(StoreError::UnknownDevice(_))
    ));
}

async fn supersede_marks_rotation(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("dev-g")).await.unwrap();
    store
        .record_issued_certificate(&cert("a1", Some("dev-g"), 1_800_000_000))
        .await
        .unwrap();
    let old = store.supersede_certificate(&sn("a1")).await.unwrap();
    assert_eq!(old.status, CertificateStatus::Superseded);
    assert!(matches!(
        store.supersede_certificate(&sn("a1")).await.unwrap_err(),
        StoreError::CertificateStatus {
            status: CertificateStatus::Superseded,
            ..
        }
    ));
    assert!(matches!(
        store.supersede_certificate(&sn("a2")).await.unwrap_err(),
        StoreError::UnknownCertificate(_)
    ));
}

async fn expiring_certificates_are_listed_soonest_first(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("dev-h")).await.unwrap();
    for (serial, not_after) in [
        ("b3", 1_700_000_300),
        ("b1", 1_700_000_100),
        ("b2", 1_700_000_200),
        ("b4", 1_700_000_150),
    ] {
        store
            .record_issued_certificate(&cert(serial, Some("dev-h"), not_after))
            .await
            .unwrap();
    }
    store
        .revoke_certificate(&sn("b4"), RevocationReason::Unspecified)
        .await
        .unwrap();
    let soon = store
        .certificates_expiring_before(1_700_000_250, 100)
        .await
        .unwrap();
    let serials: Vec<_> = soon.iter().map(|c| c.serial.to_string()).collect();
    assert_eq!(
        serials,
        ["b1", "b2"],
        "revoked certificates are not renewal candidates"
    );
    assert_eq!(
        store
            .certificates_expiring_before(1_700_000_250, 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// The registry's stored text is the canonical form of `Serial` (lowercase hex, no leading
/// zeros), so rows written before the `Serial` type existed (raw SQL here, as an old release
/// wrote them) are found by every spelling, and what the store writes is that same text.
async fn every_serial_spelling_finds_the_same_row_and_old_rows_stay_readable(db: TestDb) {
    let store = &db.store;
    {
        let mut pooled = store.acquire().await.unwrap();
        let fp = "11".repeat(32);
        let sql = "INSERT INTO certificates (serial, fingerprint, device_id, kind, issuer, \
                   subject, not_before, not_after, status, issued_at, der) \
                   VALUES ('a1b', $1, NULL, 'server', 'intermediate-1', 'CN=old', 1, 2, \
                   'active', 1, $2)";
        match pooled.connection() {
            Connection::Sqlite(c) => ironroot_store::sqlx::query(sql)
                .bind(&fp)
                .bind(b"old DER".as_slice())
                .execute(&mut *c)
                .await
                .map(drop),
            Connection::Postgres(c) => ironroot_store::sqlx::query(sql)
                .bind(&fp)
                .bind(b"old DER".as_slice())
                .execute(&mut *c)
                .await
                .map(drop),
        }
        .unwrap();
    }
    let old = store.certificate(&sn("a1b")).await.unwrap();
    assert_eq!(old.subject, "CN=old");
    for spelling in ["serial=0A1B", "0x0a1b", "0A:1B", "000A1b", "A1B", "a1b"] {
        let parsed = Serial::from_hex(spelling).unwrap();
        assert_eq!(parsed.to_string(), "a1b", "{spelling}");
        assert_eq!(store.certificate(&parsed).await.unwrap(), old, "{spelling}");
    }
    // A different serial is a different row: the lookup is not "anything that parses".
    assert!(matches!(
        store.certificate(&sn("a1c")).await.unwrap_err(),
        StoreError::UnknownCertificate(_)
    ));

    // What the store writes is the same text: read it back with raw SQL.
    store.add_device(&NewDevice::new("dev-s")).await.unwrap();
    store
        .record_issued_certificate(&cert("serial=000B0C", Some("dev-s"), 1_800_000_000))
        .await
        .unwrap();
    let mut pooled = store.acquire().await.unwrap();
    let sql = "SELECT serial FROM certificates WHERE device_id = 'dev-s'";
    let stored: String = match pooled.connection() {
        Connection::Sqlite(c) => {
            ironroot_store::sqlx::query_scalar(sql)
                .fetch_one(&mut *c)
                .await
        }
        Connection::Postgres(c) => {
            ironroot_store::sqlx::query_scalar(sql)
                .fetch_one(&mut *c)
                .await
        }
    }
    .unwrap();
    assert_eq!(stored, "b0c");
}
