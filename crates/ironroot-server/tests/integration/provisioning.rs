//! The paths that must work: bootstrap with a claim token, EST enroll with a factory
//! certificate, re-enroll and rotation, re-enrollment after expiry, the operator API.

use ironroot_store::DeviceState;

use crate::harness::*;

mod factory;
mod reenrollment;

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
    // The enrollment entry is written after the response (regression: read too early, this
    // failed now and then on a loaded machine).
    wait_for_event(&fx, |e| {
        e.event_type == "device.provisioned"
            && e.subject.id == "sensor-1"
            && e.details.get("method").map(String::as_str) == Some("claim_token")
    })
    .await;
    let events = fx.audit_events().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_credentials_must_be_recorded_and_unrevoked_sqlite() {
    factory::factory_credentials_must_be_recorded_and_unrevoked(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_credentials_must_be_recorded_and_unrevoked_postgres() {
    factory::factory_credentials_must_be_recorded_and_unrevoked(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_enroll_reenroll_rotation_sqlite() {
    reenrollment::factory_enroll_reenroll_rotation(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_enroll_reenroll_rotation_postgres() {
    reenrollment::factory_enroll_reenroll_rotation(Db::Postgres).await;
}

/// Without a first use, the previous certificate retires when the grace period ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_grace_period_ends() {
    reenrollment::rotation_grace_period_ends().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_reenrollment_sqlite() {
    reenrollment::expired_reenrollment(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_reenrollment_postgres() {
    reenrollment::expired_reenrollment(Db::Postgres).await;
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
