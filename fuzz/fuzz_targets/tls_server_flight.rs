//! The TLS grader's parser of a server's first flight (ServerHello / HelloRetryRequest /
//! ServerKeyExchange / CertificateRequest / Alert): never panics on any bytes; and every
//! ClientHello the builder makes from fuzzed lists stays length-consistent.
#![no_main]

use ironroot_tlscheck::{ClientHello, parse_flight};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_flight(data);
    if data.len() >= 2 {
        let suites: Vec<u16> = data
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        let version = 0x0300 + u16::from(data[0] % 5);
        let mut h = ClientHello::new(version, suites.clone(), suites, [0; 32]);
        h.compression = data.to_vec();
        let r = h.encode();
        assert_eq!(usize::from(u16::from_be_bytes([r[3], r[4]])), r.len() - 5);
    }
});
