//! Properties of the wire layer (untrusted bytes): the flight parser never panics and stays
//! bounded on any input; every hello the builder encodes has consistent lengths.

use ironroot_tlscheck::{ClientHello, parse_flight, server::MAX_FLIGHT};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_flight_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse_flight(&bytes);
    }

    #[test]
    fn parse_flight_never_panics_on_record_shaped_input(
        kind in prop_oneof![Just(20u8), Just(21u8), Just(22u8), any::<u8>()],
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        hs in any::<u8>(),
    ) {
        let mut rec = vec![kind, 3, 3];
        let mut inner = vec![hs % 16];
        inner.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        inner.extend_from_slice(&body);
        rec.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        rec.extend_from_slice(&inner);
        let _ = parse_flight(&rec);
    }

    #[test]
    fn hello_lengths_are_consistent(
        version in 0x0300u16..=0x0304,
        suites in proptest::collection::vec(any::<u16>(), 0..300),
        groups in proptest::collection::vec(any::<u16>(), 0..100),
        compression in proptest::collection::vec(any::<u8>(), 0..300),
        name in proptest::option::of("[a-z0-9.-]{0,300}"),
        reneg in any::<bool>(),
    ) {
        let mut h = ClientHello::new(version, suites, groups, [3; 32]);
        h.compression = compression;
        h.server_name = name;
        h.renegotiation_info = reneg;
        let r = h.encode();
        prop_assert_eq!(r[0], 22);
        prop_assert_eq!(usize::from(u16::from_be_bytes([r[3], r[4]])), r.len() - 5);
        prop_assert_eq!(u32::from_be_bytes([0, r[6], r[7], r[8]]) as usize, r.len() - 9);
        prop_assert!(r.len() <= 16384 + 5);
    }
}

#[test]
fn oversized_flight_is_refused() {
    assert!(parse_flight(&vec![22; MAX_FLIGHT + 1]).is_err());
}
