//! Revocation: registry, live set, change feed, CRL (openssl judges), other processes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironroot_audit::Outcome;
use ironroot_identity::IdentityError;
use ironroot_pki::DeviceId;
use ironroot_store::{CertificateStatus, Connection, DeviceState, RevocationReason, Store};

use crate::harness::{Env, both_backends, openssl_verify};

both_backends!(
    revoked_certificate_fails_openssl_crl_check,
    revoking_a_device_revokes_all_its_certificates,
    retire_and_decommission,
    revocation_by_another_process_reaches_the_live_set_within_a_second,
    revoking_twice_or_unknown_is_a_typed_error,
    regression_unknown_change_kind_does_not_stop_the_follower,
);

async fn revoked_certificate_fails_openssl_crl_check(env: Env) {
    env.add_device("dev-r").await;
    env.add_device("dev-ok").await;
    let issued = env.issue("dev-r").await.0.unwrap();
    let good = env.issue("dev-ok").await.0.unwrap();
    let leaf = env.path("leaf.pem");
    let good_leaf = env.path("good.pem");
    std::fs::write(&leaf, issued.pem()).unwrap();
    std::fs::write(&good_leaf, good.pem()).unwrap();
    let chain = env.path("chain.pem");
    std::fs::write(&chain, env.service.chain_pem()).unwrap();

    env.service.write_crl().await.unwrap();
    let (ok, out) = openssl_verify(&chain, &env.service.crl_path(), &leaf);
    assert!(ok, "before revocation: {out}");

    let cert = env
        .service
        .revoke_serial(
            issued.serial(),
            RevocationReason::KeyCompromise,
            "operator:test",
        )
        .await
        .unwrap();
    assert_eq!(cert.status, CertificateStatus::Revoked);
    assert!(env.service.revocations().is_revoked(issued.serial()));
    assert!(!env.service.revocations().is_revoked(good.serial()));

    let crl = env.service.write_crl().await.unwrap();
    assert!(crl.next_update() > crl.this_update());
    let (ok, out) = openssl_verify(&chain, &env.service.crl_path(), &leaf);
    assert!(!ok, "revoked certificate still verifies: {out}");
    assert!(out.contains("certificate revoked"), "{out}");
    let (ok, out) = openssl_verify(&chain, &env.service.crl_path(), &good_leaf);
    assert!(ok, "good certificate: {out}");

    let events = env.audit_events().await;
    assert!(events.iter().any(|e| e.event_type == "cert.revoked"
        && e.outcome == Outcome::Success
        && e.details["reason"] == "key_compromise"
        && e.details["device"] == "dev-r"));
    env.verify_audit().await;
}

async fn revoking_a_device_revokes_all_its_certificates(env: Env) {
    env.add_device("dev-m").await;
    let a = env.issue("dev-m").await.0.unwrap();
    let b = env.issue("dev-m").await.0.unwrap();
    let revoked = env
        .service
        .revoke_device(&DeviceId::parse("dev-m").unwrap(), "operator:test")
        .await
        .unwrap();
    assert_eq!(revoked.len(), 2);
    assert_eq!(
        env.store.device("dev-m").await.unwrap().state,
        DeviceState::Revoked
    );
    for s in [a.serial(), b.serial()] {
        assert!(env.service.revocations().is_revoked(s));
    }
    let feed = env
        .store
        .changes_since(Default::default(), 1000)
        .await
        .unwrap();
    let revoked_items = feed
        .iter()
        .filter(|c| c.kind == ironroot_store::ChangeKind::CertificateRevoked)
        .count();
    assert_eq!(revoked_items, 2);
    // CRL lists both.
    env.service.write_crl().await.unwrap();
    let chain = env.path("chain.pem");
    std::fs::write(&chain, env.service.chain_pem()).unwrap();
    for (i, c) in [&a, &b].iter().enumerate() {
        let leaf = env.path(&format!("m{i}.pem"));
        std::fs::write(&leaf, c.pem()).unwrap();
        let (ok, out) = openssl_verify(&chain, &env.service.crl_path(), &leaf);
        assert!(!ok && out.contains("certificate revoked"), "{out}");
    }
    // Revoking again is refused.
    let err = env
        .service
        .revoke_device(&DeviceId::parse("dev-m").unwrap(), "operator:test")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IdentityError::WrongState {
                state: DeviceState::Revoked,
                ..
            }
        ),
        "{err}"
    );
}

async fn retire_and_decommission(env: Env) {
    env.add_device("dev-rot").await;
    let old = env.issue("dev-rot").await.0.unwrap();
    let new = env.issue("dev-rot").await.0.unwrap();
    let retired = env
        .service
        .retire(old.serial(), "service:agent")
        .await
        .unwrap();
    assert_eq!(
        retired.revocation.map(|r| r.1),
        Some(RevocationReason::Superseded)
    );
    assert!(env.service.revocations().is_revoked(old.serial()));
    assert!(!env.service.revocations().is_revoked(new.serial()));
    assert_eq!(
        env.store.device("dev-rot").await.unwrap().state,
        DeviceState::Provisioned
    );

    let revoked = env
        .service
        .decommission(&DeviceId::parse("dev-rot").unwrap(), "operator:test")
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1, "only the certificate not yet revoked");
    assert_eq!(
        revoked[0].revocation.map(|r| r.1),
        Some(RevocationReason::CessationOfOperation)
    );
    assert_eq!(
        env.store.device("dev-rot").await.unwrap().state,
        DeviceState::Decommissioned
    );
    assert!(env.service.revocations().is_revoked(new.serial()));
    let err = env
        .service
        .decommission(&DeviceId::parse("dev-rot").unwrap(), "operator:test")
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::WrongState { .. }), "{err}");
}

async fn revocation_by_another_process_reaches_the_live_set_within_a_second(env: Env) {
    env.add_device("dev-live").await;
    let issued = env.issue("dev-live").await.0.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let follower = env
        .service
        .follow_changes(move |s| seen2.lock().unwrap().push((s.clone(), Instant::now())));
    // Another replica with its own store, pool and service.
    let other = env.open_again().await;
    assert!(!env.service.revocations().is_revoked(issued.serial()));
    let start = Instant::now();
    other
        .revoke_serial(
            issued.serial(),
            RevocationReason::KeyCompromise,
            "operator:other",
        )
        .await
        .unwrap();
    let committed = Instant::now();
    while !env.service.revocations().is_revoked(issued.serial()) {
        assert!(
            committed.elapsed() < Duration::from_secs(1),
            "revocation not applied within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lag = committed.elapsed();
    // The callback fired for this serial.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let calls = seen.lock().unwrap().clone();
    assert!(calls.iter().any(|(s, _)| s == issued.serial()), "{calls:?}");
    eprintln!(
        "{:?}: revoke took {:?}, applied here {:?} after commit",
        env.backend,
        committed - start,
        lag
    );
    follower.abort();
    other.store().close().await;
}

async fn revoking_twice_or_unknown_is_a_typed_error(env: Env) {
    env.add_device("dev-2").await;
    let issued = env.issue("dev-2").await.0.unwrap();
    env.service
        .revoke_serial(
            issued.serial(),
            RevocationReason::Unspecified,
            "operator:test",
        )
        .await
        .unwrap();
    let err = env
        .service
        .revoke_serial(
            issued.serial(),
            RevocationReason::Unspecified,
            "operator:test",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IdentityError::CertificateStatus {
                status: CertificateStatus::Revoked,
                ..
            }
        ),
        "{err}"
    );
    let unknown = ironroot_pki::Serial::from_hex("0123456789abcdef").unwrap();
    let err = env
        .service
        .revoke_serial(&unknown, RevocationReason::Unspecified, "operator:test")
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::UnknownCertificate(_)), "{err}");
    let events = env.audit_events().await;
    assert!(events.iter().any(|e| e.event_type == "cert.revoked"
        && e.outcome == Outcome::Denied
        && e.details["reason"] == "unknown_certificate"));
    let err = env
        .service
        .revoke_device(&DeviceId::parse("nobody").unwrap(), "operator:test")
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::UnknownDevice(_)), "{err}");
}

/// A change row of a kind this version does not know, as a newer replica writes it (plain SQL
/// into the `changes` table).
async fn insert_future_change(store: &Store, kind: &str, item: &str) {
    let mut pooled = store.acquire().await.unwrap();
    let sql = "INSERT INTO changes (kind, item, changed_at) VALUES ($1, $2, 1700000000)";
    match pooled.connection() {
        Connection::Sqlite(c) => ironroot_store::sqlx::query(sql)
            .bind(kind)
            .bind(item)
            .execute(&mut *c)
            .await
            .map(drop),
        Connection::Postgres(c) => ironroot_store::sqlx::query(sql)
            .bind(kind)
            .bind(item)
            .execute(&mut *c)
            .await
            .map(drop),
    }
    .unwrap();
}

/// Defect 5 of issue 12: an unknown change kind between two revocations made by another
/// process stopped the follower for good (`UnknownChangeKind` on every retry); now it is
/// skipped and the revocation after it reaches the live set and the callback.
async fn regression_unknown_change_kind_does_not_stop_the_follower(env: Env) {
    env.add_device("dev-k1").await;
    env.add_device("dev-k2").await;
    let first = env.issue("dev-k1").await.0.unwrap();
    let second = env.issue("dev-k2").await.0.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let follower = env
        .service
        .follow_changes(move |s| seen2.lock().unwrap().push(s.clone()));
    let other = env.open_again().await;
    other
        .revoke_serial(
            first.serial(),
            RevocationReason::KeyCompromise,
            "operator:other",
        )
        .await
        .unwrap();
    insert_future_change(other.store(), "ota_rollout", "rollout-1").await;
    other
        .revoke_serial(
            second.serial(),
            RevocationReason::KeyCompromise,
            "operator:other",
        )
        .await
        .unwrap();
    let start = Instant::now();
    while !env.service.revocations().is_revoked(second.serial()) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the revocation after the unknown change was never applied"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(env.service.revocations().is_revoked(first.serial()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let calls = seen.lock().unwrap().clone();
    assert!(
        calls.contains(first.serial()) && calls.contains(second.serial()),
        "{calls:?}"
    );
    assert!(env.service.store().unknown_changes_skipped() >= 1);
    follower.abort();
    other.store().close().await;
}
