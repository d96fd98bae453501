//! Bad requests: each gets its own typed error, nothing is signed or recorded, and the refusal
//! is in the audit log.

use std::process::Command;

use ironroot_audit::Outcome;
use ironroot_identity::IdentityError;
use ironroot_pki::{CsrError, DeviceId};
use ironroot_store::DeviceState;
use ironroot_testkit::{run_ok, tool};

use crate::harness::{Env, both_backends, openssl_csr, request};

both_backends!(bad_requests_are_refused_typed_recorded_and_issue_nothing);

/// The refusal audit entry for `device` with reason `kind` exists.
async fn assert_refusal_audited(env: &Env, device: &str, kind: &str) {
    let events = env.audit_events().await;
    assert!(
        events.iter().any(|e| e.event_type == "cert.issued"
            && e.outcome == Outcome::Denied
            && e.subject.id == device
            && e.details.get("reason").map(String::as_str) == Some(kind)),
        "no denied cert.issued entry with reason {kind} for {device}: {events:#?}"
    );
}

async fn assert_nothing_issued(env: &Env, device: &str) {
    assert!(
        env.store
            .certificates_for_device(device)
            .await
            .unwrap()
            .is_empty(),
        "{device} got a certificate"
    );
}

fn der_csr(key: &std::path::Path, subj: &str) -> Vec<u8> {
    let out = run_ok(
        Command::new(tool("openssl"))
            .args(["req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt"])
            .arg("ec_paramgen_curve:P-256")
            .arg("-keyout")
            .arg(key)
            .args(["-subj", subj, "-outform", "DER"]),
    );
    out.stdout
}

async fn bad_requests_are_refused_typed_recorded_and_issue_nothing(env: Env) {
    env.add_device("dev-bad").await;
    let key = env.path("k.pem");

    // Bad signature: one byte of the signed subject changed after signing.
    let mut csr = der_csr(&key, "/CN=dev-bad/O=aaaa");
    let at = csr.windows(4).position(|w| w == b"aaaa").unwrap();
    csr[at + 3] = b'b';
    let err = env
        .service
        .issue(request("dev-bad", csr))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdentityError::Csr(CsrError::BadSignature)),
        "{err}"
    );
    assert_refusal_audited(&env, "dev-bad", "bad_csr").await;

    // RSA key.
    let csr = openssl_csr(&key, "/CN=dev-bad", &[], "RSA");
    let err = env
        .service
        .issue(request("dev-bad", csr))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdentityError::Csr(CsrError::RsaKey { bits: 2048 })),
        "{err}"
    );

    // P-384: a supported curve, but not allowed by the default policy.
    let csr = openssl_csr(&key, "/CN=dev-bad", &[], "P-384");
    let err = env
        .service
        .issue(request("dev-bad", csr))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IdentityError::Csr(CsrError::KeyAlgorithmNotAllowed { .. })
        ),
        "{err}"
    );

    // Injection characters in the CN.
    for cn in [
        "dev-bad'; DROP TABLE devices;--",
        "dev\\+bad",
        "dev#bad",
        "*",
        "a\\/b",
    ] {
        let csr = openssl_csr(&key, &format!("/CN={cn}"), &[], "P-256");
        let err = env
            .service
            .issue(request("dev-bad", csr))
            .await
            .unwrap_err();
        assert!(
            matches!(err, IdentityError::Csr(CsrError::CommonName(_))),
            "{cn}: {err}"
        );
    }
    // A valid CN naming another device.
    let csr = openssl_csr(&key, "/CN=someone-else", &[], "P-256");
    let err = env
        .service
        .issue(request("dev-bad", csr))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdentityError::CommonNameMismatch { .. }),
        "{err}"
    );
    assert_refusal_audited(&env, "dev-bad", "common_name_mismatch").await;

    // Larger than 16 KiB (a real CSR with a big comment extension).
    let big = format!("nsComment={}", "x".repeat(17 * 1024));
    let csr = openssl_csr(&key, "/CN=dev-bad", &[&big], "P-256");
    assert!(csr.len() > 16 * 1024);
    let err = env
        .service
        .issue(request("dev-bad", csr))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IdentityError::Csr(CsrError::TooLarge { .. })),
        "{err}"
    );

    assert_nothing_issued(&env, "dev-bad").await;
    assert_eq!(
        env.store.device("dev-bad").await.unwrap().state,
        DeviceState::Manufactured
    );

    // Unknown device.
    let csr = openssl_csr(&key, "/CN=ghost", &[], "P-256");
    let err = env.service.issue(request("ghost", csr)).await.unwrap_err();
    assert!(
        matches!(err, IdentityError::UnknownDevice(ref d) if d == "ghost"),
        "{err}"
    );
    assert_refusal_audited(&env, "ghost", "unknown_device").await;

    // Device in a state that may not receive certificates.
    env.add_device("dev-gone").await;
    env.service
        .revoke_device(&DeviceId::parse("dev-gone").unwrap(), "operator:test")
        .await
        .unwrap();
    let csr = openssl_csr(&key, "/CN=dev-gone", &[], "P-256");
    let err = env
        .service
        .issue(request("dev-gone", csr))
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
    assert_refusal_audited(&env, "dev-gone", "wrong_state").await;
    assert_nothing_issued(&env, "dev-gone").await;

    // No message carries key material or the CSR.
    assert!(!err.to_string().contains("BEGIN"));
    assert!(env.verify_audit().await > 0);
}
