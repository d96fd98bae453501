//! Issuance and revocation as one transaction with their registry change: a failure halfway
//! leaves nothing behind, and nothing is visible before commit.

use ironroot_store::{
    CertificateStatus, ChangeCursor, DeviceState, NewDevice, RevocationReason, StoreError,
};

use std::time::Duration;

use crate::fixtures::{cert, sn};
use crate::harness::{TestDb, both_backends};

both_backends!(
    dropping_the_transaction_before_commit_persists_nothing,
    a_constraint_violation_halfway_persists_nothing,
    nothing_is_visible_before_commit_and_everything_after,
    revocation_and_device_state_commit_together,
    issuance_racing_a_device_revocation_never_leaves_an_active_certificate,
);

/// What the CA does: build the certificate in memory, record it together with the device's new
/// state, commit, and only then hand it out. `fail_before_commit` simulates a crash or error
/// between recording and committing.
async fn issue(
    store: &ironroot_store::Store,
    device: &str,
    serial: &str,
    fail_before_commit: bool,
) -> Result<Vec<u8>, StoreError> {
    let built = cert(serial, Some(device), 1_800_000_000); // "signed" in memory
    let mut tx = store.begin().await?;
    tx.record_issued_certificate(&built).await?;
    tx.set_device_state(device, DeviceState::Provisioned)
        .await?;
    if fail_before_commit {
        drop(tx); // e.g. the process dies, or the caller's next step fails
        return Err(StoreError::UnknownDevice("simulated failure".into()));
    }
    tx.commit().await?;
    Ok(built.der) // handed out only now
}

async fn assert_nothing_persisted(db: &TestDb, device: &str, serial: &str) {
    let store = &db.store;
    assert!(
        matches!(
            store.certificate(&sn(serial)).await,
            Err(StoreError::UnknownCertificate(_))
        ),
        "no certificate record may survive"
    );
    assert!(
        store
            .certificates_for_device(device)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.device(device).await.unwrap().state,
        DeviceState::Manufactured
    );
}

async fn dropping_the_transaction_before_commit_persists_nothing(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("tx-1")).await.unwrap();
    let before = store
        .changes_since(ChangeCursor::default(), 1000)
        .await
        .unwrap()
        .len();
    assert!(issue(store, "tx-1", "71", true).await.is_err());
    assert_nothing_persisted(&db, "tx-1", "71").await;
    // Reopening (a fresh pool, as after a restart) shows the same.
    let reopened = db.open_again().await;
    assert!(reopened.certificate(&sn("71")).await.is_err());
    assert_eq!(
        store
            .changes_since(ChangeCursor::default(), 1000)
            .await
            .unwrap()
            .len(),
        before,
        "a rolled-back transaction announces nothing"
    );
    reopened.close().await;
    // The same issuance succeeds when nothing fails, and only then is the certificate out.
    let der = issue(store, "tx-1", "71", false).await.unwrap();
    let recorded = store.certificate(&sn("71")).await.unwrap();
    assert_eq!(recorded.der, der);
    assert_eq!(
        store.device("tx-1").await.unwrap().state,
        DeviceState::Provisioned
    );
}

async fn a_constraint_violation_halfway_persists_nothing(db: TestDb) {
    let store = &db.store;
    for id in ["tx-2", "tx-3"] {
        store.add_device(&NewDevice::new(id)).await.unwrap();
    }
    store
        .record_issued_certificate(&cert("aa", Some("tx-3"), 1_800_000_000))
        .await
        .unwrap();

    // Two certificates in one transaction; the second collides with an existing serial.
    let result: Result<(), StoreError> = async {
        let mut tx = store.begin().await?;
        tx.record_issued_certificate(&cert("bb", Some("tx-2"), 1_800_000_000))
            .await?;
        tx.set_device_state("tx-2", DeviceState::Provisioned)
            .await?;
        tx.record_issued_certificate(&cert("aa", Some("tx-2"), 1_800_000_000))
            .await?;
        tx.commit().await
    }
    .await;
    assert!(
        matches!(result, Err(StoreError::DuplicateCertificate { .. })),
        "{result:?}"
    );
    assert_nothing_persisted(&db, "tx-2", "bb").await;
    // An illegal state change halfway behaves the same.
    let result: Result<(), StoreError> = async {
        let mut tx = store.begin().await?;
        tx.record_issued_certificate(&cert("cc", Some("tx-2"), 1_800_000_000))
            .await?;
        tx.set_device_state("tx-2", DeviceState::Decommissioned)
            .await?;
        tx.commit().await
    }
    .await;
    assert!(
        matches!(result, Err(StoreError::InvalidTransition { .. })),
        "{result:?}"
    );
    assert_nothing_persisted(&db, "tx-2", "cc").await;
}

async fn nothing_is_visible_before_commit_and_everything_after(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("tx-4")).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.record_issued_certificate(&cert("dd", Some("tx-4"), 1_800_000_000))
        .await
        .unwrap();
    tx.set_device_state("tx-4", DeviceState::Provisioned)
        .await
        .unwrap();
    // Inside the transaction its own writes are visible...
    assert_eq!(
        tx.certificate(&sn("dd")).await.unwrap().status,
        CertificateStatus::Active
    );
    // ...outside they are not.
    assert!(store.certificate(&sn("dd")).await.is_err());
    assert_eq!(
        store.device("tx-4").await.unwrap().state,
        DeviceState::Manufactured
    );
    tx.commit().await.unwrap();
    assert_eq!(
        store
            .certificate(&sn("dd"))
            .await
            .unwrap()
            .device_id
            .as_deref(),
        Some("tx-4")
    );
    assert_eq!(
        store.device("tx-4").await.unwrap().state,
        DeviceState::Provisioned
    );
}

async fn revocation_and_device_state_commit_together(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("tx-5")).await.unwrap();
    store
        .record_issued_certificate(&cert("ee", Some("tx-5"), 1_800_000_000))
        .await
        .unwrap();
    store
        .set_device_state("tx-5", DeviceState::Provisioned)
        .await
        .unwrap();

    // Revoke certificates and the device; fail at the last step → the revocation never happened.
    let mut tx = store.begin().await.unwrap();
    tx.revoke_device_certificates("tx-5", RevocationReason::KeyCompromise)
        .await
        .unwrap();
    tx.set_device_state("tx-5", DeviceState::Revoked)
        .await
        .unwrap();
    let err = tx
        .set_device_state("tx-5", DeviceState::Active)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidTransition { .. }));
    drop(tx);
    assert_eq!(
        store.certificate(&sn("ee")).await.unwrap().status,
        CertificateStatus::Active
    );
    assert!(store.revoked_certificates().await.unwrap().is_empty());

    let mut tx = store.begin().await.unwrap();
    tx.revoke_device_certificates("tx-5", RevocationReason::KeyCompromise)
        .await
        .unwrap();
    tx.set_device_state("tx-5", DeviceState::Revoked)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.revoked_certificates().await.unwrap().len(), 1);
    assert_eq!(
        store.device("tx-5").await.unwrap().state,
        DeviceState::Revoked
    );
}

async fn revoke_device(store: ironroot_store::Store, id: &'static str) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    tx.revoke_device_certificates(id, RevocationReason::KeyCompromise)
        .await?;
    tx.set_device_state(id, DeviceState::Revoked).await?;
    tx.commit().await
}

async fn issuance_racing_a_device_revocation_never_leaves_an_active_certificate(db: TestDb) {
    let store = &db.store;
    for id in ["race-1", "race-2"] {
        store.add_device(&NewDevice::new(id)).await.unwrap();
        store
            .set_device_state(id, DeviceState::Provisioned)
            .await
            .unwrap();
    }

    // Issuance first: the revocation must wait for it, then revoke the new certificate too.
    let mut issuing = store.begin().await.unwrap();
    issuing
        .record_issued_certificate(&cert("a1", Some("race-1"), 1_800_000_000))
        .await
        .unwrap();
    let revocation = tokio::spawn(revoke_device(store.clone(), "race-1"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !revocation.is_finished(),
        "revocation must wait for the open issuance"
    );
    issuing.commit().await.unwrap();
    revocation.await.unwrap().unwrap();
    assert_eq!(
        store.certificate(&sn("a1")).await.unwrap().status,
        CertificateStatus::Revoked
    );

    // Revocation first: the issuance must wait, then see the revoked device and record nothing.
    let mut revoking = store.begin().await.unwrap();
    revoking
        .revoke_device_certificates("race-2", RevocationReason::KeyCompromise)
        .await
        .unwrap();
    revoking
        .set_device_state("race-2", DeviceState::Revoked)
        .await
        .unwrap();
    let other = store.clone();
    let issuance = tokio::spawn(async move {
        let mut tx = other.begin().await?;
        tx.record_issued_certificate(&cert("a2", Some("race-2"), 1_800_000_000))
            .await?;
        tx.commit().await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !issuance.is_finished(),
        "issuance must wait for the open revocation"
    );
    revoking.commit().await.unwrap();
    let err = issuance.await.unwrap().unwrap_err();
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
    assert!(store.certificate(&sn("a2")).await.is_err());
}
