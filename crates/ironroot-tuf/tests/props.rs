//! Properties of the parsers of untrusted metadata: any bytes give a typed result, never a
//! panic; and a signature stays valid exactly as long as the signed bytes are untouched.

use ironroot_image::tools::{KeyType, PrivateKey};
use ironroot_tuf::{Envelope, KeyFileSigner, RoleKeys, Signer, verify_threshold};
use proptest::prelude::*;

proptest! {
    #[test]
    fn any_bytes_parse_to_a_typed_result(data in prop::collection::vec(any::<u8>(), 0..512)) {
        ironroot_tuf::fuzzing::metadata(&data);
    }

    #[test]
    fn json_shaped_garbage_never_panics(s in r#"\{"signed":\{("[_a-z]{1,12}":("[0-9a-zA-Z:.-]{0,20}"|[0-9]{1,20}|\[\]|\{\}|true|null),?){0,8}\},"signatures":\[\]\}"#) {
        ironroot_tuf::fuzzing::metadata(s.as_bytes());
    }

    #[test]
    fn a_changed_signed_byte_invalidates_the_signature(version in 1u64..1000, flip in 0usize..64) {
        let s = KeyFileSigner::new(PrivateKey::generate(KeyType::Ed25519)).unwrap();
        let signed = serde_json::json!({"_type": "timestamp", "version": version, "x": "abcdefghijklmnopqrstuvwxyz0123456789"});
        let canon = ironroot_tuf::encode_canonical(&signed).unwrap();
        let sig = s.sign(&canon).unwrap();
        let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
        let doc = serde_json::json!({"signed": signed, "signatures": [{"keyid": s.key().key_id(), "sig": hex}]});
        let env = Envelope::parse("t", &serde_json::to_vec(&doc).unwrap()).unwrap();
        let keys = [(s.key().key_id(), s.key().clone())].into();
        let rk = RoleKeys { keyids: vec![s.key().key_id()], threshold: 1 };
        prop_assert!(verify_threshold("t", &env, &keys, &rk).is_ok());
        let mut bad = env.clone();
        let i = flip % bad.canonical.len();
        bad.canonical[i] ^= 1;
        prop_assert!(verify_threshold("t", &bad, &keys, &rk).is_err());
    }
}
