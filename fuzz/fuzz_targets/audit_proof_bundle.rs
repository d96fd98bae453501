//! Proof bundles (`ironroot audit check-proof` input): parsing and verifying arbitrary text
//! never panics.
#![no_main]

use ironroot_audit::bundle::ProofBundle;
use ironroot_audit::note::NoteSigner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(bundle) = ProofBundle::parse(text) {
        let signer = NoteSigner::from_seed("fuzz.example/log", &[1; 32]).expect("valid name");
        let _ = bundle.verify(signer.verifier());
        let _ = ProofBundle::parse(&bundle.to_text()).expect("re-parses its own output");
    }
});
