//! A revocation committed by another process reaches both listeners through the node's one
//! revoked set: the device's certificate worked on HTTPS (mutual TLS) and MQTT before, and
//! fails both handshakes after; another device is unaffected.

use std::sync::Arc;

use crate::harness::{Db, TestNode, both_backends, writer};

both_backends!(revocation_by_another_process_fails_both_handshakes);

async fn revocation_by_another_process_fails_both_handshakes(db: Db) {
    let t = TestNode::start(db).await;
    let a = t.device("dev-a").await;
    let b = t.device("dev-b").await;
    t.caught_up().await;
    // One set: the HTTPS verifier's (identity service) is the broker's.
    assert!(Arc::ptr_eq(
        &t.node().server().identity().revocations(),
        t.node().plane().revocations()
    ));

    let (ok, err) = tokio::task::block_in_place(|| t.https_with(&a));
    assert!(ok, "{db:?}: valid certificate refused on HTTPS: {err}");
    let (ok, out) = tokio::task::block_in_place(|| t.mqtt_with("dev-a", &a));
    assert!(ok, "{db:?}: valid certificate refused on MQTT: {out}");

    tokio::task::block_in_place(|| writer(&t.url, &["revoke", &a.serial]));
    t.caught_up().await;
    assert!(
        t.node()
            .revocations()
            .is_revoked(&ironroot_pki::Serial::from_hex(&a.serial).unwrap())
    );

    let (ok, _) = tokio::task::block_in_place(|| t.https_with(&a));
    assert!(!ok, "{db:?}: revoked certificate accepted on HTTPS");
    let (ok, out) = tokio::task::block_in_place(|| t.mqtt_with("dev-a", &a));
    assert!(!ok, "{db:?}: revoked certificate accepted on MQTT: {out}");

    // The same paths still accept a certificate that is not revoked.
    let (ok, err) = tokio::task::block_in_place(|| t.https_with(&b));
    assert!(ok, "{db:?}: unrevoked certificate refused on HTTPS: {err}");
    let (ok, out) = tokio::task::block_in_place(|| t.mqtt_with("dev-b", &b));
    assert!(ok, "{db:?}: unrevoked certificate refused on MQTT: {out}");
    t.stop().await;
}
