//! Re-enrollment: factory enroll, re-enroll and rotation (with its grace period), and
//! re-enrollment after expiry. The `#[tokio::test]` entry points stay in `provisioning`.

use std::time::Duration;

use ironroot_pki::{DeviceId, IssuancePolicy, verify_csr};
use ironroot_store::{CertificateKind, CertificateStatus, DeviceState, NewCertificate};

use super::{PKCS10, enroll_with_token};
use crate::harness::*;

/// The operational certificates of `id` (its recorded factory credential left out).
async fn operational(fx: &Fixture, id: &str) -> Vec<ironroot_store::Certificate> {
    fx.store()
        .certificates_for_device(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.kind == CertificateKind::Operational)
        .collect()
}

/// Factory certificate enroll, then re-enroll with the operational certificate; the old
/// certificate retires at the first use of the new one.
pub(super) async fn factory_enroll_reenroll_rotation(db: Db) {
    let fx = Fixture::start(db, |_| {}).await;
    let (status, body) = fx
        .admin(
            "POST",
            "/api/v1/devices",
            Some(r#"{"id":"meter-7","groups":["line-a"]}"#),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (fkey, fcert) = fx.factory_credential("meter-7").await;
    let (_key, _) = new_key_and_csr(fx.dir.path(), "op1", Some("meter-7"));
    let url = fx.url("/.well-known/est/simpleenroll");
    let b64 = format!("@{}", fx.path("op1.csr.b64").display());
    let out = fx
        .curl(&[
            "--cert",
            fcert.to_str().unwrap(),
            "--key",
            fkey.to_str().unwrap(),
            "--data-binary",
            &b64,
            "-H",
            PKCS10,
            "-w",
            "\n%{http_code}",
            &url,
        ])
        .await;
    let (status, body) = status_and_body(&out);
    assert_eq!(
        status,
        200,
        "{body} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = pkcs7_to_pem(fx.dir.path(), "op1", &body);
    let op1 = fx.path("op1.crt.pem");
    std::fs::write(&op1, &pem).unwrap();
    assert_eq!(
        fx.store().device("meter-7").await.unwrap().state,
        DeviceState::Provisioned
    );
    // The factory credential cannot enroll a second time.
    let out = fx
        .curl(&[
            "--cert",
            fcert.to_str().unwrap(),
            "--key",
            fkey.to_str().unwrap(),
            "--data-binary",
            &b64,
            "-H",
            PKCS10,
            "-w",
            "\n%{http_code}",
            &url,
        ])
        .await;
    assert_eq!(status_and_body(&out).0, 401);
    fx.assert_denied("provision.failed", Some("meter-7"), "already_enrolled")
        .await;

    // Re-enroll with the operational certificate and a new key.
    new_key_and_csr(fx.dir.path(), "op2", Some("meter-7"));
    let op1_key = fx.path("op1.key.pem");
    let url = fx.url("/.well-known/est/simplereenroll");
    let b64 = format!("@{}", fx.path("op2.csr.b64").display());
    let out = fx
        .curl(&[
            "--cert",
            op1.to_str().unwrap(),
            "--key",
            op1_key.to_str().unwrap(),
            "--data-binary",
            &b64,
            "-H",
            PKCS10,
            "-w",
            "\n%{http_code}",
            &url,
        ])
        .await;
    let (status, body) = status_and_body(&out);
    assert_eq!(status, 200, "{body}");
    let op2 = fx.path("op2.crt.pem");
    std::fs::write(&op2, pkcs7_to_pem(fx.dir.path(), "op2", &body)).unwrap();
    let certs = operational(&fx, "meter-7").await;
    assert_eq!(certs.len(), 2);
    assert!(
        certs.iter().all(|c| c.status == CertificateStatus::Active),
        "old stays valid during the grace period"
    );
    // The old certificate still works during the grace period.
    let out = fx
        .curl(&[
            "--cert",
            op1.to_str().unwrap(),
            "--key",
            op1_key.to_str().unwrap(),
            "-w",
            "\n%{http_code}",
            &fx.url("/.well-known/est/cacerts"),
        ])
        .await;
    assert_eq!(status_and_body(&out).0, 200);
    // First use of the new certificate retires the old one.
    let op2_key = fx.path("op2.key.pem");
    let out = fx
        .curl(&[
            "--cert",
            op2.to_str().unwrap(),
            "--key",
            op2_key.to_str().unwrap(),
            "-w",
            "\n%{http_code}",
            &fx.url("/.well-known/est/cacerts"),
        ])
        .await;
    assert_eq!(status_and_body(&out).0, 200);
    let certs = operational(&fx, "meter-7").await;
    let revoked: Vec<_> = certs
        .iter()
        .filter(|c| c.status == CertificateStatus::Revoked)
        .collect();
    assert_eq!(revoked.len(), 1, "{certs:?}");
    let events = fx.audit_events().await;
    assert!(events.iter().any(|e| e.event_type == "cert.retired"
        && e.details.get("trigger").map(String::as_str) == Some("first_use")));
    assert!(
        events.iter().any(
            |e| e.event_type == "cert.renewed" && e.outcome == ironroot_audit::Outcome::Success
        )
    );
    // The retired certificate no longer passes the TLS handshake.
    let out = fx
        .curl(&[
            "--cert",
            op1.to_str().unwrap(),
            "--key",
            op1_key.to_str().unwrap(),
            &fx.url("/.well-known/est/cacerts"),
        ])
        .await;
    assert!(!out.status.success(), "retired certificate still accepted");
    fx.stop().await;
}

/// Without a first use, the previous certificate retires when the grace period ends.
pub(super) async fn rotation_grace_period_ends() {
    let fx = Fixture::start(Db::Sqlite, |c| {
        c.enrollment.rotation_grace = Duration::from_secs(1);
        c.enrollment.sweep_interval = Duration::from_millis(200);
    })
    .await;
    let token = fx.add_with_token("cam-3").await;
    let cert = enroll_with_token(&fx, "cam-3", &token).await;
    new_key_and_csr(fx.dir.path(), "cam-3-next", Some("cam-3"));
    let b64 = format!("@{}", fx.path("cam-3-next.csr.b64").display());
    let key = fx.path("cam-3.key.pem");
    let out = fx
        .curl(&[
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
            &fx.url("/.well-known/est/simplereenroll"),
        ])
        .await;
    assert_eq!(status_and_body(&out).0, 200);
    eventually(
        Duration::from_secs(10),
        "old certificate retired after the grace period",
        || async {
            fx.store()
                .certificates_for_device("cam-3")
                .await
                .unwrap()
                .iter()
                .any(|c| c.status == CertificateStatus::Revoked)
        },
    )
    .await;
    let events = fx.audit_events().await;
    assert!(events.iter().any(|e| e.event_type == "cert.retired"
        && e.details.get("trigger").map(String::as_str) == Some("grace_period_ended")));
    fx.stop().await;
}

/// Records an operational certificate for `id` that expired `ago` before now (the device was
/// offline past its expiry), and moves the device to provisioned.
pub async fn expired_operational(fx: &Fixture, id: &str, ago: time::Duration) {
    let (_, csr) = new_key_and_csr(fx.dir.path(), &format!("old-{id}"), Some(id));
    let ca = online_ca(fx.dir.path());
    let verified = verify_csr(&std::fs::read(csr).unwrap(), &Default::default()).unwrap();
    let policy = IssuancePolicy {
        device_validity: time::Duration::days(1),
        ..IssuancePolicy::default()
    };
    let issued_at = time::OffsetDateTime::now_utc() - ago - time::Duration::days(1);
    let cert = ca
        .issuing()
        .issue_device(&verified, &DeviceId::parse(id).unwrap(), &policy, issued_at)
        .unwrap();
    let mut tx = fx.store().begin().await.unwrap();
    tx.record_issued_certificate(&NewCertificate {
        serial: cert.serial().clone(),
        der: cert.der().to_vec(),
        device_id: Some(id.to_owned()),
        kind: CertificateKind::Operational,
        issuer: ca.issuing().certificate().common_name().to_owned(),
        subject: format!("CN={id}"),
        not_before: cert.not_before().unix_timestamp(),
        not_after: cert.not_after().unix_timestamp(),
    })
    .await
    .unwrap();
    tx.set_device_state(id, DeviceState::Provisioned)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    std::fs::write(fx.path(&format!("old-{id}.crt.pem")), cert.pem()).unwrap();
}

pub(super) async fn expired_reenrollment(db: Db) {
    let fx = Fixture::start(db, |c| {
        c.enrollment.expired_reenroll_window = Duration::from_secs(10 * 24 * 3600);
    })
    .await;
    for id in ["late-1", "too-late-1"] {
        let (s, b) = fx
            .admin(
                "POST",
                "/api/v1/devices",
                Some(&format!(r#"{{"id":"{id}"}}"#)),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    // Factory credentials are made on the line, before the devices ever enrolled.
    let (fkey_late, fcert_late) = fx.factory_credential("late-1").await;
    let (fkey_too_late, fcert_too_late) = fx.factory_credential("too-late-1").await;
    expired_operational(&fx, "late-1", time::Duration::days(2)).await;
    expired_operational(&fx, "too-late-1", time::Duration::days(20)).await;
    let url = fx.url("/.well-known/est/simplereenroll");
    // The expired operational certificate itself no longer passes TLS.
    new_key_and_csr(fx.dir.path(), "late-1-new", Some("late-1"));
    let b64 = format!("@{}", fx.path("late-1-new.csr.b64").display());
    let old = fx.path("old-late-1.crt.pem");
    let old_key = fx.path("old-late-1.key.pem");
    let out = fx
        .curl(&[
            "--cert",
            old.to_str().unwrap(),
            "--key",
            old_key.to_str().unwrap(),
            "--data-binary",
            &b64,
            "-H",
            PKCS10,
            &url,
        ])
        .await;
    assert!(
        !out.status.success(),
        "expired certificate accepted in the handshake"
    );
    // With the factory credential, within the window: accepted.
    let (fkey, fcert) = (fkey_late, fcert_late);
    let out = fx
        .curl(&[
            "--cert",
            fcert.to_str().unwrap(),
            "--key",
            fkey.to_str().unwrap(),
            "--data-binary",
            &b64,
            "-H",
            PKCS10,
            "-w",
            "\n%{http_code}",
            &url,
        ])
        .await;
    let (status, body) = status_and_body(&out);
    assert_eq!(status, 200, "{body}");
    let pem = pkcs7_to_pem(fx.dir.path(), "late-1-new", &body);
    assert!(pem.contains("CN = late-1"));
    let events = fx.audit_events().await;
    assert!(events.iter().any(|e| e.event_type == "cert.renewed"
        && e.subject.id == "late-1"
        && e.details.get("expired").map(String::as_str) == Some("true")));
    assert_eq!(fx.cert_count("late-1").await, 2);
    // Beyond the window: refused, audited, nothing issued.
    new_key_and_csr(fx.dir.path(), "too-late-1-new", Some("too-late-1"));
    let b64 = format!("@{}", fx.path("too-late-1-new.csr.b64").display());
    let (fkey, fcert) = (fkey_too_late, fcert_too_late);
    let out = fx
        .curl(&[
            "--cert",
            fcert.to_str().unwrap(),
            "--key",
            fkey.to_str().unwrap(),
            "--data-binary",
            &b64,
            "-H",
            PKCS10,
            "-w",
            "\n%{http_code}",
            &url,
        ])
        .await;
    assert_eq!(status_and_body(&out).0, 401);
    fx.assert_denied("cert.renewed", Some("too-late-1"), "expired_beyond_window")
        .await;
    assert_eq!(fx.cert_count("too-late-1").await, 1);
    fx.stop().await;
}
