//! Fuzzes the decoder of the measured-boot log an application (or a verifier) reads: it must
//! never panic, and whatever it accepts must re-encode to the same bytes and replay to its PCR.
#![no_main]

use ironroot_boot::measure::{MAX_ENCODED_LEN, MeasurementLog};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(log) = MeasurementLog::decode(data) {
        assert_eq!(MeasurementLog::replay(log.entries()), log.pcr());
        let mut out = [0u8; MAX_ENCODED_LEN];
        let n = log.encode(&mut out).unwrap();
        assert_eq!(&out[..n], data);
    }
});
