//! EST certs-only responses as a device receives them from the network: base64 of CMS
//! SignedData. Any bytes must give certificates or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Raw bytes as the body, and the same bytes base64-encoded so the DER decoder is reached.
    let _ = ironroot_device::parse_certs_only(data);
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let _ = ironroot_device::parse_certs_only(encoded.as_bytes());
});
