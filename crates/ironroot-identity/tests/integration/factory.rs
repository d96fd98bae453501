//! Factory credentials (`IssuePurpose::Factory`): signed by the factory CA, recorded as
//! factory certificates, audited, refused for a device past `manufactured`, revocable.

use ironroot_audit::Outcome;
use ironroot_identity::{IdentityError, IssuePurpose};
use ironroot_store::{CertificateKind, CertificateStatus, DeviceState, RevocationReason};

use crate::harness::{Env, both_backends, openssl_csr, openssl_text, openssl_verify, request};

both_backends!(
    factory_credential_is_recorded_audited_and_leaves_the_device_manufactured,
    factory_credential_is_refused_once_the_device_left_manufactured,
);

fn factory_request(env: &Env, id: &str) -> ironroot_identity::IssueRequest {
    let csr = openssl_csr(
        &env.path(&format!("{id}.factory.key")),
        &format!("/CN={id}"),
        &[],
        "P-256",
    );
    let mut req = request(id, csr);
    req.purpose = IssuePurpose::Factory;
    req
}

async fn factory_credential_is_recorded_audited_and_leaves_the_device_manufactured(env: Env) {
    env.add_device("line-1").await;
    let issued = env
        .service
        .issue(factory_request(&env, "line-1"))
        .await
        .unwrap();
    assert_eq!(issued.device_state, DeviceState::Manufactured);
    assert_eq!(issued.chain_pem, env.service.factory_chain_pem());

    // A bootstrap credential from the factory CA that chains (and CRL-checks) to the root.
    let leaf = env.path("factory-leaf.pem");
    std::fs::write(&leaf, issued.pem()).unwrap();
    let chain = env.path("factory-chain.pem");
    std::fs::write(&chain, &issued.chain_pem).unwrap();
    env.service.write_crl().await.unwrap();
    let (ok, out) = openssl_verify(&chain, &env.service.crl_path(), &leaf);
    assert!(ok, "openssl verify failed: {out}");
    let text = openssl_text(&leaf);
    assert!(text.contains("URI:urn:ironroot:bootstrap:line-1"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("Issuer:") && l.contains("ironroot Factory CA")),
        "{text}"
    );
    // Long-lived (10 years by default), but never past the factory CA itself.
    let factory_ca = env.service.ca().factory().certificate().not_after();
    assert!(issued.not_after() <= factory_ca);
    assert!(issued.not_after() - time::OffsetDateTime::now_utc() > time::Duration::days(4 * 365));

    // Recorded as a factory certificate, issuer the factory CA; the state did not move.
    let certs = env.store.certificates_for_device("line-1").await.unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].kind, CertificateKind::Factory);
    assert_eq!(certs[0].issuer, "ironroot Factory CA");
    assert_eq!(certs[0].status, CertificateStatus::Active);
    assert_eq!(
        env.store.device("line-1").await.unwrap().state,
        DeviceState::Manufactured
    );
    let events = env.audit_events().await;
    let event = events
        .iter()
        .find(|e| e.event_type == "cert.issued" && e.outcome == Outcome::Success)
        .expect("cert.issued recorded");
    assert_eq!(event.details["purpose"], "factory");
    assert_eq!(event.details["serial"], certs[0].serial.to_string());
    assert_eq!(event.subject.id, "line-1");

    // The first operational certificate still provisions the device afterwards.
    let (operational, _) = env.issue("line-1").await;
    assert_eq!(operational.unwrap().device_state, DeviceState::Provisioned);

    // Revocable like any certificate: the live set and the factory CA's CRL list it.
    env.service
        .revoke_serial(
            issued.serial(),
            RevocationReason::KeyCompromise,
            "operator:test",
        )
        .await
        .unwrap();
    assert!(env.service.revocations().is_revoked(issued.serial()));
    env.service.write_crl().await.unwrap();
    let (ok, out) = openssl_verify(&chain, &env.service.crl_path(), &leaf);
    assert!(!ok, "revoked factory credential still verifies: {out}");
    assert!(out.contains("certificate revoked"), "{out}");
    assert!(env.verify_audit().await >= 3);
}

async fn factory_credential_is_refused_once_the_device_left_manufactured(env: Env) {
    // Accepted for a manufactured device first (same request shape).
    env.add_device("line-2").await;
    env.service
        .issue(factory_request(&env, "line-2"))
        .await
        .unwrap();
    // Enrolled (provisioned): no more factory credentials.
    env.issue("line-2").await.0.unwrap();
    let err = env
        .service
        .issue(factory_request(&env, "line-2"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IdentityError::WrongState {
                state: DeviceState::Provisioned,
                op: "issue a factory certificate",
                ..
            }
        ),
        "{err}"
    );
    // Unregistered devices get none either.
    let err = env
        .service
        .issue(factory_request(&env, "nobody"))
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::UnknownDevice(_)), "{err}");
    // Nothing was recorded for the refusals, and both are in the audit log as denied.
    let certs = env.store.certificates_for_device("line-2").await.unwrap();
    assert_eq!(
        certs
            .iter()
            .filter(|c| c.kind == CertificateKind::Factory)
            .count(),
        1
    );
    let events = env.audit_events().await;
    let denied: Vec<_> = events
        .iter()
        .filter(|e| {
            e.event_type == "cert.issued"
                && e.outcome == Outcome::Denied
                && e.details.get("purpose").map(String::as_str) == Some("factory")
        })
        .map(|e| {
            (
                e.subject.id.as_str(),
                e.details.get("reason").map(String::as_str),
            )
        })
        .collect();
    assert_eq!(
        denied,
        [
            ("line-2", Some("wrong_state")),
            ("nobody", Some("unknown_device"))
        ]
    );
}
