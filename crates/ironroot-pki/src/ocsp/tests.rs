//! Unit tests of the responder: routing, statuses, nonce, signature, responder certificate.
//! The end-to-end oracle (`openssl ocsp` against the running server) is in the `ironroot`
//! crate's integration tests.

use std::sync::Arc;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use time::{Duration, OffsetDateTime};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::ca::{CaRole, IssuingCa};
use crate::hierarchy::{HierarchyPolicy, create_root, sign_subordinate};
use crate::signer::{CaSigner, SoftwareKey};

struct Pki {
    root: IssuingCa,
    intermediate: IssuingCa,
    other: IssuingCa,
}

fn pki(now: OffsetDateTime) -> Pki {
    let policy = HierarchyPolicy::default();
    let root = create_root(Arc::new(SoftwareKey::generate().unwrap()), &policy, now).unwrap();
    let sub = |cn: &str, role| {
        let key: Arc<dyn CaSigner> = Arc::new(SoftwareKey::generate().unwrap());
        let cert = sign_subordinate(
            &root,
            role,
            cn,
            key.as_ref(),
            "ironroot",
            Duration::days(365),
            now,
        )
        .unwrap();
        IssuingCa::new(cert, role, key).unwrap()
    };
    let intermediate = sub("ironroot Intermediate CA G1", CaRole::Intermediate);
    let other = sub("ironroot Factory CA", CaRole::Factory);
    Pki {
        root,
        intermediate,
        other,
    }
}

fn cert_id(issuer: &IssuingCa, hash: CertIdHash, serial: &[u8]) -> x509_ocsp::CertId {
    let (_, parsed) = X509Certificate::from_der(issuer.certificate().der()).unwrap();
    let key = parsed.public_key().subject_public_key.data.to_vec();
    let oid = match hash {
        CertIdHash::Sha1 => "1.3.14.3.2.26",
        _ => "2.16.840.1.101.3.4.2.1",
    };
    x509_ocsp::CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap(oid),
            parameters: None,
        },
        issuer_name_hash: OctetString::new(hash.digest(issuer.certificate().subject_raw()))
            .unwrap(),
        issuer_key_hash: OctetString::new(hash.digest(&key)).unwrap(),
        serial_number: SerialNumber::new(serial).unwrap(),
    }
}

fn request(ids: Vec<x509_ocsp::CertId>, nonce: Option<&[u8]>) -> OcspRequest {
    let der = x509_ocsp::OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            request_list: ids
                .into_iter()
                .map(|req_cert| x509_ocsp::Request {
                    req_cert,
                    single_request_extensions: None,
                })
                .collect(),
            request_extensions: nonce.map(|n| {
                vec![Extension {
                    extn_id: ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2"),
                    critical: false,
                    extn_value: OctetString::new(
                        OctetString::new(n.to_vec()).unwrap().to_der().unwrap(),
                    )
                    .unwrap(),
                }]
            }),
            ..Default::default()
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap();
    OcspRequest::from_der(&der).unwrap()
}

fn basic(der: &[u8]) -> BasicOcspResponse {
    let response = OcspResponse::from_der(der).unwrap();
    assert_eq!(response.response_status, OcspResponseStatus::Successful);
    BasicOcspResponse::from_der(response.response_bytes.unwrap().response.as_bytes()).unwrap()
}

#[test]
fn responder_certificate_is_a_delegated_ocsp_signer_of_its_ca() {
    let now = OffsetDateTime::now_utc();
    let p = pki(now);
    let r = DelegatedResponder::issue(&p.intermediate, now, Duration::days(7)).unwrap();
    let (_, cert) = X509Certificate::from_der(r.certificate().der()).unwrap();
    assert_eq!(
        cert.issuer().as_raw(),
        p.intermediate.certificate().subject_raw()
    );
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.ocsp_signing && !eku.client_auth && !eku.server_auth);
    assert!(!cert.is_ca());
    let nocheck = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.48.1.5")
        .expect("id-pkix-ocsp-nocheck present");
    assert_eq!(nocheck.value, &[0x05, 0x00]);
    let life = r.certificate().not_after() - now;
    assert!(life <= Duration::days(7) && life > Duration::days(7) - Duration::minutes(1));
    // The root (offline) never signs one.
    assert!(DelegatedResponder::issue(&p.root, now, Duration::days(7)).is_err());
    // The factory CA signs its own.
    assert!(DelegatedResponder::issue(&p.other, now, Duration::days(7)).is_ok());
}

#[test]
fn statuses_nonce_and_signature_verify() {
    let now = OffsetDateTime::now_utc();
    let p = pki(now);
    let responder = OcspResponder::new(
        p.root.certificate(),
        vec![DelegatedResponder::issue(&p.intermediate, now, Duration::days(7)).unwrap()],
    )
    .unwrap();
    let revoked_at = now - Duration::hours(1);
    let req = request(
        vec![
            cert_id(&p.intermediate, CertIdHash::Sha1, &[1]),
            cert_id(&p.intermediate, CertIdHash::Sha256, &[2]),
            cert_id(&p.intermediate, CertIdHash::Sha1, &[3]),
        ],
        Some(&[0x42; 16]),
    );
    let Ok(Route::Delegated(r)) = responder.route(&req) else {
        panic!("the intermediate's CertIDs route to its responder");
    };
    let states = [
        CertState::Good,
        CertState::Revoked {
            at: revoked_at,
            reason: RevocationReason::KeyCompromise,
        },
        CertState::Unknown,
    ];
    let der = r.respond(&req, &states, now, Duration::minutes(5)).unwrap();
    let b = basic(&der);
    let statuses: Vec<_> = b
        .tbs_response_data
        .responses
        .iter()
        .map(|s| s.cert_status)
        .collect();
    assert!(matches!(statuses[0], CertStatus::Good(_)));
    match statuses[1] {
        CertStatus::Revoked(info) => {
            assert_eq!(
                info.revocation_reason,
                Some(x509_cert::ext::pkix::CrlReason::KeyCompromise)
            );
            assert_eq!(
                info.revocation_time.0.to_unix_duration().as_secs() as i64,
                revoked_at.unix_timestamp()
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(statuses[2], CertStatus::Unknown(_)));
    // The CertIDs are echoed as sent (hash algorithm included).
    assert_eq!(
        b.tbs_response_data.responses[1].cert_id,
        req.queries()[1].id
    );
    assert_eq!(
        b.nonce().unwrap().0.as_bytes(),
        OctetString::new(vec![0x42; 16]).unwrap().as_bytes()
    );
    // Signed by the responder key, whose certificate is in `certs`.
    let certs = b.certs.as_ref().unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].to_der().unwrap(), r.certificate().der().to_vec());
    let (_, rc) = X509Certificate::from_der(r.certificate().der()).unwrap();
    let key = UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_ASN1,
        rc.public_key().subject_public_key.data.to_vec(),
    );
    let tbs = b.tbs_response_data.to_der().unwrap();
    key.verify(&tbs, b.signature.raw_bytes()).unwrap();
    let mut tampered = tbs.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(key.verify(&tampered, b.signature.raw_bytes()).is_err());
    // Without a nonce, none is sent back.
    let plain = request(vec![cert_id(&p.intermediate, CertIdHash::Sha1, &[1])], None);
    let b = basic(
        &r.respond(&plain, &[CertState::Good], now, Duration::minutes(5))
            .unwrap(),
    );
    assert!(b.nonce().is_none());
    // A state count that does not match is an internal error, not a wrong answer.
    assert_eq!(
        r.respond(&plain, &[], now, Duration::minutes(5))
            .unwrap_err()
            .status(),
        OcspStatus::InternalError
    );
}

#[test]
fn routing_unauthorized_root_and_mixed_issuers() {
    let now = OffsetDateTime::now_utc();
    let p = pki(now);
    let responder = OcspResponder::new(
        p.root.certificate(),
        vec![DelegatedResponder::issue(&p.intermediate, now, Duration::days(7)).unwrap()],
    )
    .unwrap();
    let ours = cert_id(&p.intermediate, CertIdHash::Sha1, &[1]);
    let theirs = cert_id(&p.other, CertIdHash::Sha1, &[1]);
    let root = cert_id(&p.root, CertIdHash::Sha256, &[1]);
    assert!(matches!(
        responder.route(&request(vec![ours.clone()], None)),
        Ok(Route::Delegated(_))
    ));
    // The factory CA's responder is not loaded here: not ours to answer.
    assert_eq!(
        responder
            .route(&request(vec![theirs.clone()], None))
            .unwrap_err(),
        OcspStatus::Unauthorized
    );
    assert_eq!(
        responder
            .route(&request(vec![ours.clone(), theirs], None))
            .unwrap_err(),
        OcspStatus::Unauthorized
    );
    assert!(matches!(
        responder.route(&request(vec![root.clone()], None)),
        Ok(Route::Root)
    ));
    assert_eq!(
        responder
            .route(&request(vec![root, ours], None))
            .unwrap_err(),
        OcspStatus::Unauthorized
    );
    // A right name hash with a wrong key hash (a look-alike CA) is not ours either.
    let mut lookalike = cert_id(&p.intermediate, CertIdHash::Sha1, &[1]);
    lookalike.issuer_key_hash = OctetString::new(vec![0; 20]).unwrap();
    assert_eq!(
        responder
            .route(&request(vec![lookalike], None))
            .unwrap_err(),
        OcspStatus::Unauthorized
    );
    assert!(responder.expires().unwrap() > now + Duration::days(6));
}

#[test]
fn status_only_responses_decode() {
    for (status, want) in [
        (
            OcspStatus::MalformedRequest,
            OcspResponseStatus::MalformedRequest,
        ),
        (OcspStatus::InternalError, OcspResponseStatus::InternalError),
        (OcspStatus::TryLater, OcspResponseStatus::TryLater),
        (OcspStatus::Unauthorized, OcspResponseStatus::Unauthorized),
    ] {
        let r = OcspResponse::from_der(&status.to_der()).unwrap();
        assert_eq!(r.response_status, want);
        assert!(r.response_bytes.is_none());
    }
}

#[test]
fn root_signed_answers_for_ca_certificates_match_verify_and_go_stale() {
    let now = OffsetDateTime::now_utc();
    let p = pki(now);
    let next = now + Duration::days(30);
    let revoked_at = now - Duration::hours(2);
    let text = sign_ca_responses(
        &p.root,
        &[
            (p.intermediate.certificate().clone(), CertState::Good),
            (
                p.other.certificate().clone(),
                CertState::Revoked {
                    at: revoked_at,
                    reason: RevocationReason::CaCompromise,
                },
            ),
        ],
        now,
        next,
    )
    .unwrap();
    let stored = CaResponses::from_pem(text.as_bytes()).unwrap();
    assert_eq!(stored.len(), 4, "two CAs × SHA-1 and SHA-256");
    let ask = |ca: &IssuingCa, hash| {
        let mut id = cert_id(&p.root, hash, &[1]);
        id.serial_number = x509_cert::Certificate::from_der(ca.certificate().der())
            .unwrap()
            .tbs_certificate
            .serial_number;
        request(vec![id], None)
    };
    let good = stored
        .answer(&ask(&p.intermediate, CertIdHash::Sha256), now)
        .unwrap();
    let b = basic(good);
    assert!(matches!(
        b.tbs_response_data.responses[0].cert_status,
        CertStatus::Good(_)
    ));
    // Signed by the root key; the root certificate rides along in `certs`.
    let root_key = UnparsedPublicKey::new(
        &ECDSA_P256_SHA256_ASN1,
        p.root.signer().public_key().to_vec(),
    );
    root_key
        .verify(
            &b.tbs_response_data.to_der().unwrap(),
            b.signature.raw_bytes(),
        )
        .unwrap();
    assert_eq!(
        b.certs.unwrap()[0].to_der().unwrap(),
        p.root.certificate().der().to_vec()
    );
    let revoked = basic(
        stored
            .answer(&ask(&p.other, CertIdHash::Sha1), now)
            .unwrap(),
    );
    assert!(matches!(
        revoked.tbs_response_data.responses[0].cert_status,
        CertStatus::Revoked(info)
            if info.revocation_reason == Some(x509_cert::ext::pkix::CrlReason::CaCompromise)
    ));
    // Stale after nextUpdate; an unknown CA serial has no answer: tryLater, never a guess.
    assert_eq!(
        stored
            .answer(
                &ask(&p.intermediate, CertIdHash::Sha1),
                next + Duration::seconds(1)
            )
            .unwrap_err(),
        OcspStatus::TryLater
    );
    assert_eq!(
        stored
            .answer(
                &request(vec![cert_id(&p.root, CertIdHash::Sha1, &[1])], None),
                now
            )
            .unwrap_err(),
        OcspStatus::TryLater
    );
}
