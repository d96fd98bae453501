//! Signed-command envelopes as a device receives them on `devices/<id>/commands` (from a
//! broker it does not trust to author them). Any bytes must give a typed refusal, never a
//! panic: as the whole message, as the signer certificate (webpki and x509-parser on
//! arbitrary DER), and as the payload JSON.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ironroot_device::command::{Command, CommandVerifier, Envelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = 1_800_000_000;
    let mut verifier = CommandVerifier::new(Vec::new(), "gw-1");
    let _ = Envelope::parse(data);
    let _ = verifier.verify(data, now);
    let _ = Command::parse(data);
    // The same bytes as the certificate chain and payload of a well-formed envelope.
    let (b64, b64url) = (STANDARD.encode(data), URL_SAFE_NO_PAD.encode(data));
    let wrapped =
        format!(r#"{{"payload":"{b64url}","signature":"{b64url}","chain":["{b64}","{b64}"]}}"#);
    let _ = verifier.verify(wrapped.as_bytes(), now);
});
