//! Issuance: openssl verifies what is issued; registry, device state and audit agree.

use ironroot_audit::Outcome;
use ironroot_store::{CertificateStatus, DeviceState};

use crate::harness::{Env, both_backends, openssl_csr, openssl_text, openssl_verify, request};

both_backends!(
    issued_certificate_verifies_and_is_recorded_with_its_audit_entry,
    requested_ca_rights_and_extra_extensions_are_ignored,
    concurrent_issuance_is_batched_and_every_certificate_is_recorded,
);

async fn issued_certificate_verifies_and_is_recorded_with_its_audit_entry(env: Env) {
    env.add_device("sensor-0001").await;
    let (issued, _key) = env.issue("sensor-0001").await;
    let issued = issued.unwrap();
    assert_eq!(issued.device_state, DeviceState::Provisioned);

    let leaf = env.path("leaf.pem");
    std::fs::write(&leaf, issued.pem()).unwrap();
    let chain = env.path("chain.pem");
    std::fs::write(&chain, &issued.chain_pem).unwrap();
    env.service.write_crl().await.unwrap();
    let (ok, out) = openssl_verify(&chain, &env.service.crl_path(), &leaf);
    assert!(ok, "openssl verify failed: {out}");

    // The registry holds exactly this certificate, and the device moved on.
    let certs = env
        .store
        .certificates_for_device("sensor-0001")
        .await
        .unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].der, issued.der());
    assert_eq!(certs[0].status, CertificateStatus::Active);
    assert_eq!(certs[0].not_after, issued.not_after().unix_timestamp());
    let device = env.store.device("sensor-0001").await.unwrap();
    assert_eq!(device.state, DeviceState::Provisioned);

    // A second issuance (rotation) keeps the state.
    let (again, _) = env.issue("sensor-0001").await;
    assert_eq!(again.unwrap().device_state, DeviceState::Provisioned);
    assert_eq!(
        env.store
            .certificates_for_device("sensor-0001")
            .await
            .unwrap()
            .len(),
        2
    );

    let events = env.audit_events().await;
    let issued_events: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "cert.issued" && e.outcome == Outcome::Success)
        .collect();
    assert_eq!(issued_events.len(), 2);
    assert_eq!(
        issued_events[0].details["serial"],
        certs[0].serial.to_string()
    );
    assert_eq!(
        issued_events[0].details["fingerprint"],
        certs[0].fingerprint_hex()
    );
    assert_eq!(issued_events[0].subject.id, "sensor-0001");
    assert_eq!(issued_events[0].source, "192.0.2.7");
    assert_eq!(issued_events[0].actor, "operator:test");
    assert!(env.verify_audit().await >= 2);
}

async fn requested_ca_rights_and_extra_extensions_are_ignored(env: Env) {
    env.add_device("dev-ca").await;
    let key = env.path("dev-ca.key");
    let csr = openssl_csr(
        &key,
        "/CN=dev-ca",
        &[
            "basicConstraints=critical,CA:TRUE",
            "keyUsage=critical,keyCertSign,cRLSign",
            "subjectKeyIdentifier=hash",
            "extendedKeyUsage=serverAuth,codeSigning",
            "subjectAltName=DNS:evil.example",
        ],
        "P-256",
    );
    let issued = env.service.issue(request("dev-ca", csr)).await.unwrap();
    let leaf = env.path("leaf.pem");
    std::fs::write(&leaf, issued.pem()).unwrap();
    let text = openssl_text(&leaf);
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(!text.contains("CA:TRUE"), "{text}");
    assert!(!text.contains("Certificate Sign"), "{text}");
    assert!(!text.contains("Code Signing"), "{text}");
    assert!(!text.contains("evil.example"), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(text.contains("URI:urn:ironroot:device:dev-ca"), "{text}");
}

async fn concurrent_issuance_is_batched_and_every_certificate_is_recorded(env: Env) {
    const N: usize = 64;
    let key = env.path("shared.key");
    for i in 0..N {
        env.add_device(&format!("fleet-{i:03}")).await;
    }
    // One key, CSRs without CN (any device may use it): the service only looks at the key.
    let csr = openssl_csr(&key, "/O=fleet", &[], "P-256");
    let mut tasks = Vec::new();
    for i in 0..N {
        let service = env.service.clone();
        let csr = csr.clone();
        tasks.push(tokio::spawn(async move {
            service.issue(request(&format!("fleet-{i:03}"), csr)).await
        }));
    }
    let mut serials = std::collections::HashSet::new();
    for t in tasks {
        let issued = t.await.unwrap().unwrap();
        assert!(serials.insert(issued.serial().clone()));
    }
    for i in 0..N {
        let id = format!("fleet-{i:03}");
        assert_eq!(
            env.store.certificates_for_device(&id).await.unwrap().len(),
            1
        );
        assert_eq!(
            env.store.device(&id).await.unwrap().state,
            DeviceState::Provisioned
        );
    }
    assert!(env.verify_audit().await >= N as u64);
}
