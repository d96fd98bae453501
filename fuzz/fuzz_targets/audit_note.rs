//! Signed notes, checkpoints and verifier keys: parsing and verifying arbitrary text never
//! panics, and nothing but the fixed key's own signatures verifies.
#![no_main]

use ironroot_audit::checkpoint::{Checkpoint, SignedCheckpoint};
use ironroot_audit::note::{NoteSigner, NoteVerifier, parse_note};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_note(text);
    let _ = Checkpoint::parse_text(text);
    let _ = NoteVerifier::parse(text);
    let _ = NoteSigner::parse(text);
    let signer = NoteSigner::from_seed("fuzz.example/log", &[1; 32]).expect("valid name");
    if let Ok(note) = signer.verifier().verify(text) {
        // Only a note this key signed can verify: re-signing its text reproduces the signature
        // line (Ed25519 is deterministic).
        let resigned = signer.sign(note.text).expect("verified text is valid note text");
        assert!(text.contains(resigned.rsplit_once("\n\n").expect("signed").1));
    }
    let _ = SignedCheckpoint::verify_note(text, signer.verifier());
});
