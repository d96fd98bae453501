//! Factory credentials count only when recorded and not revoked: one that the registry never
//! saw (signed with the factory key directly) is refused and audited, one revoked by serial
//! or with its device fails the handshake; the recorded one enrolls through the same path.

use std::path::Path;
use std::process::Output;

use ironroot_audit::Outcome;
use ironroot_pki::{DeviceId, Serial};
use ironroot_store::{CertificateKind, DeviceState, RevocationReason};

use super::PKCS10;
use crate::harness::*;

/// `POST simpleenroll` with the factory certificate `cert` (key `key`) and a fresh CSR.
async fn enroll_with_factory(fx: &Fixture, id: &str, key: &Path, cert: &Path) -> Output {
    new_key_and_csr(fx.dir.path(), &format!("{id}-op"), Some(id));
    let b64 = format!("@{}", fx.path(&format!("{id}-op.csr.b64")).display());
    fx.curl(&[
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--data-binary",
        &b64,
        "-H",
        PKCS10,
        "-w",
        "\n%{http_code}",
        &fx.url("/.well-known/est/simpleenroll"),
    ])
    .await
}

/// The serial of the factory credential recorded for `id`.
async fn factory_serial(fx: &Fixture, id: &str) -> Serial {
    fx.store()
        .certificates_for_device(id)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.kind == CertificateKind::Factory)
        .expect("factory credential recorded")
        .serial
}

pub(super) async fn factory_credentials_must_be_recorded_and_unrevoked(db: Db) {
    let fx = Fixture::start(db, |_| {}).await;
    for id in ["f-ok", "f-unrecorded", "f-revoked", "f-device-revoked"] {
        let (s, b) = fx
            .admin(
                "POST",
                "/api/v1/devices",
                Some(&format!(r#"{{"id":"{id}"}}"#)),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    // Recorded (issued through the identity service): enrolls, and the enrollment names it.
    let (key, cert) = fx.factory_credential("f-ok").await;
    let (status, body) = status_and_body(&enroll_with_factory(&fx, "f-ok", &key, &cert).await);
    assert_eq!(status, 200, "{body}");
    assert_eq!(fx.cert_count("f-ok").await, 1);
    let serial = factory_serial(&fx, "f-ok").await;
    wait_for_event(&fx, |e| {
        e.event_type == "device.provisioned"
            && e.subject.id == "f-ok"
            && e.details.get("method").map(String::as_str) == Some("factory_certificate")
            && e.details.get("factory_serial") == Some(&serial.to_string())
    })
    .await;

    // Signed by the factory CA but never recorded: passes TLS, refused by the registry check.
    let (key, cert) = fx.unrecorded_factory_credential("f-unrecorded");
    let out = enroll_with_factory(&fx, "f-unrecorded", &key, &cert).await;
    assert_eq!(status_and_body(&out).0, 401);
    fx.assert_denied(
        "provision.failed",
        Some("f-unrecorded"),
        "factory_certificate_not_recorded",
    )
    .await;
    assert_eq!(fx.cert_count("f-unrecorded").await, 0);

    // Recorded, then revoked by serial: the handshake already fails (live revoked set).
    let (key, cert) = fx.factory_credential("f-revoked").await;
    let serial = factory_serial(&fx, "f-revoked").await;
    fx.server()
        .identity()
        .revoke_serial(&serial, RevocationReason::KeyCompromise, "operator:test")
        .await
        .unwrap();
    let out = enroll_with_factory(&fx, "f-revoked", &key, &cert).await;
    assert_ne!(
        status_and_body(&out).0,
        200,
        "revoked factory credential enrolled"
    );
    assert_eq!(fx.cert_count("f-revoked").await, 0);
    // The handshake refusal is audited under the device the certificate claims.
    wait_for_event(&fx, |e| {
        e.event_type == "https.certificate_rejected"
            && e.outcome == Outcome::Denied
            && e.subject.id == "f-revoked"
            && e.details.get("claimed_kind").map(String::as_str) == Some("bootstrap")
            && e.details.get("serial") == Some(&serial.to_string())
    })
    .await;
    assert_eq!(
        fx.store().device("f-revoked").await.unwrap().state,
        DeviceState::Manufactured
    );

    // The device revoked: its factory credential is revoked with it.
    let (key, cert) = fx.factory_credential("f-device-revoked").await;
    fx.server()
        .identity()
        .revoke_device(
            &DeviceId::parse("f-device-revoked").unwrap(),
            "operator:test",
        )
        .await
        .unwrap();
    let out = enroll_with_factory(&fx, "f-device-revoked", &key, &cert).await;
    assert_ne!(
        status_and_body(&out).0,
        200,
        "credential of a revoked device enrolled"
    );
    assert_eq!(fx.cert_count("f-device-revoked").await, 0);
    fx.stop().await;
}
