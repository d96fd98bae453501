//! The paths that must work: bootstrap with a claim token, EST enroll with a factory
//! certificate, re-enroll and rotation, re-enrollment after expiry, the operator API.

use std::time::Duration;

use ironroot_pki::{DeviceId, IssuancePolicy, verify_csr};
use ironroot_store::{CertificateKind, CertificateStatus, DeviceState, NewCertificate};

use crate::harness::*;

const PKCS10: &str = "Content-Type: application/pkcs10";

/// Enrolls `id` with curl exactly as an EST client does; returns the issued cert PEM path.
async fn enroll_with_token(fx: &Fixture, id: &str, token: &str) -> std::path::PathBuf {
    let (key, _) = new_key_and_csr(fx.dir.path(), id, Some(id));
    let userpass = format!("{id}:{token}");
    let b64 = format!("@{}", fx.path(&format!("{id}.csr.b64")).display());
    let url = fx.url("/.well-known/est/simpleenroll");
    let out = fx
        .curl(&[
            "-D",
            "-",
            "--data-binary",
            &b64,
            "-H",
            PKCS10,
            "-u",
            &userpass,
            &url,
        ])
        .await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{text}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/pkcs7-mime; smime-type=certs-only"),
        "{head}"
    );
    assert!(
        lower.contains("content-transfer-encoding: base64"),
        "{head}"
    );
    let pem = pkcs7_to_pem(fx.dir.path(), id, body);
    assert!(pem.contains(&format!("subject=CN = {id}")), "{pem}");
    let cert = fx.path(&format!("{id}.crt.pem"));
    std::fs::write(&cert, &pem).unwrap();
    let _ = key;
    cert
}

async fn bootstrap_with_claim_token(db: Db) {
    let fx = Fixture::start(db, |_| {}).await;
    let token = fx.add_with_token("sensor-1").await;
    let cert = enroll_with_token(&fx, "sensor-1", &token).await;
    // The issued certificate chains to ironroot's CA.
    let out = openssl(&[
        "verify",
        "-CAfile",
        fx.chain().to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"));
    let device = fx.store().device("sensor-1").await.unwrap();
    assert_eq!(device.state, DeviceState::Provisioned);
    assert_eq!(fx.cert_count("sensor-1").await, 1);
    let events = fx.audit_events().await;
    assert!(events.iter().any(|e| e.event_type == "device.provisioned"
        && e.subject.id == "sensor-1"
        && e.details.get("method").map(String::as_str) == Some("claim_token")));
    assert!(
        events
            .iter()
            .any(|e| e.event_type == "provision.claim_created")
    );
    // No token text in the audit log.
    for e in &events {
        assert!(
            !format!("{e:?}").contains(&token),
            "token leaked into the audit log"
        );
    }
    // Replay: refused, audited, nothing issued.
    let userpass = format!("sensor-1:{token}");
    let b64 = format!("@{}", fx.path("sensor-1.csr.b64").display());
    let url = fx.url("/.well-known/est/simpleenroll");
    let out = fx
        .curl(&[
            "-w",
            "\n%{http_code}",
            "--data-binary",
            &b64,
            "-H",
            PKCS10,
            "-u",
            &userpass,
            &url,
        ])
        .await;
    let (status, body) = status_and_body(&out);
    assert_eq!(status, 401);
    assert_eq!(body, r#"{"error":"unauthorized"}"#);
    fx.assert_denied("provision.failed", Some("sensor-1"), "token_used")
        .await;
    assert_eq!(fx.cert_count("sensor-1").await, 1);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_with_claim_token_sqlite() {
    bootstrap_with_claim_token(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_with_claim_token_postgres() {
    bootstrap_with_claim_token(Db::Postgres).await;
}

/// cacerts and csrattrs in RFC 7030 formats, read by openssl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn est_cacerts_and_csrattrs() {
    let fx = Fixture::start(Db::Sqlite, |_| {}).await;
    let out = fx
        .curl(&["-D", "-", &fx.url("/.well-known/est/cacerts")])
        .await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/pkcs7-mime"),
        "{head}"
    );
    let pem = pkcs7_to_pem(fx.dir.path(), "cacerts", body);
    assert!(
        pem.contains("ironroot Root CA") || pem.matches("BEGIN CERTIFICATE").count() >= 2,
        "{pem}"
    );
    assert_eq!(
        pem.matches("BEGIN CERTIFICATE").count(),
        2,
        "intermediate + root"
    );

    let out = fx
        .curl(&["-D", "-", &fx.url("/.well-known/est/csrattrs")])
        .await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/csrattrs"),
        "{head}"
    );
    let b64 = fx.path("attrs.b64");
    std::fs::write(&b64, body).unwrap();
    let der = fx.path("attrs.der");
    openssl(&[
        "base64",
        "-d",
        "-in",
        b64.to_str().unwrap(),
        "-out",
        der.to_str().unwrap(),
    ]);
    let parsed = openssl(&["asn1parse", "-inform", "DER", "-in", der.to_str().unwrap()]);
    let parsed = String::from_utf8_lossy(&parsed.stdout);
    assert!(parsed.contains("ecdsa-with-SHA256"), "{parsed}");
    assert!(parsed.contains("prime256v1"), "{parsed}");
    // OpenAPI document.
    let out = fx.curl(&[&fx.url("/api/openapi.json")]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["openapi"], "3.0.3");
    assert!(v["paths"]["/api/v1/enroll"].is_object());
    fx.stop().await;
}

/// Factory certificate enroll, then re-enroll with the operational certificate; the old
/// certificate retires at the first use of the new one.
async fn factory_enroll_reenroll_rotation(db: Db) {
    let fx = Fixture::start(db, |_| {}).await;
    let (status, body) = fx
        .admin(
            "POST",
            "/api/v1/devices",
            Some(r#"{"id":"meter-7","groups":["line-a"]}"#),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (fkey, fcert) = fx.factory_credential("meter-7");
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
    let certs = fx.store().certificates_for_device("meter-7").await.unwrap();
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
    let certs = fx.store().certificates_for_device("meter-7").await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_enroll_reenroll_rotation_sqlite() {
    factory_enroll_reenroll_rotation(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_enroll_reenroll_rotation_postgres() {
    factory_enroll_reenroll_rotation(Db::Postgres).await;
}

/// Without a first use, the previous certificate retires when the grace period ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_grace_period_ends() {
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

async fn expired_reenrollment(db: Db) {
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
    let (fkey, fcert) = fx.factory_credential("late-1");
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
    let (fkey, fcert) = fx.factory_credential("too-late-1");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_reenrollment_sqlite() {
    expired_reenrollment(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_reenrollment_postgres() {
    expired_reenrollment(Db::Postgres).await;
}

/// Operator API: import CSV and JSON, list, show, group claim with a quota, JSON enroll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_import_list_show_group_claim() {
    let fx = Fixture::start(Db::Sqlite, |_| {}).await;
    let csv = fx.path("devices.csv");
    std::fs::write(
        &csv,
        "id,groups,site\nline-1,batch-9,lyon\nline-2,batch-9,lyon\nbad id,,\n",
    )
    .unwrap();
    let auth = format!("Authorization: Bearer {}", fx.admin_token);
    let data = format!("@{}", csv.display());
    let out = fx
        .curl(&[
            "-H",
            &auth,
            "-H",
            "Content-Type: text/csv",
            "--data-binary",
            &data,
            &fx.url("/api/v1/devices/import"),
        ])
        .await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["added"], 2, "{v}");
    assert_eq!(v["errors"].as_array().unwrap().len(), 1);
    let (s, body) = fx
        .admin(
            "POST",
            "/api/v1/devices/import",
            Some(r#"[{"id":"line-3","groups":["batch-9"]}]"#),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = fx.admin("GET", "/api/v1/devices?group=batch-9", None).await;
    assert_eq!(s, 200);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    let (s, body) = fx.admin("GET", "/api/v1/devices/line-1", None).await;
    assert_eq!(s, 200);
    let show: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(show["attributes"]["site"], "lyon");
    // A group token with quota 2: two members enroll (JSON API), the third is refused.
    let (s, body) = fx
        .admin(
            "POST",
            "/api/v1/groups/batch-9/claim",
            Some(r#"{"quota":2}"#),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (id, want) in [("line-1", 200), ("line-2", 200), ("line-3", 401)] {
        let (_, csr) = new_key_and_csr(fx.dir.path(), id, Some(id));
        let pem = String::from_utf8(
            openssl(&["req", "-inform", "DER", "-in", csr.to_str().unwrap()]).stdout,
        )
        .unwrap();
        let body = serde_json::json!({"device_id": id, "token": token, "csr": pem}).to_string();
        let out = fx
            .curl(&[
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body,
                "-w",
                "\n%{http_code}",
                &fx.url("/api/v1/enroll"),
            ])
            .await;
        let (status, text) = status_and_body(&out);
        assert_eq!(status, want, "{id}: {text}");
        if want == 200 {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert!(
                v["certificate"]
                    .as_str()
                    .unwrap()
                    .contains("BEGIN CERTIFICATE")
            );
        }
    }
    fx.assert_denied("provision.failed", Some("line-3"), "token_used")
        .await;
    // Without the token: uniform 401.
    let out = fx
        .curl(&["-w", "\n%{http_code}", &fx.url("/api/v1/devices")])
        .await;
    assert_eq!(
        status_and_body(&out),
        (401, r#"{"error":"unauthorized"}"#.to_owned())
    );
    fx.stop().await;
}
