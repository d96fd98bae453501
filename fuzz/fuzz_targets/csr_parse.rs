//! Fuzzes the CSR parser/verifier (`ironroot_pki::verify_csr`) with arbitrary bytes, under a
//! policy that allows every supported key type so the deepest paths are reachable. Properties:
//! never panics; whatever it accepts has a key of an allowed type and a valid device-id CN.
#![no_main]

use ironroot_pki::{CsrPolicy, DeviceId, KeyAlgorithm, verify_csr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let policy = CsrPolicy {
        allowed_keys: vec![
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Ed25519,
        ],
        ..CsrPolicy::default()
    };
    if let Ok(csr) = verify_csr(data, &policy) {
        assert!(policy.allowed_keys.contains(&csr.subject_key().algorithm()));
        if let Some(cn) = csr.common_name() {
            assert!(DeviceId::parse(cn.as_str()).is_ok());
        }
    }
});
