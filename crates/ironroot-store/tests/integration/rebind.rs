//! Ownership transfer and re-commissioning (`Transaction::rebind_device`): every credential
//! revoked, every binding of the previous owner removed, the device manufactured again, and
//! the change feed told to cut its sessions; the decommissioned-id tombstone.

use ironroot_store::{
    CertificateStatus, ChangeCursor, ChangeKind, DeviceState, NewDevice, PolicyTarget, Rebind,
    RebindKind, RevocationReason, Store, StoreError, sqlx,
};

use crate::fixtures::{cert, sn};
use crate::harness::{TestDb, both_backends};

both_backends!(
    a_transfer_revokes_everything_and_removes_the_old_owners_bindings,
    a_retired_device_cannot_be_transferred_only_recommissioned,
    a_decommissioned_id_is_refused_until_it_is_recommissioned,
    a_device_in_repair_holds_nothing_until_it_is_recommissioned,
);

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"iot:Publish","Resource":"topic/alice/*"}]}"#;

fn rebind(kind: RebindKind, owner: &str, groups: &[&str]) -> Rebind {
    Rebind {
        kind,
        owner: Some(owner.to_owned()),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        attributes: [("site".to_owned(), "bob-hq".to_owned())].into(),
    }
}

/// A device of alice's: in group `alice-line`, attribute `site`, a device policy, two
/// certificates, an unused claim token and a pending rotation.
async fn alices_device(store: &Store, id: &str, serials: [&str; 2]) {
    let mut new = NewDevice::new(id);
    new.owner = Some("alice".into());
    new.groups = vec!["alice-line".into()];
    new.attributes = [("site".to_owned(), "alice-hq".to_owned())].into();
    store.add_device(&new).await.unwrap();
    store
        .record_issued_certificate(&cert(serials[0], Some(id), 1_900_000_000))
        .await
        .unwrap();
    store
        .record_issued_certificate(&cert(serials[1], Some(id), 1_900_000_000))
        .await
        .unwrap();
    store
        .set_device_state(id, DeviceState::Provisioned)
        .await
        .unwrap();
    store
        .set_device_state(id, DeviceState::Active)
        .await
        .unwrap();
    store.put_policy("alice-data", POLICY).await.unwrap(); // a new version if it exists
    store
        .attach_policy("alice-data", &PolicyTarget::Device(id.into()))
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    let mut conn = tx.connection();
    ironroot_store::on_backend!(&mut conn, c => {
        sqlx::query(
            "INSERT INTO provision_claims (token_hash, device_id, quota, created_by, created_at, \
             expires_at) VALUES ($2, $1, 1, 'operator:alice', 1, 4000000000)",
        )
        .bind(id)
        .bind(format!("hash-of-{id}"))
        .execute(&mut **c)
        .await
        .map(|r| r.rows_affected())
    })
    .unwrap();
    ironroot_store::on_backend!(&mut conn, c => {
        sqlx::query(
            "INSERT INTO provision_rotations (old_serial, new_serial, device_id, retire_at) \
             VALUES ($2, $3, $1, 4000000000)",
        )
        .bind(id)
        .bind(sn(serials[0]).to_string())
        .bind(sn(serials[1]).to_string())
        .execute(&mut **c)
        .await
        .map(|r| r.rows_affected())
    })
    .unwrap();
    tx.commit().await.unwrap();
}

async fn count(store: &Store, sql: &'static str, id: &str) -> i64 {
    let mut conn = store.acquire().await.unwrap();
    let mut conn = conn.connection();
    ironroot_store::on_backend!(&mut conn, c => {
        sqlx::query_scalar::<_, i64>(sql).bind(id).fetch_one(&mut **c).await
    })
    .unwrap()
}

async fn a_transfer_revokes_everything_and_removes_the_old_owners_bindings(db: TestDb) {
    let store = &db.store;
    alices_device(store, "tr-1", ["a1", "a2"]).await;
    let start = store
        .changes_since(ChangeCursor::default(), 10_000)
        .await
        .unwrap()
        .last()
        .unwrap()
        .cursor;

    let mut tx = store.begin().await.unwrap();
    let done = tx
        .rebind_device("tr-1", &rebind(RebindKind::Transfer, "bob", &["bob-pumps"]))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(done.from, DeviceState::Active);
    assert_eq!(done.previous_owner.as_deref(), Some("alice"));
    assert_eq!(done.removed_groups, ["alice-line"]);
    assert_eq!(done.removed_attributes, ["site"]);
    assert_eq!(done.detached_policies, ["alice-data"]);
    assert_eq!(done.voided_claims, 1);
    let mut revoked: Vec<_> = done.revoked.iter().map(|c| c.serial.clone()).collect();
    revoked.sort();
    assert_eq!(revoked, [sn("a1"), sn("a2")]);

    let device = store.device("tr-1").await.unwrap();
    assert_eq!(device.state, DeviceState::Manufactured);
    assert_eq!(device.owner.as_deref(), Some("bob"));
    assert_eq!(device.groups, ["bob-pumps"]);
    assert_eq!(device.attributes["site"], "bob-hq");
    for serial in ["a1", "a2"] {
        let c = store.certificate(&sn(serial)).await.unwrap();
        assert_eq!(c.status, CertificateStatus::Revoked);
        assert_eq!(
            c.revocation.map(|(_, why)| why),
            Some(RevocationReason::AffiliationChanged)
        );
    }
    assert!(
        store
            .policy("alice-data")
            .await
            .unwrap()
            .attachments
            .is_empty()
    );
    let claims = "SELECT count(*) FROM provision_claims WHERE device_id = $1";
    let rotations = "SELECT count(*) FROM provision_rotations WHERE device_id = $1";
    assert_eq!(count(store, claims, "tr-1").await, 0);
    assert_eq!(count(store, rotations, "tr-1").await, 0);

    // The feed tells every broker: both serials revoked, the policy changed, the session cut.
    let changes = store.changes_since(start, 100).await.unwrap();
    let has =
        |kind: ChangeKind, item: &str| changes.iter().any(|c| c.kind == kind && c.item == item);
    assert!(has(ChangeKind::SessionCut, "tr-1"), "{changes:?}");
    assert!(has(ChangeKind::Device, "tr-1"));
    assert!(has(ChangeKind::Policy, "alice-data"));
    assert!(has(ChangeKind::CertificateRevoked, &sn("a1").to_string()));
    assert!(has(ChangeKind::CertificateRevoked, &sn("a2").to_string()));

    // The new owner's device can be provisioned again: a fresh certificate is accepted.
    store
        .record_issued_certificate(&cert("a3", Some("tr-1"), 1_900_000_000))
        .await
        .unwrap();
}

async fn a_retired_device_cannot_be_transferred_only_recommissioned(db: TestDb) {
    let store = &db.store;
    alices_device(store, "tr-2", ["b1", "b2"]).await;
    let mut tx = store.begin().await.unwrap();
    tx.revoke_device_certificates("tr-2", RevocationReason::KeyCompromise)
        .await
        .unwrap();
    tx.set_device_state("tr-2", DeviceState::Revoked)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let err = tx
        .rebind_device("tr-2", &rebind(RebindKind::Transfer, "bob", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidTransition {
                from: DeviceState::Revoked,
                to: DeviceState::Manufactured,
                ..
            }
        ),
        "{err}"
    );
    drop(tx);
    // An active device cannot be "re-commissioned": that is for retired ids only.
    alices_device(store, "tr-3", ["c1", "c2"]).await;
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(
        tx.rebind_device("tr-3", &rebind(RebindKind::Recommission, "bob", &[]))
            .await,
        Err(StoreError::InvalidTransition { .. })
    ));
    drop(tx);

    let mut tx = store.begin().await.unwrap();
    let done = tx
        .rebind_device("tr-2", &rebind(RebindKind::Recommission, "lab", &[]))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(done.from, DeviceState::Revoked);
    assert!(done.revoked.is_empty(), "already revoked: {done:?}");
    let device = store.device("tr-2").await.unwrap();
    assert_eq!(device.state, DeviceState::Manufactured);
    assert_eq!(device.owner.as_deref(), Some("lab"));
    assert!(device.groups.is_empty());
    // The key-compromise revocation keeps its reason.
    assert_eq!(
        store
            .certificate(&sn("b1"))
            .await
            .unwrap()
            .revocation
            .map(|(_, why)| why),
        Some(RevocationReason::KeyCompromise)
    );
}

async fn a_decommissioned_id_is_refused_until_it_is_recommissioned(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("tomb-1")).await.unwrap();
    store
        .set_device_state("tomb-1", DeviceState::Revoked)
        .await
        .unwrap();
    store
        .set_device_state("tomb-1", DeviceState::Decommissioned)
        .await
        .unwrap();
    let err = store
        .add_device(&NewDevice::new("tomb-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DecommissionedDevice(ref id) if id == "tomb-1"),
        "{err}"
    );
    // A live id that exists is still a plain duplicate.
    store.add_device(&NewDevice::new("live-1")).await.unwrap();
    assert!(matches!(
        store.add_device(&NewDevice::new("live-1")).await,
        Err(StoreError::DuplicateDevice(_))
    ));

    let mut tx = store.begin().await.unwrap();
    tx.rebind_device(
        "tomb-1",
        &rebind(RebindKind::Recommission, "refurb", &["refurbished"]),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let device = store.device("tomb-1").await.unwrap();
    assert_eq!(device.state, DeviceState::Manufactured);
    assert_eq!(device.groups, ["refurbished"]);
}

async fn a_device_in_repair_holds_nothing_until_it_is_recommissioned(db: TestDb) {
    let store = &db.store;
    alices_device(store, "rep-1", ["d1", "d2"]).await;
    // Not every state can go to repair: a device never provisioned has nothing to repair.
    store.add_device(&NewDevice::new("rep-0")).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert!(matches!(
        tx.send_for_repair("rep-0").await,
        Err(StoreError::InvalidTransition {
            from: DeviceState::Manufactured,
            to: DeviceState::InRepair,
            ..
        })
    ));
    drop(tx);

    let mut tx = store.begin().await.unwrap();
    let done = tx.send_for_repair("rep-1").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(done.from, DeviceState::Active);
    assert_eq!(done.revoked.len(), 2);
    assert_eq!(
        store
            .certificate(&sn("d1"))
            .await
            .unwrap()
            .revocation
            .map(|(_, why)| why),
        Some(RevocationReason::CessationOfOperation)
    );
    assert_eq!(
        store.device("rep-1").await.unwrap().state,
        DeviceState::InRepair
    );
    // In repair: no certificate, no release, no second repair.
    assert!(matches!(
        store
            .record_issued_certificate(&cert("d3", Some("rep-1"), 1_900_000_000))
            .await,
        Err(StoreError::DeviceNotIssuable { .. })
    ));
    assert!(matches!(
        store.set_device_state("rep-1", DeviceState::Active).await,
        Err(StoreError::InvalidTransition { .. })
    ));
    let mut tx = store.begin().await.unwrap();
    assert!(tx.send_for_repair("rep-1").await.is_err());
    drop(tx);
    let changes = store
        .changes_since(ChangeCursor::default(), 10_000)
        .await
        .unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.kind == ChangeKind::SessionCut && c.item == "rep-1")
    );

    // Back from repair: re-commissioned, and a fresh certificate is accepted.
    let mut tx = store.begin().await.unwrap();
    let back = tx
        .rebind_device(
            "rep-1",
            &rebind(RebindKind::Recommission, "alice", &["alice-line"]),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(back.from, DeviceState::InRepair);
    store
        .record_issued_certificate(&cert("d3", Some("rep-1"), 1_900_000_000))
        .await
        .unwrap();
}
