//! The verifier against a test hierarchy made here with rcgen: root → intermediate → signer.

use proptest::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SigningKey as _,
};
use rustls::pki_types::{CertificateDer, TrustAnchor};

use super::*;

const NOW: i64 = 1_800_000_000;
const DEVICE: &str = "gw-1";

/// A CA hierarchy and one leaf signer.
struct Pki {
    root_der: CertificateDer<'static>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
    signer: KeyPair,
    signer_der: CertificateDer<'static>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = time::OffsetDateTime::from_unix_timestamp(NOW - 86_400).unwrap();
    p.not_after = time::OffsetDateTime::from_unix_timestamp(NOW + 86_400 * 365).unwrap();
    p
}

fn leaf_params(eku: ExtendedKeyUsagePurpose, uri: Option<&str>) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "ironroot command signer");
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![eku];
    if let Some(u) = uri {
        p.subject_alt_names = vec![SanType::URI(u.try_into().unwrap())];
    }
    p.not_before = time::OffsetDateTime::from_unix_timestamp(NOW - 300).unwrap();
    p.not_after = time::OffsetDateTime::from_unix_timestamp(NOW + 3_600).unwrap();
    p
}

impl Pki {
    fn new() -> Self {
        Self::with_leaf(leaf_params(
            ExtendedKeyUsagePurpose::CodeSigning,
            Some(COMMAND_SIGNER_URI),
        ))
    }

    fn with_leaf(leaf: CertificateParams) -> Self {
        let root =
            CertifiedIssuer::self_signed(ca_params("root"), KeyPair::generate().unwrap()).unwrap();
        let intermediate = CertifiedIssuer::signed_by(
            ca_params("intermediate"),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        let signer = KeyPair::generate().unwrap();
        let signer_der = leaf
            .signed_by(&signer, &intermediate)
            .unwrap()
            .der()
            .clone();
        Self {
            root_der: root.der().clone(),
            intermediate,
            signer,
            signer_der,
        }
    }

    fn anchors(&self) -> Vec<TrustAnchor<'static>> {
        vec![
            webpki::anchor_from_trusted_cert(&self.root_der)
                .unwrap()
                .to_owned(),
        ]
    }

    fn verifier(&self) -> CommandVerifier {
        CommandVerifier::new(self.anchors(), DEVICE)
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.signer_der.clone(), self.intermediate.der().clone()]
    }

    fn seal(&self, command: &Command) -> Vec<u8> {
        Envelope::seal(command, &self.chain(), |m| self.signer.sign(m)).unwrap()
    }
}

fn command(id: &str) -> Command {
    Command {
        kind: CommandKind::Decommission,
        device: DEVICE.into(),
        id: id.into(),
        issued_at: NOW,
        expires_at: NOW + 300,
    }
}

#[test]
fn a_genuine_command_is_accepted_once() {
    let pki = Pki::new();
    let mut v = pki.verifier();
    let bytes = pki.seal(&command("id-1"));
    let ok = v.verify(&bytes, NOW + 1).unwrap();
    assert_eq!(ok.kind(), CommandKind::Decommission);
    assert_eq!(ok.id(), "id-1");
    assert_eq!(
        v.verify(&bytes, NOW + 2),
        Err(CommandError::Replayed("id-1".into()))
    );
    // A fresh id from the same signer still passes.
    assert!(v.verify(&pki.seal(&command("id-2")), NOW + 3).is_ok());
}

#[test]
fn a_command_for_another_device_is_refused() {
    let pki = Pki::new();
    let mut v = pki.verifier();
    let other = Command {
        device: "gw-2".into(),
        ..command("id-1")
    };
    assert_eq!(
        v.verify(&pki.seal(&other), NOW),
        Err(CommandError::WrongDevice("gw-2".into()))
    );
    assert!(v.verify(&pki.seal(&command("id-1")), NOW).is_ok());
}

#[test]
fn the_window_is_checked_against_ca_time() {
    let pki = Pki::new();
    let mut v = pki.verifier();
    let c = command("id-1");
    let bytes = pki.seal(&c);
    assert_eq!(v.verify(&bytes, c.expires_at), Err(CommandError::Expired));
    let ahead = Command {
        issued_at: NOW + CLOCK_TOLERANCE_SECS + 1,
        expires_at: NOW + CLOCK_TOLERANCE_SECS + 60,
        ..command("id-3")
    };
    assert_eq!(
        v.verify(&pki.seal(&ahead), NOW),
        Err(CommandError::NotYetValid)
    );
    let long = Command {
        expires_at: NOW + MAX_LIFETIME_SECS + 1,
        ..command("id-2")
    };
    assert_eq!(v.verify(&pki.seal(&long), NOW), Err(CommandError::Expired));
    // Inside the window, with a slightly slow clock: accepted.
    assert!(v.verify(&bytes, NOW - 10).is_ok());
}

#[test]
fn a_self_made_ca_is_not_the_root() {
    let genuine = Pki::new();
    let forger = Pki::new();
    let mut v = genuine.verifier();
    let err = v.verify(&forger.seal(&command("id-1")), NOW).unwrap_err();
    assert!(matches!(err, CommandError::Untrusted(_)), "{err:?}");
    // The forger's leaf with the genuine intermediate appended does not help either.
    let mixed = Envelope::seal(
        &command("id-1"),
        &[
            forger.signer_der.clone(),
            genuine.intermediate.der().clone(),
        ],
        |m| forger.signer.sign(m),
    )
    .unwrap();
    assert!(matches!(
        v.verify(&mixed, NOW),
        Err(CommandError::Untrusted(_))
    ));
    assert!(v.verify(&genuine.seal(&command("id-1")), NOW).is_ok());
}

#[test]
fn a_bad_signature_is_refused() {
    let pki = Pki::new();
    let mut v = pki.verifier();
    // Signed by a key that is not the certificate's.
    let other = KeyPair::generate().unwrap();
    let forged = Envelope::seal(&command("id-1"), &pki.chain(), |m| other.sign(m)).unwrap();
    assert_eq!(v.verify(&forged, NOW), Err(CommandError::BadSignature));
    // A genuine envelope whose payload was swapped for another device's.
    let mut env: Envelope = serde_json::from_slice(&pki.seal(&command("id-2"))).unwrap();
    let swapped: Envelope = serde_json::from_slice(&pki.seal(&Command {
        device: "gw-2".into(),
        ..command("id-3")
    }))
    .unwrap();
    env.payload = swapped.payload;
    let bytes = serde_json::to_vec(&env).unwrap();
    assert_eq!(v.verify(&bytes, NOW), Err(CommandError::BadSignature));
    // A signature without the context prefix does not verify.
    let raw = Envelope::seal(&command("id-4"), &pki.chain(), |m| {
        pki.signer.sign(&m[SIGNING_CONTEXT.len()..])
    })
    .unwrap();
    assert_eq!(v.verify(&raw, NOW), Err(CommandError::BadSignature));
    assert!(v.verify(&pki.seal(&command("id-1")), NOW).is_ok());
}

#[test]
fn only_the_command_signer_profile_may_sign() {
    // A device-style clientAuth certificate from the genuine intermediate: EKU refused, even
    // with the command-signer URI.
    for uri in ["urn:ironroot:device:gw-9", COMMAND_SIGNER_URI] {
        let client = Pki::with_leaf(leaf_params(ExtendedKeyUsagePurpose::ClientAuth, Some(uri)));
        let err = client
            .verifier()
            .verify(&client.seal(&command("id-1")), NOW)
            .unwrap_err();
        assert!(matches!(err, CommandError::Untrusted(_)), "{err:?}");
    }
    // codeSigning without the command-signer URI.
    let no_uri = Pki::with_leaf(leaf_params(ExtendedKeyUsagePurpose::CodeSigning, None));
    assert_eq!(
        no_uri
            .verifier()
            .verify(&no_uri.seal(&command("id-1")), NOW),
        Err(CommandError::NotCommandSigner)
    );
    // The signer certificate past its notAfter (in CA time).
    let pki = Pki::new();
    let late = Command {
        issued_at: NOW + 3_600,
        expires_at: NOW + 3_700,
        ..command("id-1")
    };
    assert!(matches!(
        pki.verifier().verify(&pki.seal(&late), NOW + 3_650),
        Err(CommandError::Untrusted(_))
    ));
    assert!(
        pki.verifier()
            .verify(&pki.seal(&command("id-1")), NOW)
            .is_ok()
    );
}

#[test]
fn malformed_envelopes_are_refused_before_any_crypto() {
    let pki = Pki::new();
    let mut v = pki.verifier();
    for bad in [
        &b""[..],
        b"null",
        b"{}",
        br#"{"payload":"!","signature":"","chain":["AA=="]}"#,
        br#"{"payload":"","signature":"","chain":[]}"#,
        br#"{"payload":"","signature":"","chain":["AA=="],"extra":1}"#,
    ] {
        let err = v.verify(bad, NOW).unwrap_err();
        assert!(matches!(err, CommandError::Malformed(_)), "{err:?}");
    }
    let many = Envelope::seal(&command("id-1"), &vec![pki.signer_der.clone(); 5], |m| {
        pki.signer.sign(m)
    })
    .unwrap();
    assert!(matches!(
        v.verify(&many, NOW),
        Err(CommandError::Malformed(_))
    ));
    assert_eq!(
        v.verify(&vec![b' '; MAX_ENVELOPE_BYTES + 1], NOW),
        Err(CommandError::TooLarge)
    );
    assert!(v.verify(&pki.seal(&command("id-1")), NOW).is_ok());
}

#[test]
fn the_replay_set_forgets_only_expired_ids_and_fails_closed_when_full() {
    let mut set = ReplaySet::default();
    for i in 0..replay::MAX_TRACKED {
        set.insert(&format!("id-{i}"), NOW + 60, NOW).unwrap();
    }
    assert_eq!(
        set.insert("one-more", NOW + 60, NOW),
        Err(CommandError::ReplaySetFull)
    );
    // Once those commands expired (plus the tolerance), room again; a live id stays known.
    let later = NOW + 60 + CLOCK_TOLERANCE_SECS;
    set.insert("live", later + 60, later).unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(
        set.insert("live", later + 60, later + 1),
        Err(CommandError::Replayed("live".into()))
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_verify(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let pki = Pki::new();
        prop_assert!(pki.verifier().verify(&bytes, NOW).is_err());
    }
}
