//! Fuzzes the OCSP request parser (`ironroot_pki::ocsp::OcspRequest`), the POST body form and
//! the GET path form, with arbitrary bytes. Properties: never panics; whatever it accepts lists
//! 1..=MAX_CERT_IDS CertIDs and came from at most MAX_REQUEST_BYTES.
#![no_main]

use ironroot_pki::ocsp::{MAX_CERT_IDS, MAX_REQUEST_BYTES, OcspRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = OcspRequest::from_der(data) {
        assert!(data.len() <= MAX_REQUEST_BYTES);
        assert!((1..=MAX_CERT_IDS).contains(&req.queries().len()));
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(req) = OcspRequest::from_get_path(text)
    {
        assert!((1..=MAX_CERT_IDS).contains(&req.queries().len()));
    }
});
